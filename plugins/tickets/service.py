"""The rules of tickets, in one place: the API, the staff pages, the customer portal, the jobs
and the demo data all call these functions.

Each function works in the caller's session (its transaction) and takes the acting user (a
:class:`kehu.auth.CurrentUser`, ``None`` for the customer or the system) and, where time
matters, ``now`` (so tests inject the clock). Problems are raised as :class:`DomainError`
subclasses carrying the HTTP status to answer with.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Select, bindparam, delete, func, or_, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from kehu import audit, auth, events, rbac
from kehu.auth import CurrentUser
from kehu.errors import Conflict, Forbidden, Invalid, NotFound
from kehu.db import KeptStatements, count_capped, kept_rows, read_rows, utcnow
from kehu.i18n import gettext as _
from kehu.i18n import pick
from kehu.models import User
from kehu.platform import Platform

from . import notify, security, sla
from .holidays import HOLIDAY, WORKDAY
from .models import (
    CHANNELS,
    CUSTOMER,
    PRIORITIES,
    STAFF,
    Agent,
    Attachment,
    CalendarDay,
    Category,
    Comment,
    History,
    SlaAlert,
    SlaPause,
    SlaPolicy,
    Team,
    Ticket,
    TicketSequence,
    TicketStatus,
    Transition,
)

PLUGIN = "tickets"
#: The status a ticket moves to when it gets an assignee while in its initial status.
ASSIGNED = "assigned"
SUBJECT_MAX, DESCRIPTION_MAX, COMMENT_MAX = 200, 20000, 20000

log = logging.getLogger(__name__)


# --- Errors --------------------------------------------------------------------------------


class InvalidTransition(Conflict):
    """The workflow does not allow the change; ``extra["allowed"]`` lists what it allows."""

    code = "invalid_transition"


# --- Settings and the calendar -------------------------------------------------------------------


def setting(platform: Platform, name: str) -> str:
    return platform.setting(PLUGIN, name)


def int_setting(platform: Platform, name: str) -> int:
    try:
        return int(setting(platform, name))
    except ValueError:
        raise RuntimeError(f"KEHU_TICKETS_{name.upper()} must be a whole number") from None


def timezone(platform: Platform) -> ZoneInfo:
    return ZoneInfo(setting(platform, "timezone"))


def business_calendar(platform: Platform, db: Session, fresh: bool = False) -> sla.BusinessCalendar:
    """Working hours and weekdays from the settings, holidays and make-up days from the table.

    While these stay the same, every request gets the same calendar object, which keeps the
    working windows it worked out (each queue page would otherwise work out the same days again).
    The days are kept for a moment (:func:`kehu.db.kept_rows`): a holiday entered in another
    process counts here within :data:`kehu.db.KEPT_ROWS_SECONDS`, or at once with ``fresh``.
    """
    global _last_calendar
    days = read_rows(db, _CALENDAR_DAYS) if fresh else kept_rows(db, _CALENDAR_DAYS)
    inputs = (setting(platform, "business_hours"), setting(platform, "weekdays"), setting(platform, "timezone"),
              tuple(days))
    cached = _last_calendar  # read once: another thread may replace it meanwhile
    if cached is not None and cached[0] == inputs:
        return cached[1]
    hours, weekdays, _zone, days = inputs
    opens, closes = sla.parse_hours(hours)
    calendar = sla.BusinessCalendar(
        timezone=timezone(platform), opens=opens, closes=closes, weekdays=sla.parse_weekdays(weekdays),
        holidays=frozenset(day for day, kind in days if kind == HOLIDAY),
        workdays=frozenset(day for day, kind in days if kind == WORKDAY),
    )
    _last_calendar = (inputs, calendar)
    return calendar


_CALENDAR_DAYS = select(CalendarDay.day, CalendarDay.kind).order_by(CalendarDay.day)
_last_calendar: tuple[tuple[Any, ...], sla.BusinessCalendar] | None = None


# --- Reference data: statuses, transitions, categories, policies -------------------------------------


def statuses(db: Session) -> dict[str, TicketStatus]:
    """Every status, in workflow order, as model objects (to change them)."""
    return {s.key: s for s in db.scalars(select(TicketStatus).order_by(TicketStatus.position, TicketStatus.key))}


# Built once: pages read the statuses several times each (a queue, a contact's tickets panel).
_STATUS_ROWS = select(TicketStatus.key, TicketStatus.label, TicketStatus.position, TicketStatus.initial,
                      TicketStatus.pauses_sla, TicketStatus.resolved, TicketStatus.closed,
                      TicketStatus.active).order_by(TicketStatus.position, TicketStatus.key)


def status_rows(db: Session | Connection) -> dict[str, Any]:
    """Every status, in workflow order, as plain rows with the model's attributes, kept for a
    moment (:func:`kehu.db.kept_rows`): to show them. A change checks with :func:`statuses`."""
    return {row.key: row for row in kept_rows(db, _STATUS_ROWS)}


def status_label(status: Any, key: str = "") -> str:
    return pick(status.label, status.key) if status is not None else key


def initial_status(db: Session) -> TicketStatus:
    status = db.scalar(select(TicketStatus).where(TicketStatus.initial.is_(True), TicketStatus.active.is_(True))
                       .order_by(TicketStatus.position).limit(1))
    if status is None:
        raise Conflict(_("The workflow has no initial status: an administrator must mark one."))
    return status


def allowed_targets(db: Session, from_status: str) -> list[TicketStatus]:
    """The statuses a ticket in ``from_status`` may move to, in workflow order."""
    return list(db.scalars(
        select(TicketStatus).join(Transition, Transition.to_status == TicketStatus.key)
        .where(Transition.from_status == from_status, TicketStatus.active.is_(True))
        .order_by(TicketStatus.position, TicketStatus.key)))


def categories(db: Session, active_only: bool = True) -> list[Category]:
    return list(db.scalars(_ACTIVE_CATEGORIES if active_only else _ALL_CATEGORIES))


def category_rows(db: Session) -> Sequence[Any]:
    """The active categories as plain rows, kept for a moment: to show them (filters, forms)."""
    return kept_rows(db, _ACTIVE_CATEGORY_ROWS)


# Built once: every tickets page lists them.
_ALL_CATEGORIES = select(Category).order_by(Category.position, Category.key)
_ACTIVE_CATEGORIES = _ALL_CATEGORIES.where(Category.active.is_(True))
_ACTIVE_CATEGORY_ROWS = select(*Category.__table__.columns).where(Category.active.is_(True)).order_by(
    Category.position, Category.key)


def priority_label(priority: str) -> str:
    return {"low": _("Low"), "normal": _("Normal"), "high": _("High"), "urgent": _("Urgent")}.get(priority, priority)


def channel_label(channel: str) -> str:
    return {"web": _("Web form"), "phone": _("Phone"), "email": _("E-mail"), "wechat": _("WeChat"),
            "staff": _("Staff")}.get(channel, channel)


def category_label(db: Session, key: str) -> str:
    row = db.get(Category, key)
    return pick(row.label, key) if row else key


def policy_for(db: Session, priority: str, category: str) -> SlaPolicy | None:
    """The most specific policy: priority and category, then priority, then category, then any."""
    rows = db.scalars(select(SlaPolicy).where(SlaPolicy.priority.in_([priority, ""]),
                                              SlaPolicy.category.in_([category, ""]))).all()
    return max(rows, key=lambda p: (p.priority != "", p.category != ""), default=None)


# --- Numbers ----------------------------------------------------------------------------------------


def insert_or_skip(db: Session, model: type, keys: list[str], returning: Any = None, **values: Any) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` (SQLite and PostgreSQL): no savepoint is
    needed when the row exists already, also when another transaction is inserting it."""
    # Imported here: the PostgreSQL dialect's module costs about 0.1 s of every process's start-up.
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
    if returning is not None:
        return db.execute(statement.returning(returning)).scalar()
    return db.execute(statement)


def next_number(platform: Platform, db: Session, now: datetime) -> str:
    """``T-<year>-<six digits>``, the year in the desk's time zone; unique under concurrency.

    The year's counter row is created if missing (insert or skip), then incremented with one
    ``UPDATE ... RETURNING``: a row lock on PostgreSQL (a concurrent transaction waits, then
    sees the new value), one writer at a time on SQLite. The unique ``number`` backs it up.
    """
    year = now.astimezone(timezone(platform)).year
    insert_or_skip(db, TicketSequence, ["year"], year=year, last=0)
    value = db.execute(update(TicketSequence).where(TicketSequence.year == year)
                       .values(last=TicketSequence.last + 1).returning(TicketSequence.last)).scalar_one()
    return f"T-{year}-{value:06d}"


# --- Finding tickets -----------------------------------------------------------------------------------


def visible_query(platform: Platform, user: CurrentUser, query: Select[Any] | None = None) -> Select[Any]:
    return rbac.restrict(platform, query if query is not None else select(Ticket), Ticket, user)


#: Statements built once per user by :func:`visible_statement` (small ones) and :func:`page`
#: (about 18 KB each), by name or query and user.
_VISIBLE_STATEMENTS = KeptStatements(2000)
_PAGE_STATEMENTS = KeptStatements(1000)


def _own_rules_only(platform: Platform) -> bool:
    """Whether this plugin's rule (tickets of one's team and one's own) is the only one on tickets."""
    return rbac.only_rules(platform, Ticket, security.RECORD_RULES)


def visible_statement(platform: Platform, user: CurrentUser, name: str, base: Callable[[], Select[Any]],
                      finish: Callable[[Select[Any]], Select[Any]] | None = None) -> Select[Any]:
    """``base()`` narrowed to the tickets ``user`` may see, then ``finish``-ed (say, counted):
    a statement whose values are bound parameters, executed with them.

    It is built once per user and ``name`` while the only record rule on tickets is this
    plugin's own, which depends on the user alone; with another plugin's rule it is built each
    time. Building it (and working out its cache key) cost more than running it on the
    contact page, whose tickets panel and timeline read one contact's tickets.
    """
    own_rules_only = _own_rules_only(platform)
    key = (name, user.id, user.team, user.permissions)
    statement = _VISIBLE_STATEMENTS.get(key) if own_rules_only else None
    if statement is None:
        statement = visible_query(platform, user, base())
        statement = finish(statement) if finish else statement
        if own_rules_only:
            _VISIBLE_STATEMENTS.keep(key, statement)
    return statement


def get_visible(platform: Platform, db: Session, user: CurrentUser, ticket_id: Any, lock: bool = False) -> Ticket:
    """The ticket if ``user`` may see it; :class:`NotFound` otherwise (also when it exists)."""
    try:
        ticket_id = int(ticket_id)
    except (TypeError, ValueError):
        raise NotFound(_("There is no such ticket.")) from None
    ticket = None
    if user.can(security.READ):
        query = visible_query(platform, user, select(Ticket).where(Ticket.id == ticket_id))
        ticket = db.scalar(query.with_for_update() if lock else query)
    if ticket is None:
        raise NotFound(_("There is no such ticket."))
    return ticket


def get_workable(platform: Platform, db: Session, user: CurrentUser, ticket_id: Any) -> Ticket:
    """The ticket if ``user`` may see and work it (locked for the change on PostgreSQL)."""
    ticket = get_visible(platform, db, user, ticket_id, lock=True)
    if not user.can(security.WRITE):
        raise Forbidden(_("You may not change tickets."))
    return ticket


def contact_model(platform: Platform) -> Any:
    """The contacts plugin's ``Contact`` model, from what it declared (never imported)."""
    return next(m for m in platform.declarations.models.get("contacts", []) if m.__tablename__ == "contacts_contact")


def may_see_contact(platform: Platform, db: Session, user: CurrentUser, contact_id: int) -> bool:
    return user.can(security.CONTACTS_READ) and rbac.visible(platform, db, contact_model(platform), user,
                                                             contact_id) is not None


def contact_names(platform: Platform, db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return dict(read_rows(db, _names_of(contact_model(platform)), {"ids": list(wanted)}))


def user_names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {row.id: row.name or row.login for row in read_rows(db, _USER_NAMES, {"ids": list(wanted)})}


# Built once (a queue page asks for both on every request).
_USER_NAMES = select(User.id, User.name, User.login).where(User.id.in_(bindparam("ids", expanding=True)))


@functools.cache
def _names_of(model: Any) -> Select[Any]:
    return select(model.id, model.name).where(model.id.in_(bindparam("ids", expanding=True)))


# --- Listing --------------------------------------------------------------------------------------------

VIEWS = ("all", "mine", "team", "unassigned", "breaching", "open")


@dataclass
class ListQuery:
    view: str = "all"
    status: str = ""
    priority: str = ""
    category: str = ""
    contact_id: int | None = None
    assignee_id: int | None = None
    team: str = ""
    q: str = ""
    limit: int = 50
    offset: int = 0


def list_query_from(params: Any) -> ListQuery:
    """A :class:`ListQuery` from query parameters; :class:`Invalid` names the bad ones."""
    problems: dict[str, str] = {}

    def number(name: str, default: int | None, low: int = 0, high: int = 10 ** 9) -> int | None:
        raw = str(params.get(name) or "").strip()
        if not raw:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            problems[name] = _("Not a number between %(low)s and %(high)s.", low=low, high=high)
            return default
        return int(raw)

    query = ListQuery(
        view=str(params.get("view") or "all"), status=str(params.get("status") or ""),
        priority=str(params.get("priority") or ""), category=str(params.get("category") or ""),
        contact_id=number("contact_id", None, 1), assignee_id=number("assignee_id", None, 1),
        team=str(params.get("team") or ""), q=str(params.get("q") or "").strip()[:100],
        limit=number("limit", 50, 1, 500) or 50, offset=number("offset", 0) or 0,
    )
    if query.view not in VIEWS:
        problems["view"] = _("Choose one of: %(choices)s.", choices=", ".join(VIEWS))
    if query.priority and query.priority not in PRIORITIES:
        problems["priority"] = _("Choose one of: %(choices)s.", choices=", ".join(PRIORITIES))
    if problems:
        raise Invalid(_("Some filters are not valid."), problems)
    return query


def open_status_keys(db: Session) -> list[str]:
    """The keys of the statuses that are neither resolved nor closed, kept for a moment
    (:func:`kehu.db.kept_rows`): the queue's views filter by them on every page."""
    return [key for (key,) in kept_rows(db, _OPEN_STATUS_KEYS)]


_OPEN_STATUS_KEYS = select(TicketStatus.key).where(TicketStatus.resolved.is_(False), TicketStatus.closed.is_(False))


def filtered(platform: Platform, db: Session, user: CurrentUser, query: ListQuery) -> Select[Any]:
    """The tickets ``user`` may see that match ``query`` (not ordered, not paged). The
    "breaching" view compares with the parameter ``soon`` (see :func:`page`)."""
    stmt = visible_query(platform, user)
    if query.view == "mine":
        stmt = stmt.where(Ticket.assignee_id == user.id)
    elif query.view == "team":
        stmt = stmt.where(Ticket.team == user.team) if user.team else stmt.where(False)
    elif query.view == "unassigned":
        stmt = stmt.where(Ticket.assignee_id.is_(None), Ticket.status.in_(open_status_keys(db)))
    elif query.view == "breaching":
        stmt = stmt.where(Ticket.next_due_at <= bindparam("soon"))
    elif query.view == "open":
        stmt = stmt.where(Ticket.status.in_(open_status_keys(db)))
    for column, value in ((Ticket.status, query.status), (Ticket.priority, query.priority),
                          (Ticket.category, query.category), (Ticket.team, query.team)):
        if value:
            stmt = stmt.where(column == value)
    if query.contact_id is not None:
        stmt = stmt.where(Ticket.contact_id == query.contact_id)
    if query.assignee_id is not None:
        stmt = stmt.where(Ticket.assignee_id == query.assignee_id)
    if query.q:
        pattern = "%" + query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Ticket.number.ilike(pattern, escape="\\"), Ticket.subject.ilike(pattern, escape="\\")))
    return stmt


def page(platform: Platform, db: Session, user: CurrentUser, query: ListQuery,
         now: datetime | None = None, count_up_to: int | None = None) -> tuple[list[Any], int]:
    """One page of the tickets ``user`` may see that match ``query``, as plain rows with the
    ticket's columns (to read, not to change: a page of model objects cost twice as much to
    load), and their number.

    Counting stops after ``count_up_to`` (then the number is ``count_up_to + 1``: the queue
    shows "1000+"): counting every ticket of a busy team costs more than the page itself, and
    such a count is remembered for :data:`kehu.db.CAPPED_COUNT_SECONDS`.
    """
    soon = (now or utcnow()) + timedelta(minutes=int_setting(platform, "warn_before_minutes"))
    wanted = (query.view, query.status, query.priority, query.category, query.contact_id, query.assignee_id,
              query.team, query.q)
    if query.view in ("unassigned", "open"):  # their statements hold the open statuses
        wanted += tuple(open_status_keys(db))
    paged, counted = _page_statements(platform, db, user, query, wanted, count_up_to)
    params = {"soon": soon, "offset": query.offset}
    if count_up_to is None:
        total = read_rows(db, counted, params)[0][0] or 0
    else:
        total = count_capped(db, counted, count_up_to, ("tickets", str(platform.engine.url), user.id, user.team,
                                                        user.permissions, wanted), params)
    return list(read_rows(db, paged, params)), total


def _page_statements(platform: Platform, db: Session, user: CurrentUser, query: ListQuery, wanted: tuple[Any, ...],
                     count_up_to: int | None) -> tuple[Select[Any], Select[Any]]:
    """The page's SELECT (parameters ``soon`` and ``offset``) and its count's, kept per user and
    query (not searches) while the only record rule on tickets is this plugin's own."""
    # A search's words rarely come again: its statements are not kept (each is about 18 KB).
    kept = not query.q and _own_rules_only(platform)
    key = (wanted, query.limit, count_up_to, user.id, user.team, user.permissions)
    statements = _PAGE_STATEMENTS.get(key) if kept else None
    if statements is None:
        stmt = filtered(platform, db, user, query)
        counted = stmt.with_only_columns(Ticket.id)
        if count_up_to is not None:
            counted = counted.limit(count_up_to + 1)
        order = ([Ticket.next_due_at.asc(), Ticket.id.asc()] if query.view == "breaching"
                 else [Ticket.created_at.desc(), Ticket.id.desc()])
        statements = (stmt.order_by(*order).limit(query.limit).offset(bindparam("offset")),
                      select(func.count()).select_from(counted.order_by(None).subquery()))
        if kept:
            _PAGE_STATEMENTS.keep(key, statements)
    return statements


# --- The SLA clocks of a ticket ------------------------------------------------------------------------------


def pauses_of(db: Session, ticket_id: int) -> list[sla.Pause]:
    return pauses_by_ticket(db, [ticket_id])[ticket_id]


def pauses_by_ticket(db: Session, ticket_ids: list[int]) -> dict[int, list[sla.Pause]]:
    """Each ticket's SLA pauses, oldest first, in one query (a queue page shows 50 tickets)."""
    found: dict[int, list[sla.Pause]] = {ticket_id: [] for ticket_id in ticket_ids}
    if ticket_ids:
        for ticket_id, started_at, ended_at in read_rows(db, _PAUSES_OF, {"ids": ticket_ids}):
            found[ticket_id].append((started_at, ended_at))
    return found


_PAUSES_OF = select(SlaPause.ticket_id, SlaPause.started_at, SlaPause.ended_at).where(
    SlaPause.ticket_id.in_(bindparam("ids", expanding=True))).order_by(SlaPause.started_at)


def clocks(platform: Platform, db: Session, ticket: Ticket, now: datetime | None = None,
           calendar: sla.BusinessCalendar | None = None, pauses: list[sla.Pause] | None = None,
           statuses: dict[str, Any] | None = None) -> dict[str, sla.Clock | None]:
    """The first-response and resolution clocks of ``ticket`` at ``now``. A list passes what
    it read once for all its tickets: the calendar, their pauses, the statuses by key."""
    now = now or utcnow()
    calendar = calendar or business_calendar(platform, db)
    pauses = pauses_of(db, ticket.id) if pauses is None else pauses
    result: dict[str, sla.Clock | None] = {"response": None, "resolution": None}
    if ticket.response_target_minutes is not None:
        result["response"] = sla.clock(calendar, ticket.created_at, timedelta(minutes=ticket.response_target_minutes),
                                       now, pauses, stopped_at=ticket.first_response_at)
    if ticket.resolution_target_minutes is not None:
        status = statuses.get(ticket.status) if statuses is not None else db.get(TicketStatus, ticket.status)
        stopped = ticket.resolved_at if status is not None and (status.resolved or status.closed) else None
        result["resolution"] = sla.clock(calendar, ticket.created_at,
                                         timedelta(minutes=ticket.resolution_target_minutes), now, pauses,
                                         stopped_at=stopped)
    return result


def refresh_due(platform: Platform, db: Session, ticket: Ticket, calendar: sla.BusinessCalendar | None = None,
                pauses: list[sla.Pause] | None = None) -> None:
    """Store when each running clock is due (``None`` when met, stopped or paused), for the
    queues and the escalation job. A batch passes its calendar and the ticket's pauses. What is
    stored is worked out from the calendar as it is now (``fresh``), not as kept for a moment:
    a holiday's refresh job may already have passed this ticket."""
    calendar = calendar or business_calendar(platform, db, fresh=True)
    pauses = pauses_of(db, ticket.id) if pauses is None else pauses
    paused = any(end is None for _start, end in pauses)
    ticket.response_due_at = ticket.resolution_due_at = ticket.next_due_at = None
    if paused:
        return
    if ticket.response_target_minutes is not None and ticket.first_response_at is None:
        ticket.response_due_at = sla.due_at(calendar, ticket.created_at,
                                            timedelta(minutes=ticket.response_target_minutes), pauses)
    if ticket.resolution_target_minutes is not None:
        ticket.resolution_due_at = sla.due_at(calendar, ticket.created_at,
                                              timedelta(minutes=ticket.resolution_target_minutes), pauses)
    ticket.next_due_at = min((due for due in (ticket.response_due_at, ticket.resolution_due_at) if due), default=None)


def apply_policy(ticket: Ticket, policy: SlaPolicy | None) -> None:
    """Set the ticket's SLA targets from ``policy`` (:func:`policy_for`; None: no targets)."""
    ticket.response_target_minutes = policy.response_minutes if policy else None
    ticket.resolution_target_minutes = policy.resolution_minutes if policy else None


def _stops_clock(status: TicketStatus | None) -> bool:
    return status is not None and (status.pauses_sla or status.resolved or status.closed)


def _set_pause(db: Session, ticket: Ticket, old: TicketStatus | None, new: TicketStatus, now: datetime) -> None:
    if _stops_clock(new) and not _stops_clock(old):
        db.add(SlaPause(ticket_id=ticket.id, started_at=now))
    elif _stops_clock(old) and not _stops_clock(new):
        db.execute(update(SlaPause).where(SlaPause.ticket_id == ticket.id, SlaPause.ended_at.is_(None))
                   .values(ended_at=now))
    db.flush()


# --- History -----------------------------------------------------------------------------------------------


def record(db: Session, ticket: Ticket, action: str, actor: CurrentUser | None, now: datetime,
           **detail: Any) -> History:
    row = History(ticket_id=ticket.id, at=now, actor_id=getattr(actor, "id", None), action=action, detail=detail)
    db.add(row)
    return row


# --- Creating -------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value).strip())


def parse_input(db: Session, data: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Check the fields a client sent (create or change); returns the clean values given."""
    problems: dict[str, str] = {}
    clean: dict[str, Any] = {}
    if creating or "contact_id" in data:
        raw = data.get("contact_id")
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw)
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
            problems["contact_id"] = _("Choose the customer.")
        else:
            clean["contact_id"] = raw
    if creating or "subject" in data:
        subject = _text(data.get("subject"))
        if not subject:
            problems["subject"] = _("Say what the ticket is about.")
        elif len(subject) > SUBJECT_MAX:
            problems["subject"] = _("At most %(n)s characters.", n=SUBJECT_MAX)
        clean["subject"] = subject
    if creating or "description" in data:
        description = _text(data.get("description"))
        if len(description) > DESCRIPTION_MAX:
            problems["description"] = _("At most %(n)s characters.", n=DESCRIPTION_MAX)
        clean["description"] = description
    if "channel" in data or creating:
        channel = _text(data.get("channel")) or "staff"
        if channel not in CHANNELS:
            problems["channel"] = _("Choose one of: %(choices)s.", choices=", ".join(CHANNELS))
        clean["channel"] = channel
    if "priority" in data or creating:
        priority = _text(data.get("priority")) or "normal"
        if priority not in PRIORITIES:
            problems["priority"] = _("Choose one of: %(choices)s.", choices=", ".join(PRIORITIES))
        clean["priority"] = priority
    if "category" in data or creating:
        known = [c.key for c in categories(db)]
        category = _text(data.get("category")) or (known[0] if known and "general" not in known else "general")
        if category not in known:
            problems["category"] = _("Choose one of: %(choices)s.", choices=", ".join(known))
        clean["category"] = category
    if "team" in data:
        team = _text(data.get("team"))
        if len(team) > 80:
            problems["team"] = _("At most %(n)s characters.", n=80)
        clean["team"] = team
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    return clean


def create_ticket(platform: Platform, db: Session, user: CurrentUser | None, data: dict[str, Any], *,
                  now: datetime | None = None, auto_assign: bool | None = None) -> Ticket:
    """Open a ticket from clean values (see :func:`parse_input`); emits ``ticket.created``.

    ``user`` is the staff member opening it (who must be allowed to see the customer), or
    ``None`` for the customer's own web form. The ticket goes to the given team, else the
    user's team, else the ``default_team`` setting; with ``auto_assign`` (default: the
    ``auto_assign`` setting) it is assigned round robin within that team.
    """
    now = now or utcnow()
    if user is not None:
        if not user.can(security.WRITE):
            raise Forbidden(_("You may not open tickets."))
        if not may_see_contact(platform, db, user, data["contact_id"]):
            raise Invalid(_("Some fields are not valid."), {"contact_id": _("There is no such customer.")})
    status = initial_status(db)
    team = data.get("team")
    if team is None:
        team = (user.team if user is not None else "") or setting(platform, "default_team")
    ticket = Ticket(number=next_number(platform, db, now), contact_id=data["contact_id"], subject=data["subject"],
                    description=data.get("description", ""), channel=data.get("channel", "staff"),
                    category=data["category"], priority=data["priority"], status=status.key, team=team,
                    created_by_id=getattr(user, "id", None), created_at=now, updated_at=now,
                    portal_key=secrets.token_urlsafe(12))
    apply_policy(ticket, policy_for(db, ticket.priority, ticket.category))
    db.add(ticket)
    db.flush()
    refresh_due(platform, db, ticket)
    record(db, ticket, "created", user, now, status=status.key, channel=ticket.channel)
    events.emit(db, "ticket.created", {"ticket_id": ticket.id, "contact_id": ticket.contact_id},
                actor_id=getattr(user, "id", None))
    notify.queue(db, ticket.id, "created")
    if auto_assign is None:
        auto_assign = setting(platform, "auto_assign").strip().lower() in ("1", "true", "yes")
    if auto_assign and ticket.team:
        assign_round_robin(platform, db, None, ticket, now=now)
    db.flush()
    return ticket


def update_ticket(platform: Platform, db: Session, user: CurrentUser, ticket: Ticket, data: dict[str, Any],
                  now: datetime | None = None) -> Ticket:
    """Change subject, description, category, priority or team; SLA targets follow the
    policy of the new priority and category (counted from the ticket's creation)."""
    now = now or utcnow()
    if "contact_id" in data and data["contact_id"] != ticket.contact_id:
        if not may_see_contact(platform, db, user, data["contact_id"]):
            raise Invalid(_("Some fields are not valid."), {"contact_id": _("There is no such customer.")})
    changed = sorted(k for k, v in data.items() if getattr(ticket, k) != v)
    if not changed:
        return ticket
    targets_change = bool({"priority", "category"} & set(changed))
    if targets_change:
        # Read before changing the ticket: a read after a change flushes it first, and the
        # ticket's row was then updated three times in one change (priority, targets, due).
        policy = policy_for(db, data.get("priority", ticket.priority), data.get("category", ticket.category))
        calendar, pauses = business_calendar(platform, db, fresh=True), pauses_of(db, ticket.id)
    for key in changed:
        setattr(ticket, key, data[key])
    if targets_change:
        apply_policy(ticket, policy)
        refresh_due(platform, db, ticket, calendar, pauses)
    ticket.updated_at = now
    record(db, ticket, "changed", user, now, fields=changed)
    db.flush()
    return ticket


# --- The workflow -------------------------------------------------------------------------------------------


def transition(platform: Platform, db: Session, user: CurrentUser | None, ticket: Ticket, to: str, *,
               now: datetime | None = None, actor_kind: str = STAFF) -> Ticket:
    """Move ``ticket`` to the status ``to`` if the workflow allows it; emits
    ``ticket.status_changed`` (and ``ticket.resolved``); resolving asks the customer to rate."""
    now = now or utcnow()
    known = statuses(db)
    old = known.get(ticket.status)
    new = known.get(to)
    allowed = allowed_targets(db, ticket.status)
    if new is None or not new.active:
        raise Invalid(_("There is no status %(status)s.", status=to), {"to": _("Choose one of the allowed statuses.")},
                      allowed=[s.key for s in allowed])
    if new.key not in {s.key for s in allowed}:
        names = _(", ").join(status_label(s) for s in allowed) or _("none")
        raise InvalidTransition(
            _("A ticket that is %(current)s cannot become %(wanted)s. Allowed: %(allowed)s.",
              current=status_label(old, ticket.status), wanted=status_label(new), allowed=names),
            {"to": _("Not allowed from %(current)s.", current=status_label(old, ticket.status))},
            allowed=[s.key for s in allowed])
    _set_pause(db, ticket, old, new, now)
    ticket.status = new.key
    ticket.updated_at = now
    if new.resolved:
        ticket.resolved_at = now
    if new.closed:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    if not new.resolved and not new.closed:
        ticket.resolved_at = None
        ticket.closed_at = None
    refresh_due(platform, db, ticket)
    reopened = old is not None and (old.resolved or old.closed) and not (new.resolved or new.closed)
    record(db, ticket, "reopened" if reopened else "status", user, now, by=actor_kind,
           **{"from": old.key if old else ticket.status, "to": new.key})
    actor_id = getattr(user, "id", None)
    events.emit(db, "ticket.status_changed", {"ticket_id": ticket.id, "from": old.key if old else None,
                                              "to": new.key}, actor_id=actor_id)
    if new.resolved and not (old is not None and old.resolved):
        events.emit(db, "ticket.resolved", {"ticket_id": ticket.id, "contact_id": ticket.contact_id},
                    actor_id=actor_id)
        if ticket.rating is None:
            notify.queue(db, ticket.id, "resolved")
    db.flush()
    return ticket


def _move_on(platform: Platform, db: Session, ticket: Ticket, user: CurrentUser | None, now: datetime,
             actor_kind: str) -> None:
    """After the customer answers: out of a waiting (or resolved) status, into the furthest
    open working status the workflow allows from there."""
    current = db.get(TicketStatus, ticket.status)
    if current is None or not (current.pauses_sla or current.resolved):
        return
    targets = [s for s in allowed_targets(db, ticket.status) if not (s.pauses_sla or s.resolved or s.closed)]
    if targets:
        transition(platform, db, user, ticket, targets[-1].key, now=now, actor_kind=actor_kind)


# --- Assignment ------------------------------------------------------------------------------------------------


def _workers(db: Session, team: str) -> list[User]:
    """Active members of ``team`` who may work tickets, by id."""
    users = db.scalars(select(User).where(User.team == team, User.active.is_(True)).order_by(User.id)).all()
    return [u for u in users if {"*", security.WRITE} & u.permissions]


def is_away(db: Session, user_id: int) -> bool:
    return bool(read_rows(db, _AWAY, {"user_id": user_id}))


_AWAY = select(Agent.user_id).where(Agent.user_id == bindparam("user_id"), Agent.away.is_(True))


def away_ids(db: Session) -> set[int]:
    return set(db.scalars(select(Agent.user_id).where(Agent.away.is_(True))))


def assign(platform: Platform, db: Session, user: CurrentUser | None, ticket: Ticket, assignee_id: int | None, *,
           now: datetime | None = None) -> Ticket:
    """Give ``ticket`` to ``assignee_id`` (``None``: nobody). Without ``tickets.assign`` a user
    may only take a ticket themselves. A ticket in its initial status becomes ``assigned``."""
    now = now or utcnow()
    if user is not None and not user.can(security.ASSIGN) and assignee_id != user.id:
        raise Forbidden(_("You may only take tickets yourself."))
    assignee = None
    if assignee_id is not None:
        assignee = db.get(User, assignee_id)
        if assignee is None or not assignee.active or not {"*", security.WRITE} & assignee.permissions:
            raise Invalid(_("Some fields are not valid."), {"assignee_id": _("Choose someone who works tickets.")})
    if ticket.assignee_id == assignee_id:
        return ticket
    previous = ticket.assignee_id
    ticket.assignee_id = assignee_id
    if assignee is not None and assignee.team and not ticket.team:
        ticket.team = assignee.team
    ticket.updated_at = now
    record(db, ticket, "assigned", user, now, **{"from": previous, "to": assignee_id})
    if assignee_id is not None:
        if user is None or user.id != assignee_id:
            notify.queue(db, ticket.id, "assigned", user_id=assignee_id)
        status = db.get(TicketStatus, ticket.status)
        if status is not None and status.initial and ASSIGNED in {s.key for s in allowed_targets(db, ticket.status)}:
            transition(platform, db, user, ticket, ASSIGNED, now=now)
    db.flush()
    return ticket


def assign_round_robin(platform: Platform, db: Session, user: CurrentUser | None, ticket: Ticket, *,
                       now: datetime | None = None) -> int | None:
    """Assign to the next member of the ticket's team after the last one given a ticket,
    skipping people who are away; returns the assignee id (``None``: nobody available)."""
    if not ticket.team:
        raise Invalid(_("The ticket has no team to assign it in."), {"team": _("Choose a team first.")})
    insert_or_skip(db, Team, ["name"], name=ticket.team)
    team = db.scalar(select(Team).where(Team.name == ticket.team).with_for_update())
    away = away_ids(db)
    candidates = [u.id for u in _workers(db, ticket.team) if u.id not in away]
    if not candidates:
        return None
    last = team.last_assigned_id or 0
    chosen = next((uid for uid in candidates if uid > last), candidates[0])
    team.last_assigned_id = chosen
    assign(platform, db, None, ticket, chosen, now=now)
    if user is not None:
        record(db, ticket, "auto_assigned", user, now or utcnow(), to=chosen)
    return chosen


def set_away(db: Session, user_id: int, away: bool, email: str | None = None) -> Agent:
    agent = db.get(Agent, user_id)
    if agent is None:
        agent = Agent(user_id=user_id, away=False, email="")
        db.add(agent)
    agent.away = away
    if email is not None:
        email = email.strip()
        if email and ("@" not in email or len(email) > 200 or any(c.isspace() for c in email)):
            raise Invalid(_("Some fields are not valid."), {"email": _("Not an e-mail address.")})
        agent.email = email
    agent.updated_at = utcnow()
    db.flush()
    return agent


# --- Comments and ratings ------------------------------------------------------------------------------------------


def add_comment(platform: Platform, db: Session, user: CurrentUser | None, ticket: Ticket, body: str, *,
                public: bool, now: datetime | None = None, author_kind: str = STAFF) -> Comment:
    """A reply the customer sees (``public``) or an internal note; from the customer when
    ``author_kind`` is ``customer``. A staff reply is the ticket's first response; the
    customer's answer moves a waiting (or resolved) ticket back to work."""
    now = now or utcnow()
    body = (body or "").strip()
    if not body:
        raise Invalid(_("Some fields are not valid."), {"body": _("Write something.")})
    if len(body) > COMMENT_MAX:
        raise Invalid(_("Some fields are not valid."), {"body": _("At most %(n)s characters.", n=COMMENT_MAX)})
    status = db.get(TicketStatus, ticket.status)
    if author_kind == CUSTOMER and status is not None and status.closed:
        raise Conflict(_("This ticket is closed. Please open a new one."))
    comment = Comment(ticket_id=ticket.id, author_kind=author_kind, author_id=getattr(user, "id", None),
                      public=public or author_kind == CUSTOMER, body=body, created_at=now)
    db.add(comment)
    db.flush()
    ticket.updated_at = now
    record(db, ticket, "commented", user, now, comment_id=comment.id, public=comment.public, by=author_kind)
    if author_kind == STAFF and comment.public:
        if ticket.first_response_at is None:
            ticket.first_response_at = now
            refresh_due(platform, db, ticket)
        notify.queue(db, ticket.id, "reply", comment_id=comment.id)
    if author_kind == CUSTOMER:
        _move_on(platform, db, ticket, None, now, CUSTOMER)
        if ticket.assignee_id:
            notify.queue(db, ticket.id, "customer_reply", user_id=ticket.assignee_id, comment_id=comment.id)
    db.flush()
    return comment


def comments(db: Session, ticket_id: int, public_only: bool = False) -> list[Comment]:
    query = select(Comment).where(Comment.ticket_id == ticket_id).order_by(Comment.created_at, Comment.id)
    if public_only:
        query = query.where(Comment.public.is_(True))
    return list(db.scalars(query))


def rate(db: Session, ticket: Ticket, score: Any, comment: str, actor: CurrentUser | None, *,
         now: datetime | None = None) -> Ticket:
    """The customer's satisfaction (1 to 5 and a comment), once, after resolution."""
    now = now or utcnow()
    if isinstance(score, str) and score.strip().isdigit():
        score = int(score)
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise Invalid(_("Some fields are not valid."), {"score": _("Choose from 1 to 5.")})
    comment = (comment or "").strip()
    if len(comment) > 2000:
        raise Invalid(_("Some fields are not valid."), {"comment": _("At most %(n)s characters.", n=2000)})
    status = db.get(TicketStatus, ticket.status)
    if status is None or not (status.resolved or status.closed):
        raise Conflict(_("A ticket is rated once it is resolved."))
    if ticket.rating is not None:
        raise Conflict(_("This ticket was rated already."))
    ticket.rating, ticket.rating_comment, ticket.rated_at = score, comment, now
    record(db, ticket, "rated", actor, now, score=score, by=STAFF if actor else CUSTOMER)
    db.flush()
    return ticket


# --- Composition: merge, a person's data ------------------------------------------------------------------------


def merge_contacts(db: Session, survivor_id: int, merged_id: int) -> None:
    db.execute(update(Ticket).where(Ticket.contact_id == merged_id).values(contact_id=survivor_id))


def person_data(db: Session, contact_id: int) -> dict[str, Any] | None:
    tickets = list(db.scalars(select(Ticket).where(Ticket.contact_id == contact_id).order_by(Ticket.id)))
    if not tickets:
        return None
    result = []
    for ticket in tickets:
        result.append({
            "number": ticket.number, "subject": ticket.subject, "description": ticket.description,
            "channel": ticket.channel, "category": ticket.category, "priority": ticket.priority,
            "status": ticket.status, "created_at": ticket.created_at.isoformat(),
            "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
            "rating": ticket.rating, "rating_comment": ticket.rating_comment,
            "messages": [{"from": c.author_kind, "internal_note": not c.public, "body": c.body,
                          "at": c.created_at.isoformat()} for c in comments(db, ticket.id)],
            "attachments": [{"filename": a.filename, "size": a.size, "at": a.created_at.isoformat()}
                            for a in db.scalars(select(Attachment).where(Attachment.ticket_id == ticket.id))],
        })
    return {"tickets": result}


def erase_person(platform: Platform, db: Session, contact_id: int) -> None:
    """A person's erasure: their tickets stay (numbers, dates, statuses: the service record)
    but every text and file about them goes."""
    from . import attachments

    ids = list(db.scalars(select(Ticket.id).where(Ticket.contact_id == contact_id)))
    if not ids:
        return
    for attachment in db.scalars(select(Attachment).where(Attachment.ticket_id.in_(ids))):
        attachments.discard(platform, attachment.stored_name)
    db.execute(delete(Attachment).where(Attachment.ticket_id.in_(ids)))
    db.execute(update(Comment).where(Comment.ticket_id.in_(ids)).values(body=""))
    db.execute(update(Ticket).where(Ticket.id.in_(ids)).values(
        subject=_("(erased)"), description="", rating_comment="", portal_key=secrets.token_urlsafe(12)))
    audit.record(db, "tickets.erase", target=f"contact:{contact_id}", detail={"tickets": len(ids)})


# --- Administration: workflow, policies, calendar, teams -----------------------------------------------------------------


def workflow_dict(db: Session) -> dict[str, Any]:
    return {
        "statuses": [{"key": s.key, "label": s.label, "position": s.position, "initial": s.initial,
                      "pauses_sla": s.pauses_sla, "resolved": s.resolved, "closed": s.closed, "active": s.active}
                     for s in statuses(db).values()],
        "transitions": [{"from": t.from_status, "to": t.to_status, "label": t.label}
                        for t in db.scalars(select(Transition).order_by(Transition.from_status, Transition.id))],
    }


def save_workflow(db: Session, user: CurrentUser, data: dict[str, Any]) -> dict[str, Any]:
    """Replace statuses (added or changed; a status in use cannot go) and transitions."""
    problems: dict[str, str] = {}
    wanted_statuses = data.get("statuses")
    wanted_transitions = data.get("transitions")
    if not isinstance(wanted_statuses, list) or not wanted_statuses:
        problems["statuses"] = _("A list of statuses.")
    if not isinstance(wanted_transitions, list):
        problems["transitions"] = _("A list of transitions.")
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    keys: list[str] = []
    for index, item in enumerate(wanted_statuses):
        key = str(item.get("key", "")) if isinstance(item, dict) else ""
        if not key or len(key) > 30 or not key.replace("_", "").isalnum() or not key.isascii():
            problems[f"statuses.{index}.key"] = _("Use a-z, 0-9 and _, at most 30.")
        keys.append(key)
    if len(set(keys)) != len(keys):
        problems["statuses"] = _("Each status once.")
    if sum(1 for item in wanted_statuses if isinstance(item, dict) and item.get("initial")) != 1:
        problems["statuses"] = _("Mark exactly one status as initial.")
    pairs = []
    for index, item in enumerate(wanted_transitions or []):
        pair = (str(item.get("from", "")), str(item.get("to", ""))) if isinstance(item, dict) else ("", "")
        if pair[0] not in keys or pair[1] not in keys or pair[0] == pair[1]:
            problems[f"transitions.{index}"] = _("From one known status to another.")
        pairs.append((pair, item.get("label") if isinstance(item, dict) else None))
    in_use = set(db.scalars(select(Ticket.status).distinct()))
    gone = in_use - set(keys)
    if gone:
        problems["statuses"] = _("Tickets are in %(statuses)s: keep these statuses (mark them inactive).",
                                 statuses=", ".join(sorted(gone)))
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    db.execute(delete(Transition))
    existing = statuses(db)
    for key in set(existing) - set(keys):
        db.delete(existing[key])
    db.flush()
    for position, item in enumerate(wanted_statuses):
        row = existing.get(item["key"]) or TicketStatus(key=item["key"])
        label = item.get("label") if isinstance(item.get("label"), dict) else {"zh": str(item.get("label") or item["key"]),
                                                                                "en": str(item.get("label") or item["key"])}
        row.label, row.position = label, int(item.get("position", position) or position)
        for flag in ("initial", "pauses_sla", "resolved", "closed"):
            setattr(row, flag, bool(item.get(flag)))
        row.active = bool(item.get("active", True))
        db.add(row)
    db.flush()
    seen = set()
    for (source, target), label in pairs:
        if (source, target) in seen:
            continue
        seen.add((source, target))
        db.add(Transition(from_status=source, to_status=target, label=label if isinstance(label, dict) else {}))
    db.flush()
    audit.record(db, "tickets.workflow", actor=user, detail={"statuses": keys, "transitions": len(seen)})
    return workflow_dict(db)


def add_transition(db: Session, user: CurrentUser, source: str, target: str) -> None:
    known = statuses(db)
    if source not in known or target not in known or source == target:
        raise Invalid(_("Some fields are not valid."), {"to": _("From one known status to another.")})
    if db.scalar(select(Transition.id).where(Transition.from_status == source, Transition.to_status == target)):
        return
    db.add(Transition(from_status=source, to_status=target, label={}))
    audit.record(db, "tickets.workflow.add", actor=user, detail={"from": source, "to": target})


def remove_transition(db: Session, user: CurrentUser, source: str, target: str) -> None:
    db.execute(delete(Transition).where(Transition.from_status == source, Transition.to_status == target))
    audit.record(db, "tickets.workflow.remove", actor=user, detail={"from": source, "to": target})


def policies(db: Session) -> list[SlaPolicy]:
    return list(db.scalars(select(SlaPolicy).order_by(SlaPolicy.priority, SlaPolicy.category)))


def policy_dict(policy: SlaPolicy) -> dict[str, Any]:
    return {"id": policy.id, "priority": policy.priority, "category": policy.category,
            "response_minutes": policy.response_minutes, "resolution_minutes": policy.resolution_minutes}


def save_policy(db: Session, user: CurrentUser, data: dict[str, Any]) -> SlaPolicy:
    """Add or change the policy of a priority and category (``""`` for any)."""
    problems: dict[str, str] = {}
    priority, category = _text(data.get("priority")), _text(data.get("category"))
    if priority and priority not in PRIORITIES:
        problems["priority"] = _("Choose one of: %(choices)s.", choices=", ".join(PRIORITIES))
    if category and category not in {c.key for c in categories(db, active_only=False)}:
        problems["category"] = _("There is no such category.")
    minutes = {}
    for name in ("response_minutes", "resolution_minutes"):
        value = data.get(name)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100000:
            problems[name] = _("Business minutes, from 1 to 100000.")
        minutes[name] = value
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    policy = db.scalar(select(SlaPolicy).where(SlaPolicy.priority == priority, SlaPolicy.category == category))
    if policy is None:
        policy = SlaPolicy(priority=priority, category=category)
        db.add(policy)
    policy.response_minutes, policy.resolution_minutes = minutes["response_minutes"], minutes["resolution_minutes"]
    db.flush()
    audit.record(db, "tickets.sla_policy", actor=user, detail=policy_dict(policy))
    return policy


def save_day(db: Session, user: CurrentUser, data: dict[str, Any]) -> CalendarDay:
    from datetime import date

    problems: dict[str, str] = {}
    try:
        day = date.fromisoformat(str(data.get("day", "")))
    except ValueError:
        problems["day"] = _("A date like 2026-10-01.")
    kind = str(data.get("kind", ""))
    if kind not in (HOLIDAY, WORKDAY):
        problems["kind"] = _("Choose holiday or workday.")
    name = _text(data.get("name"))[:80]
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    row = db.get(CalendarDay, day) or CalendarDay(day=day)
    row.kind, row.name = kind, name
    db.add(row)
    db.flush()
    audit.record(db, "tickets.calendar", actor=user, detail={"day": day.isoformat(), "kind": kind})
    _refresh_due_after_commit(db)
    return row


def delete_day(db: Session, user: CurrentUser, raw: str) -> None:
    from datetime import date

    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise NotFound(_("There is no such day.")) from None
    db.execute(delete(CalendarDay).where(CalendarDay.day == day))
    audit.record(db, "tickets.calendar.delete", actor=user, detail={"day": raw})
    _refresh_due_after_commit(db)


#: The job that works out every running clock's due moment again (``tickets.tasks``).
REFRESH_DUE_TASK = "tickets.refresh_due_dates"


def _refresh_due_after_commit(db: Session) -> None:
    """Once this transaction commits, ask the job worker to work out again when every running
    clock is due: a holiday or a make-up working day moves them, and the queues and the
    escalation job read the stored moments."""
    def enqueue(_session: Session) -> None:
        from kehu import jobs

        try:
            jobs.enqueue(REFRESH_DUE_TASK)
        except Exception as exc:  # noqa: BLE001  (the day is saved; the next calendar change queues it again)
            log.warning("could not enqueue %s (%s): due moments keep the old calendar", REFRESH_DUE_TASK, exc)

    sa_event.listen(db, "after_commit", enqueue, once=True)


def teams(db: Session) -> list[dict[str, Any]]:
    """Every team (from users' teams and the tickets_team rows), with lead and members."""
    names = set(db.scalars(select(User.team).where(User.team != "").distinct())) | set(db.scalars(select(Team.name)))
    rows = {t.name: t for t in db.scalars(select(Team))}
    away = away_ids(db)
    result = []
    for name in sorted(names):
        members = _workers(db, name)
        lead = rows.get(name).lead_id if name in rows else None
        result.append({"name": name, "lead_id": lead,
                       "members": [{"id": u.id, "name": u.name or u.login, "away": u.id in away} for u in members]})
    return result


def set_team_lead(db: Session, user: CurrentUser, name: str, lead_id: Any) -> Team:
    if lead_id is not None:
        if isinstance(lead_id, str) and lead_id.isdigit():
            lead_id = int(lead_id)
        lead = db.get(User, lead_id) if isinstance(lead_id, int) else None
        if lead is None or not lead.active:
            raise Invalid(_("Some fields are not valid."), {"lead_id": _("There is no such user.")})
    team = db.get(Team, name)
    if team is None:
        team = Team(name=name)
        db.add(team)
    team.lead_id = lead_id
    db.flush()
    audit.record(db, "tickets.team", actor=user, detail={"team": name, "lead_id": lead_id})
    return team


def team_lead(db: Session, name: str) -> int | None:
    team = db.get(Team, name) if name else None
    return team.lead_id if team else None


def workers_for_assignment(db: Session) -> list[tuple[int, str, str]]:
    """``(id, name, team)`` of everyone who may work tickets."""
    return [(u.id, u.name or u.login, u.team) for u in auth.holders_of(db, security.WRITE)]


def alerts_for(db: Session, user_id: int, limit: int = 20) -> list[Any]:
    """The latest SLA alerts sent to a user: rows of ``kind``, ``created_at``, ``ticket_id``, ``number``."""
    return list(read_rows(db, _ALERTS_FOR, {"user_id": user_id, "limit": limit}))


_ALERTS_FOR = (select(SlaAlert.kind, SlaAlert.created_at, Ticket.id.label("ticket_id"), Ticket.number)
               .join(Ticket, Ticket.id == SlaAlert.ticket_id).where(SlaAlert.user_id == bindparam("user_id"))
               .order_by(SlaAlert.created_at.desc()).limit(bindparam("limit")))
