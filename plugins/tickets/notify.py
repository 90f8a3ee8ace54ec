"""Notifications to customers and staff, sent by background jobs.

:func:`queue` adds a :class:`~.models.Notification` row in the caller's transaction (so a
notification exists exactly when the change that caused it does); once that transaction
commits, a ``tickets.send_notification`` job is enqueued with the row's id (ids only, never
personal data); a caller that queues many in a row (the SLA watch) enqueues one
``tickets.send_notifications`` job per batch instead (:func:`enqueue_sending`). The job claims
the row, builds the message from current data (the customer's address comes from
``kehu_person_summary``) and offers it to every channel from the core hook
``kehu_notification_channels`` that reaches the recipient. The periodic
``tickets.send_pending`` job sends what was never sent (broker down, process gone) and retries
failures a few times.

This plugin contributes the e-mail channel (:class:`EmailChannel`, SMTP settings
``KEHU_TICKETS_SMTP_*``); later plugins add WeChat and SMS channels through the same hook.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session

from kehu import i18n
from kehu import notify as kehu_notify
from kehu.db import utcnow
from kehu.i18n import gettext as _
from kehu.platform import Platform

from .models import Agent, Comment, Notification, Ticket

log = logging.getLogger(__name__)

SEND_TASK = "tickets.send_notification"
MAX_ATTEMPTS = 5
_SESSION_KEY = "kehu_tickets_notifications"


# --- Queueing, in the caller's transaction ---------------------------------------------------------


def queue(db: Session, ticket_id: int, kind: str, user_id: int | None = None,
          comment_id: int | None = None, send_after_commit: bool = True) -> Notification:
    """A notification of ``kind`` about the ticket, to the customer (``user_id`` None) or a user.

    With ``send_after_commit`` false, no job is enqueued for it at commit: the caller passes
    the committed ids to :func:`enqueue_sending` itself (one job for many, see there)."""
    row = Notification(ticket_id=ticket_id, kind=kind, user_id=user_id, comment_id=comment_id, status="pending",
                       channels=[], attempts=0, last_error="", created_at=utcnow())
    db.add(row)
    if send_after_commit:
        db.info.setdefault(_SESSION_KEY, []).append(row)
    return row


#: Notifications per ``tickets.send_notifications`` job: a burst (the SLA watch raising a few
#: hundred alerts in one run) costs a few jobs instead of one each, while the worker's threads
#: still send several batches side by side.
SEND_BATCH = 50
SEND_MANY_TASK = "tickets.send_notifications"


def enqueue_sending(ids: list[int]) -> None:
    """Enqueue the sending of committed notifications, :data:`SEND_BATCH` per job. Publishing
    a message costs about as much as the rest of an SLA alert on the embedded SQLite broker. What
    cannot be enqueued is left to ``tickets.send_pending``, which finds every pending row."""
    from kehu import jobs

    for start in range(0, len(ids), SEND_BATCH):
        batch = ids[start:start + SEND_BATCH]
        try:
            jobs.enqueue(SEND_MANY_TASK, notification_ids=batch)
        except Exception as exc:  # noqa: BLE001  (committed: the periodic job sends them later)
            log.warning("could not enqueue notifications %s (%s): left to tickets.send_pending", ids[start:], exc)
            return


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the transaction is not committed yet
    rows = session.info.pop(_SESSION_KEY, None)
    if not rows:
        return
    ids = [state.identity[0] for state in map(inspect, rows) if state.persistent and state.identity]
    if not ids:
        return
    from kehu import jobs

    for notification_id in ids:
        try:
            jobs.enqueue(SEND_TASK, notification_id=notification_id)
        except Exception as exc:  # noqa: BLE001  (committed: the periodic job sends it later)
            log.warning("could not enqueue notifications %s (%s): left to tickets.send_pending", ids, exc)
            return


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_SESSION_KEY, None)


def install_listeners() -> None:
    if not sa_event.contains(Session, "after_commit", _after_commit):
        sa_event.listen(Session, "after_commit", _after_commit)
        sa_event.listen(Session, "after_transaction_end", _after_transaction_end)


install_listeners()


# --- Channels ------------------------------------------------------------------------------------------


class EmailChannel:
    """E-mail through the SMTP server of the ``KEHU_TICKETS_SMTP_*`` settings."""

    name = "email"

    def __init__(self, platform: Platform | None = None) -> None:
        self._platform = platform

    @property
    def platform(self) -> Platform:
        if self._platform is not None:
            return self._platform
        from kehu.platform import current

        return current()

    def _setting(self, name: str) -> str:
        return self.platform.setting("tickets", name)

    def reaches(self, recipient: dict[str, Any]) -> bool:
        return bool(recipient.get("email")) and bool(self._setting("smtp_host"))

    def send(self, recipient: dict[str, Any], subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self._setting("smtp_from")
        message["To"] = formataddr((str(recipient.get("name") or ""), str(recipient["email"])))
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="kehu.tickets")
        message.set_content(body)
        host, port = self._setting("smtp_host"), int(self._setting("smtp_port"))
        timeout = float(self._setting("smtp_timeout"))
        factory = smtplib.SMTP_SSL if self._setting("smtp_ssl") in ("1", "true", "yes") else smtplib.SMTP
        with factory(host, port, timeout=timeout) as smtp:
            if factory is smtplib.SMTP and self._setting("smtp_starttls") in ("1", "true", "yes"):
                smtp.starttls()
            if self._setting("smtp_user"):
                smtp.login(self._setting("smtp_user"), self._setting("smtp_password"))
            smtp.send_message(message)


# --- Composing ---------------------------------------------------------------------------------------------


def _staff_url(platform: Platform, ticket: Ticket) -> str:
    return f"{platform.setting('tickets', 'public_url').rstrip('/')}/tickets/{ticket.id}"


def compose(platform: Platform, db: Session, row: Notification, ticket: Ticket,
            recipient: dict[str, Any]) -> tuple[str, str]:
    """Subject and body of the notification, in the current language."""
    from . import links, service

    name = recipient.get("name") or ""
    number = ticket.number
    if row.user_id is None:  # the customer
        url = links.status_url(platform, ticket)
        greeting = _("Hello %(name)s,", name=name) if name else _("Hello,")
        if row.kind == "created":
            subject = _("[%(number)s] We received your request", number=number)
            text = _("We received your request %(number)s: %(subject)s. We will answer you soon.",
                     number=number, subject=ticket.subject)
        elif row.kind == "reply":
            comment = db.get(Comment, row.comment_id) if row.comment_id else None
            subject = _("[%(number)s] We answered your request", number=number)
            text = _("We answered your request %(number)s:", number=number) + "\n\n" + (comment.body if comment else "")
        elif row.kind == "resolved":
            subject = _("[%(number)s] Your request is resolved: how did we do?", number=number)
            text = _("Your request %(number)s is resolved. Please rate our service from 1 to 5; if something is "
                     "still wrong, answer on the page below and we will reopen it.", number=number)
        else:
            subject = _("[%(number)s] News about your request", number=number)
            text = _("There is news about your request %(number)s.", number=number)
        body = f"{greeting}\n\n{text}\n\n{_('Follow your request, answer and rate here:')}\n{url}\n"
        return subject, body
    url = _staff_url(platform, ticket)
    due = ""
    if row.kind in ("sla_warning", "sla_breach"):
        moments = [m for m in (ticket.response_due_at, ticket.resolution_due_at) if m]
        if moments:
            due = min(moments).astimezone(service.timezone(platform)).strftime("%Y-%m-%d %H:%M")
    texts = {
        "assigned": (_("[%(number)s] Assigned to you: %(subject)s", number=number, subject=ticket.subject),
                     _("The ticket %(number)s was assigned to you.", number=number)),
        "customer_reply": (_("[%(number)s] The customer answered", number=number),
                           _("The customer answered on the ticket %(number)s.", number=number)),
        "sla_warning": (_("[%(number)s] The service level will be breached soon", number=number),
                        _("The ticket %(number)s is due at %(due)s and will breach its service level if nobody "
                          "acts.", number=number, due=due)),
        "sla_breach": (_("[%(number)s] Service level breached: escalated to you", number=number),
                       _("The ticket %(number)s breached its service level (due %(due)s) and is escalated to "
                         "you as the team lead.", number=number, due=due)),
    }
    subject, text = texts.get(row.kind, (_("[%(number)s] Ticket news", number=number), ""))
    return subject, f"{text}\n\n{url}\n"


# --- Sending (the jobs) ---------------------------------------------------------------------------------------


def _recipient(platform: Platform, db: Session, row: Notification, ticket: Ticket) -> tuple[dict[str, Any] | None, str]:
    """The recipient and the language to write in."""
    if row.user_id is None:
        if ticket.contact_id is None:
            return None, ""
        person = platform.pm.hook.kehu_person_summary(session=db, contact_id=ticket.contact_id)
        return (dict(person) if person else None), platform.setting("tickets", "customer_language")
    from kehu.models import User

    user = db.get(User, row.user_id)
    if user is None or not user.active:
        return None, ""
    agent = db.get(Agent, user.id)
    return {"user_id": user.id, "name": user.name or user.login, "email": agent.email if agent else ""}, user.language


def send(platform: Platform, notification_id: int) -> str:
    """Send one notification, at most once; returns its status afterwards."""
    with platform.session() as db:
        claimed = db.execute(update(Notification)
                             .where(Notification.id == notification_id, Notification.status == "pending")
                             .values(status="sending", attempts=Notification.attempts + 1)).rowcount
    if not claimed:
        return "not pending"
    with platform.reading() as db:
        row = db.get(Notification, notification_id)
        ticket = db.get(Ticket, row.ticket_id) if row else None
        if row is None or ticket is None:
            return "gone"
        recipient, language = _recipient(platform, db, row, ticket)
        subject = body = ""
        if recipient is not None:
            token = i18n.current_language.set(language if language in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE)
            try:
                subject, body = compose(platform, db, row, ticket, recipient)
            finally:
                i18n.current_language.reset(token)
        attempts = row.attempts
    delivered: list[str] = []
    errors: list[str] = []
    if recipient is not None:
        delivered, errors = kehu_notify.offer(platform, recipient, subject, body)
    if delivered:
        values: dict[str, Any] = {"status": "sent", "channels": delivered, "sent_at": utcnow(),
                                  "last_error": "\n".join(errors)}
    elif errors:
        values = {"status": "pending" if attempts < MAX_ATTEMPTS else "failed", "last_error": "\n".join(errors)}
    else:
        values = {"status": "skipped", "last_error": "no channel reaches the recipient"}
    with platform.session() as db:
        db.execute(update(Notification).where(Notification.id == notification_id).values(**values))
    return values["status"]


def send_many(platform: Platform, notification_ids: list[int]) -> int:
    """:func:`send` for each id in turn (each claimed on its own); returns how many were sent."""
    sent = 0
    for notification_id in notification_ids:
        try:
            sent += send(platform, notification_id) == "sent"
        except Exception:  # noqa: BLE001  (one failure must not hold up the batch: send_pending retries it)
            log.exception("notification %s could not be sent: left to tickets.send_pending", notification_id)
    return sent


def send_pending(platform: Platform, older_than: timedelta = timedelta(seconds=30)) -> int:
    """Send the notifications still pending after ``older_than``; give up on interrupted sends."""
    now = utcnow()
    with platform.session() as db:
        db.execute(update(Notification).where(Notification.status == "sending",
                                              Notification.created_at < now - timedelta(minutes=10))
                   .values(status="failed", last_error="interrupted while sending"))
    with platform.reading() as db:
        ids = list(db.scalars(select(Notification.id).where(Notification.status == "pending",
                                                             Notification.created_at < now - older_than)
                              .order_by(Notification.id).limit(200)))
    for notification_id in ids:
        send(platform, notification_id)
    return len(ids)
