"""The tickets JSON API and staff pages: creating and listing, changes, bulk actions,
attachments, permissions on every route, the OpenAPI document, the queue's filters and
the pages in Chinese and English."""

from __future__ import annotations

import re

from kehu_plugins.tickets import api
from tests.tickets_support import TEAM_A, Desk, desk, desk_with  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_create_and_list_a_customers_tickets(desk: Desk) -> None:
    contact = desk.contact("李雷", phone="13800138000")
    other = desk.contact("韩梅梅")
    amy = desk.client("amy")
    created = amy.post("/api/tickets", json={"contact_id": contact, "subject": "无法开机", "description": "按电源键没反应",
                                            "priority": "high"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert re.fullmatch(r"T-\d{4}-\d{6}", body["number"])
    assert body["team"] == TEAM_A and body["channel"] == "staff" and body["category"] == "general"
    assert body["sla"]["response"]["target_minutes"] == 60 and body["sla"]["resolution"]["target_minutes"] == 540
    assert created.headers["location"] == f"/api/tickets/{body['id']}"
    desk.ticket("amy", contact_id=other)

    listed = amy.get("/api/tickets", params={"contact_id": contact})
    assert listed.status_code == 200
    assert listed.json()["total"] == 1 and [t["subject"] for t in listed.json()["items"]] == ["无法开机"]
    assert amy.get("/api/tickets/").json()["total"] == 2
    assert amy.get("/api/tickets/").json()["total_capped"] is False  # counted exactly up to 1,000

    invalid = amy.post("/api/tickets/", json={"subject": "", "priority": "soon"})
    assert invalid.status_code == 422
    assert set(invalid.json()["error"]["fields"]) == {"contact_id", "subject", "priority"}
    assert amy.post("/api/tickets/", json={"contact_id": 9999, "subject": "x"}).status_code == 422
    assert amy.get("/api/tickets/", params={"view": "everything"}).status_code == 422

    detail = amy.get(f"/api/tickets/{body['id']}").json()
    assert detail["customer"] == {"id": contact, "name": "李雷", "phone": "+8613800138000", "email": "",
                                  "masked": False}
    assert detail["allowed_transitions"] == ["assigned", "in_progress", "resolved", "closed"]


def test_every_route_checks_permissions_and_visibility(desk: Desk) -> None:
    ticket = desk.ticket("amy")  # team A
    tid = ticket["id"]
    anonymous = desk.anonymous()
    for route in api.routes():
        for method in route.methods - {"HEAD"}:
            path = "/api/tickets" + route.path.replace("{id:int}", str(tid)).replace("{name}", "x").replace(
                "{day}", "2026-01-01")
            assert anonymous.request(method, path).status_code == 401, (method, path)
    page = anonymous.get(f"/tickets/{tid}", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == f"/login?next=/tickets/{tid}"

    sam = desk.client("sam")  # sales: contacts only
    assert sam.get("/api/tickets/").status_code == 403
    assert sam.post("/api/tickets/", json={"contact_id": ticket["contact_id"], "subject": "x"}).status_code == 403
    assert sam.get("/tickets/").status_code == 403
    assert "/tickets/" not in sam.get("/").text  # no menu entry

    carl = desk.client("carl")  # service, the other team: the ticket does not exist for him
    assert carl.get("/api/tickets/").json()["total"] == 0
    for method, path, body in [("GET", f"/api/tickets/{tid}", None), ("PATCH", f"/api/tickets/{tid}", {"subject": "x"}),
                               ("GET", f"/api/tickets/{tid}/comments", None),
                               ("POST", f"/api/tickets/{tid}/comments", {"body": "x"}),
                               ("POST", f"/api/tickets/{tid}/transitions", {"to": "closed"}),
                               ("POST", f"/api/tickets/{tid}/assign", {"assignee_id": None}),
                               ("GET", f"/tickets/{tid}", None), ("POST", f"/tickets/{tid}/status", None)]:
        response = carl.request(method, path, json=body) if body else carl.request(method, path)
        assert response.status_code == 404, (method, path, response.status_code)
    # Assigned to carl, it becomes visible to him.
    desk.client("boss").post(f"/api/tickets/{tid}/assign", json={"assignee_id": desk.ids["carl"]})
    assert carl.get(f"/api/tickets/{tid}").status_code == 200
    # Settings need tickets.admin.
    assert desk.client("amy").post("/api/tickets/sla-policies", json={"response_minutes": 1,
                                                                       "resolution_minutes": 2}).status_code == 403
    assert desk.client("amy").get("/tickets/admin").status_code == 403


def test_changes_bulk_actions_and_settings(desk: Desk) -> None:
    amy, boss = desk.client("amy"), desk.client("boss")
    ticket = desk.ticket("amy")
    changed = amy.patch(f"/api/tickets/{ticket['id']}", json={"priority": "urgent", "category": "complaint"})
    assert changed.status_code == 200
    assert changed.json()["sla"]["response"]["target_minutes"] == 30  # the urgent policy
    assert amy.patch(f"/api/tickets/{ticket['id']}", json={"status": "closed"}).status_code == 422
    saved = boss.post("/api/tickets/sla-policies", json={"priority": "urgent", "category": "complaint",
                                                         "response_minutes": 15, "resolution_minutes": 120})
    assert saved.status_code == 200
    again = amy.patch(f"/api/tickets/{ticket['id']}", json={"priority": "high"})
    again = amy.patch(f"/api/tickets/{ticket['id']}", json={"priority": "urgent"})
    assert again.json()["sla"]["response"]["target_minutes"] == 15  # most specific policy wins

    day = boss.post("/api/tickets/calendar", json={"day": "2027-01-01", "kind": "holiday", "name": "元旦"})
    assert day.status_code == 200
    calendar = amy.get("/api/tickets/calendar", params={"year": 2027}).json()
    assert calendar["items"] == [{"day": "2027-01-01", "kind": "holiday", "name": "元旦"}]
    assert calendar["business_hours"] == "09:00-18:00" and calendar["timezone"] == "Asia/Shanghai"
    assert len(amy.get("/api/tickets/calendar", params={"year": 2026}).json()["items"]) == 39
    assert boss.delete("/api/tickets/calendar/2027-01-01").status_code == 204

    others = [desk.ticket("amy")["id"] for _ in range(2)]
    hidden = desk.ticket("carl")["id"]  # team B: amy cannot see it
    result = amy.post("/api/tickets/bulk", json={"ids": [*others, hidden], "action": "assign",
                                                 "assignee_id": desk.ids["ben"]}).json()
    assert (result["done"], result["failed"]) == (2, 1)
    assert result["results"][2] == {"id": hidden, "ok": False, "status": 404, "error": result["results"][2]["error"]}
    assert all(desk.get(i)["assignee_id"] == desk.ids["ben"] for i in others)
    closed = amy.post("/api/tickets/bulk", json={"ids": others, "action": "close"}).json()
    assert closed["done"] == 2 and all(desk.get(i)["status"] == "closed" for i in others)
    assert amy.post("/api/tickets/bulk", json={"ids": [], "action": "explode"}).status_code == 422


def test_attachments_are_checked_stored_and_served_only_to_those_allowed(desk_with) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with(KEHU_TICKETS_MAX_ATTACHMENT_MB="0.01")  # 10 KB
    ticket = desk.ticket("amy")
    amy = desk.client("amy")
    url = f"/api/tickets/{ticket['id']}/attachments"
    uploaded = amy.post(url, files={"file": ("屏幕截图.png", PNG, "image/png")}, data={"public": "1"})
    assert uploaded.status_code == 201, uploaded.text
    item = uploaded.json()["items"][0]
    assert item["filename"] == "屏幕截图.png" and item["content_type"] == "image/png" and item["size"] == len(PNG)
    stored = list((desk.settings.home / "attachments" / "tickets").iterdir())
    assert [p.read_bytes() for p in stored] == [PNG]

    for name, content in [("virus.exe", b"MZ" + b"\x00" * 10), ("fake.png", b"GIF89a" + b"\x00" * 10),
                          ("big.txt", b"x" * 20_000), ("empty.txt", b"")]:
        refused = amy.post(url, files={"file": (name, content, "image/png")})
        assert refused.status_code == 422, name
    assert amy.post(url, data={"public": "1"}).status_code == 422  # no file
    assert len(list((desk.settings.home / "attachments" / "tickets").iterdir())) == 1

    comment = amy.post(f"/api/tickets/{ticket['id']}/comments",
                       data={"body": "日志见附件", "public": "0"}, files={"file": ("log.txt", b"line 1\n", "text/plain")})
    assert comment.status_code == 201 and comment.json()["attachments"][0]["filename"] == "log.txt"

    download = amy.get(item["url"])
    assert download.status_code == 200 and download.content == PNG
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert desk.client("carl").get(item["url"]).status_code == 404
    assert desk.client("carl").get(f"/api/tickets/attachments/{item['id']}").status_code == 404
    assert desk.anonymous().get(f"/api/tickets/attachments/{item['id']}").status_code == 401
    assert desk.client("boss").get(f"/api/tickets/attachments/{item['id']}").content == PNG


def test_openapi_documents_the_api(desk: Desk) -> None:
    paths = desk.client("amy").get("/api/openapi.json").json()["paths"]
    expected = {("/api/tickets", "get"), ("/api/tickets", "post"), ("/api/tickets/{id}", "get"),
                ("/api/tickets/{id}", "patch"), ("/api/tickets/{id}/transitions", "post"),
                ("/api/tickets/{id}/comments", "post"), ("/api/tickets/{id}/assign", "post"),
                ("/api/tickets/bulk", "post"), ("/api/tickets/{id}/rating", "post"),
                ("/api/tickets/{id}/attachments", "post"), ("/api/tickets/workflow", "put")}
    documented = {(path, method) for path, operations in paths.items() for method in operations}
    assert expected <= documented
    assert paths["/api/tickets"]["post"]["summary"] == "Open a ticket"
    assert "409" in paths["/api/tickets/{id}/transitions"]["post"]["responses"]


def test_staff_pages_queue_filters_detail_and_languages(desk_with) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with(KEHU_TICKETS_WARN_BEFORE_MINUTES="200000")  # every running clock is "breaching soon"
    contact = desk.contact("张伟", email="zhangwei@example.com")
    amy = desk.client("amy")
    mine = desk.ticket("amy", contact_id=contact, subject="发票抬头错误", category="inquiry")
    desk.client("amy").post(f"/api/tickets/{mine['id']}/assign", json={"assignee_id": desk.ids["amy"]})
    other = desk.ticket("amy", contact_id=contact, subject="屏幕碎了", priority="urgent", category="repair")

    queue = amy.get("/tickets/")
    assert queue.status_code == 200 and '<html lang="zh-CN">' in queue.text
    assert "工单" in queue.text and "发票抬头错误" in queue.text and "屏幕碎了" in queue.text
    for params, shown, hidden in [({"view": "mine"}, "发票抬头错误", "屏幕碎了"),
                                  ({"view": "unassigned"}, "屏幕碎了", "发票抬头错误"),
                                  ({"priority": "urgent"}, "屏幕碎了", "发票抬头错误"),
                                  ({"category": "inquiry"}, "发票抬头错误", "屏幕碎了"),
                                  ({"status": "assigned"}, "发票抬头错误", "屏幕碎了"),
                                  ({"q": mine["number"]}, "发票抬头错误", "屏幕碎了")]:
        text = amy.get("/tickets/", params=params).text
        assert shown in text and hidden not in text, params
    team = amy.get("/tickets/", params={"view": "team"}).text
    assert "发票抬头错误" in team and "屏幕碎了" in team
    assert desk.move(mine["id"], "waiting", "amy").status_code == 200  # paused: not breaching
    breaching = amy.get("/tickets/", params={"view": "breaching"}).text
    assert "屏幕碎了" in breaching and "发票抬头错误" not in breaching

    amy.post(f"/api/tickets/{other['id']}/comments", json={"body": "内部备注：已联系厂家", "public": False})
    amy.post(f"/api/tickets/{other['id']}/comments", json={"body": "已为您安排上门", "public": True})
    detail = amy.get(f"/tickets/{other['id']}")
    assert detail.status_code == 200
    assert "内部备注：已联系厂家" in detail.text and "已为您安排上门" in detail.text
    assert "zhangwei@example.com" in detail.text  # service sees the customer's details in full

    made = amy.post("/tickets/new", data={"contact_id": str(contact), "subject": "网页上开的单", "priority": "low",
                                          "category": "feedback", "channel": "phone", "team": TEAM_A},
                    follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"].startswith("/tickets/")
    bad = amy.post("/tickets/new", data={"contact_id": "", "subject": ""})
    assert bad.status_code == 422 and 'id="subject-error"' in bad.text

    replied = amy.post(f"/tickets/{other['id']}/status", data={"to": "in_progress"})
    assert replied.status_code == 200 and amy.get(f"/api/tickets/{other['id']}").json()["status"] == "in_progress"
    wrong = amy.post(f"/tickets/{other['id']}/status", data={"to": "new"})
    assert wrong.status_code == 409 and 'class="flash flash-error"' in wrong.text

    ids = [mine["id"], other["id"]]
    bulk = amy.post("/tickets/bulk", data={"ids": [str(i) for i in ids], "action": "assign",
                                           "assignee_id": str(desk.ids["ben"]), "back": "view=all"})
    assert bulk.status_code == 200
    assert all(amy.get(f"/api/tickets/{i}").json()["assignee_id"] == desk.ids["ben"] for i in ids)

    amy.cookies.set("kehu_lang", "en")
    english = amy.get("/tickets/")
    assert '<html lang="en">' in english.text and "New ticket" in english.text and "Breaching soon" in english.text
    amy.cookies.delete("kehu_lang")
    assert "新建工单" in amy.get("/tickets/").text
