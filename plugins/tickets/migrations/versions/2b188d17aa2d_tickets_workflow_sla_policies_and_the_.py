"""tickets workflow, SLA policies and the 2026 calendar

Revision ID: 2b188d17aa2d
Revises: 85fb6037c443
Create Date: 2026-11-25 11:51:59.642636
"""
from datetime import date

import sqlalchemy as sa
from alembic import op


revision = '2b188d17aa2d'
down_revision = '85fb6037c443'
branch_labels = None
depends_on = None


# Written by hand: the default workflow, categories and SLA policies, and China's 2026 public
# holidays and make-up working days (国务院办公厅, 2025-11-04). All of it is data that
# administrators change afterwards; later years are entered the same way (API or settings page).

status = sa.table("tickets_status", sa.column("key", sa.String), sa.column("label", sa.JSON),
                  sa.column("position", sa.Integer), sa.column("initial", sa.Boolean),
                  sa.column("pauses_sla", sa.Boolean), sa.column("resolved", sa.Boolean),
                  sa.column("closed", sa.Boolean), sa.column("active", sa.Boolean))
transition = sa.table("tickets_transition", sa.column("from_status", sa.String), sa.column("to_status", sa.String),
                      sa.column("label", sa.JSON))
category = sa.table("tickets_category", sa.column("key", sa.String), sa.column("label", sa.JSON),
                    sa.column("position", sa.Integer), sa.column("active", sa.Boolean))
policy = sa.table("tickets_sla_policy", sa.column("priority", sa.String), sa.column("category", sa.String),
                  sa.column("response_minutes", sa.Integer), sa.column("resolution_minutes", sa.Integer))
calendar_day = sa.table("tickets_calendar_day", sa.column("day", sa.Date), sa.column("kind", sa.String),
                        sa.column("name", sa.String))

STATUSES = [
    # key, zh, en, initial, pauses the SLA clocks, resolved, closed
    ("new", "新建", "New", True, False, False, False),
    ("assigned", "已分派", "Assigned", False, False, False, False),
    ("in_progress", "处理中", "In progress", False, False, False, False),
    ("waiting", "等待客户", "Waiting for customer", False, True, False, False),
    ("resolved", "已解决", "Resolved", False, False, True, False),
    ("closed", "已关闭", "Closed", False, False, False, True),
]
TRANSITIONS = [
    ("new", "assigned"), ("new", "in_progress"), ("new", "resolved"), ("new", "closed"),
    ("assigned", "in_progress"), ("assigned", "waiting"), ("assigned", "resolved"), ("assigned", "closed"),
    ("in_progress", "waiting"), ("in_progress", "resolved"),
    ("waiting", "in_progress"), ("waiting", "resolved"), ("waiting", "closed"),
    ("resolved", "closed"), ("resolved", "in_progress"),  # reopening
    ("closed", "in_progress"),  # reopening
]
CATEGORIES = [
    ("general", "一般", "General"), ("inquiry", "咨询", "Inquiry"), ("complaint", "投诉", "Complaint"),
    ("repair", "报修", "Repair"), ("feedback", "建议", "Feedback"),
]
POLICIES = [  # priority, category ("" = any), first response and resolution in business minutes
    ("", "", 480, 2700),
    ("urgent", "", 30, 240),
    ("high", "", 60, 540),
    ("normal", "", 240, 1620),
    ("low", "", 480, 2700),
    ("normal", "complaint", 120, 1080),
    ("low", "complaint", 240, 1620),
]
DAYS_2026 = [
    ('2026-01-01', 'holiday', '元旦'),
    ('2026-01-02', 'holiday', '元旦'),
    ('2026-01-03', 'holiday', '元旦'),
    ('2026-01-04', 'workday', '元旦调休上班'),
    ('2026-02-14', 'workday', '春节调休上班'),
    ('2026-02-15', 'holiday', '春节'),
    ('2026-02-16', 'holiday', '春节'),
    ('2026-02-17', 'holiday', '春节'),
    ('2026-02-18', 'holiday', '春节'),
    ('2026-02-19', 'holiday', '春节'),
    ('2026-02-20', 'holiday', '春节'),
    ('2026-02-21', 'holiday', '春节'),
    ('2026-02-22', 'holiday', '春节'),
    ('2026-02-23', 'holiday', '春节'),
    ('2026-02-28', 'workday', '春节调休上班'),
    ('2026-04-04', 'holiday', '清明节'),
    ('2026-04-05', 'holiday', '清明节'),
    ('2026-04-06', 'holiday', '清明节'),
    ('2026-05-01', 'holiday', '劳动节'),
    ('2026-05-02', 'holiday', '劳动节'),
    ('2026-05-03', 'holiday', '劳动节'),
    ('2026-05-04', 'holiday', '劳动节'),
    ('2026-05-05', 'holiday', '劳动节'),
    ('2026-05-09', 'workday', '劳动节调休上班'),
    ('2026-06-19', 'holiday', '端午节'),
    ('2026-06-20', 'holiday', '端午节'),
    ('2026-06-21', 'holiday', '端午节'),
    ('2026-09-20', 'workday', '国庆节调休上班'),
    ('2026-09-25', 'holiday', '中秋节'),
    ('2026-09-26', 'holiday', '中秋节'),
    ('2026-09-27', 'holiday', '中秋节'),
    ('2026-10-01', 'holiday', '国庆节'),
    ('2026-10-02', 'holiday', '国庆节'),
    ('2026-10-03', 'holiday', '国庆节'),
    ('2026-10-04', 'holiday', '国庆节'),
    ('2026-10-05', 'holiday', '国庆节'),
    ('2026-10-06', 'holiday', '国庆节'),
    ('2026-10-07', 'holiday', '国庆节'),
    ('2026-10-10', 'workday', '国庆节调休上班'),
]


def upgrade() -> None:
    op.bulk_insert(status, [{"key": key, "label": {"zh": zh, "en": en}, "position": index + 1, "initial": initial,
                             "pauses_sla": pauses, "resolved": resolved, "closed": closed, "active": True}
                            for index, (key, zh, en, initial, pauses, resolved, closed) in enumerate(STATUSES)])
    op.bulk_insert(transition, [{"from_status": source, "to_status": target, "label": {}}
                                for source, target in TRANSITIONS])
    op.bulk_insert(category, [{"key": key, "label": {"zh": zh, "en": en}, "position": index + 1, "active": True}
                              for index, (key, zh, en) in enumerate(CATEGORIES)])
    op.bulk_insert(policy, [{"priority": p, "category": c, "response_minutes": r, "resolution_minutes": s}
                            for p, c, r, s in POLICIES])
    op.bulk_insert(calendar_day, [{"day": date.fromisoformat(day), "kind": kind, "name": name}
                                  for day, kind, name in DAYS_2026])


def downgrade() -> None:
    op.execute(calendar_day.delete().where(calendar_day.c.day.in_([date.fromisoformat(d) for d, _, _ in DAYS_2026])))
    op.execute(policy.delete())
    op.execute(category.delete())
    op.execute(transition.delete())
    op.execute(status.delete())
