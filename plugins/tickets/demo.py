"""``kehu demo load``: a few tickets on the demo contacts (once)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kehu.db import utcnow
from kehu.platform import Platform

from . import service
from .models import Ticket

SAMPLES = [
    ("空调不制冷，需要上门检修", "客户反映新买的空调开机半小时仍不制冷，型号 KFR-35GW。", "repair", "high"),
    ("发票抬头开错了", "上月订单的增值税发票抬头需要更正为公司全称。", "inquiry", "normal"),
    ("快递延误投诉", "订单三天未发货，客服电话一直占线。", "complaint", "urgent"),
]


def load(platform: Platform, db: Session) -> None:
    if db.scalar(select(func.count(Ticket.id))):
        return
    contact = service.contact_model(platform)
    contact_ids = list(db.scalars(select(contact.id).where(contact.erased_at.is_(None)).order_by(contact.id).limit(3)))
    start = utcnow() - timedelta(hours=5)
    for index, (contact_id, (subject, description, category, priority)) in enumerate(zip(contact_ids, SAMPLES)):
        values: dict[str, Any] = {"contact_id": contact_id, "subject": subject, "description": description,
                                  "category": category, "priority": priority,
                                  "channel": ("phone", "email", "web")[index]}
        data = service.parse_input(db, values, creating=True)
        service.create_ticket(platform, db, None, data, now=start + timedelta(hours=index), auto_assign=False)
