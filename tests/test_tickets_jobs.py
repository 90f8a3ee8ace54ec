"""The SLA watch and the notifications as background jobs: in a real Celery worker (the
embedded SQL broker, and Redis when ``KEHU_TEST_REDIS_URL`` is set), on SQLite and PostgreSQL.
Each warning and escalation happens once, also when the job runs several times at once."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from kombu import Connection
from sqlalchemy import func, select

from kehu import jobs
from kehu.models import OutboxEvent
from kehu.platform import set_current
from kehu_plugins.tickets import notify, service, tasks
from kehu_plugins.tickets.models import Notification, SlaAlert, Ticket
from tests.tickets_support import TEAM_A, Desk, Inbox, at, body_of, desk_with, inbox  # noqa: F401

REDIS_URL = os.environ.get("KEHU_TEST_REDIS_URL", "")
BROKERS = [pytest.param("sqlite", id="broker=sqlite"),
           pytest.param("redis", id="broker=redis", marks=pytest.mark.skipif(
               not REDIS_URL, reason="Redis run skipped: set KEHU_TEST_REDIS_URL (as .ci/run does) to run it"))]


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def prepare(desk: Desk) -> int:
    """Team A led by ben; amy and ben reachable by e-mail; an urgent ticket opened Monday
    2026-03-02 10:00 and assigned to amy: first response due 10:30, resolution due 14:00."""
    boss = desk.client("boss")
    assert boss.put(f"/api/tickets/teams/{TEAM_A}", json={"lead_id": desk.ids["ben"]}).status_code == 200
    for login in ("amy", "ben"):
        desk.client(login).put("/api/tickets/agents/me", json={"email": f"{login}@corp.example"})
    contact = desk.contact("赵敏")
    with desk.platform.session() as db:
        data = service.parse_input(db, {"contact_id": contact, "subject": "生产线停机", "priority": "urgent",
                                        "team": TEAM_A}, creating=True)
        ticket = service.create_ticket(desk.platform, db, None, data, now=at("2026-03-02 10:00"), auto_assign=False)
        service.assign(desk.platform, db, None, ticket, desk.ids["amy"], now=at("2026-03-02 10:00"))
        assert (ticket.response_due_at, ticket.resolution_due_at) == (at("2026-03-02 10:30"), at("2026-03-02 14:00"))
        return ticket.id


def alerts(desk: Desk) -> list[tuple[str, int | None]]:
    with desk.platform.sessions() as db:
        return [(a.kind, a.user_id) for a in db.scalars(select(SlaAlert).order_by(SlaAlert.kind))]


def breach_events(desk: Desk) -> list[dict]:
    with desk.platform.sessions() as db:
        return [row.payload for row in db.scalars(select(OutboxEvent).where(OutboxEvent.name == "ticket.sla_breached")
                                                  .order_by(OutboxEvent.id))]


def sla_mails(inbox: Inbox, address: str) -> list[Any]:
    return [m for m in inbox.to(address) if "服务时限" in m["Subject"]]


@pytest.mark.parametrize("broker", BROKERS)
def test_a_real_worker_warns_the_assignee_and_escalates_to_the_lead_once(desk_with, inbox: Inbox,  # type: ignore[no-untyped-def]
                                                                         broker: str) -> None:
    if broker == "redis":
        with Connection(REDIS_URL) as connection:
            connection.default_channel.queue_purge(jobs.DEFAULT_QUEUE)
    desk = desk_with(broker_url=REDIS_URL if broker == "redis" else "", KEHU_CORE_BROKER_POLLING_SECONDS="0.05",
                     KEHU_TICKETS_PUBLIC_URL="https://kehu.example", **inbox.env())
    ticket_id = prepare(desk)
    set_current(desk.platform)
    app = jobs.celery_app(desk.platform)
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=20,
                      queues=[jobs.DEFAULT_QUEUE]):
        # Twenty minutes before the first response is due: warn amy, three runs at once.
        for _ in range(3):
            jobs.enqueue("tickets.check_sla", now="2026-03-02T10:10:00+08:00")
        wait_until(lambda: sla_mails(inbox, "amy@corp.example"), what="the warning e-mail")
        # Past both targets: escalate both to ben, the lead; two runs.
        for _ in range(2):
            jobs.enqueue("tickets.check_sla", now="2026-03-02T14:05:00+08:00")
        wait_until(lambda: len(sla_mails(inbox, "ben@corp.example")) >= 2, what="the escalation e-mails")
        time.sleep(1.0)  # let any duplicate run finish
    assert alerts(desk) == [("resolution_breach", desk.ids["ben"]), ("response_breach", desk.ids["ben"]),
                            ("response_warning", desk.ids["amy"])]
    assert len(sla_mails(inbox, "amy@corp.example")) == 1 and len(sla_mails(inbox, "ben@corp.example")) == 2
    warning = sla_mails(inbox, "amy@corp.example")[0]
    assert "即将超出服务时限" in warning["Subject"] and f"https://kehu.example/tickets/{ticket_id}" in body_of(warning)
    assert sorted(e["clock"] for e in breach_events(desk)) == ["resolution", "response"]
    assert all(e == {"ticket_id": ticket_id, "clock": e["clock"], "escalated_to": desk.ids["ben"]}
               for e in breach_events(desk))
    with desk.platform.sessions() as db:
        sent = db.scalars(select(Notification).where(Notification.kind.in_(["sla_warning", "sla_breach"]))).all()
        assert sorted((n.kind, n.status, n.channels) for n in sent) == [
            ("sla_breach", "sent", ["email"]), ("sla_breach", "sent", ["email"]), ("sla_warning", "sent", ["email"])]
    history = desk.client("boss").get(f"/api/tickets/{ticket_id}/history").json()["items"]
    assert [h["action"] for h in history].count("sla_breach") == 2
    if broker == "redis":
        with Connection(REDIS_URL) as connection:
            connection.default_channel.queue_purge(jobs.DEFAULT_QUEUE)


def test_concurrent_runs_raise_each_alert_once_and_skip_paused_and_answered_tickets(desk_with) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with()
    ticket_id = prepare(desk)
    with desk.platform.session() as db:  # another ticket, waiting for the customer: its clocks stand still
        data = service.parse_input(db, {"contact_id": desk.contact(), "subject": "等客户回电", "priority": "urgent",
                                        "team": TEAM_A}, creating=True)
        waiting = service.create_ticket(desk.platform, db, None, data, now=at("2026-03-02 10:00"), auto_assign=False)
        service.add_comment(desk.platform, db, None, waiting, "请回电", public=True, now=at("2026-03-02 10:05"))
        service.transition(desk.platform, db, None, waiting, "in_progress", now=at("2026-03-02 10:05"))
        service.transition(desk.platform, db, None, waiting, "waiting", now=at("2026-03-02 10:05"))

    raised: list[list[tuple[int, str]]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            raised.append(tasks.run_sla_check(desk.platform, at("2026-03-02 14:05")))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    everything = sorted(item for run_result in raised for item in run_result)
    assert everything == [(ticket_id, "resolution_breach"), (ticket_id, "response_breach")]
    assert len(breach_events(desk)) == 2
    assert tasks.run_sla_check(desk.platform, at("2026-03-03 10:00")) == []  # nothing new, ever

    # The queue's "breaching soon" view uses the same due moments.
    with desk.platform.sessions() as db:
        query = service.ListQuery(view="breaching")
        found, _ = service.page(desk.platform, db, desk.user("boss"), query, now=at("2026-03-02 10:00"))
        assert [t.id for t in found] == [ticket_id]
        assert db.scalar(select(func.count()).select_from(Ticket)) == 2


def broker_messages(desk: Desk) -> list[tuple[str, dict[str, Any]]]:
    """The task name and keyword arguments of every message waiting on the embedded broker."""
    assert desk.settings.broker_url.startswith("sqla+sqlite:///")
    with sqlite3.connect(desk.settings.broker_url.removeprefix("sqla+sqlite:///")) as connection:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'kombu_message'").fetchone():
            return []  # made at the first message
        payloads = [json.loads(row[0]) for row in connection.execute(
            "SELECT payload FROM kombu_message WHERE visible ORDER BY id")]
    found = []
    for payload in payloads:
        body = payload["body"]
        if payload["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _, kwargs, _ = json.loads(body)
        found.append((payload["headers"]["task"], kwargs))
    return found


def test_a_burst_of_alerts_is_sent_by_one_job_per_fifty_notifications(desk_with, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with(**inbox.env())
    prepare(desk)  # one urgent ticket, and ben leads team A
    contacts = [desk.contact(f"客户{number}") for number in range(29)]
    with desk.platform.session() as db:
        for number, contact in enumerate(contacts):
            data = service.parse_input(db, {"contact_id": contact, "subject": f"故障 {number}", "priority": "urgent",
                                            "team": TEAM_A}, creating=True)
            service.create_ticket(desk.platform, db, None, data, now=at("2026-03-02 10:00"), auto_assign=False)
    before = broker_messages(desk)
    raised = tasks.run_sla_check(desk.platform, at("2026-03-02 14:05"))  # both clocks of all 30 breached
    assert len(raised) == 60
    with desk.platform.sessions() as db:
        pending = sorted(db.scalars(select(Notification.id).where(Notification.kind == "sla_breach",
                                                                  Notification.status == "pending")))
    assert len(pending) == 60
    jobs_sent = broker_messages(desk)[len(before):]
    assert [name for name, _ in jobs_sent] == ["tickets.send_notifications"] * 2  # not 60 send_notification
    batches = [kwargs["notification_ids"] for _, kwargs in jobs_sent]
    assert [len(batch) for batch in batches] == [50, 10] and sorted(batches[0] + batches[1]) == pending
    # What the jobs run: each notification claimed and sent once, to ben, the lead.
    assert sum(notify.send_many(desk.platform, batch) for batch in batches) == 60
    assert notify.send_many(desk.platform, batches[0]) == 0  # sent already: claimed by nobody again
    assert len(sla_mails(inbox, "ben@corp.example")) == 60


def test_a_holiday_entered_after_a_ticket_opened_moves_its_due_moments(desk_with) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with(KEHU_CORE_BROKER_POLLING_SECONDS="0.05")
    ticket_id = prepare(desk)  # opened Monday 2026-03-02 10:00: due 10:30 and 14:00

    def due() -> tuple[Any, ...]:
        with desk.platform.sessions() as db:
            ticket = db.get(Ticket, ticket_id)
            return ticket.response_due_at, ticket.resolution_due_at, ticket.next_due_at

    set_current(desk.platform)
    app = jobs.celery_app(desk.platform)
    boss = desk.client("boss")
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=20,
                      queues=[jobs.DEFAULT_QUEUE]):
        # Monday becomes a holiday: the clocks start on Tuesday at 09:00.
        assert boss.post("/api/tickets/calendar", json={"day": "2026-03-02", "kind": "holiday"}).status_code == 200
        moved = (at("2026-03-03 09:30"), at("2026-03-03 13:00"), at("2026-03-03 09:30"))
        wait_until(lambda: due() == moved, what="the due moments after the holiday")
        # And back, once the day is removed again.
        assert boss.delete("/api/tickets/calendar/2026-03-02").status_code == 204
        wait_until(lambda: due() == (at("2026-03-02 10:30"), at("2026-03-02 14:00"), at("2026-03-02 10:30")),
                   what="the due moments after the holiday was removed")


def test_due_moments_a_change_stores_use_the_calendar_as_it_is_not_as_kept(desk_with) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with()
    ticket_id = prepare(desk)  # opened Monday 2026-03-02 10:00: due 10:30 and 14:00
    with desk.platform.reading() as db:
        service.business_calendar(desk.platform, db)  # the calendar days, kept in this process for a moment
    # Monday becomes a holiday through another process (a raw connection: this process's
    # kept rows do not hear of it), whose refresh job may have passed this ticket already.
    raw = desk.platform.engine.raw_connection()
    try:
        raw.cursor().execute("INSERT INTO tickets_calendar_day (day, kind, name) VALUES ('2026-03-02', 'holiday', '')")
        raw.commit()
    finally:
        raw.close()
    with desk.platform.session() as db:
        ticket = db.get(Ticket, ticket_id)
        service.update_ticket(desk.platform, db, None, ticket, {"category": "complaint"}, now=at("2026-03-02 10:05"))
        assert (ticket.response_due_at, ticket.resolution_due_at) == (at("2026-03-03 09:30"), at("2026-03-03 13:00"))


def test_a_refresh_of_due_moments_leaves_paused_and_answered_clocks_alone(desk_with) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with()
    ticket_id = prepare(desk)
    with desk.platform.session() as db:
        service.save_day(db, None, {"day": "2026-03-02", "kind": "holiday"})  # type: ignore[arg-type]
        ticket = db.get(Ticket, ticket_id)
        ticket.first_response_at = at("2026-03-02 10:05")  # answered: no response clock runs
    assert tasks.run_due_refresh(desk.platform) == 1
    with desk.platform.sessions() as db:
        ticket = db.get(Ticket, ticket_id)
        assert (ticket.response_due_at, ticket.resolution_due_at) == (None, at("2026-03-03 13:00"))
        assert ticket.next_due_at == at("2026-03-03 13:00")
