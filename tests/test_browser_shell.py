"""The web shell in a real Chromium: login redirect and errors, the home page and its menu at
phone width, switching languages, the modules page, htmx with the CSRF token, and logging out.

Every page is checked at phone width (375px) for horizontal overflow and console errors. The
shell is the same on every database, so these run on SQLite only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from kehu.config import Settings
from tests.browser import LiveServer, assert_fits_phone, assert_no_console_errors, login, overflow, path_of
from tests.conftest import create_user

if TYPE_CHECKING:
    from playwright.sync_api import Page

Serve = Callable[..., LiveServer]

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


ADMIN_MENU = ["模块", "用户", "角色", "API 令牌", "审计日志"]


def menu_labels(page: Page) -> list[str]:
    """The plugins' menu entries (the last link of the menu is the user's own account page)."""
    return [text.strip() for text in page.locator("#main-nav > a:not([href='/account'])").all_inner_texts()]


def test_anonymous_visitor_is_sent_to_login_and_back(live_server: Serve, settings: Settings, page: Page) -> None:
    server = live_server(settings)
    _, password = create_user(server.platform, "boss", ("admin",))

    response = page.goto(f"{server.url}/admin/modules")
    assert response is not None and response.status == 200
    assert path_of(page) == "/login?next=/admin/modules"
    assert page.locator("html").get_attribute("lang") == "zh-CN"  # Chinese by default
    assert page.locator("form[action='/login'] input[name='login']").is_visible()
    assert page.locator("#main-nav").count() == 0 and page.locator(".nav-toggle-label").count() == 0
    assert page.locator(".lang a[aria-current]").inner_text() == "简体中文"
    assert "PingFang SC" in page.evaluate("getComputedStyle(document.body).fontFamily")  # system Chinese fonts
    assert_fits_phone(page)

    page.fill("input[name='login']", "boss")
    page.fill("input[name='password']", "not the password")
    with page.expect_navigation() as failed:
        page.click("form[action='/login'] [type='submit']")
    assert failed.value is not None and failed.value.status == 401
    assert path_of(page) == "/login"
    assert page.locator(".flash-error[role='alert']").is_visible()
    assert page.input_value("input[name='login']") == "boss"  # what was typed is kept
    assert page.input_value("input[name='next']") == "/admin/modules"
    assert not [c for c in page.context.cookies() if c["name"] == "kehu_session"]
    # Chromium reports the 401 answer itself on the console; nothing else may be there.
    assert_fits_phone(page, expected_errors=r"status of 401")

    login(page, server.url, "boss", password)
    assert path_of(page) == "/admin/modules"  # back where the visitor wanted to go
    assert page.locator("table.modules tr[data-module='core']").count() == 1
    assert_fits_phone(page)


def test_admin_home_menu_languages_modules_and_logout(live_server: Serve, settings: Settings, page: Page) -> None:
    server = live_server(settings)
    _, password = create_user(server.platform, "boss", ("admin",))

    page.goto(server.url + "/")
    assert path_of(page) == "/login?next=/"
    login(page, server.url, "boss", password)
    assert path_of(page) == "/"
    assert "boss" in page.locator("h1").inner_text()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert [t.strip() for t in page.locator(".cards a.card").all_inner_texts()] == ADMIN_MENU
    assert_fits_phone(page)

    # At phone width the menu is folded behind ☰ and opens on a tap.
    nav = page.locator("#main-nav")
    toggle = page.locator("label.nav-toggle-label")
    assert toggle.is_visible() and not nav.is_visible()
    toggle.tap()
    assert nav.is_visible()
    assert page.locator("#nav-toggle").get_attribute("aria-expanded") == "true"
    assert menu_labels(page) == ADMIN_MENU
    box = nav.bounding_box()
    assert box is not None and box["width"] <= 375 and box["x"] >= 0
    assert_fits_phone(page)
    page.keyboard.press("Escape")  # kehu.js closes it
    assert not nav.is_visible()
    assert page.locator("#nav-toggle").get_attribute("aria-expanded") == "false"

    # English, then back to Chinese: the page, its menu and the cookie follow.
    page.locator(".lang a[hreflang='en']").tap()
    page.wait_for_url(f"{server.url}/")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator(".lang a[aria-current]").inner_text() == "English"
    english_menu = ["Modules", "Users", "Roles", "API tokens", "Audit log"]
    assert [t.strip() for t in page.locator(".cards a.card").all_inner_texts()] == english_menu
    assert {c["name"]: c["value"] for c in page.context.cookies()}["kehu_lang"] == "en"
    assert_fits_phone(page)
    page.locator(".lang a[hreflang='zh-CN']").tap()
    page.wait_for_url(f"{server.url}/")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert {c["name"]: c["value"] for c in page.context.cookies()}["kehu_lang"] == "zh"
    assert [t.strip() for t in page.locator(".cards a.card").all_inner_texts()][0] == "模块"

    # The modules page, through the menu.
    toggle.tap()
    nav.get_by_role("link", name="模块").tap()
    page.wait_for_url(f"{server.url}/admin/modules")
    assert page.locator("h1").inner_text() in {"模块", "Modules"}
    assert page.locator("#main-nav a[aria-current='page']").inner_text().strip() == "模块"
    assert not nav.is_visible()  # a new page starts with the menu folded
    assert page.locator("table.modules tbody tr").count() >= 2  # the core and the built-in plugins
    core = page.locator("table.modules tr[data-module='core']")
    assert core.locator(".badge").get_attribute("class") == "badge badge-enabled"
    assert core.locator("button").count() == 0  # the core cannot be disabled
    contacts = page.locator("table.modules tr[data-module='contacts']")
    assert contacts.count() == 1
    if contacts.locator(".badge-available").count():  # not enabled yet: it can be
        assert contacts.locator("button.btn-primary").is_visible()
    wrap = page.locator(".table-wrap").first
    assert wrap.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    assert wrap.evaluate("el => el.getBoundingClientRect().right") <= 375
    assert_fits_phone(page)

    # Language switch from a deeper page comes back to it.
    page.locator(".lang a[hreflang='en']").tap()
    page.wait_for_url(f"{server.url}/admin/modules")
    assert page.locator("#main-nav a[aria-current='page']").inner_text().strip() == "Modules"
    assert_fits_phone(page)
    page.locator(".lang a[hreflang='zh-CN']").tap()
    page.wait_for_url(f"{server.url}/admin/modules")

    # Log out from the menu; the session is gone for good.
    toggle.tap()
    with page.expect_navigation():
        nav.locator("form[action='/logout'] button").tap()
    assert path_of(page) == "/login"
    assert not [c for c in page.context.cookies() if c["name"] == "kehu_session"]
    assert_fits_phone(page)
    page.goto(f"{server.url}/admin/modules")
    assert path_of(page) == "/login?next=/admin/modules"


def test_desktop_menu_htmx_and_csrf(live_server: Serve, settings: Settings, desktop_page: Page) -> None:
    page = desktop_page
    server = live_server(settings)
    _, password = create_user(server.platform, "boss", ("admin",))
    login(page, server.url, "boss", password)

    # Wide screens: the menu is inline, no ☰.
    assert page.locator("#main-nav").is_visible()
    assert not page.locator("label.nav-toggle-label").is_visible()
    assert menu_labels(page) == ADMIN_MENU
    found = overflow(page)
    assert found["scrollWidth"] <= found["innerWidth"], found

    # htmx comes from core/static/vendor (never a CDN) and is version 2.
    scripts = page.eval_on_selector_all("script[src]", "els => els.map(e => e.getAttribute('src'))")
    assert "/static/core/vendor/htmx.min.js" in scripts and all(s.startswith("/static/") for s in scripts)
    assert re.match(r"^2\.", page.evaluate("window.htmx && window.htmx.version") or "")

    # An htmx POST carries the session's CSRF token (kehu.js): logging out that way works...
    token = page.locator("meta[name='csrf-token']").get_attribute("content")
    assert token
    result = page.evaluate("""() => new Promise(resolve => {
        document.body.addEventListener('htmx:afterRequest', e => resolve({
            status: e.detail.xhr.status, url: e.detail.xhr.responseURL,
            token: e.detail.requestConfig.headers['X-CSRF-Token']}), {once: true});
        htmx.ajax('POST', '/logout', {source: document.body, swap: 'none'});
    })""")
    assert result["token"] == token
    assert result["status"] == 200 and result["url"].endswith("/login"), result
    page.goto(server.url + "/")
    assert path_of(page) == "/login?next=/"
    assert_no_console_errors(page)


def test_a_post_without_the_csrf_token_is_refused(live_server: Serve, settings: Settings, desktop_page: Page) -> None:
    page = desktop_page
    server = live_server(settings)
    _, password = create_user(server.platform, "boss", ("admin",))
    login(page, server.url, "boss", password)
    status = page.evaluate("() => fetch('/logout', {method: 'POST'}).then(r => r.status)")
    assert status == 403
    page.goto(server.url + "/")
    assert path_of(page) == "/"  # still logged in
