"""A ticket's whole life in headless Chromium at phone width (375 px), in Chinese: the customer
sends the public form, a service agent answers and resolves it, the customer rates the service
on the status page, the agent closes it."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from tests.browser import assert_fits_phone, login, path_of
from tests.conftest import create_user
from tests.tickets_support import TEAM_A

pytestmark = pytest.mark.browser


def test_from_the_customers_form_to_closing_and_rating(settings, monkeypatch, live_server, page) -> None:  # type: ignore[no-untyped-def]
    if not settings.is_sqlite:
        pytest.skip("the browser walk runs once, on SQLite; the other tickets tests cover PostgreSQL")
    env = {"KEHU_TICKETS_MIN_FILL_SECONDS": "0", "KEHU_TICKETS_DEFAULT_TEAM": TEAM_A, "KEHU_TICKETS_AUTO_ASSIGN": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    server = live_server(replace(settings, extra={**settings.extra, **env}), ["contacts", "tickets"])
    _, password = create_user(server.platform, "amy", ("service",), team=TEAM_A)
    base = server.url

    # The customer asks for help from their phone.
    page.goto(f"{base}/public/tickets/new")
    assert page.locator("h1").inner_text() == "联系我们"
    assert_fits_phone(page)
    page.fill("input[name=name]", "孙丽")
    page.fill("input[name=email]", "sunli@example.com")
    page.select_option("select[name=category]", "repair")
    page.fill("input[name=subject]", "热水器不出热水")
    page.fill("textarea[name=description]", "昨天开始只有冷水")
    with page.expect_navigation():
        page.click(".public-form button[type=submit]")
    assert path_of(page).startswith("/public/tickets/s/")
    status_link = page.url.split("?")[0]
    number = re.search(r"T-\d{4}-\d{6}", page.locator("h1").inner_text()).group(0)
    assert "谢谢" in page.locator(".flash-ok").inner_text()
    assert_fits_phone(page)

    # A service agent finds it in the queue (assigned to her), answers and resolves it.
    login(page, base, "amy", password)
    page.goto(f"{base}/tickets/?view=mine")
    assert_fits_phone(page)
    with page.expect_navigation():
        page.click(f"a.ticket-link:has-text('{number}')")
    assert page.locator(".meta .status").inner_text() == "已分派"
    page.fill(".reply-form textarea[name=body]", "您好，师傅明天上午上门检修。")
    with page.expect_navigation():
        page.click(".reply-form button[type=submit]:not([name])")
    assert "回复已发送" in page.locator(".flash-ok").inner_text()
    assert "您好，师傅明天上午上门检修。" in page.locator(".conversation").inner_text()
    for status, label in (("in_progress", "处理中"), ("resolved", "已解决")):
        with page.expect_navigation():
            page.click(f".transitions button[data-to={status}]")
        assert page.locator(".meta .status").inner_text() == label
    assert_fits_phone(page)

    # The customer reads the answer and rates the service.
    page.goto(status_link)
    assert "您好，师傅明天上午上门检修。" in page.locator(".conversation").inner_text()
    page.check(".rate-form input[name=score][value='5']")
    page.fill(".rate-form textarea[name=comment]", "上门很及时")
    with page.expect_navigation():
        page.click(".rate-form button[type=submit]")
    assert "感谢您的评价" in page.locator("#rating").inner_text()
    assert_fits_phone(page)

    # The agent closes it; the rating is on the ticket.
    page.goto(f"{base}/tickets/?q={number}")
    with page.expect_navigation():
        page.click(f"a.ticket-link:has-text('{number}')")
    with page.expect_navigation():
        page.click(".transitions button[data-to=closed]")
    assert page.locator(".meta .status").inner_text() == "已关闭"
    assert page.locator(".facts .rating").inner_text().startswith("★★★★★")
    assert_fits_phone(page)
