"""Realistic data for the bench: Chinese people and companies, and service tickets.

Names, mobile numbers, e-mail user names, companies, positions and street addresses come from
Faker's ``zh_CN`` locale. Large counts draw names, companies and streets from pools of Faker
values (names repeat in real life too); phone numbers and e-mail addresses are unique, because
the importer treats a known phone number or e-mail address as the same person.

Three ways in, each the product's own code:

- :func:`import_contacts`: CSV files through the contacts importer (what ``kehu contacts import``
  and the import page run: validation, duplicate matching, encryption, blind indexes, revisions
  and a ``contact.created`` event per row).
- :func:`bulk_contacts`: the contacts models' tables in bulk, with real encryption (AES-GCM
  bound to table, column and row) and real blind indexes: for a million contacts.
- :func:`bulk_tickets`: the tickets models' tables in bulk, with the workflow's statuses, the
  SLA policies and the business calendar of the deployment.
"""

from __future__ import annotations

import csv
import random
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
from faker import Faker
from sqlalchemy import func, insert, select, text, update

CSV_HEADERS = ["姓名", "手机", "邮箱", "公司", "职位", "省", "市", "区", "街道", "标签", "阶段", "来源", "负责人"]
ROWS_PER_FILE = 20_000  # one import file: what a staff member exports from another system
BULK_CHUNK = 5_000  # rows per INSERT ... executemany and per transaction

# (province, city, weight): where customers of a company in eastern China tend to be.
CITIES = [("上海市", "上海市", 16), ("北京市", "北京市", 12), ("广东省", "深圳市", 10), ("广东省", "广州市", 9),
          ("浙江省", "杭州市", 9), ("江苏省", "南京市", 7), ("江苏省", "苏州市", 7), ("四川省", "成都市", 7),
          ("湖北省", "武汉市", 6), ("陕西省", "西安市", 5), ("重庆市", "重庆市", 5), ("山东省", "青岛市", 4),
          ("福建省", "厦门市", 3)]
STAGES = [("潜在客户", 50), ("成交客户", 40), ("流失客户", 10)]
SOURCES = ["展会", "官网", "转介绍", "电话营销", "微信公众号", "线下门店", ""]
TAGS = ["", "", "", "VIP", "展会", "老客户", "经销商", "VIP,老客户"]
PRODUCTS = ["空气净化器", "扫地机器人", "净水器", "智能门锁", "电热水器", "洗碗机", "新风系统", "智能音箱"]
SUBJECTS = ["{p}开机无反应", "{p}安装预约改期", "{p}噪音太大", "订单{n}迟迟未发货", "发票抬头需要修改",
            "申请退货退款（订单{n}）", "{p}配件缺失", "账单金额有误", "咨询{p}保修政策", "物流信息三天未更新",
            "扫码支付失败", "售后维修进度查询", "{p}滤芯更换提醒", "会员积分没有到账", "上门服务人员迟到"]


@dataclass
class Person:
    name: str
    phone: str  # 11 digits, unique
    email: str  # "" for about half of the people; unique otherwise
    company: str
    position: str
    province: str
    city: str
    district: str
    street: str
    tags: str
    stage: str
    source: str
    owner: str  # a staff login

    def row(self) -> list[str]:
        return [self.name, self.phone, self.email, self.company, self.position, self.province, self.city,
                self.district, self.street, self.tags, self.stage, self.source, self.owner]


class PeopleMaker:
    """Makes :class:`Person` values; phone numbers and e-mail addresses never repeat across
    calls, so later batches (the import measurement) are new people."""

    def __init__(self, seed: int, owners: list[str], scale: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.owners = owners or [""]
        pool = max(200, min(scale, 30_000))
        self.names = [self.fake.name() for _ in range(pool)]
        self.companies = list(dict.fromkeys(self.fake.company() for _ in range(max(50, min(scale // 40, 5_000)))))
        self.positions = list(dict.fromkeys(self.fake.job() for _ in range(300)))
        self.streets = [self.fake.street_address() for _ in range(max(200, min(scale, 20_000)))]
        self.districts = list(dict.fromkeys(self.fake.district() for _ in range(200)))
        self.email_users = [self.fake.user_name() for _ in range(2_000)]
        self.domains = ["qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "outlook.com", "gmail.com"]
        self.phones: set[str] = set()
        self.count = 0
        self._valid_prefix: dict[str, bool] = {}

    def _phone(self) -> str:
        while True:
            phone = self.fake.phone_number()
            prefix = phone[:4]
            if prefix not in self._valid_prefix:  # validity of Chinese mobile numbers goes by prefix
                parsed = phonenumbers.parse(prefix + "1234567", "CN")
                self._valid_prefix[prefix] = phonenumbers.is_valid_number(parsed)
            if self._valid_prefix[prefix] and phone not in self.phones:
                self.phones.add(phone)
                return phone

    def person(self) -> Person:
        rng = self.rng
        self.count += 1
        province, city, _weight = rng.choices(CITIES, weights=[c[2] for c in CITIES])[0]
        email = f"{rng.choice(self.email_users)}{self.count}@{rng.choice(self.domains)}" if rng.random() < 0.5 else ""
        return Person(
            name=rng.choice(self.names), phone=self._phone(), email=email,
            company=rng.choice(self.companies) if rng.random() < 0.8 else "",
            position=rng.choice(self.positions), province=province, city=city,
            district=rng.choice(self.districts) + "区", street=rng.choice(self.streets),
            tags=rng.choice(TAGS), stage=rng.choices([s for s, _w in STAGES], weights=[w for _s, w in STAGES])[0],
            source=rng.choice(SOURCES), owner=self.owners[self.count % len(self.owners)],
        )

    def people(self, count: int) -> list[Person]:
        return [self.person() for _ in range(count)]


# --- Contacts through the importer ---------------------------------------------------------------


def write_csv(path: Path, people: list[Person]) -> Path:
    """A CSV file as Excel on a Chinese Windows saves it (GB18030), with Chinese headers."""
    with path.open("w", newline="", encoding="gb18030") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_HEADERS)
        writer.writerows(person.row() for person in people)
    return path


def import_file(platform: Any, user: Any, path: Path) -> Any:
    """Import one file exactly as ``kehu contacts import`` does; returns the importer's report."""
    from kehu_plugins.contacts import importer

    table = importer.read_table(path)
    mapping = importer.guess_mapping(table.headers, [])
    return importer.Importer(platform, user, mapping).run(table, file_name=path.name)


def import_contacts(platform: Any, user: Any, people: list[Person], folder: Path,
                    progress: Callable[[str], None] = print) -> int:
    """Import ``people`` in files of :data:`ROWS_PER_FILE` rows; returns the contacts created."""
    created = 0
    for start in range(0, len(people), ROWS_PER_FILE):
        path = write_csv(folder / f"import-{start // ROWS_PER_FILE + 1:03d}.csv", people[start:start + ROWS_PER_FILE])
        report = import_file(platform, user, path)
        created += report.created
        path.unlink()
        progress(f"  imported {start + report.processed:,} of {len(people):,} rows "
                 f"(this file: {report.created:,} created, {report.rejected} rejected)")
    return created


def _plain_copy(table: Any, metadata: Any) -> Any:
    """``table`` as ``bench_floor_<name>``: the same columns with their plain types (no sealing
    on the way in) and the same indexes, which every insert also writes."""
    from sqlalchemy import Column, Index, Table
    from sqlalchemy.sql import visitors
    from sqlalchemy.types import TypeDecorator

    copy = Table(f"bench_floor_{table.name}", metadata,
                 *(Column(c.name, c.type.impl if isinstance(c.type, TypeDecorator) else c.type,
                          primary_key=c.primary_key) for c in table.columns))

    def on_copy(element: Any) -> Any:
        return copy.c[element.name] if isinstance(element, Column) and element.table is table else None

    for index in table.indexes:
        Index(f"bench_floor_{index.name}", *(visitors.replacement_traverse(e, {}, on_copy) for e in index.expressions))
    return copy


def floor_import(platform: Any, path: Path) -> float:
    """The floor of an import: the same file read with the ``csv`` module and its rows inserted
    with plain SQLAlchemy Core into plain copies of the contacts tables with the same indexes (a
    contact row, its phone and e-mail rows with the values as they are in the file, its tag
    rows), in transactions of the importer's batch size; no checks, no encryption, no blind
    index computed. Returns rows per second.
    (Not contacts_bench.floor_import: that one empties the contacts tables it measures in.)"""
    from sqlalchemy import MetaData

    from kehu_plugins.contacts import importer
    from kehu_plugins.contacts.models import Contact, ContactPoint, ContactTag

    metadata = MetaData()
    contact, point, tag = (_plain_copy(model.__table__, metadata) for model in (Contact, ContactPoint, ContactTag))
    metadata.create_all(platform.engine)
    try:
        started = time.perf_counter()
        with path.open(encoding="gb18030", newline="") as file:
            reader = csv.reader(file)
            next(reader)
            rows = list(reader)
        next_contact = next_point = 1
        for start in range(0, len(rows), importer.BATCH_ROWS):
            batch = rows[start:start + importer.BATCH_ROWS]
            now = datetime.now(UTC)
            contacts, points, tags = [], [], []
            for r in batch:
                contacts.append({"id": next_contact, "kind": "person", "name": r[0], "position": r[4], "source": r[11],
                                 "stage": r[10], "province": r[5], "city": r[6], "district": r[7],
                                 "street_sealed": r[8].encode(), "notes": "", "preferences": {}, "custom": {},
                                 "created_at": now, "updated_at": now, "version": 1, "row_key": ""})
                for kind, value in (("phone", r[1]), ("email", r[2])):
                    if value:
                        points.append({"id": next_point, "contact_id": next_contact, "kind": kind, "label": "",
                                       "value_sealed": value.encode(), "lookup": value, "position": 0, "row_key": ""})
                        next_point += 1
                tags += [{"contact_id": next_contact, "tag": t} for t in dict.fromkeys(r[9].split(",")) if t]
                next_contact += 1
            with platform.engine.begin() as connection:
                connection.execute(insert(contact), contacts)
                connection.execute(insert(point), points)
                if tags:
                    connection.execute(insert(tag), tags)
        return len(rows) / (time.perf_counter() - started)
    finally:
        metadata.drop_all(platform.engine)


# --- Contacts in bulk, through the models -----------------------------------------------------------------


def _chunks(items: list[Any], size: int = BULK_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _next_id(db: Any, model: Any) -> int:
    return (db.scalar(select(func.max(model.id))) or 0) + 1


def fix_sequences(platform: Any, tables: list[Any]) -> None:
    """On PostgreSQL, move each table's id sequence past the ids given explicitly."""
    if platform.engine.dialect.name != "postgresql":
        return
    with platform.engine.begin() as connection:
        for table in tables:
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                    f"(SELECT coalesce(max(id), 1) FROM {table.name}))"))


def bulk_contacts(platform: Any, people: list[Person], owner_ids: dict[str, int],
                  progress: Callable[[str], None] = print) -> int:
    """Write ``people`` (and their companies) straight into the contacts tables, encrypting the
    street address and every phone number and e-mail address as the models do, with the blind
    index of each canonical value. No revisions or events: this is history, not today's work."""
    from kehu import crypto
    from kehu_plugins.contacts import normalize
    from kehu_plugins.contacts.models import COMPANY, CUSTOMER, FORMER, LEAD, PERSON, Contact, ContactPoint, ContactTag

    stage_of = {"潜在客户": LEAD, "成交客户": CUSTOMER, "流失客户": FORMER}
    street_aad = Contact.street.field.aad  # type: ignore[attr-defined]
    value_aad = ContactPoint.value.field.aad  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    rng = random.Random(11)
    with platform.sessions() as db:
        next_contact = _next_id(db, Contact)
        next_point = _next_id(db, ContactPoint)
        company_ids = dict(db.execute(select(Contact.name, Contact.id).where(Contact.kind == COMPANY)).all())

    def contact_row(identifier: int, kind: str, name: str, created: datetime, **values: Any) -> dict[str, Any]:
        row = {"id": identifier, "kind": kind, "name": name, "company_id": None, "position": "", "source": "",
               "owner_id": None, "stage": LEAD, "province": "", "city": "", "district": "", "street_sealed": None,
               "address_detail_sealed": None, "notes": "", "preferences": {}, "custom": {}, "erased_at": None,
               "created_at": created, "updated_at": created, "created_by_id": None, "updated_by_id": None,
               "version": 1, "row_key": crypto.new_row_key()}
        row.update(values)
        return row

    companies = []
    for name in dict.fromkeys(p.company for p in people if p.company):
        if name not in company_ids:
            company_ids[name] = next_contact
            companies.append(contact_row(next_contact, COMPANY, name, now - timedelta(days=800)))
            next_contact += 1
    with platform.engine.begin() as connection:
        for chunk in _chunks(companies):
            connection.execute(insert(Contact.__table__), chunk)

    written = 0
    for chunk in _chunks(people):
        contacts, points, tags = [], [], []
        for person in chunk:
            created = now - timedelta(days=730 * rng.random())
            row = contact_row(next_contact, PERSON, person.name, created, company_id=company_ids.get(person.company),
                              position=person.position, source=person.source, owner_id=owner_ids.get(person.owner),
                              stage=stage_of[person.stage], province=person.province, city=person.city,
                              district=person.district)
            row["street_sealed"] = crypto.encrypt(person.street, street_aad(row["row_key"]))
            contacts.append(row)
            for kind, raw in ((normalize.PHONE, person.phone), (normalize.EMAIL, person.email)):
                if raw:
                    canonical = normalize.canonical(kind, raw)
                    row_key = crypto.new_row_key()
                    points.append({"id": next_point, "contact_id": next_contact, "kind": kind, "label": "",
                                   "position": 0, "row_key": row_key, "lookup": normalize.lookup(kind, canonical),
                                   "value_sealed": crypto.encrypt(canonical, value_aad(row_key))})
                    next_point += 1
            tags += [{"contact_id": next_contact, "tag": tag} for tag in dict.fromkeys(person.tags.split(",")) if tag]
            next_contact += 1
        with platform.engine.begin() as connection:
            connection.execute(insert(Contact.__table__), contacts)
            connection.execute(insert(ContactPoint.__table__), points)
            if tags:
                connection.execute(insert(ContactTag.__table__), tags)
        written += len(chunk)
        if written % 100_000 < BULK_CHUNK or written == len(people):
            progress(f"  wrote {written:,} of {len(people):,} contacts")
    fix_sequences(platform, [Contact.__table__, ContactPoint.__table__])
    return written


# --- Tickets in bulk, through the models -------------------------------------------------------------------


def bulk_tickets(platform: Any, count: int, contact_ids: list[int], agents: list[tuple[int, str]],
                 seed: int = 5, progress: Callable[[str], None] = print) -> int:
    """Write ``count`` tickets of the last year: mostly closed or resolved, the rest open in the
    workflow's other statuses; SLA targets from the deployment's policies and due moments on its
    business calendar; one history row each. ``agents`` are (user id, team) of the staff.

    A clock that ran out before now is written as escalated back then (its ``*_breach`` alert
    row), as on a desk that has been running: the measured server should not raise a year of
    escalations at once."""
    from kehu_plugins.tickets import service, sla
    from kehu_plugins.tickets.models import History, SlaAlert, Ticket, TicketSequence, TicketStatus

    rng = random.Random(seed)
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    descriptions = [fake.paragraph(nb_sentences=3) for _ in range(500)]
    now = datetime.now(UTC)
    with platform.sessions() as db:
        statuses = list(db.scalars(select(TicketStatus).where(TicketStatus.active.is_(True))))
        categories = [c.key for c in service.categories(db)] or ["general"]
        policies = {(p, c): service.policy_for(db, p, c) for p in ("low", "normal", "high", "urgent") for c in categories}
        calendar = service.business_calendar(platform, db)
        zone = service.timezone(platform)
        next_ticket = _next_id(db, Ticket)
        next_history = _next_id(db, History)
        last_numbers = dict(db.execute(select(TicketSequence.year, TicketSequence.last)).all())
    closed = [s.key for s in statuses if s.closed] or [s.key for s in statuses]
    resolved = [s.key for s in statuses if s.resolved and not s.closed] or closed
    open_keys = [s.key for s in statuses if not s.resolved and not s.closed] or closed
    flags = {s.key: s for s in statuses}

    def due(start: datetime, minutes: int | None) -> datetime | None:
        return None if minutes is None else sla.due_at(calendar, start, timedelta(minutes=minutes))

    written = 0
    for start in range(0, count, BULK_CHUNK):
        tickets, history, alerts = [], [], []
        for _ in range(min(BULK_CHUNK, count - start)):
            age = timedelta(days=365 * rng.random() ** 2)  # more recent tickets than old ones
            created = now - age
            year = created.astimezone(zone).year
            last_numbers[year] = last_numbers.get(year, 0) + 1
            roll = rng.random()
            status = rng.choice(closed if roll < 0.55 else resolved if roll < 0.75 else open_keys)
            if age < timedelta(days=3) and roll < 0.75:
                status = rng.choice(open_keys)  # today's and yesterday's work is still open
            priority = rng.choices(["low", "normal", "high", "urgent"], weights=[15, 60, 20, 5])[0]
            category = rng.choice(categories)
            policy = policies[(priority, category)]
            response_minutes = policy.response_minutes if policy else None
            resolution_minutes = policy.resolution_minutes if policy else None
            assignee, team = rng.choice(agents) if agents else (None, "")
            if status in open_keys and rng.random() < 0.15:
                assignee = None  # waiting in the team's queue
            done = flags[status].resolved or flags[status].closed
            finished = min(now, created + timedelta(hours=rng.uniform(1, 96))) if done else None
            responded = min(now, created + timedelta(minutes=rng.uniform(5, 240))) if done or rng.random() < 0.5 else None
            # As tickets.service.refresh_due leaves them: only running clocks have a due time
            # (a resolved, closed or waiting ticket's clocks are stopped or paused).
            running = not (done or flags[status].pauses_sla)
            response_due = due(created, response_minutes) if running and responded is None else None
            resolution_due = due(created, resolution_minutes) if running else None
            tickets.append({
                "id": next_ticket, "number": f"T-{year}-{last_numbers[year]:06d}", "contact_id": rng.choice(contact_ids),
                "subject": rng.choice(SUBJECTS).format(p=rng.choice(PRODUCTS), n=rng.randint(10_000_000, 99_999_999)),
                "description": rng.choice(descriptions), "channel": rng.choice(["web", "phone", "email", "wechat", "staff"]),
                "category": category, "priority": priority, "status": status, "assignee_id": assignee, "team": team,
                "created_by_id": None, "created_at": created, "updated_at": finished or created,
                "first_response_at": responded,
                "resolved_at": finished, "closed_at": finished if flags[status].closed else None,
                "response_target_minutes": response_minutes, "resolution_target_minutes": resolution_minutes,
                "response_due_at": response_due, "resolution_due_at": resolution_due,
                "next_due_at": min((d for d in (response_due, resolution_due) if d), default=None),
                "rating": rng.choice([None, None, 5, 5, 4, 3]) if done else None, "rating_comment": "", "rated_at": None,
                "portal_key": secrets.token_urlsafe(12),
            })
            for kind, due_moment in (("response_breach", response_due), ("resolution_breach", resolution_due)):
                if due_moment is not None and due_moment <= now:
                    alerts.append({"ticket_id": next_ticket, "kind": kind, "user_id": None, "created_at": due_moment})
            history.append({"id": next_history, "ticket_id": next_ticket, "at": created, "actor_id": None,
                            "action": "created", "detail": {"status": status, "channel": tickets[-1]["channel"]}})
            next_ticket += 1
            next_history += 1
        with platform.engine.begin() as connection:
            connection.execute(insert(Ticket.__table__), tickets)
            connection.execute(insert(History.__table__), history)
            if alerts:
                connection.execute(insert(SlaAlert.__table__), alerts)
        written += len(tickets)
        if written % 50_000 < BULK_CHUNK or written == count:
            progress(f"  wrote {written:,} of {count:,} tickets")
    with platform.session() as db:  # new tickets get the next numbers
        for year, last in last_numbers.items():
            if db.get(TicketSequence, year) is None:
                db.add(TicketSequence(year=year, last=last))
            else:
                db.execute(update(TicketSequence).where(TicketSequence.year == year).values(last=last))
    fix_sequences(platform, [Ticket.__table__, History.__table__])
    return written


# --- After loading -------------------------------------------------------------------------------------------------


def settle_backlog(platform: Any) -> int:
    """Take the loaded data as history: its ``contact.created`` events count as handled and the
    broker's queue is emptied, so that the measured server does not spend the run working off
    the load's backlog. Returns how many events were settled."""
    from kehu import jobs
    from kehu.models import OutboxEvent

    with platform.engine.begin() as connection:
        settled = connection.execute(update(OutboxEvent).where(OutboxEvent.handled_at.is_(None))
                                     .values(handled_at=datetime.now(UTC))).rowcount
    broker_url = platform.settings.broker_url
    if jobs.is_sql_broker(broker_url):
        engine = jobs._broker_engine(broker_url)
        with engine.begin() as connection:
            if "kombu_message" in engine.dialect.get_table_names(connection):
                connection.execute(text("DELETE FROM kombu_message"))
    return settled or 0
