"""Domain events: written in the caller's transaction, handled by plugins in the worker.

The transactional outbox:

1. :func:`emit` adds an :class:`~kehu.models.OutboxEvent` row to the caller's session, so the
   event exists exactly when the change that raised it is committed (a rolled-back
   transaction raises no event).
2. When that session commits, the events it emitted are *dispatched*: a
   ``core.deliver_event(event_id)`` task is sent to the broker for each, and the row gets
   ``dispatched_at`` and one more ``attempts``. A broker that cannot be reached never breaks
   the caller; the event simply stays undispatched.
3. :func:`deliver` (the ``core.deliver_event`` task, in the worker) offers the event to each
   plugin implementing ``kehu_on_event``, one plugin at a time, each in its own transaction
   that also inserts the :class:`~kehu.models.EventDelivery` row ``(event, plugin)``. A
   handler that already has that row is skipped, and the unique constraint on it makes a
   concurrent duplicate delivery roll back, so a handler's database work is applied exactly
   once although delivery is at least once. A failing handler is recorded in
   ``last_error`` and does not stop the others; ``handled_at`` is set once all succeeded.
4. :func:`relay` (the periodic ``core.relay_outbox`` task) re-dispatches events that are not
   handled: never dispatched (the process died between commit and send, or the broker was
   down) or dispatched long enough ago (the message was lost, or a handler failed). The wait
   doubles with each dispatch and stops after :data:`MAX_DISPATCHES`.

``OutboxEvent.attempts`` therefore counts dispatches, the first one included; an unhandled
event with ``attempts >= MAX_DISPATCHES`` has been given up and needs a person
(:func:`redeliver`).

Payloads hold record ids and plain values, never personal data: events are kept in the
outbox and travel through the broker, neither of which is covered by erasure.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, CursorResult, Engine, and_, event as sa_event, inspect, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kehu.db import utcnow
from kehu.models import EventDelivery, OutboxEvent

if TYPE_CHECKING:  # pragma: no cover
    from kehu.platform import Platform

log = logging.getLogger(__name__)

#: The task that delivers one event; its only argument is ``event_id``.
DELIVER_TASK = "core.deliver_event"

#: An event whose dispatch after commit did not happen is dispatched by the relay after this.
UNDISPATCHED_GRACE = timedelta(seconds=10)
#: The relay re-dispatches an unhandled event this long after its first dispatch, then
#: doubles the wait after each further dispatch.
REDISPATCH_AFTER = timedelta(seconds=60)
#: Dispatches (the first one included) after which an unhandled event is given up:
#: with the waits above, about eight and a half hours of retrying.
MAX_DISPATCHES = 10
#: Events the relay dispatches per run at most; the next run takes the rest.
RELAY_BATCH = 500

_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_SESSION_KEY = "kehu_emitted_events"
_ERROR_CHARS_PER_HANDLER = 2000


@dataclass(frozen=True)
class Event:
    """A domain event as handlers receive it."""

    id: int
    name: str
    payload: dict[str, Any]
    actor_id: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: OutboxEvent) -> Event:
        return cls(
            id=row.id,
            name=row.name,
            payload=dict(row.payload or {}),
            actor_id=row.actor_id,
            created_at=row.created_at,
        )


# --- Emitting ------------------------------------------------------------------------


def emit(
    session: Session, name: str, payload: dict[str, Any] | None = None, actor_id: int | None = None
) -> OutboxEvent:
    """Record the event ``name`` in ``session``'s transaction; it is dispatched after commit.

    ``name`` is ``<plugin>.<what happened>`` (``contacts.created``); ``payload`` holds record
    ids and plain JSON values, never personal data (names, phone numbers, messages): a
    handler loads what it needs by id, under its own permissions. ``actor_id`` is the user
    who caused the event, if any. Returns the pending row (its ``id`` is set at flush).
    """
    if not _EVENT_NAME.match(name) or len(name) > 80:
        raise ValueError(f"event name {name!r} must look like '<plugin>.<what_happened>' (at most 80 characters)")
    payload = dict(payload or {})
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload of event {name!r} is not plain JSON: {exc}") from None
    row = OutboxEvent(name=name, payload=payload, actor_id=actor_id, attempts=0, last_error="")
    session.add(row)
    if _nobody_listens():
        # Delivering it would offer it to no handler and mark it handled: do that now, and
        # spare the broker message, the worker's transaction and the dispatch record.
        row.handled_at = utcnow()
    else:
        session.info.setdefault(_SESSION_KEY, []).append(row)
    return row


def _nobody_listens() -> bool:
    """True when this process's platform has no ``kehu_on_event`` implementation (the
    modules enabled everywhere are the same, within the seconds a process takes to notice)."""
    from kehu.platform import current

    try:
        platform = current()
    except RuntimeError:
        return False  # no platform here: leave the event to dispatch and the relay
    return not _handlers(platform)


def _handlers(platform: Platform) -> list[Any]:
    """The ``kehu_on_event`` implementations that handle events (wrappers do not)."""
    return [impl for impl in platform.pm.hook.kehu_on_event.get_hookimpls()
            if not (impl.hookwrapper or getattr(impl, "wrapper", False))]


def _persisted_event_ids(rows: Iterable[OutboxEvent]) -> list[int]:
    """Ids of the rows that are really in the database (not rolled back), without SQL."""
    ids = []
    for row in rows:
        state = inspect(row)
        if state.persistent and state.identity:
            ids.append(state.identity[0])
    return ids


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT released: the real commit comes later
        return
    rows = session.info.pop(_SESSION_KEY, None)
    if not rows:
        return
    event_ids = _persisted_event_ids(rows)
    if not event_ids:
        return
    try:
        from kehu.platform import current

        platform = current()
    except RuntimeError:
        log.info("no platform booted in this process: events %s are left to the relay", event_ids)
        return
    if time.monotonic() < _broker_down_until.get(platform, 0.0):
        log.info("broker was unreachable moments ago: events %s are left to the relay", event_ids)
        return
    try:
        bind = session.get_bind(OutboxEvent)
        if isinstance(bind, Connection) and bind.in_transaction():
            # A session joined to an outer transaction: nothing is committed until that is.
            log.info("events %s were committed into an outer transaction: left to the relay", event_ids)
            return
        engine = bind if isinstance(bind, Engine) else bind.engine
        sent = dispatch(platform, event_ids, engine=engine)
    except Exception:  # noqa: BLE001  (the caller's data is committed: never fail it now)
        log.exception("dispatching events %s failed; the relay will dispatch them", event_ids)
        return
    if len(sent) < len(event_ids):
        # Do not make every following commit wait for the broker's timeouts too.
        _broker_down_until[platform] = time.monotonic() + BROKER_DOWN_PAUSE_SECONDS


def _after_transaction_end(session: Session, transaction: Any) -> None:
    # The outermost transaction ended without commit (rollback or close): forget its events.
    if transaction.parent is None and transaction.nested is False:
        session.info.pop(_SESSION_KEY, None)


#: After a failed dispatch, commits leave their events to the relay for this long.
BROKER_DOWN_PAUSE_SECONDS = 10.0
_broker_down_until: weakref.WeakKeyDictionary[Platform, float] = weakref.WeakKeyDictionary()

_listeners_lock = threading.Lock()
_listeners_installed = False


def install_session_listeners() -> None:
    """Dispatch emitted events after every ``Session`` commit (idempotent; done at import)."""
    global _listeners_installed
    with _listeners_lock:
        if _listeners_installed:
            return
        sa_event.listen(Session, "after_commit", _after_commit)
        sa_event.listen(Session, "after_transaction_end", _after_transaction_end)
        _listeners_installed = True


install_session_listeners()


# --- Dispatching ---------------------------------------------------------------------


def dispatch(platform: Platform, event_ids: Sequence[int], engine: Engine | None = None) -> list[int]:
    """Send ``core.deliver_event`` for each event and record the dispatch; returns the ids sent.

    Sending stops at the first broker error, which is logged, not raised: the events not
    sent keep their dispatch state and the relay sends them later. ``engine`` is the
    database the events are in (the platform's by default).
    """
    from kehu import jobs

    sent: list[int] = []
    try:
        jobs.send_many(
            platform,
            DELIVER_TASK,
            [{"event_id": event_id} for event_id in event_ids],
            on_sent=lambda kwargs: sent.append(kwargs["event_id"]),
        )
    except Exception as exc:  # noqa: BLE001  (broker down: the relay retries)
        log.warning("broker unreachable, %d event(s) left to the relay: %s", len(event_ids) - len(sent), exc)
    if sent:
        _record_dispatch(engine or platform.engine, sent)
    return sent


def _record_dispatch(engine: Engine, event_ids: list[int]) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_(event_ids))
            .values(dispatched_at=utcnow(), attempts=OutboxEvent.attempts + 1)
        )


def redispatch_delay(dispatches: int) -> timedelta:
    """How long after its ``dispatches``-th dispatch an unhandled event is dispatched again."""
    return REDISPATCH_AFTER * (2 ** max(dispatches - 1, 0))


def relay(platform: Platform, undispatched_grace: timedelta = UNDISPATCHED_GRACE, now: datetime | None = None) -> int:
    """Dispatch the unhandled events that are due; returns how many were sent.

    Due are events never dispatched for ``undispatched_grace`` since they were created, and
    events whose last dispatch is older than :func:`redispatch_delay` of their dispatch
    count, until :data:`MAX_DISPATCHES`.
    """
    now = now or utcnow()
    overdue = [
        and_(OutboxEvent.attempts == dispatches, OutboxEvent.dispatched_at < now - redispatch_delay(dispatches))
        for dispatches in range(1, MAX_DISPATCHES)
    ]
    with platform.sessions() as session:
        due_ids = list(
            session.scalars(
                select(OutboxEvent.id)
                .where(OutboxEvent.handled_at.is_(None))
                .where(
                    or_(
                        and_(OutboxEvent.dispatched_at.is_(None), OutboxEvent.created_at < now - undispatched_grace),
                        *overdue,
                    )
                )
                .order_by(OutboxEvent.id)
                .limit(RELAY_BATCH)
            )
        )
    if not due_ids:
        return 0
    sent = dispatch(platform, due_ids)
    log.info("relay dispatched %d of %d due event(s)", len(sent), len(due_ids))
    return len(sent)


def redeliver(session: Session, event_ids: Sequence[int]) -> int:
    """Give given-up (or any unhandled) events a fresh series of dispatches; returns how many.

    For an administrator, once the cause (a broken handler, a long outage) is fixed. Handlers
    that already handled an event are still skipped.
    """
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(list(event_ids)), OutboxEvent.handled_at.is_(None))
        .values(attempts=0, dispatched_at=None)
    )
    return result.rowcount or 0


# --- Delivering ----------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """What one :func:`deliver` run did, per handler (plugin name)."""

    event_id: int
    handled: list[str] = field(default_factory=list)  # ran now and committed
    skipped: list[str] = field(default_factory=list)  # had handled it before (or concurrently)
    failed: dict[str, str] = field(default_factory=dict)  # raised: the error
    missing: bool = False  # no such event
    already_handled: bool = False

    @property
    def complete(self) -> bool:
        return not self.missing and not self.failed


def deliver(platform: Platform, event_id: int) -> DeliveryReport:
    """Offer the event to every registered ``kehu_on_event`` implementation, exactly once each.

    Safe to run any number of times, also concurrently: see the module documentation.
    """
    report = DeliveryReport(event_id=event_id)
    with platform.sessions() as session:
        row = session.get(OutboxEvent, event_id)
        if row is None:
            log.warning("event %s does not exist (rolled back, or removed): nothing to deliver", event_id)
            report.missing = True
            return report
        if row.handled_at is not None:
            report.already_handled = True
            return report
        event = Event.from_row(row)
        done_before = set(session.scalars(select(EventDelivery.handler).where(EventDelivery.event_id == event_id)))
    for impl in _handlers(platform):
        handler = impl.plugin_name
        if handler in done_before:
            report.skipped.append(handler)
            continue
        _deliver_to(platform, event, handler, impl, report)
    _record_outcome(platform, report)
    return report


def _deliver_to(platform: Platform, event: Event, handler: str, impl: Any, report: DeliveryReport) -> None:
    try:
        with platform.sessions() as session:
            already = session.scalar(
                select(EventDelivery.id).where(EventDelivery.event_id == event.id, EventDelivery.handler == handler)
            )
            if already is not None:
                report.skipped.append(handler)
                return
            arguments = {"event": event, "session": session}
            impl.function(**{name: arguments[name] for name in impl.argnames})
            session.add(EventDelivery(event_id=event.id, handler=handler))
            session.commit()
        report.handled.append(handler)
    except IntegrityError as exc:
        if _delivery_recorded(platform, event.id, handler):
            # A concurrent delivery of the same event committed first: our work rolled back.
            report.skipped.append(handler)
        else:
            _record_failure(report, handler, exc)
    except Exception as exc:  # noqa: BLE001  (one handler's failure must not stop the others)
        _record_failure(report, handler, exc)


def _delivery_recorded(platform: Platform, event_id: int, handler: str) -> bool:
    with platform.sessions() as session:
        return (
            session.scalar(
                select(EventDelivery.id).where(EventDelivery.event_id == event_id, EventDelivery.handler == handler)
            )
            is not None
        )


def _record_failure(report: DeliveryReport, handler: str, exc: BaseException) -> None:
    log.error("handler %s failed on event %s", handler, report.event_id, exc_info=exc)
    report.failed[handler] = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS_PER_HANDLER]


def _record_outcome(platform: Platform, report: DeliveryReport) -> None:
    if report.complete:
        values: dict[str, Any] = {"handled_at": utcnow(), "last_error": ""}
    else:
        values = {"last_error": "\n".join(f"{handler}: {error}" for handler, error in report.failed.items())}
    with platform.sessions() as session:
        session.execute(update(OutboxEvent).where(OutboxEvent.id == report.event_id).values(**values))
        session.commit()
