"""Background jobs: the SLA watch (warn before a breach, escalate at breach), due moments worked
out again after the calendar changed, and notifications.

``check_sla`` runs every ``sla_check_seconds`` (Celery beat, through ``kehu_schedules``). For
each running clock due within ``warn_before_minutes`` it warns the assignee (or, without one,
the team lead); for each clock past due it escalates to the team lead (or the assignee when
the team has no lead) and emits ``ticket.sla_breached``. Every warning and escalation is a row
of ``tickets_sla_alert`` inserted with ``INSERT ... ON CONFLICT DO NOTHING`` on the unique key
``(ticket, kind)`` in the transaction that records and announces it: when the job runs twice,
or two workers run it at once, exactly one of them inserts the row and does the rest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from kehu import events
from kehu.db import utcnow
from kehu.platform import Platform, current

from . import notify, service
from .models import SlaAlert, Ticket

CLOCKS = ("response", "resolution")


def _insert_or_skip(db: Session, **values: Any) -> bool:
    """Insert the alert unless it exists; True when this transaction inserted it."""
    return service.insert_or_skip(db, SlaAlert, ["ticket_id", "kind"], returning=SlaAlert.id, **values) is not None


def _due(ticket: Ticket, clock: str) -> datetime | None:
    return ticket.response_due_at if clock == "response" else ticket.resolution_due_at


def raise_alert(platform: Platform, ticket_id: int, clock: str, now: datetime,
                warn: timedelta) -> tuple[str, int | None] | None:
    """Warn or escalate for one clock of one ticket, once, in a transaction of its own (so that
    the web's writes wait for one alert at most); returns the alert kind raised and the id of
    the notification to send, which the caller enqueues with the others (see
    :func:`notify.enqueue_sending`)."""
    with platform.session() as db:
        ticket = db.get(Ticket, ticket_id)
        due = _due(ticket, clock) if ticket is not None else None
        if ticket is None or due is None or due > now + warn:
            return None  # changed since it was selected: responded, paused, resolved...
        breach = due <= now
        kind = f"{clock}_{'breach' if breach else 'warning'}"
        lead = service.team_lead(db, ticket.team)
        recipient = (lead or ticket.assignee_id) if breach else (ticket.assignee_id or lead)
        if not _insert_or_skip(db, ticket_id=ticket.id, kind=kind, user_id=recipient, created_at=now):
            return None
        service.record(db, ticket, "sla_breach" if breach else "sla_warning", None, now, clock=clock,
                       notified=recipient)
        if breach:
            events.emit(db, "ticket.sla_breached", {"ticket_id": ticket.id, "clock": clock, "escalated_to": recipient})
        if recipient is None:
            return kind, None
        notification = notify.queue(db, ticket.id, "sla_breach" if breach else "sla_warning", user_id=recipient,
                                    send_after_commit=False)
        db.flush()
        return kind, notification.id


def run_sla_check(platform: Platform, now: datetime | None = None) -> list[tuple[int, str]]:
    """Raise every warning and escalation due at ``now``; returns ``(ticket id, kind)`` raised."""
    now = now or utcnow()
    warn = timedelta(minutes=service.int_setting(platform, "warn_before_minutes"))
    horizon = now + warn

    def not_escalated(clock: str) -> Any:
        return ~exists().where(SlaAlert.ticket_id == Ticket.id, SlaAlert.kind == f"{clock}_breach")

    with platform.reading() as db:
        # Clocks escalated before are left out in the query: a desk has many old breaches.
        candidates = db.execute(select(Ticket.id, Ticket.response_due_at, Ticket.resolution_due_at)
                                .where(or_(and_(Ticket.response_due_at <= horizon, not_escalated("response")),
                                           and_(Ticket.resolution_due_at <= horizon, not_escalated("resolution"))))
                                .order_by(Ticket.id)).all()
        # What was raised before is skipped here already (the unique insert would skip it too).
        ids = [row[0] for row in candidates]
        done = {(ticket_id, kind) for ticket_id, kind in
                db.execute(select(SlaAlert.ticket_id, SlaAlert.kind).where(SlaAlert.ticket_id.in_(ids)))} if ids else set()
    raised: list[tuple[int, str]] = []
    to_send: list[int] = []
    try:
        for ticket_id, response_due, resolution_due in candidates:
            for clock, due in zip(CLOCKS, (response_due, resolution_due), strict=True):
                if due is None or due > horizon:
                    continue
                if (ticket_id, f"{clock}_breach") in done or (due > now and (ticket_id, f"{clock}_warning") in done):
                    continue
                alert = raise_alert(platform, ticket_id, clock, now, warn)
                if alert:
                    raised.append((ticket_id, alert[0]))
                    if alert[1] is not None:
                        to_send.append(alert[1])
    finally:  # the alerts committed so far are sent, also when a later one failed
        notify.enqueue_sending(to_send)
    return raised


#: Tickets whose due moments one transaction works out again (see :func:`run_due_refresh`).
REFRESH_BATCH = 500


def run_due_refresh(platform: Platform) -> int:
    """Work out again when every running clock is due, with the calendar as it is now; returns
    how many tickets were looked at. One transaction per :data:`REFRESH_BATCH` tickets, so
    that writers wait for a batch at most, not for the whole desk."""
    after, seen = 0, 0
    while True:
        with platform.session() as db:
            calendar = service.business_calendar(platform, db, fresh=True)
            tickets = list(db.scalars(select(Ticket).where(Ticket.next_due_at.is_not(None), Ticket.id > after)
                                      .order_by(Ticket.id).limit(REFRESH_BATCH)))
            if not tickets:
                return seen
            pauses = service.pauses_by_ticket(db, [ticket.id for ticket in tickets])
            for ticket in tickets:
                service.refresh_due(platform, db, ticket, calendar, pauses[ticket.id])
        after, seen = tickets[-1].id, seen + len(tickets)


# --- The task functions (registered as tickets.<name>) -------------------------------------------------


def check_sla(now: str | None = None) -> int:
    """Warn and escalate; ``now`` (ISO 8601) replaces the clock, for tests and replays."""
    moment = datetime.fromisoformat(now) if now else None
    return len(run_sla_check(current(), moment))


def refresh_due_dates() -> int:
    """After a holiday or make-up working day was entered or removed (queued by
    :func:`service.save_day` and :func:`service.delete_day` once their transaction commits)."""
    return run_due_refresh(current())


def send_notification(notification_id: int) -> str:
    return notify.send(current(), notification_id)


def send_notifications(notification_ids: list[int]) -> int:
    return notify.send_many(current(), notification_ids)


def send_pending() -> int:
    return notify.send_pending(current())


TASKS = [check_sla, refresh_due_dates, send_notification, send_notifications, send_pending]
