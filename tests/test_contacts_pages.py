"""The contacts pages: list and search, create and edit forms with inline validation,
duplicates and edit conflicts, the contact page with its timeline and slot, record rules and
masking, languages, custom fields administration and the import wizard."""

from __future__ import annotations

import re

from tests.contacts_support import SQLITE_ONLY, Crm, crm, sqlite_template  # noqa: F401
from tests.plugins_for_tests import contacts_probe


def test_list_page_searches_filters_and_saves_filters(crm: Crm) -> None:
    crm.create("boss", name="王芳", phone="13811112222", city="上海市", tags=["VIP"])
    crm.create("boss", name="李强", city="杭州市")
    boss = crm.client("boss")
    page = boss.get("/contacts/")
    assert page.status_code == 200 and "王芳" in page.text and "李强" in page.text
    assert '<html lang="zh-CN">' in page.text and "客户" in page.text
    found = boss.get("/contacts/", params={"q": "+86 138-1111-2222"})
    assert "王芳" in found.text and "李强" not in found.text
    assert "138 1111 2222" in found.text
    filtered = boss.get("/contacts/", params={"city": "杭州市"})
    assert "李强" in filtered.text and "王芳" not in filtered.text
    fragment = boss.get("/contacts/", params={"q": "王"}, headers={"HX-Request": "true", "HX-Target": "contact-results"})
    assert fragment.text.lstrip().startswith('<section id="contact-results"')
    saved = boss.post("/contacts/filters", data={"name": "上海VIP", "query": "city=上海市&tag=VIP"}, follow_redirects=False)
    assert saved.status_code == 303
    assert "上海VIP" in boss.get("/contacts/").text
    assert "上海VIP" not in crm.client("alice").get("/contacts/").text  # per user
    assert crm.client("boss").get("/api/contacts/saved-filters").json()["items"][0]["query"] == "city=上海市&tag=VIP"


def test_list_pages_through_fifty_at_a_time(crm: Crm) -> None:
    from kehu_plugins.contacts import service

    boss_user = crm.user("boss")
    with crm.platform.session() as db:
        for number in range(55):
            data = service.parse_input({"name": f"批量{number:02d}"}, [], creating=True)
            service.create_contact(crm.platform, db, boss_user, data)
    boss = crm.client("boss")
    first = boss.get("/contacts/", params={"sort": "name"})
    assert first.text.count('data-contact="') == 50 and "批量49" in first.text and "批量50" not in first.text
    assert 'rel="next"' in first.text
    second = boss.get("/contacts/", params={"sort": "name", "page": "2"})
    assert second.text.count('data-contact="') == 5 and "批量54" in second.text


@SQLITE_ONLY
def test_create_form_shows_inline_errors_and_duplicates(crm: Crm) -> None:
    boss = crm.client("boss")
    form = boss.get("/contacts/new")
    assert form.status_code == 200 and 'name="phones"' in form.text
    bad = boss.post("/contacts/new", data={"name": "", "phones": ["123"], "emails": ["x@"], "kind": "person",
                                           "stage": "lead"})
    assert bad.status_code == 422
    assert re.search(r'id="name-error"[^>]*>', bad.text) and 'id="phones-error"' in bad.text
    assert 'value="123"' in bad.text  # what was typed is kept
    created = boss.post("/contacts/new", data={"name": "新客户", "phones": ["13812340001", ""], "kind": "person",
                                               "stage": "lead", "tags": "VIP, 展会"}, follow_redirects=False)
    assert created.status_code == 303
    contact_url = created.headers["location"]
    duplicate = boss.post("/contacts/new", data={"name": "另一个", "phones": ["138 1234 0001"], "kind": "person",
                                                 "stage": "lead"})
    assert duplicate.status_code == 409 and f'href="{contact_url}"' in duplicate.text
    assert 'name="allow_duplicate" value="1"' in duplicate.text
    forced = boss.post("/contacts/new", data={"name": "另一个", "phones": ["138 1234 0001"], "kind": "person",
                                              "stage": "lead", "allow_duplicate": "1"}, follow_redirects=False)
    assert forced.status_code == 303


def test_edit_form_conflict_shows_the_other_change(crm: Crm) -> None:
    contact = crm.create("boss", name="编辑", city="上海市")
    boss = crm.client("boss")
    form = boss.get(f"/contacts/{contact['id']}/edit")
    assert 'name="version" value="1"' in form.text
    crm.client("boss").patch(f"/api/contacts/{contact['id']}", json={"city": "北京市"})
    stale = boss.post(f"/contacts/{contact['id']}/edit", data={"name": "编辑", "city": "广州市", "version": "1",
                                                                "kind": "person", "stage": "lead"})
    assert stale.status_code == 409
    assert "北京市" in stale.text and 'value="广州市"' in stale.text and 'name="version" value="2"' in stale.text
    saved = boss.post(f"/contacts/{contact['id']}/edit", data={"name": "编辑", "city": "广州市", "version": "2",
                                                                "kind": "person", "stage": "lead"},
                      follow_redirects=False)
    assert saved.status_code == 303
    assert boss.get(f"/api/contacts/{contact['id']}").json()["city"] == "广州市"


@SQLITE_ONLY
def test_contact_page_timeline_slot_and_activity(crm: Crm) -> None:
    contact = crm.create("alice", name="详情", phone="13812345678", company="某公司")
    alice = crm.client("alice")
    page = alice.get(f"/contacts/{contact['id']}")
    assert page.status_code == 200
    assert f"probe panel for #{contact['id']}" in page.text and 'data-slot="contacts.detail.panels"' in page.text
    assert f"probe entry for {contact['id']}" in page.text  # contacts_timeline of another plugin
    assert contacts_probe.calls("slot")[-1] == {"id": contact["id"], "name": "详情", "dict_id": contact["id"]}
    assert contacts_probe.calls("contacts_timeline")[-1] == {"contact_id": contact["id"], "user": "alice"}
    assert 'href="tel:13812345678"' in page.text
    added = alice.post(f"/contacts/{contact['id']}/activities", data={"kind": "call", "body": "约了下周见面"},
                       headers={"HX-Request": "true"})
    assert added.status_code == 200 and added.text.lstrip().startswith('<section class="panel timeline"')
    assert "约了下周见面" in added.text
    empty = alice.post(f"/contacts/{contact['id']}/activities", data={"kind": "call", "body": " "},
                       headers={"HX-Request": "true"})
    assert 'class="field-error"' in empty.text


def test_salesperson_cannot_open_another_ones_contact_and_viewer_sees_masks(crm: Crm) -> None:
    theirs = crm.create("bob", name="鲍勃的客户", phone="13812345678", street="秘密路8号")
    alice = crm.client("alice")
    assert alice.get(f"/contacts/{theirs['id']}").status_code == 404
    assert alice.get(f"/contacts/{theirs['id']}/edit").status_code == 404
    assert alice.post(f"/contacts/{theirs['id']}/activities", data={"kind": "note", "body": "x"}).status_code == 404
    assert "鲍勃的客户" not in alice.get("/contacts/", params={"q": "13812345678"}).text
    vera = crm.client("vera").get(f"/contacts/{theirs['id']}")
    assert vera.status_code == 200 and "138****5678" in vera.text
    assert "13812345678" not in vera.text and "138 1234 5678" not in vera.text and "秘密路" not in vera.text
    assert f"/contacts/{theirs['id']}/edit" not in vera.text
    assert crm.client("vera").get("/contacts/new").status_code == 403


@SQLITE_ONLY
def test_english_and_chinese(crm: Crm) -> None:
    boss = crm.client("boss")
    assert "新建客户" in boss.get("/contacts/").text
    boss.get("/lang/en")
    english = boss.get("/contacts/")
    assert "New contact" in english.text and "新建客户" not in english.text
    boss.get("/lang/zh")


def test_custom_fields_admin_and_forms(crm: Crm) -> None:
    boss = crm.client("boss")
    assert crm.client("alice").get("/contacts/fields").status_code == 403
    added = boss.post("/contacts/fields", data={"label_zh": "行业", "label_en": "Industry", "kind": "choice",
                                                "choices": "茶叶\n电子", "show_in_list": "on", "required": "on"},
                      follow_redirects=False)
    assert added.status_code == 303
    missing = boss.post("/contacts/fields", data={"label_zh": "", "label_en": "", "kind": "choice", "choices": ""})
    assert missing.status_code == 422 and 'class="field-error"' in missing.text
    form = boss.get("/contacts/new")
    assert 'name="custom.industry"' in form.text and "茶叶" in form.text
    required = boss.post("/contacts/new", data={"name": "有行业", "kind": "person", "stage": "lead"})
    assert required.status_code == 422 and 'id="custom.industry-error"' in required.text
    created = boss.post("/contacts/new", data={"name": "有行业", "kind": "person", "stage": "lead",
                                               "custom.industry": "电子"}, follow_redirects=False)
    assert created.status_code == 303
    listing = boss.get("/contacts/", params={"cf.industry": "电子"})
    assert "有行业" in listing.text and "<th>行业</th>" in listing.text
    field_id = boss.get("/api/contacts/fields").json()["items"][0]["id"]
    boss.post(f"/contacts/fields/{field_id}", data={"label_zh": "行业", "label_en": "Industry",
                                                    "choices": "茶叶\n电子\n餐饮"})
    item = boss.get("/api/contacts/fields").json()["items"][0]
    assert item["choices"] == ["茶叶", "电子", "餐饮"] and item["active"] is False and item["required"] is False


@SQLITE_ONLY
def test_delete_from_the_contact_page(crm: Crm) -> None:
    contact = crm.create("boss", name="删除我")
    boss = crm.client("boss")
    assert crm.client("alice").post(f"/contacts/{contact['id']}/delete").status_code == 403
    done = boss.post(f"/contacts/{contact['id']}/delete", follow_redirects=False)
    assert done.status_code == 303 and boss.get(f"/contacts/{contact['id']}").status_code == 404


@SQLITE_ONLY
def test_pages_need_a_login(crm: Crm) -> None:
    from tests.conftest import web_client

    response = web_client(crm.settings).get("/contacts/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_every_message_of_the_plugin_has_a_chinese_translation() -> None:
    """Message ids are English; each one the code and the templates use is in the Chinese
    catalog, so no page shows English in the middle of Chinese."""
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    import kehu_plugins.contacts

    root = Path(kehu_plugins.contacts.__file__).parent
    used: dict[str, str] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
            str(root), [("**.py", "python"), ("**/templates/**.html", "jinja2")],
            options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}},
            keywords={"_": None, "gettext": None, "ngettext": (1, 2)}):
        for text in message if isinstance(message, tuple) else (message,):
            if text:
                used.setdefault(text, f"{filename}:{line}")
    with (root / "locale" / "zh_Hans" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        translated = {m.id: m.string for m in read_po(handle) if m.id and m.string}
    assert len(used) > 250  # the extraction found the templates' messages too
    missing = {text: where for text, where in used.items() if text not in translated}
    assert not missing, missing
    placeholders = re.compile(r"%\(\w+\)s")
    wrong = [text for text in used if text in translated and
             sorted(placeholders.findall(text)) != sorted(placeholders.findall(translated[text]))]
    assert not wrong, wrong
