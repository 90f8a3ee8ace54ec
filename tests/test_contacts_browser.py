"""The contacts pages in a real Chromium at phone width (375px), in Chinese (the default) and
English: an administrator logs in, creates a contact (after an inline validation message) and
finds it by phone number typed another way; a salesperson who does not own it cannot open it;
a user without ``contacts.view_sensitive`` sees the phone number masked.

The pages are the same on every database, so this runs on SQLite only.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import assert_fits_phone, login, path_of
from tests.conftest import create_user

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

NOT_FOUND = r"status of 404"


def test_create_find_refuse_and_mask_at_phone_width(live_server, settings, page) -> None:  # type: ignore[no-untyped-def]
    server = live_server(settings, ["contacts"])
    _, boss = create_user(server.platform, "boss", ("admin",))
    _, alice = create_user(server.platform, "alice", ("sales",))
    _, vera = create_user(server.platform, "vera", ("viewer",))

    # An administrator creates a contact; a wrong phone number is explained next to its field.
    page.goto(f"{server.url}/contacts/new")
    login(page, server.url, "boss", boss)
    assert path_of(page) == "/contacts/new"
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "新建客户"
    assert_fits_phone(page)
    page.fill("input[name='name']", "王芳")
    page.fill("input[name='company']", "上海云帆贸易有限公司")
    page.locator("input[name='phones']").first.fill("123")
    page.locator("form.contact-form button[type='submit']").click()
    error = page.locator("#phones-error")
    assert error.is_visible() and error.inner_text() == "不是有效的电话号码。"
    assert page.input_value("input[name='name']") == "王芳"  # what was typed is kept
    assert_fits_phone(page, expected_errors=r"status of 422")  # the form comes back with 422
    page.locator("input[name='phones']").first.fill("138 1234 5678")
    with page.expect_navigation():
        page.locator("form.contact-form button[type='submit']").click()
    match = re.fullmatch(r"/contacts/(\d+)", path_of(page))
    assert match, path_of(page)
    contact_url = f"{server.url}/contacts/{match.group(1)}"
    assert "王芳" in page.locator("h1").inner_text()
    assert page.locator("dd.phones a[href='tel:13812345678']").inner_text() == "138 1234 5678"
    assert page.locator("section.timeline").is_visible()
    assert_fits_phone(page)

    # ...and finds it again by the phone number, typed the international way.
    page.goto(f"{server.url}/contacts/")
    page.fill("#search-q", "+86 138-1234-5678")
    page.locator("form.filters .search-row button[type='submit']").click()
    # htmx swaps the results in after the answer arrives: until then the unfiltered list
    # (the person and the company created with her) is still on the page.
    page.wait_for_url(re.compile(r".*/contacts/\?q=.*"))
    rows = page.locator("#contact-results tr[data-contact]")
    expect(rows).to_have_count(1)
    assert "王芳" in rows.first.inner_text() and "138 1234 5678" in rows.first.inner_text()
    assert_fits_phone(page)
    with page.expect_navigation():
        rows.first.locator("a", has_text="王芳").click()
    assert page.url == contact_url

    # The other pages fit a phone too: edit form, import wizard, merge, custom fields.
    for path in (f"/contacts/{match.group(1)}/edit", "/contacts/import", "/contacts/merge", "/contacts/fields"):
        response = page.goto(server.url + path)
        assert response is not None and response.status == 200, path
        assert_fits_phone(page)

    # The same list in English.
    page.goto(f"{server.url}/lang/en?next=/contacts/")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Contacts"
    assert page.locator("a.btn-primary", has_text="New contact").is_visible()
    assert_fits_phone(page)
    page.goto(f"{server.url}/lang/zh?next=/contacts/")

    # A salesperson who does not own the contact cannot open it, nor find it.
    page.context.clear_cookies()
    page.goto(f"{server.url}/login")
    login(page, server.url, "alice", alice)
    response = page.goto(contact_url)
    assert response is not None and response.status == 404
    assert "王芳" not in page.content() and "138" not in page.locator("main").inner_text()
    assert_fits_phone(page, expected_errors=NOT_FOUND)
    page.goto(f"{server.url}/contacts/?q=13812345678")
    assert page.locator("#contact-results tr[data-contact]").count() == 0
    assert_fits_phone(page)

    # A user without the permission to see personal data sees the number masked.
    page.context.clear_cookies()
    page.goto(f"{server.url}/login")
    login(page, server.url, "vera", vera)
    response = page.goto(contact_url)
    assert response is not None and response.status == 200
    assert page.locator("dd.phones").inner_text() == "138****5678"
    assert "13812345678" not in page.content() and "138 1234 5678" not in page.content()
    assert page.locator(f"a[href='/contacts/{match.group(1)}/edit']").count() == 0
    assert_fits_phone(page)
    page.goto(f"{server.url}/contacts/")
    assert page.locator("#contact-results td.phone").first.inner_text() == "138****5678"
    assert_fits_phone(page)
