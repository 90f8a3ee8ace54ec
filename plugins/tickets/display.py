"""What a user sees of tickets: the JSON of the API and the values the pages show.

The customer's details come from ``kehu_person_summary`` and are masked (``138****8000``) for
users without ``contacts.view_sensitive``; users who may not see the customer at all see only
the contact id.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kehu import rbac
from kehu.auth import CurrentUser
from kehu.db import utcnow
from kehu.i18n import gettext as _
from kehu.platform import Platform

from . import security, service, sla
from .models import PRIORITIES, Attachment, Comment, History, Ticket


def minutes(delta: Any) -> int | None:
    return None if delta is None else int(delta.total_seconds() // 60)


def clock_dict(clock: sla.Clock | None) -> dict[str, Any] | None:
    if clock is None:
        return None
    return {"target_minutes": minutes(clock.target), "elapsed_minutes": minutes(clock.elapsed),
            "remaining_minutes": minutes(clock.remaining), "due_at": clock.due_at.isoformat() if clock.due_at else None,
            "state": clock.state}


def clock_label(state: str) -> str:
    return {"met": _("met"), "breached": _("breached"), "paused": _("paused"), "running": _("running")}.get(state, state)


def ticket_dict(platform: Platform, db: Session, user: CurrentUser, ticket: Ticket, now: datetime | None = None,
                calendar: sla.BusinessCalendar | None = None, names: dict[str, dict[int, str]] | None = None,
                statuses: dict[str, Any] | None = None, pauses: list[Any] | None = None) -> dict[str, Any]:
    now = now or utcnow()
    statuses = statuses if statuses is not None else service.status_rows(db)
    names = names or {"users": service.user_names(db, [ticket.assignee_id]),
                      "contacts": service.contact_names(platform, db, [ticket.contact_id])}
    clocks = service.clocks(platform, db, ticket, now, calendar, pauses, statuses)
    status = statuses.get(ticket.status)
    return {
        "id": ticket.id, "number": ticket.number, "contact_id": ticket.contact_id,
        "contact_name": names["contacts"].get(ticket.contact_id or 0, ""),
        "subject": ticket.subject, "description": ticket.description, "channel": ticket.channel,
        "category": ticket.category, "priority": ticket.priority, "status": ticket.status,
        "status_label": service.status_label(status, ticket.status),
        "open": status is None or not (status.resolved or status.closed),
        "assignee_id": ticket.assignee_id, "assignee_name": names["users"].get(ticket.assignee_id or 0, ""),
        "team": ticket.team, "created_at": ticket.created_at.isoformat(), "updated_at": ticket.updated_at.isoformat(),
        "first_response_at": ticket.first_response_at.isoformat() if ticket.first_response_at else None,
        "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
        "closed_at": ticket.closed_at.isoformat() if ticket.closed_at else None,
        "sla": {"response": clock_dict(clocks["response"]), "resolution": clock_dict(clocks["resolution"])},
        "rating": ticket.rating, "rating_comment": ticket.rating_comment,
        "rated_at": ticket.rated_at.isoformat() if ticket.rated_at else None,
    }


def queue_rows(platform: Platform, db: Session, tickets: list[Ticket], now: datetime | None = None,
               statuses: dict[str, Any] | None = None) -> list[Any]:
    """What the queue page shows of each ticket, read straight from the tickets: its labels,
    local times and the SLA clocks worth a badge (not a response clock that was met).

    A queue shows up to 500 rows: the same work done by template calls (a gettext, a time-zone
    conversion, a label look-up per badge) or through :func:`ticket_dict` (the API's full
    record) cost a third of the page.
    """
    now = now or utcnow()
    calendar, statuses, names, pauses = _shared_reads(platform, db, tickets, statuses)
    zone = service.timezone(platform)
    labels = {"response": _("Response"), "resolution": _("Resolution")}
    states = {state: clock_label(state) for state in ("met", "breached", "paused", "running")}
    priorities = {p: service.priority_label(p) for p in PRIORITIES}
    status_labels = {key: service.status_label(status, key) for key, status in statuses.items()}
    select_label = _("Select %(number)s")  # filled in per row: translated once
    rows = []
    for ticket in tickets:
        badges = []
        for name, found in service.clocks(platform, db, ticket, now, calendar, pauses[ticket.id], statuses).items():
            if found is None or (name == "response" and found.state == "met"):
                continue
            due = found.due_at if found.state == "running" else None
            badges.append(SimpleNamespace(state=found.state, name=labels[name], state_label=states[found.state],
                                          due_text=_short_time(due, zone) if due else ""))
        number, status, priority, created_at = ticket.number, ticket.status, ticket.priority, ticket.created_at
        rows.append(SimpleNamespace(
            id=ticket.id, number=number, subject=ticket.subject, status=status,
            status_label=status_labels.get(status, status), priority=priority,
            priority_label=priorities.get(priority, priority),
            contact_name=names["contacts"].get(ticket.contact_id or 0, ""),
            assignee_name=names["users"].get(ticket.assignee_id or 0, ""), team=ticket.team, clocks=badges,
            created_at=created_at.isoformat(), created_text=_short_time(created_at, zone),
            select_label=select_label % {"number": number}))
    return rows


def _short_time(moment: datetime, zone: Any) -> str:
    local = moment.astimezone(zone)  # "11-25 19:31"; formatted by hand: strftime cost three times as much
    return f"{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}"


def _shared_reads(platform: Platform, db: Session, tickets: list[Ticket],
                  statuses: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """What a list of tickets needs once, not per ticket: the calendar, the statuses (unless
    the page read them already), the assignees' and customers' names and the SLA pauses."""
    names = {"users": service.user_names(db, [t.assignee_id for t in tickets]),
             "contacts": service.contact_names(platform, db, [t.contact_id for t in tickets])}
    statuses = statuses if statuses is not None else service.status_rows(db)
    pauses = service.pauses_by_ticket(db, [t.id for t in tickets])
    return service.business_calendar(platform, db), statuses, names, pauses


def tickets_dicts(platform: Platform, db: Session, user: CurrentUser, tickets: list[Ticket],
                  now: datetime | None = None) -> list[dict[str, Any]]:
    calendar, statuses, names, pauses = _shared_reads(platform, db, tickets)
    return [ticket_dict(platform, db, user, t, now, calendar, names, statuses, pauses[t.id]) for t in tickets]


def comment_dict(comment: Comment, authors: dict[int, str], attachments: list[Attachment]) -> dict[str, Any]:
    if comment.author_kind == "customer":
        author = _("Customer")
    elif comment.author_kind == "system":
        author = _("System")
    else:
        author = authors.get(comment.author_id or 0, "")
    return {"id": comment.id, "body": comment.body, "public": comment.public, "author_kind": comment.author_kind,
            "author_id": comment.author_id, "author_name": author, "created_at": comment.created_at.isoformat(),
            "attachments": [attachment_dict(a) for a in attachments if a.comment_id == comment.id]}


def attachment_dict(attachment: Attachment) -> dict[str, Any]:
    return {"id": attachment.id, "filename": attachment.filename, "content_type": attachment.content_type,
            "size": attachment.size, "public": attachment.public, "by_customer": attachment.by_customer,
            "comment_id": attachment.comment_id, "created_at": attachment.created_at.isoformat(),
            "url": f"/tickets/attachments/{attachment.id}"}


def conversation(db: Session, ticket: Ticket, public_only: bool = False) -> list[dict[str, Any]]:
    found = service.comments(db, ticket.id, public_only)
    files = attachments_of(db, ticket.id, public_only)
    authors = service.user_names(db, [c.author_id for c in found])
    return [comment_dict(c, authors, files) for c in found]


def attachments_of(db: Session, ticket_id: int, public_only: bool = False) -> list[Attachment]:
    query = select(Attachment).where(Attachment.ticket_id == ticket_id).order_by(Attachment.id)
    if public_only:
        query = query.where(Attachment.public.is_(True))
    return list(db.scalars(query))


def history(db: Session, ticket: Ticket) -> list[dict[str, Any]]:
    rows = list(db.scalars(select(History).where(History.ticket_id == ticket.id).order_by(History.at, History.id)))
    users = service.user_names(db, [r.actor_id for r in rows] + [r.detail.get("to") for r in rows
                                                                  if r.action in ("assigned", "auto_assigned")
                                                                  and isinstance(r.detail.get("to"), int)])
    statuses = service.status_rows(db)
    return [{"at": r.at.isoformat(), "action": r.action, "actor_id": r.actor_id,
             "actor_name": users.get(r.actor_id or 0, ""), "detail": r.detail,
             "text": history_text(r, users, statuses)} for r in rows]


def history_text(row: History, users: dict[int, str], statuses: dict[str, Any]) -> str:
    detail = row.detail or {}

    def label(key: Any) -> str:
        return service.status_label(statuses.get(key), str(key))

    if row.action == "created":
        return _("Opened (%(channel)s)", channel=service.channel_label(detail.get("channel", "")))
    if row.action == "status":
        return _("%(from)s → %(to)s", **{"from": label(detail.get("from")), "to": label(detail.get("to"))})
    if row.action == "reopened":
        return _("Reopened: %(from)s → %(to)s", **{"from": label(detail.get("from")), "to": label(detail.get("to"))})
    if row.action == "assigned":
        who = users.get(detail.get("to") or 0)
        return _("Assigned to %(name)s", name=who) if who else _("Unassigned")
    if row.action == "auto_assigned":
        return _("Assigned automatically to %(name)s", name=users.get(detail.get("to") or 0, "?"))
    if row.action == "commented":
        if detail.get("by") == "customer":
            return _("The customer answered")
        return _("Replied to the customer") if detail.get("public") else _("Wrote an internal note")
    if row.action == "rated":
        return _("Rated %(score)s of 5", score=detail.get("score"))
    if row.action == "changed":
        return _("Changed %(fields)s", fields=", ".join(detail.get("fields", [])))
    if row.action == "sla_warning":
        return _("SLA warning (%(clock)s)", clock=clock_name(detail.get("clock", "")))
    if row.action == "sla_breach":
        return _("SLA breached (%(clock)s): escalated", clock=clock_name(detail.get("clock", "")))
    if row.action == "attached":
        return _("Attached a file")
    return row.action


def clock_name(clock: str) -> str:
    return {"response": _("first response"), "resolution": _("resolution")}.get(clock, clock)


def customer(platform: Platform, db: Session, user: CurrentUser, ticket: Ticket) -> dict[str, Any] | None:
    """The customer's name, phone and e-mail as ``user`` may see them, or ``None``."""
    if ticket.contact_id is None or not service.may_see_contact(platform, db, user, ticket.contact_id):
        return None
    person = platform.pm.hook.kehu_person_summary(session=db, contact_id=ticket.contact_id)
    if not person:
        return None
    sensitive = user.can(security.CONTACTS_VIEW_SENSITIVE)
    return {"id": ticket.contact_id, "name": person.get("name") or "",
            "phone": person.get("phone") if sensitive else rbac.mask_value(person.get("phone") or ""),
            "email": person.get("email") if sensitive else rbac.mask_value(person.get("email") or ""),
            "masked": not sensitive}
