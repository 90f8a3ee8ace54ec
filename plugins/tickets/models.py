"""The tickets plugin's tables (``tickets_*``).

A :class:`Ticket` belongs to a customer (a contact of the contacts plugin: a foreign key that
becomes NULL when the contact is deleted; merging contacts repoints it). Its status is a key of
:class:`TicketStatus`; the statuses and the allowed :class:`Transition` rows are data that
administrators adapt. SLA targets are copied onto the ticket from the matching
:class:`SlaPolicy` when it is created (and when its priority or category changes); the due
moments are kept on the ticket so that queues and the escalation job find them with SQL.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Index, JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kehu.db import Model, UTCDateTime, utcnow

CHANNELS = ("web", "phone", "email", "wechat", "staff")
PRIORITIES = ("low", "normal", "high", "urgent")
STAFF, CUSTOMER, SYSTEM = "staff", "customer", "system"


class Ticket(Model):
    __tablename__ = "tickets_ticket"
    # The queues' indexes: each begins with what a view filters on, goes on in the order the
    # view lists, and also holds the columns of the record rule (team, assignee) and the open
    # statuses, so that counting a view reads only the index (see docs/performance.md).
    __table_args__ = (
        Index("ix_tickets_queue_assignee", "assignee_id", "created_at", "team", "status"),
        Index("ix_tickets_queue_team", "team", "created_at", "assignee_id", "status"),
        Index("ix_tickets_queue_created", "created_at", "status", "team", "assignee_id"),
        Index("ix_tickets_queue_due", "next_due_at", "team", "assignee_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts_contact.id", ondelete="SET NULL"), nullable=True, index=True)
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str] = mapped_column(String(20), default="staff")
    category: Mapped[str] = mapped_column(String(40), default="general", index=True)
    priority: Mapped[str] = mapped_column(String(10), default="normal", index=True)
    status: Mapped[str] = mapped_column(String(30), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("kehu_user.id", ondelete="SET NULL"), nullable=True)
    team: Mapped[str] = mapped_column(String(80), default="")
    created_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    response_target_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolution_target_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # The sooner of the two: the "breaching soon" queue reads it in index order.
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating_comment: Mapped[str] = mapped_column(Text, default="")
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Part of the customer's status link: changing it revokes every link sent before.
    portal_key: Mapped[str] = mapped_column(String(32))


class TicketStatus(Model):
    """A step of the workflow. ``pauses_sla``: the SLA clocks stop (waiting for the customer);
    ``resolved``: the resolution is reached and the customer is asked to rate; ``closed``: final."""

    __tablename__ = "tickets_status"

    key: Mapped[str] = mapped_column(String(30), primary_key=True)
    label: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    initial: Mapped[bool] = mapped_column(Boolean, default=False)
    pauses_sla: Mapped[bool] = mapped_column(Boolean, default=False)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Transition(Model):
    __tablename__ = "tickets_transition"
    __table_args__ = (UniqueConstraint("from_status", "to_status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_status: Mapped[str] = mapped_column(ForeignKey("tickets_status.key", ondelete="CASCADE"))
    to_status: Mapped[str] = mapped_column(ForeignKey("tickets_status.key", ondelete="CASCADE"))
    label: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Category(Model):
    __tablename__ = "tickets_category"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    label: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class SlaPolicy(Model):
    """Targets in business minutes for a priority and category; ``""`` matches any."""

    __tablename__ = "tickets_sla_policy"
    __table_args__ = (UniqueConstraint("priority", "category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    priority: Mapped[str] = mapped_column(String(10), default="")
    category: Mapped[str] = mapped_column(String(40), default="")
    response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)


class CalendarDay(Model):
    """A public holiday (``holiday``) or a make-up working day (``workday``, 调休)."""

    __tablename__ = "tickets_calendar_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(80), default="")


class Team(Model):
    """A service team: users whose ``team`` is ``name``; its lead receives escalations.
    ``last_assigned_id`` is where automatic round-robin assignment left off."""

    __tablename__ = "tickets_team"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("kehu_user.id", ondelete="SET NULL"), nullable=True)
    last_assigned_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Agent(Model):
    """A staff member's tickets settings: away (skipped by automatic assignment) and where
    SLA warnings reach them."""

    __tablename__ = "tickets_agent"

    user_id: Mapped[int] = mapped_column(ForeignKey("kehu_user.id", ondelete="CASCADE"), primary_key=True)
    away: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TicketSequence(Model):
    """The last ticket number given out per year."""

    __tablename__ = "tickets_sequence"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Comment(Model):
    """A reply the customer sees (``public``), an internal note, or the customer's message."""

    __tablename__ = "tickets_comment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets_ticket.id", ondelete="CASCADE"), index=True)
    author_kind: Mapped[str] = mapped_column(String(10), default=STAFF)
    author_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Attachment(Model):
    """A file stored under ``<KEHU_HOME>/attachments/tickets/<stored_name>``."""

    __tablename__ = "tickets_attachment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets_ticket.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets_comment.id", ondelete="SET NULL"), nullable=True)
    filename: Mapped[str] = mapped_column(String(255))
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    by_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    uploaded_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class History(Model):
    """What happened to a ticket: ids and keys only, never message text."""

    __tablename__ = "tickets_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets_ticket.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SlaPause(Model):
    __tablename__ = "tickets_sla_pause"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets_ticket.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SlaAlert(Model):
    """A warning or escalation that happened; the unique key makes each happen once."""

    __tablename__ = "tickets_sla_alert"
    # user_id, created_at: each agent's latest alerts head the queue page.
    __table_args__ = (UniqueConstraint("ticket_id", "kind"), Index("ix_tickets_sla_alert_user_created", "user_id", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets_ticket.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(Model):
    """A message to send (to the customer or a staff member) by the ``send_notification`` job."""

    __tablename__ = "tickets_notification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets_ticket.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the customer
    comment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


MODELS: list[type[Model]] = [Ticket, TicketStatus, Transition, Category, SlaPolicy, CalendarDay, Team, Agent,
                             TicketSequence, Comment, Attachment, History, SlaPause, SlaAlert, Notification]
