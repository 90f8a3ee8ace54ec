"""Demo data for ``kehu demo load``: six companies and two dozen people in Chinese cities,
with phone numbers, tags, consent and a few timeline entries. Loaded once: nothing happens
when there are contacts already."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kehu.db import utcnow
from kehu.models import User

from . import privacy, service
from .models import Activity, Contact, Revision

# (name, province, city, district, street, tags, stage)
COMPANIES = [
    ("上海云帆贸易有限公司", "上海市", "上海市", "浦东新区", "世纪大道100号", ["批发", "重点客户"], "customer"),
    ("杭州青禾茶业有限公司", "浙江省", "杭州市", "西湖区", "龙井路18号", ["茶叶", "电商"], "customer"),
    ("深圳极光电子科技有限公司", "广东省", "深圳市", "南山区", "科技园南路66号", ["电子", "展会"], "lead"),
    ("成都蜀味餐饮管理有限公司", "四川省", "成都市", "锦江区", "春熙路9号", ["餐饮"], "customer"),
    ("北京启明教育咨询有限公司", "北京市", "北京市", "海淀区", "中关村大街27号", ["教育"], "lead"),
    ("武汉长江物流有限公司", "湖北省", "武汉市", "江汉区", "解放大道688号", ["物流", "流失预警"], "former_customer"),
]

# (name, company index or None, position, mobile, email, source, tags, stage)
PEOPLE = [
    ("王芳", 0, "采购经理", "13816612345", "wang.fang@yunfan.example.cn", "展会", ["决策人"], "customer"),
    ("李强", 0, "总经理", "13901876543", "li.qiang@yunfan.example.cn", "转介绍", ["决策人", "VIP"], "customer"),
    ("张敏", 0, "财务", "13761234098", "", "展会", [], "customer"),
    ("陈静", 1, "创始人", "13588890123", "chenjing@qinghe.example.cn", "官网", ["VIP"], "customer"),
    ("刘洋", 1, "运营主管", "15867123456", "liuyang@qinghe.example.cn", "官网", [], "customer"),
    ("杨磊", 2, "技术总监", "13510987654", "yang.lei@jiguang.example.cn", "展会", ["技术"], "lead"),
    ("赵丽", 2, "采购专员", "18676543210", "", "展会", [], "lead"),
    ("黄伟", 3, "店长", "13880012345", "huangwei@shuwei.example.cn", "电话营销", [], "customer"),
    ("周婷", 3, "市场经理", "18981234567", "zhou.ting@shuwei.example.cn", "微信", ["活动"], "customer"),
    ("吴刚", 4, "校长", "13661112233", "wugang@qiming.example.cn", "转介绍", ["决策人"], "lead"),
    ("徐娜", 4, "课程顾问", "15011223344", "", "官网", [], "lead"),
    ("孙涛", 5, "调度主管", "13971234567", "suntao@changjiang.example.cn", "展会", [], "former_customer"),
    ("马超", 5, "副总经理", "13307181234", "", "转介绍", ["决策人"], "former_customer"),
    ("朱琳", None, "自由设计师", "13651234567", "zhulin.design@example.com", "微信", ["个人客户"], "customer"),
    ("胡斌", None, "个体经营", "13798765432", "", "电话营销", [], "lead"),
    ("郭晓燕", None, "", "18812345678", "guoxy@example.com", "官网", ["个人客户", "活动"], "customer"),
    ("何俊", None, "摄影师", "15920001234", "", "微信", [], "lead"),
    ("高燕", None, "", "13572345678", "gaoyan@example.com", "展会", [], "former_customer"),
    ("林峰", None, "律师", "13959876543", "linfeng.law@example.com", "转介绍", ["VIP"], "customer"),
    ("罗欣", None, "", "17612345678", "", "官网", [], "lead"),
    ("梁晨", None, "产品经理", "13426789012", "liangchen@example.com", "活动", ["活动"], "lead"),
    ("宋佳", None, "", "13812349876", "songjia@example.com", "微信", [], "customer"),
    ("郑浩", None, "工程师", "18500001111", "", "展会", ["技术"], "lead"),
    ("谢雨", None, "", "15298765432", "xieyu@example.com", "官网", [], "lead"),
]

PERSONAL_ADDRESSES = [
    ("广东省", "广州市", "天河区", "体育西路191号"), ("江苏省", "南京市", "鼓楼区", "中山北路30号"),
    ("福建省", "厦门市", "思明区", "鹭江道8号"), ("山东省", "青岛市", "市南区", "香港中路76号"),
    ("陕西省", "西安市", "雁塔区", "小寨东路126号"), ("天津市", "天津市", "和平区", "南京路219号"),
]

NOTES = [("call", "电话沟通了新季度的采购计划，对方希望下周收到报价。"),
         ("visit", "上门拜访，参观了仓库，对方对交货周期比较关心。"),
         ("note", "喜欢通过微信沟通，工作日上午联系最方便。")]


def load(session: Session) -> None:
    from kehu.platform import current

    if session.scalar(select(func.count()).select_from(Contact)):
        return
    platform = current()
    owner_id = session.scalar(select(User.id).where(User.login == "admin"))
    rng = random.Random(20240501)
    now = utcnow()
    companies = []
    for name, province, city, district, street, tags, stage in COMPANIES:
        data = service.parse_input({"name": name, "kind": "company", "province": province, "city": city,
                                    "district": district, "street": street, "tags": tags, "stage": stage,
                                    "source": "展会", "owner_id": owner_id}, [], creating=True)
        data.allow_duplicate = True
        companies.append(service.create_contact(platform, session, None, data))
    for index, (name, company, position, mobile, email, source, tags, stage) in enumerate(PEOPLE):
        values = {"name": name, "position": position, "phone": mobile, "source": source, "tags": tags,
                  "stage": stage, "owner_id": owner_id}
        if email:
            values["email"] = email
        if company is None:
            province, city, district, street = PERSONAL_ADDRESSES[index % len(PERSONAL_ADDRESSES)]
            values.update(province=province, city=city, district=district, street=street)
        else:
            source_company = companies[company]
            values.update(company_id=source_company.id, province=source_company.province,
                          city=source_company.city, district=source_company.district)
        data = service.parse_input(values, [], creating=True)
        data.allow_duplicate = True
        contact = service.create_contact(platform, session, None, data)
        contact.created_at = contact.updated_at = now - timedelta(days=rng.randint(30, 200), minutes=rng.randint(0, 600))
        session.execute(update(Revision).where(Revision.contact_id == contact.id).values(at=contact.created_at))
        if index % 3 == 0:
            kind, body = NOTES[index % len(NOTES)]
            session.add(Activity(contact_id=contact.id, kind=kind, body=body, author_id=owner_id,
                                 happened_at=now - timedelta(days=rng.randint(0, 30))))
        if index % 4 == 0:
            privacy.record_consent(session, None, contact, "marketing", "wechat", True, "微信关注时同意",
                                   at=contact.created_at + timedelta(days=1))
        if index % 8 == 0:
            privacy.record_consent(session, None, contact, "marketing", "sms", False, "短信回复退订",
                                   at=now - timedelta(days=rng.randint(1, 20)))
