"""tickets composes with contacts and the core only through hooks and events: the "Tickets"
panel on the contact page, ticket events on the contact's timeline, tickets following merged
contacts, a person's export and erasure; and disabling tickets removes its menu, routes, panel
and jobs while contacts keeps working, and enabling it again brings every ticket back."""

from __future__ import annotations

import io
import json
import zipfile

from sqlalchemy import select

from kehu import jobs, migrations, modules
from kehu.platform import Platform
from kehu_plugins.tickets import links
from kehu_plugins.tickets.models import Comment, Ticket
from tests.conftest import web_client
from tests.tickets_support import Desk, desk  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_the_contact_page_shows_the_customers_tickets_and_their_events(desk: Desk) -> None:
    # A salesperson's customer: service staff see it (contacts.read_all comes with their role).
    created = desk.client("sam").post("/api/contacts/", json={"name": "陈静", "email": "chenjing@example.com"})
    contact = created.json()["id"]
    first = desk.ticket("amy", contact_id=contact, subject="退款进度")
    desk.move(first["id"], "in_progress", "amy")
    desk.move(first["id"], "resolved", "amy")
    hidden = desk.ticket("carl", contact_id=contact, subject="二组的工单")  # team B

    page = desk.client("amy").get(f"/contacts/{contact}")
    assert page.status_code == 200
    panel = page.text.split('data-slot="contacts.detail.panels"><h2>工单</h2>', 1)[1].split("</section>", 1)[0]
    assert first["number"] in panel and "退款进度" in panel and "已解决" in panel
    assert hidden["number"] not in panel  # amy does not see team B's tickets
    assert f'href="/tickets/new?contact_id={contact}"' in panel
    # Each user's panel is narrowed by their own rule, asked one after the other.
    carls = desk.client("carl").get(f"/contacts/{contact}").text
    carls_panel = carls.split('data-slot="contacts.detail.panels"><h2>工单</h2>', 1)[1].split("</section>", 1)[0]
    assert hidden["number"] in carls_panel and first["number"] not in carls_panel

    timeline = desk.client("amy").get(f"/api/contacts/{contact}/timeline").json()["items"]
    ours = [item for item in timeline if item["source"] == "tickets"]
    assert [item["url"] for item in ours] == [f"/tickets/{first['id']}"] * 3
    assert {item["kind"] for item in ours} == {"ticket"}
    assert ours[-1]["title"].startswith(f"工单 {first['number']}") and ours[-1]["body"] == "退款进度"
    assert "二组的工单" not in json.dumps(timeline, ensure_ascii=False)
    assert len([i for i in desk.client("boss").get(f"/api/contacts/{contact}/timeline").json()["items"]
                if i["source"] == "tickets"]) == 4  # boss sees both tickets' events

    sam_page = desk.client("sam").get(f"/contacts/{contact}")  # sales: no tickets permission
    assert sam_page.status_code == 200 and 'data-slot="contacts.detail.panels"><h2>工单' not in sam_page.text

    # The panel lists the newest ten and links to all of them, counted, once there are more.
    assert "全部" not in panel
    for number in range(10):
        desk.ticket("amy", contact_id=contact, subject=f"第{number}次咨询")
    page = desk.client("amy").get(f"/contacts/{contact}")
    panel = page.text.split('data-slot="contacts.detail.panels"><h2>工单</h2>', 1)[1].split("</section>", 1)[0]
    assert panel.count('<li><a href="/tickets/') == 10 and "第9次咨询" in panel and "退款进度" not in panel
    assert f'<a href="/tickets/?contact_id={contact}">全部 11 个工单</a>' in panel


def test_merging_contacts_moves_their_tickets(desk: Desk) -> None:
    survivor, merged = desk.contact("周杰"), desk.contact("周杰（重复）")
    moved = desk.ticket("amy", contact_id=merged)
    kept = desk.ticket("amy", contact_id=survivor)
    response = desk.client("boss").post("/api/contacts/merge", json={"survivor_id": survivor, "merged_id": merged})
    assert response.status_code == 200, response.text
    listed = desk.client("amy").get("/api/tickets/", params={"contact_id": survivor}).json()
    assert sorted(t["id"] for t in listed["items"]) == sorted([moved["id"], kept["id"]])


def test_a_persons_export_and_erasure_include_their_tickets(desk: Desk) -> None:
    contact = desk.contact("吴芳", email="wufang@example.com")
    ticket = desk.ticket("amy", contact_id=contact, subject="地址改为朝阳区幸福路1号", description="电话 13900001111")
    amy = desk.client("amy")
    amy.post(f"/api/tickets/{ticket['id']}/comments", json={"body": "已修改地址", "public": True})
    amy.post(f"/api/tickets/{ticket['id']}/attachments", files={"file": ("身份证.png", PNG, "image/png")})
    with desk.platform.sessions() as db:
        link_before = links.token_for(desk.platform, db.get(Ticket, ticket["id"]))

    export = desk.client("boss").get(f"/api/contacts/{contact}/person-export")
    assert export.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(export.content))
    data = json.loads(archive.read("tickets.json"))
    assert data["tickets"][0]["subject"] == "地址改为朝阳区幸福路1号"
    assert data["tickets"][0]["messages"][0]["body"] == "已修改地址"
    assert data["tickets"][0]["attachments"][0]["filename"] == "身份证.png"

    erased = desk.client("boss").post(f"/api/contacts/{contact}/erase", json={"confirm": True})
    assert erased.status_code == 204
    after = desk.get(ticket["id"])
    assert after["number"] == ticket["number"] and after["status"] == ticket["status"]  # the service record stays
    assert after["subject"] == "（已删除）" and after["description"] == ""
    with desk.platform.sessions() as db:
        assert [c.body for c in db.scalars(select(Comment).where(Comment.ticket_id == ticket["id"]))] == [""]
    assert after["attachments"] == [] and not list((desk.settings.home / "attachments" / "tickets").iterdir())
    assert desk.anonymous().get(f"/public/tickets/s/{link_before}").status_code == 404  # old links revoked


def test_disabling_tickets_removes_it_and_enabling_brings_everything_back(desk: Desk) -> None:
    contact = desk.contact("郑爽")
    ticket = desk.ticket("amy", contact_id=contact, subject="停用前的工单")
    app = jobs.celery_app(desk.platform)
    assert "tickets.check_sla" in app.tasks
    assert any(entry["task"] == "tickets.check_sla" for entry in jobs.beat_schedule(desk.platform, app).values())

    with desk.platform.session() as db:
        modules.disable(db, "tickets", desk.platform.modules)
    off = Platform.boot(desk.settings)
    assert "tickets" not in off.active and "contacts" in off.active
    boss = web_client(desk.settings, "boss", desk.passwords["boss"])
    assert boss.get("/tickets/").status_code == 404
    assert boss.get("/api/tickets/").status_code == 404
    assert boss.get("/public/tickets/new").status_code == 404
    home = boss.get("/").text
    assert 'href="/tickets/"' not in home and 'href="/contacts/"' in home
    page = boss.get(f"/contacts/{contact}")
    assert page.status_code == 200 and "停用前的工单" not in page.text and "<h2>工单</h2>" not in page.text
    assert boss.post("/api/contacts/", json={"name": "停用期间的客户"}).status_code == 201  # contacts works
    off_app = jobs.make_celery(off)
    assert not any(name.startswith("tickets.") for name in off_app.tasks)
    assert not any(entry["task"].startswith("tickets.") for entry in jobs.beat_schedule(off, off_app).values())

    with off.session() as db:
        modules.enable(db, "tickets", off.modules)
    on = Platform.boot(desk.settings)
    migrations.upgrade_all(on)
    boss = web_client(desk.settings, "boss", desk.passwords["boss"])
    assert boss.get(f"/api/tickets/{ticket['id']}").json()["subject"] == "停用前的工单"
    assert "停用前的工单" in boss.get(f"/contacts/{contact}").text
    assert 'href="/tickets/"' in boss.get("/").text
