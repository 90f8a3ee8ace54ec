"""Domain events end to end: outbox, dispatch after commit, delivery in a real Celery worker,
exactly-once effects, the relay.

Runs on SQLite with the embedded SQLite broker always; on PostgreSQL when
``KEHU_TEST_POSTGRES_URL`` is set and on Redis when ``KEHU_TEST_REDIS_URL`` is set. The tests
of one backend pair share a deployment whose worker runs all along (see the harness).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kehu import events, jobs  # noqa: E402
from kehu.db import utcnow  # noqa: E402
from kehu.models import OutboxEvent  # noqa: E402
from kehu.platform import Platform, set_current  # noqa: E402
from plugins_for_tests.events_probe.harness import (  # noqa: E402
    Deployment,
    backend_params,
    running_deployment,
    wait_until,
)

BOTH_HANDLERS = ["events_probe", "events_probe_b"]


@pytest.fixture(scope="module", params=backend_params())
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    database, broker = request.param
    with running_deployment(tmp_path_factory.mktemp(f"events-{database}-{broker}"), database, broker) as created:
        yield created


@pytest.fixture
def dep(running: Deployment) -> Deployment:
    set_current(running.platform)
    return running


def emit_committed(dep: Deployment, name: str = "probe.happened", **payload: object) -> int:
    with dep.platform.session() as session:
        row = events.emit(session, name, dict(payload, contact_id=42), actor_id=7)
        session.flush()
        return row.id


def emit_undispatched(dep: Deployment, name: str = "probe.undispatched", **payload: object) -> int:
    """Commit an event from a process whose broker is down: in the outbox, never sent."""
    with dep.cut_off() as cut_off, cut_off.session() as session:
        row = events.emit(session, name, dict(payload, contact_id=42))
        session.flush()
        event_id = row.id
    assert dep.outbox(event_id).dispatched_at is None
    return event_id


def test_committed_event_is_handled_by_every_plugin_in_the_worker(dep: Deployment) -> None:
    event_id = emit_committed(dep)
    row = dep.wait_handled(event_id)
    assert row.dispatched_at is not None and row.attempts == 1 and row.last_error == ""
    assert row.actor_id == 7 and row.payload == {"contact_id": 42}
    assert dep.deliveries(event_id) == BOTH_HANDLERS
    effects = dep.effects(event_id)
    assert sorted(effect.handler for effect in effects) == BOTH_HANDLERS
    assert {effect.note for effect in effects} == {"probe.happened"}


def test_event_of_a_rolled_back_transaction_is_never_handled(dep: Deployment) -> None:
    with pytest.raises(RuntimeError, match="the change failed"):
        with dep.platform.session() as session:
            events.emit(session, "probe.rolled_back", {"contact_id": 1})
            session.flush()
            raise RuntimeError("the change failed")
    # A savepoint rolled back inside a committed transaction takes its event with it.
    with dep.platform.session() as session:
        savepoint = session.begin_nested()
        events.emit(session, "probe.in_savepoint", {"contact_id": 2})
        session.flush()
        savepoint.rollback()
        kept = events.emit(session, "probe.kept", {"contact_id": 3})
    # One job at a time in queue order: once the later event is handled, nothing else is coming.
    dep.wait_handled(kept.id)
    assert dep.outbox_count("probe.rolled_back") == 0
    assert dep.outbox_count("probe.in_savepoint") == 0
    assert dep.effects(note="probe.rolled_back") == [] and dep.effects(note="probe.in_savepoint") == []
    assert len(dep.effects(kept.id)) == 2


def test_duplicate_deliveries_through_the_worker_have_one_effect(dep: Deployment) -> None:
    event_id = emit_committed(dep)  # dispatched once by the commit...
    for _ in range(3):  # ...and three more times
        jobs.enqueue("core.deliver_event", event_id=event_id)
    marker_id = emit_committed(dep, "probe.marker")
    dep.wait_handled(marker_id)  # the worker runs one job at a time, in queue order
    assert sorted(effect.handler for effect in dep.effects(event_id)) == BOTH_HANDLERS
    assert dep.deliveries(event_id) == BOTH_HANDLERS


def test_deliver_is_idempotent_also_when_two_threads_race(dep: Deployment) -> None:
    # The handlers linger, so both threads are inside a handler at the same time where the
    # database lets them (PostgreSQL); SQLite serializes the writers.
    event_id = emit_undispatched(dep, sleep=0.3)
    reports: list[events.DeliveryReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(events.deliver(dep.platform, event_id))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors and len(reports) == 2
    assert sorted(effect.handler for effect in dep.effects(event_id)) == BOTH_HANDLERS
    assert dep.deliveries(event_id) == BOTH_HANDLERS
    handled_now = sorted(handler for report in reports for handler in report.handled)
    assert handled_now == BOTH_HANDLERS  # each handler committed in exactly one thread
    assert all(not report.failed for report in reports)
    assert dep.outbox(event_id).handled_at is not None
    # A later delivery sees the event handled and does nothing.
    again = events.deliver(dep.platform, event_id)
    assert again.already_handled and not again.handled
    assert len(dep.effects(event_id)) == 2


def test_failing_handler_is_recorded_does_not_stop_the_others_and_is_retried(dep: Deployment) -> None:
    event_id = emit_committed(dep, fail="events_probe")
    wait_until(lambda: dep.outbox(event_id).last_error, what="the failure to be recorded")
    row = dep.outbox(event_id)
    assert row.handled_at is None
    assert row.last_error.startswith("events_probe: RuntimeError: events_probe was asked to fail")
    assert dep.deliveries(event_id) == ["events_probe_b"]
    assert [effect.handler for effect in dep.effects(event_id)] == ["events_probe_b"]

    # The cause is fixed; the relay re-dispatches once the redispatch delay has passed.
    with dep.platform.session() as session:
        session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(payload={"contact_id": 42}))
    events.relay(dep.platform)
    assert dep.outbox(event_id).attempts == 1  # not due yet
    events.relay(dep.platform, now=utcnow() + events.redispatch_delay(1) + timedelta(seconds=1))
    row = dep.wait_handled(event_id)
    assert row.attempts == 2 and row.last_error == ""
    assert sorted(effect.handler for effect in dep.effects(event_id)) == BOTH_HANDLERS  # b ran once


def test_event_whose_dispatch_was_lost_is_delivered_by_the_relay(dep: Deployment) -> None:
    started = time.monotonic()
    lost_id = emit_undispatched(dep, "probe.lost")
    assert time.monotonic() - started < 5, "a broker that is down must not hold up the commit"
    assert dep.outbox(lost_id).attempts == 0
    time.sleep(0.5)
    assert dep.outbox(lost_id).handled_at is None  # nothing else will deliver it

    jobs.enqueue("core.relay_outbox", undispatched_grace_seconds=0)
    row = dep.wait_handled(lost_id)
    assert row.attempts == 1 and row.dispatched_at is not None
    assert sorted(effect.handler for effect in dep.effects(lost_id)) == BOTH_HANDLERS


def test_relay_redispatches_unhandled_events_with_growing_waits_then_gives_up(dep: Deployment) -> None:
    now = utcnow()

    def dispatched_before(seconds_ago: float, attempts: int) -> int:
        event_id = emit_undispatched(dep)
        with dep.platform.session() as session:
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == event_id)
                .values(dispatched_at=now - timedelta(seconds=seconds_ago), attempts=attempts)
            )
        return event_id

    first_wait = events.REDISPATCH_AFTER.total_seconds()
    not_due = dispatched_before(first_wait - 30, attempts=1)
    due = dispatched_before(first_wait + 5, attempts=1)
    third_not_due = dispatched_before(first_wait * 3, attempts=3)  # waits 4 × first_wait
    third_due = dispatched_before(first_wait * 4 + 5, attempts=3)
    given_up = dispatched_before(10 * 24 * 3600, attempts=events.MAX_DISPATCHES)

    events.relay(dep.platform, now=now)
    dep.wait_handled(due)
    dep.wait_handled(third_due)
    assert dep.outbox(due).attempts == 2 and dep.outbox(third_due).attempts == 4
    for event_id, attempts in ((not_due, 1), (third_not_due, 3), (given_up, events.MAX_DISPATCHES)):
        row = dep.outbox(event_id)
        assert row.attempts == attempts and row.handled_at is None and row.dispatched_at < now

    # An administrator gives the given-up event a fresh start.
    with dep.platform.session() as session:
        assert events.redeliver(session, [given_up]) == 1
    events.relay(dep.platform, undispatched_grace=timedelta(0))
    assert dep.wait_handled(given_up).attempts == 1


def test_emit_rejects_bad_names_and_payloads(dep: Deployment) -> None:
    with dep.platform.sessions() as session:
        with pytest.raises(ValueError, match="plugin"):
            events.emit(session, "NoDot", {})
        with pytest.raises(ValueError, match="plain JSON"):
            events.emit(session, "probe.bad", {"when": utcnow()})
        assert not session.new


def test_event_nobody_handles_is_recorded_handled_without_a_broker_message(
        platform_factory: Callable[..., Platform]) -> None:
    platform = platform_factory("contacts")  # no enabled module implements kehu_on_event
    set_current(platform)
    try:
        assert not platform.pm.hook.kehu_on_event.get_hookimpls()
        with platform.session() as session:
            row = events.emit(session, "contacts.updated", {"contact_id": 1})
            session.flush()
            event_id = row.id
        with platform.sessions() as session:
            stored = session.get(OutboxEvent, event_id)
            assert stored is not None and stored.handled_at is not None
            assert stored.dispatched_at is None and stored.attempts == 0  # never sent to the broker
        assert events.relay(platform) == 0  # and the relay has nothing to send
    finally:
        platform.close()
