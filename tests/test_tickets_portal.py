"""The customer's side: the public form (rate limit, honeypot, minimum fill time, the contact
found or created through ``kehu_person_find_or_create``), the status page behind a signed
link (replies but never internal notes, answers, rating, nothing of other tickets), and the
e-mails that reach a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

from kehu_plugins.tickets import links, notify
from tests.tickets_support import TEAM_A, Desk, Inbox, body_of, desk_with, inbox  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def form_token(client: Any) -> str:
    page = client.get("/public/tickets/new")
    assert page.status_code == 200
    return re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)


def submit(client: Any, token: str, **fields: str) -> Any:
    data = {"name": "刘洋", "email": "liuyang@example.com", "phone": "", "subject": "洗衣机漏水",
            "description": "底部一直在滴水", "category": "repair", "website": "", "form_token": token, **fields}
    return client.post("/public/tickets/new", data=data, files={"file": ("漏水.png", PNG, "image/png")},
                       follow_redirects=False)


def send_all(desk: Desk) -> None:
    notify.send_pending(desk.platform, older_than=timedelta(0))


def test_a_customer_asks_follows_answers_and_rates(desk_with, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with(KEHU_TICKETS_DEFAULT_TEAM=TEAM_A, KEHU_TICKETS_PUBLIC_URL="http://testserver", **inbox.env())
    customer = desk.anonymous()
    page = customer.get("/public/tickets/new")
    assert 'name="website"' in page.text and "联系我们" in page.text  # the honeypot, in Chinese

    sent = submit(customer, form_token(customer))
    assert sent.status_code == 303, sent.text
    status_path = sent.headers["location"].split("?")[0]
    assert status_path.startswith("/public/tickets/s/")

    # The customer became a contact (found or created by the contacts plugin), and a ticket.
    boss = desk.client("boss")
    contacts = boss.get("/api/contacts/", params={"q": "liuyang@example.com"}).json()["items"]
    assert [c["name"] for c in contacts] == ["刘洋"]
    tickets = boss.get("/api/tickets/", params={"contact_id": contacts[0]["id"]}).json()
    assert tickets["total"] == 1
    ticket = tickets["items"][0]
    assert (ticket["channel"], ticket["team"], ticket["category"]) == ("web", TEAM_A, "repair")
    # Asking again with the same e-mail finds the same contact.
    assert submit(customer, form_token(customer), subject="又漏水了").status_code == 303
    assert boss.get("/api/tickets/", params={"contact_id": contacts[0]["id"]}).json()["total"] == 2

    send_all(desk)
    received = inbox.to("liuyang@example.com")
    assert len(received) == 2 and ticket["number"] in received[0]["Subject"]
    link = re.search(r"http://testserver(/public/tickets/s/\S+)", body_of(received[0])).group(1)
    own = customer.get(link)  # the e-mail's signed link opens the same page
    assert own.status_code == 200 and "洗衣机漏水" in own.text and ticket["number"] in own.text

    amy = desk.client("amy")
    tid = ticket["id"]
    amy.post(f"/api/tickets/{tid}/comments", json={"body": "内部：可能是进水管老化", "public": False})
    amy.post(f"/api/tickets/{tid}/comments", json={"body": "请拍一下进水管的照片", "public": True})
    note_file = amy.post(f"/api/tickets/{tid}/attachments", files={"file": ("内部.txt", b"secret", "text/plain")}).json()
    amy.post(f"/api/tickets/{tid}/transitions", json={"to": "in_progress"})
    amy.post(f"/api/tickets/{tid}/transitions", json={"to": "waiting"})
    shown = customer.get(link).text
    assert "请拍一下进水管的照片" in shown and "内部：可能是进水管老化" not in shown and "内部.txt" not in shown
    assert "漏水.png" in shown
    assert customer.get(f"{link}/files/{note_file['items'][0]['id']}").status_code == 404  # not shared
    own_file = re.search(r'href="(/public/tickets/s/[^"]+/files/\d+)"', shown).group(1)
    assert customer.get(own_file).content == PNG

    answered = customer.post(f"{link}/reply", data={"body": "照片在附件"}, files={"file": ("水管.png", PNG, "image/png")},
                             follow_redirects=False)
    assert answered.status_code == 303
    assert desk.get(tid)["status"] == "in_progress"  # no longer waiting for the customer
    conversation = amy.get(f"/api/tickets/{tid}/comments").json()["items"]
    assert conversation[-1]["author_kind"] == "customer" and conversation[-1]["attachments"][0]["filename"] == "水管.png"

    send_all(desk)
    reply_mail = [m for m in inbox.to("liuyang@example.com") if "请拍一下进水管的照片" in body_of(m)]
    assert len(reply_mail) == 1 and "内部" not in body_of(reply_mail[0])  # notes are never mailed
    assert all("内部：" not in body_of(m) for m in inbox.messages)

    assert customer.post(f"{link}/rate", data={"score": "5"}).status_code == 409  # not resolved yet
    amy.post(f"/api/tickets/{tid}/transitions", json={"to": "resolved", "comment": "已更换进水管", "public": True})
    send_all(desk)
    assert any("评分" in m["Subject"] for m in inbox.to("liuyang@example.com"))  # asked to rate
    rated = customer.post(f"{link}/rate", data={"score": "5", "comment": "师傅很专业"}, follow_redirects=False)
    assert rated.status_code == 303
    assert (desk.get(tid)["rating"], desk.get(tid)["rating_comment"]) == (5, "师傅很专业")
    assert "感谢您的评价" in customer.get(link).text
    assert customer.post(f"{link}/rate", data={"score": "1"}).status_code == 409  # once

    amy.post(f"/api/tickets/{tid}/transitions", json={"to": "closed"})
    closed = customer.post(f"{link}/reply", data={"body": "还有问题"})
    assert closed.status_code == 409


def test_a_status_link_opens_its_ticket_and_nothing_else(desk_with) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with(KEHU_TICKETS_DEFAULT_TEAM=TEAM_A)
    customer = desk.anonymous()
    first = submit(customer, form_token(customer)).headers["location"].split("?")[0]
    second = submit(customer, form_token(customer), subject="第二个问题", email="other@example.com").headers[
        "location"].split("?")[0]
    first_page, second_page = customer.get(first).text, customer.get(second).text
    assert "洗衣机漏水" in first_page and "第二个问题" not in first_page
    assert "第二个问题" in second_page and "洗衣机漏水" not in second_page

    token = first.rsplit("/", 1)[1]
    first_file = re.search(r'/files/(\d+)"', first_page).group(1)
    assert customer.get(f"{second}/files/{first_file}").status_code == 404  # another ticket's file
    assert customer.get(f"/public/tickets/s/{token[:-2]}xx").status_code == 404  # tampered signature
    assert customer.get("/public/tickets/s/1").status_code == 404
    with desk.platform.sessions() as db:
        from kehu_plugins.tickets.models import Ticket

        ticket = db.get(Ticket, 1)
        forged = links.URLSafeTimedSerializer("guessed", salt=links.SALT).dumps([ticket.id, ticket.portal_key])
    assert customer.get(f"/public/tickets/s/{forged}").status_code == 404  # not signed with our secret
    assert customer.post(f"/public/tickets/s/{token[:-2]}xx/reply", data={"body": "x"}).status_code == 404
    # Nothing on the page leads elsewhere in Kehu.
    assert not re.findall(r'href="/(?!public/tickets/s/|static/|lang/)[^"]*"', first_page.split("<main", 1)[1])


def test_the_form_refuses_scripts_and_floods(desk_with) -> None:  # type: ignore[no-untyped-def]
    desk = desk_with(KEHU_TICKETS_MIN_FILL_SECONDS="3", KEHU_TICKETS_FORM_RATE_LIMIT="4/hour")
    customer = desk.anonymous()
    backdated = links.form_token(desk.platform, time.time() - 10)

    too_fast = submit(customer, form_token(customer))
    assert too_fast.status_code == 400  # sent back within 3 s of being shown
    assert submit(customer, backdated, website="http://spam.example").status_code == 400  # the honeypot
    assert submit(customer, "forged-token").status_code == 400
    invalid = submit(customer, backdated, name="", email="not-an-address")
    assert invalid.status_code == 422 and 'id="name-error"' in invalid.text and 'id="email-error"' in invalid.text
    assert desk.client("boss").get("/api/tickets/").json()["total"] == 0

    limited = submit(customer, backdated)
    assert limited.status_code == 429 and limited.headers["retry-after"]
    assert desk.client("boss").get("/api/tickets/").json()["total"] == 0
    # The limit counts per address: another address may still send.
    from kehu_plugins.tickets import ratelimit

    limiter = ratelimit.limiter(desk.platform)
    assert not limiter.hit("4/hour", "form", "testclient")
    assert limiter.hit("4/hour", "form", "203.0.113.7")


def test_the_stand_in_limiter_counts_a_moving_window_per_key() -> None:
    from kehu_plugins.tickets import ratelimit

    limiter = ratelimit.MemoryLimiter()  # used where the limits package is not installed
    assert [limiter.hit("2/hour", "form", "198.51.100.1") for _ in range(3)] == [True, True, False]
    assert limiter.hit("2 per 1 hour", "form", "198.51.100.2")
