"""The read paths without model objects: :func:`display.views` (the API list, the API's contact,
the contact page) must give exactly what :meth:`ContactView.of` gives for the loaded
:class:`Contact`, masking and permissions included, with a fixed number of queries however many
contacts a page holds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from kehu.errors import NotFound
from tests.contacts_support import SQLITE_ONLY, Crm, crm, sqlite_template  # noqa: F401

FIELDS = [
    {"key": "industry", "label": {"zh": "行业", "en": "Industry"}, "kind": "choice", "choices": ["制造", "零售"],
     "show_in_list": True},
    {"key": "size", "label": {"zh": "规模", "en": "Size"}, "kind": "number", "show_in_list": True},
    {"key": "channels", "label": {"zh": "渠道", "en": "Channels"}, "kind": "multi_choice",
     "choices": ["微信", "A&B"], "show_in_list": True},
    {"key": "remark", "label": {"zh": "备注", "en": "Remark"}, "kind": "text"},
]


def _varied_contacts(crm: Crm) -> dict[str, int]:
    """A company, people with and without it, several points of each kind, tags, custom values,
    another owner, an erased person."""
    boss = crm.client("boss")
    for field in FIELDS:
        assert boss.post("/api/contacts/fields", json=field).status_code == 201
    company = crm.create("boss", name="上海<科技>有限公司", kind="company", phone="021-6888 1234", tags=["VIP"],
                         province="上海市", city="上海市", street="世纪大道100号", address_detail="3楼",
                         custom={"industry": "制造", "size": 120})
    full = crm.create("boss", name="王芳", company_id=company["id"], phones=["13811112222", "+86 139 0000 1111"],
                      emails=["wang@corp.cn", "fang@x.com"], wechat_ids=["wangfang88"], openid="oABC123_xyz789",
                      tags=["VIP", "a b&c"], street="南京路1号", notes="喜欢<茶>", preferences={"tea": True},
                      custom={"industry": "零售", "size": 3.5, "channels": ["微信", "A&B"], "remark": "x"})
    alices = crm.create("alice", name="李强", phone="15500001111", company="另一家公司", city="杭州市")
    bare = crm.create("boss", name="赵六")
    erased = crm.create("boss", name="Erased One", phone="13700001111", email="e@x.cn", tags=["gone"],
                        company_id=company["id"])
    assert boss.post(f"/api/contacts/{erased['id']}/erase", json={"confirm": True}).status_code == 204
    return {"company": company["id"], "full": full["id"], "alices": alices["id"], "alices_company":
            alices["company_id"], "bare": bare["id"], "erased": erased["id"]}


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL statements run meanwhile, by any engine (the web application boots its own)."""
    statements: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", remember)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", remember)


@pytest.mark.parametrize("login", ["boss", "alice", "vera"])
def test_views_read_with_plain_queries_equal_the_views_of_loaded_contacts(crm: Crm, login: str) -> None:
    from kehu_plugins.contacts import display, listing
    from kehu_plugins.contacts.models import Contact

    ids = _varied_contacts(crm)
    user = crm.user(login)
    with crm.platform.reading() as db:
        contacts = list(db.scalars(select(Contact).order_by(Contact.id)))
        expected = {c.id: display.ContactView.of(crm.platform, db, user, c) for c in contacts}
        visible = {c.id for c in contacts if login != "alice" or c.owner_id == user.id}
        assert {ids["alices"], ids["alices_company"]} <= visible
        for contact_id in ids.values():
            if contact_id in visible:
                assert listing.visible_view(crm.platform, db, user, contact_id) == expected[contact_id]
            else:
                with pytest.raises(NotFound):
                    listing.visible_view(crm.platform, db, user, contact_id)
        listed = listing.page(crm.platform, db, user, listing.ListQuery(sort="id", limit=500), shape="views")
    assert listed.items and listed.items == [expected[view.id] for view in listed.items]
    masked = listed.items[0].masked
    assert masked is (login == "vera")
    if login != "alice":
        full = expected[ids["full"]]
        assert len(full.phones) == 2 and len(full.emails) == 2 and full.wechat_ids and full.openids
        assert full.company_name == "上海<科技>有限公司" and full.custom["channels"] == ["微信", "A&B"]
        assert ("****" in full.phones[0]) is masked and (full.street == "****") is masked
        assert expected[ids["erased"]].erased


def test_the_api_and_the_contact_page_read_a_fixed_number_of_queries(crm: Crm) -> None:
    company = crm.create("boss", name="大公司", kind="company")
    people = [crm.create("boss", name=f"员工{number}", company=f"公司{number}", phones=[f"1380000{number:04d}"],
                         tags=["VIP"]) for number in range(8)]
    people += [crm.create("boss", name=f"职员{number}", company_id=company["id"]) for number in range(4)]
    boss = crm.client("boss")
    boss.get("/api/contacts/")  # the client's first request does more (its session)
    with _statements() as few:
        assert len(boss.get("/api/contacts/", params={"kind": "person", "limit": 2}).json()["items"]) == 2
    with _statements() as many:
        assert len(boss.get("/api/contacts/", params={"kind": "person", "limit": 11}).json()["items"]) == 11
    assert len(many) == len(few)  # none per contact (for its company, owner, points or tags)
    with _statements() as one:
        assert boss.get(f"/api/contacts/{people[-1]['id']}").json()["company"] == "大公司"
    with _statements() as page:
        assert boss.get(f"/contacts/{company['id']}").text.count('<li><a href="/contacts/') == 4
    assert len([s for s in one if "FROM contacts_contact_point" in s]) == 1
    # No model objects: loading one reads every column, the blind index (lookup) too.
    assert not any("lookup" in s for s in one + page if "FROM contacts_contact_point" in s)


@SQLITE_ONLY
def test_a_contact_nobody_may_see_is_not_found_whatever_the_id(crm: Crm) -> None:
    from kehu_plugins.contacts import listing

    mine = crm.create("alice", name="Alice's")
    with crm.platform.reading() as db:
        for login, contact_id in [("bob", mine["id"]), ("alice", 10**12), ("alice", "x"), ("alice", -1),
                                  ("alice", None)]:
            with pytest.raises(NotFound):
                listing.visible_view(crm.platform, db, crm.user(login), contact_id)
            with pytest.raises(NotFound):
                listing.visible_id(crm.platform, db, crm.user(login), contact_id)
        assert listing.visible_id(crm.platform, db, crm.user("alice"), str(mine["id"])) == mine["id"]
    assert crm.client("bob").get(f"/api/contacts/{mine['id']}/timeline").status_code == 404
    assert crm.client("bob").get(f"/api/contacts/{mine['id']}/consents").status_code == 404


@pytest.mark.parametrize(("value", "shown"), [
    (None, "—"), ("", "—"), ([], "—"), ("a<b", "a<b"), (3, "3"), (3.5, "3.5"), (True, "True"), (0, "0"),
    (["微信", "A&B"], "微信, A&B"), ([1, 2], "1, 2"),
])
def test_custom_values_read_as_the_pages_always_showed_them(value: Any, shown: str) -> None:
    from kehu_plugins.contacts import display

    assert display.custom_text(value) == shown


@SQLITE_ONLY
def test_list_and_contact_page_show_custom_columns_and_values_escaped(crm: Crm) -> None:
    ids = _varied_contacts(crm)
    boss = crm.client("boss")
    listed = boss.get("/contacts/", params={"sort": "name"}).text
    assert "<th>行业</th><th>规模</th><th>渠道</th>" in listed and "<th>备注</th>" not in listed
    assert '<td data-label="渠道">微信, A&amp;B</td>' in listed and '<td data-label="规模">3.5</td>' in listed
    assert '<td data-label="行业">—</td>' in listed
    page = boss.get(f"/contacts/{ids['full']}").text
    assert "<dt>渠道</dt><dd>微信, A&amp;B</dd>" in page and "<dt>备注</dt><dd>x</dd>" in page
    assert "上海&lt;科技&gt;有限公司" in page and "喜欢&lt;茶&gt;" in page


def test_timeline_names_authors_and_changed_fields(crm: Crm) -> None:
    contact = crm.create("alice", name="时间线", city="上海市")
    alice = crm.client("alice")
    alice.patch(f"/api/contacts/{contact['id']}", json={"city": "北京市", "phones": ["13811112222"],
                                                        "version": contact["version"]})
    alice.post(f"/api/contacts/{contact['id']}/activities", json={"kind": "call", "body": "聊了"})
    alice.cookies.set("kehu_lang", "en")
    items = alice.get(f"/api/contacts/{contact['id']}/timeline").json()["items"]
    titles = [item["title"] for item in items if item["source"] == "contacts"]
    assert "Call · alice" in titles
    assert "alice changed City, Phone" in titles or "alice changed Phone, City" in titles
    assert "alice created the contact" in titles


def test_pages_of_a_whole_list_hold_every_contact_once_and_rules_still_apply_after(crm: Crm) -> None:
    """An administrator's unfiltered list reuses its statements from page to page (the offset is
    a parameter); a salesperson asking next still gets only their own contacts."""
    mine = {crm.create("alice", name=f"甲{n}", phone=f"1380000{n:04d}")["id"] for n in range(4)}
    others = {crm.create("bob", name=f"乙{n}")["id"] for n in range(9)}
    boss = crm.client("boss")
    seen: list[int] = []
    for offset in range(0, 14, 5):
        answer = boss.get(f"/api/contacts/?limit=5&offset={offset}")
        assert answer.status_code == 200
        seen += [item["id"] for item in answer.json()["items"]]
    assert sorted(seen) == sorted(mine | others)  # each once, none missed
    first = boss.get("/api/contacts/?limit=5").json()["items"]
    assert [item["id"] for item in first] == seen[:5]  # newest first, as before
    alice = crm.client("alice")
    assert {item["id"] for item in alice.get("/api/contacts/?limit=50").json()["items"]} == mine
    assert {item["id"] for item in alice.get("/api/contacts/?limit=2&offset=2").json()["items"]} < mine
    assert alice.get("/api/contacts/?limit=2&offset=2").json()["total"] == 4
    bobs = crm.client("bob").get("/api/contacts/?limit=5&offset=5").json()  # another salesperson, after her
    assert {item["id"] for item in bobs["items"]} < others and bobs["total"] == 9
    page = crm.client("bob").get("/contacts/")
    assert page.status_code == 200 and "甲0" not in page.text and "乙0" in page.text


def test_tags_come_in_the_same_order_everywhere_and_on_every_database(crm: Crm) -> None:
    created = crm.create("boss", name="顺序", tags=["banana", "茶", "Apple", "apple"])
    expected = ["Apple", "apple", "banana", "茶"]  # code point order, not a collation's
    boss = crm.client("boss")
    assert created["tags"] == expected
    assert boss.get(f"/api/contacts/{created['id']}").json()["tags"] == expected
    assert [item["tags"] for item in boss.get("/api/contacts/?q=顺序").json()["items"]] == [expected]
    row = boss.get("/contacts/?q=顺序").text.split(f'data-contact="{created["id"]}"', 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'<a class="tag" href="[^"]*">([^<]*)</a>', row) == expected  # the list page too


def _list_row(client: Any, contact_id: int, search: str) -> str:
    page = client.get("/contacts/", params={"q": search}).text
    return page.split(f'data-contact="{contact_id}"', 1)[1].split("</tr>", 1)[0]


def test_the_list_shows_each_contact_first_phone_number_masked_as_the_user_may_see_it(crm: Crm) -> None:
    boss, vera = crm.client("boss"), crm.client("vera")
    two = crm.create("boss", name="两个号码", phones=["13811112222", "13900003333"])
    without = crm.create("boss", name="没有号码", email="nophone@x.cn")
    assert "138 1111 2222" in _list_row(boss, two["id"], "两个号码")
    assert "139 0000 3333" not in _list_row(boss, two["id"], "两个号码")
    assert re.search(r'class="phone">\s*</td>', _list_row(boss, without["id"], "没有号码"))
    masked = _list_row(vera, two["id"], "两个号码")
    assert "138 1111 2222" not in masked and "*" in masked

    # Reordered: the new first one is listed.
    assert boss.patch(f"/api/contacts/{two['id']}", json={"phones": ["13900003333", "13811112222"]}).status_code == 200
    assert "139 0000 3333" in _list_row(boss, two["id"], "两个号码")
    assert "138 1111 2222" not in _list_row(boss, two["id"], "两个号码")

    # Merged: the survivor keeps its own first number, the merged one's come after it.
    merged = crm.create("boss", name="被合并", phone="13700004444")
    answer = boss.post("/api/contacts/merge", json={"survivor_id": merged["id"], "merged_id": two["id"]})
    assert answer.status_code == 200, answer.text
    row = _list_row(boss, merged["id"], "被合并")
    assert "137 0000 4444" in row and "139 0000 3333" not in row
