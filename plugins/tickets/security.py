"""Who may do what with tickets: permissions, default roles and the record rule.

* ``tickets.read`` lets a user see the tickets of their team and those assigned to them;
  ``tickets.read_all`` every ticket.
* ``tickets.write`` lets them open tickets, reply, write notes, move tickets through the
  workflow, record ratings and take a ticket themselves; ``tickets.assign`` assign tickets to
  others (also in bulk, and automatically).
* ``tickets.admin`` adapts the workflow, SLA policies, the holiday calendar, categories and teams.

The default role ``service`` works the tickets of the user's team and sees the customer's
contact details needed to serve them: it carries the contacts permissions to read every contact
(the contacts record rule would otherwise hide customers owned by salespeople) and to see phone
numbers and e-mail addresses in full.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_

from kehu.declarations import Permission, RecordRule, RoleTemplate

from .models import Ticket

READ = "tickets.read"
READ_ALL = "tickets.read_all"
WRITE = "tickets.write"
ASSIGN = "tickets.assign"
ADMIN = "tickets.admin"

CONTACTS_READ = "contacts.read"
CONTACTS_READ_ALL = "contacts.read_all"
CONTACTS_VIEW_SENSITIVE = "contacts.view_sensitive"

PERMISSIONS = [
    Permission(READ, {"zh": "查看本组及分配给自己的工单", "en": "Read the tickets of one's team and one's own"}),
    Permission(READ_ALL, {"zh": "查看所有工单", "en": "Read every ticket"}),
    Permission(WRITE, {"zh": "新建、回复和处理工单", "en": "Open, answer and work tickets"}),
    Permission(ASSIGN, {"zh": "分派工单", "en": "Assign tickets"}),
    Permission(ADMIN, {"zh": "管理工单流程、服务时限、节假日与团队", "en": "Manage ticket workflow, SLAs, holidays and teams"}),
]

ROLES = [
    RoleTemplate("service", (READ, WRITE, ASSIGN, CONTACTS_READ, CONTACTS_READ_ALL, CONTACTS_VIEW_SENSITIVE),
                 {"zh": "客服", "en": "Service"}),
    RoleTemplate("service_manager", (READ, READ_ALL, WRITE, ASSIGN, ADMIN, CONTACTS_READ, CONTACTS_READ_ALL,
                                     CONTACTS_VIEW_SENSITIVE),
                 {"zh": "客服主管", "en": "Service manager"}),
]


def _team_or_own(user: Any) -> Any:
    """Without ``tickets.read_all``: the tickets of the user's team, and those assigned to them."""
    if user.can(READ_ALL):
        return None
    if user.team:
        return or_(Ticket.team == user.team, Ticket.assignee_id == user.id)
    return Ticket.assignee_id == user.id


RECORD_RULES = [RecordRule(Ticket, _team_or_own, name="tickets: own team and own tickets unless read_all")]
