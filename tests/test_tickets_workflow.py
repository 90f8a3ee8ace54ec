"""The rules of tickets on a real database (SQLite, and PostgreSQL when configured): numbers,
the workflow administrators adapt, SLA clocks paused while waiting for the customer,
assignment by hand and round robin, comments, ratings and the events published."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from kehu.models import OutboxEvent, Role, RolePermission
from kehu_plugins.tickets import service
from kehu_plugins.tickets.models import SlaPause, Ticket
from tests.tickets_support import TEAM_A, Desk, at, desk  # noqa: F401


def create(desk: Desk, login: str | None = "amy", now: Any = None, **values: Any) -> int:
    """A ticket opened through the service layer (``login`` None: the customer's form)."""
    user = desk.user(login) if login else None
    with desk.platform.session() as db:
        data = service.parse_input(db, {"contact_id": values.pop("contact_id", None) or desk.contact(),
                                        "subject": "无法登录", "priority": "normal", **values}, creating=True)
        return service.create_ticket(desk.platform, db, user, data, now=now).id


def test_numbers_count_per_year_and_stay_unique_under_concurrency(desk: Desk) -> None:
    contact = desk.contact()
    first = create(desk, contact_id=contact, now=at("2026-12-31 23:59"))
    next_year = create(desk, contact_id=contact, now=at("2027-01-01 00:01"))  # the year in Beijing time
    with desk.platform.sessions() as db:
        assert db.get(Ticket, first).number == "T-2026-000001"
        assert db.get(Ticket, next_year).number == "T-2027-000001"

    numbers: list[str] = []
    errors: list[BaseException] = []

    def open_tickets() -> None:
        try:
            for _ in range(3):
                with desk.platform.session() as db:
                    data = service.parse_input(db, {"contact_id": contact, "subject": "并发"}, creating=True)
                    numbers.append(service.create_ticket(desk.platform, db, None, data, now=at("2026-06-01 10:00"))
                                   .number)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_tickets) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(numbers) == [f"T-2026-{n:06d}" for n in range(2, 20)]


def test_the_workflow_allows_its_transitions_and_refuses_others_clearly(desk: Desk) -> None:
    ticket = desk.ticket("amy")
    assert ticket["status"] == "new" and ticket["number"].startswith("T-")

    refused = desk.move(ticket["id"], "waiting", "amy")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "invalid_transition"
    assert "新建" in error["message"] and "等待客户" in error["message"]  # names both statuses
    assert error["allowed"] == ["assigned", "in_progress", "resolved", "closed"]
    unknown = desk.move(ticket["id"], "flying", "amy")
    assert unknown.status_code == 422 and unknown.json()["error"]["fields"]["to"]

    for status in ("in_progress", "waiting", "resolved", "closed", "in_progress"):  # ... and reopened
        response = desk.move(ticket["id"], status, "amy")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    reopened = desk.get(ticket["id"])
    assert reopened["resolved_at"] is None and reopened["closed_at"] is None and reopened["open"]
    actions = [item["action"] for item in desk.client("amy").get(f"/api/tickets/{ticket['id']}/history").json()["items"]]
    assert actions == ["created", "status", "status", "status", "status", "reopened"]
    allowed = desk.client("amy").get(f"/api/tickets/{ticket['id']}/transitions").json()
    assert [s["key"] for s in allowed["allowed"]] == ["waiting", "resolved"]


def test_administrators_adapt_the_workflow(desk: Desk) -> None:
    ticket = desk.ticket("amy")
    workflow = desk.client("boss").get("/api/tickets/workflow").json()
    assert [s["key"] for s in workflow["statuses"]] == ["new", "assigned", "in_progress", "waiting", "resolved", "closed"]
    workflow["statuses"].insert(3, {"key": "on_hold", "label": {"zh": "挂起", "en": "On hold"}, "pauses_sla": True})
    workflow["transitions"] += [{"from": "new", "to": "on_hold"}, {"from": "on_hold", "to": "in_progress"}]

    assert desk.client("amy").put("/api/tickets/workflow", json=workflow).status_code == 403
    saved = desk.client("boss").put("/api/tickets/workflow", json=workflow)
    assert saved.status_code == 200, saved.text
    assert desk.move(ticket["id"], "on_hold", "amy").json()["status"] == "on_hold"
    assert desk.get(ticket["id"])["sla"]["resolution"]["state"] == "paused"  # the new status pauses the clocks

    without = {**workflow, "statuses": [s for s in workflow["statuses"] if s["key"] != "on_hold"],
               "transitions": [t for t in workflow["transitions"] if "on_hold" not in (t["from"], t["to"])]}
    refused = desk.client("boss").put("/api/tickets/workflow", json=without)
    assert refused.status_code == 422 and "on_hold" in refused.json()["error"]["fields"]["statuses"]
    two_initial = {**workflow, "statuses": [{**s, "initial": True} for s in workflow["statuses"]]}
    assert desk.client("boss").put("/api/tickets/workflow", json=two_initial).status_code == 422

    # The settings page changes transitions too.
    boss = desk.client("boss")
    page = boss.post("/tickets/admin/transitions", data={"from": "on_hold", "to": "closed"})
    assert page.status_code == 200
    assert {"from": "on_hold", "to": "closed", "label": {}} in boss.get("/api/tickets/workflow").json()["transitions"]


def test_waiting_for_the_customer_pauses_the_sla_clocks(desk: Desk) -> None:
    amy = desk.user("amy")
    ticket_id = create(desk, now=at("2026-03-02 10:00"))  # Monday; normal: 240 and 1620 business minutes
    with desk.platform.sessions() as db:
        ticket = db.get(Ticket, ticket_id)
        assert ticket.response_due_at == at("2026-03-02 14:00")
        assert ticket.resolution_due_at == at("2026-03-05 10:00")  # 8 h + 9 h + 9 h + 1 h
        assert ticket.next_due_at == ticket.response_due_at  # the sooner, for the breaching queue

    with desk.platform.session() as db:
        ticket = db.get(Ticket, ticket_id)
        service.add_comment(desk.platform, db, amy, ticket, "内部：先查日志", public=False, now=at("2026-03-02 10:30"))
        assert ticket.first_response_at is None  # an internal note is no response
        service.add_comment(desk.platform, db, amy, ticket, "请问您用的是哪个浏览器？", public=True,
                            now=at("2026-03-02 11:00"))
        service.transition(desk.platform, db, amy, ticket, "in_progress", now=at("2026-03-02 11:00"))
        service.transition(desk.platform, db, amy, ticket, "waiting", now=at("2026-03-02 11:00"))
        assert ticket.first_response_at == at("2026-03-02 11:00")
        assert ticket.response_due_at is None and ticket.resolution_due_at is None  # paused
        assert ticket.next_due_at is None
        clocks = service.clocks(desk.platform, db, ticket, at("2026-03-03 16:00"))
        assert clocks["response"].state == "met"
        assert clocks["resolution"].state == "paused" and clocks["resolution"].elapsed.total_seconds() == 3600

    with desk.platform.session() as db:  # the customer answers on Wednesday 14:00
        ticket = db.get(Ticket, ticket_id)
        service.add_comment(desk.platform, db, None, ticket, "Chrome 浏览器", public=True, author_kind="customer",
                            now=at("2026-03-04 14:00"))
        assert ticket.status == "in_progress"  # back to work by itself
        # Paused for Monday 11-18, Tuesday and Wednesday 9-14: 21 business hours later than before.
        assert ticket.resolution_due_at == at("2026-03-09 13:00")
        assert ticket.response_due_at is None and ticket.next_due_at == ticket.resolution_due_at  # response met
        pauses = db.scalars(select(SlaPause).where(SlaPause.ticket_id == ticket_id)).all()
        assert [(p.started_at, p.ended_at) for p in pauses] == [(at("2026-03-02 11:00"), at("2026-03-04 14:00"))]


def test_assignment_by_hand_and_round_robin_skipping_people_away(desk: Desk) -> None:
    assert desk.client("boss").put("/api/tickets/teams/" + TEAM_A, json={"lead_id": desk.ids["amy"]}).status_code == 200
    ids = [desk.ticket("boss", team=TEAM_A)["id"] for _ in range(4)]
    boss = desk.client("boss")
    assigned = [boss.post(f"/api/tickets/{i}/assign", json={"auto": True}).json()["assignee_id"] for i in ids[:3]]
    assert assigned == [desk.ids["amy"], desk.ids["ben"], desk.ids["amy"]]
    assert desk.get(ids[0])["status"] == "assigned"  # a new ticket becomes assigned

    assert desk.client("ben").put("/api/tickets/agents/me", json={"away": True}).json()["away"] is True
    assert boss.post(f"/api/tickets/{ids[3]}/assign", json={"auto": True}).json()["assignee_id"] == desk.ids["amy"]
    teams = {t["name"]: t for t in boss.get("/api/tickets/teams").json()["items"]}
    assert teams[TEAM_A]["lead_id"] == desk.ids["amy"]
    assert {m["id"]: m["away"] for m in teams[TEAM_A]["members"]} == {desk.ids["amy"]: False, desk.ids["ben"]: True}

    # By hand: to a colleague, to nobody; never to someone who does not work tickets.
    assert boss.post(f"/api/tickets/{ids[3]}/assign", json={"assignee_id": desk.ids["carl"]}).json()["assignee_id"] \
        == desk.ids["carl"]
    assert boss.post(f"/api/tickets/{ids[3]}/assign", json={"assignee_id": None}).json()["assignee_id"] is None
    refused = boss.post(f"/api/tickets/{ids[3]}/assign", json={"assignee_id": desk.ids["sam"]})
    assert refused.status_code == 422 and "assignee_id" in refused.json()["error"]["fields"]

    # Without tickets.assign a user may only take a ticket themselves.
    with desk.platform.session() as db:
        role = Role(name="helper", label={}, module="tests")
        role.permissions = [RolePermission(permission=p) for p in ("tickets.read", "tickets.write")]
        db.add(role)
    desk.add_user("hal", ("helper",), TEAM_A)
    hal = desk.client("hal")
    assert hal.post(f"/api/tickets/{ids[3]}/assign", json={"assignee_id": desk.ids["amy"]}).status_code == 403
    assert hal.post(f"/api/tickets/{ids[3]}/assign", json={"auto": True}).status_code == 403
    taken = hal.post(f"/api/tickets/{ids[3]}/assign", json={"assignee_id": desk.ids["hal"]})
    assert taken.status_code == 200 and taken.json()["assignee_id"] == desk.ids["hal"]

    # Automatic assignment of new tickets, when the setting says so, also skips people away.
    with desk.platform.session() as db:
        data = service.parse_input(db, {"contact_id": desk.contact(), "subject": "自动分派", "team": TEAM_A},
                                   creating=True)
        ticket = service.create_ticket(desk.platform, db, None, data, auto_assign=True)
        assert ticket.assignee_id in (desk.ids["amy"], desk.ids["hal"]) and ticket.status == "assigned"


def test_comments_answers_and_ratings(desk: Desk) -> None:
    ticket = desk.ticket("amy")
    amy = desk.client("amy")
    note = amy.post(f"/api/tickets/{ticket['id']}/comments", json={"body": "客户是VIP", "public": False})
    reply = amy.post(f"/api/tickets/{ticket['id']}/comments", json={"body": "我们正在处理", "public": True})
    assert note.status_code == reply.status_code == 201
    assert amy.post(f"/api/tickets/{ticket['id']}/comments", json={"body": "  "}).status_code == 422
    items = amy.get(f"/api/tickets/{ticket['id']}/comments").json()["items"]
    assert [(c["body"], c["public"]) for c in items] == [("客户是VIP", False), ("我们正在处理", True)]
    assert desk.get(ticket["id"])["first_response_at"] == items[1]["created_at"]

    early = amy.post(f"/api/tickets/{ticket['id']}/rating", json={"score": 5})
    assert early.status_code == 409
    response = amy.post(f"/api/tickets/{ticket['id']}/transitions",
                        json={"to": "resolved", "comment": "已更换硒鼓", "public": True})
    assert response.status_code == 200 and response.json()["status"] == "resolved"
    assert amy.post(f"/api/tickets/{ticket['id']}/rating", json={"score": 6}).status_code == 422
    rated = amy.post(f"/api/tickets/{ticket['id']}/rating", json={"score": 4, "comment": "电话里说很满意"})
    assert rated.status_code == 200 and rated.json()["rating"] == 4
    assert amy.post(f"/api/tickets/{ticket['id']}/rating", json={"score": 5}).status_code == 409

    # The customer's answer reopens a resolved ticket.
    with desk.platform.session() as db:
        row = db.get(Ticket, ticket["id"])
        service.add_comment(desk.platform, db, None, row, "还是卡纸", public=True, author_kind="customer")
        assert row.status == "in_progress" and row.resolved_at is None


def test_events_are_published_in_the_transaction_of_the_change(desk: Desk) -> None:
    ticket = desk.ticket("amy")
    desk.move(ticket["id"], "in_progress", "amy")
    desk.move(ticket["id"], "resolved", "amy")
    assert desk.move(ticket["id"], "waiting", "amy").status_code == 409  # refused: nothing published
    with desk.platform.sessions() as db:
        rows = db.scalars(select(OutboxEvent).where(OutboxEvent.name.startswith("ticket.")).order_by(OutboxEvent.id))
        published = [(row.name, row.payload) for row in rows]
    tid, cid = ticket["id"], ticket["contact_id"]
    assert published == [
        ("ticket.created", {"ticket_id": tid, "contact_id": cid}),
        ("ticket.status_changed", {"ticket_id": tid, "from": "new", "to": "in_progress"}),
        ("ticket.status_changed", {"ticket_id": tid, "from": "in_progress", "to": "resolved"}),
        ("ticket.resolved", {"ticket_id": tid, "contact_id": cid}),
    ]
