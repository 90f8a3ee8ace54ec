"""Contacts behind every door: a salesperson reaches no other salesperson's contact through any
route (page, API, export, search, merge, import); personal fields are masked without
``contacts.view_sensitive`` and cannot be changed without it; bad input of every kind is
answered with a 4xx and the error body, never a 500."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from kehu_plugins.contacts import api, importer, views
from tests.contacts_support import SQLITE_ONLY, Crm, crm, sqlite_template  # noqa: F401

ID = re.compile(r"{id(:int)?}")


def _contact_routes() -> list[tuple[str, str, str]]:
    """(method, URL template, kind) of every route that addresses one contact."""
    found = []
    for prefix, kind, routes in (("/api/contacts", "api", api.routes()), ("/contacts", "page", views.routes())):
        for route in routes:
            if not ID.search(route.path) or route.path.startswith(("/imports", "/import", "/fields", "/filters",
                                                                   "/saved-filters")):
                continue
            for method in sorted(route.methods - {"HEAD"}):
                found.append((method, prefix + ID.sub("{id}", route.path), kind))
    return found


def test_a_salesperson_reaches_no_other_salespersons_contact_through_any_door(crm: Crm) -> None:
    theirs = crm.create("bob", name="鲍勃的秘密客户", phone="13912345678", email="bob.secret@example.com",
                        street="秘密路9号")
    crm.create("alice", name="爱丽丝的客户", phone="13700000001")
    # carol is a salesperson who may also export, merge and import: more doors to try.
    crm.add_user("carol", roles=("sales",), permissions=("contacts.export", "contacts.merge", "contacts.import"))
    routes = _contact_routes()
    assert len(routes) >= 14, routes  # every contact route of both the API and the pages
    secrets = ("鲍勃的秘密客户", "13912345678", "139 1234 5678", "bob.secret", "秘密路")
    for login in ("alice", "carol"):
        client = crm.client(login)
        for method, template, kind in routes:
            url = template.format(id=theirs["id"])
            body: dict[str, Any] = {"json": {"name": "x", "confirm": True, "kind": "note", "body": "x",
                                             "channel": "sms", "status": "granted", "source": "x"}}
            if kind == "page":
                body = {"data": {"name": "x", "confirm": str(theirs["id"]), "body": "x", "kind": "note"}}
            response = client.request(method, url, follow_redirects=False, **(body if method != "GET" else {}))
            assert response.status_code in (403, 404), (login, method, url, response.status_code)
            assert not any(secret in response.text for secret in secrets), (login, method, url)
        # The list, search by phone and e-mail, filters by owner, the export and merging.
        for params in ({}, {"q": "13912345678"}, {"q": "+86 139-1234-5678"}, {"q": "BOB.SECRET@example.com"},
                       {"q": "秘密"}, {"owner": str(crm.ids["bob"])}):
            listed = client.get("/api/contacts", params=params).json()
            assert theirs["id"] not in [item["id"] for item in listed["items"]], (login, params)
            page = client.get("/contacts/", params=params)
            assert page.status_code == 200 and "鲍勃的秘密客户" not in page.text, (login, params)
    exported = crm.client("carol").get("/api/contacts/export", params={"format": "csv"})
    assert exported.status_code == 200 and "鲍勃" not in exported.content.decode("utf-8-sig")
    assert "爱丽丝" not in exported.content.decode("utf-8-sig")  # carol's export: carol's contacts only
    mine = crm.create("carol", name="卡罗尔的客户")
    merged = crm.client("carol").post("/api/contacts/merge", json={"survivor_id": mine["id"], "merged_id": theirs["id"]})
    assert merged.status_code == 404
    table = importer.Table(["姓名", "手机"], [(2, ["改名", "139 1234 5678"])])
    report = importer.Importer(crm.platform, crm.user("carol"), {"0": "name", "1": "phones"}).run(table)
    assert report.rejected == 1 and report.created == 0
    assert crm.client("bob").get(f"/api/contacts/{theirs['id']}").json()["name"] == "鲍勃的秘密客户"


def test_personal_fields_are_masked_and_not_writable_without_view_sensitive(crm: Crm) -> None:
    # A manager who may read and change every contact, but not see personal fields in full.
    crm.add_user("mia", permissions=("contacts.read", "contacts.read_all", "contacts.write", "contacts.write_all"))
    contact = crm.create("alice", name="王芳", phone="138 1234 5678", email="wang.fang@example.cn", street="南京路1号")
    mia = crm.client("mia")
    seen = mia.get(f"/api/contacts/{contact['id']}").json()
    assert seen["phone"] == "138****5678" and seen["emails"] == ["w***@example.cn"] and seen["street"] == "****"
    assert seen["masked"] is True
    refused = mia.patch(f"/api/contacts/{contact['id']}", json={"phone": "13900000000", "street": "x"})
    assert refused.status_code == 403
    assert set(refused.json()["error"]["fields"]) == {"phones", "street"}
    assert mia.patch(f"/api/contacts/{contact['id']}", json={"city": "上海市"}).status_code == 200
    # The edit form shows the masked values read-only; saving it leaves them as they were.
    form = mia.get(f"/contacts/{contact['id']}/edit")
    assert form.status_code == 200 and "138****5678" in form.text and "13812345678" not in form.text
    saved = mia.post(f"/contacts/{contact['id']}/edit", data={
        "name": "王芳", "kind": "person", "stage": "lead", "city": "杭州市", "phones": ["138****5678"],
        "version": str(seen["version"] + 1)}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    full = crm.client("alice").get(f"/api/contacts/{contact['id']}").json()
    assert full["phones"] == ["138 1234 5678"] and full["street"] == "南京路1号" and full["city"] == "杭州市"
    # Searching by the full number still finds it (exact search works on the blind index), masked.
    found = mia.get("/api/contacts", params={"q": "13812345678"}).json()["items"]
    assert [(item["id"], item["phone"]) for item in found] == [(contact["id"], "138****5678")]


@SQLITE_ONLY
def test_writes_work_while_the_key_is_rechecked(crm: Crm, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write re-reads which data key is active (the check runs every couple of seconds
    in a long-running process): it must not wait for SQLite's write lock, which the writing
    transaction itself holds."""
    from kehu import crypto

    monkeypatch.setattr(crypto, "ACTIVE_KEY_RECHECK_SECONDS", 0.0)
    started = time.monotonic()
    created = crm.client("boss").post("/api/contacts", json={"name": "钥匙", "phone": "13812340000",
                                                              "street": "长安街1号"})
    assert created.status_code == 201
    assert time.monotonic() - started < 10


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("post", "/api/contacts", {"content": b"not json", "headers": {"content-type": "application/json"}}, 400),
    ("post", "/api/contacts", {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 400),
    ("post", "/api/contacts", {"json": [1, 2]}, 400),
    ("post", "/api/contacts", {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}}, 400),
    ("post", "/api/contacts", {"content": b'{"name": "' + b"x" * 2_000_000 + b'"}',
                               "headers": {"content-type": "application/json"}}, 413),
    ("post", "/api/contacts", {}, 422),
    ("post", "/api/contacts", {"json": {"name": ["a"]}}, 422),
    ("post", "/api/contacts", {"json": {"name": {"a": 1}}}, 422),
    ("post", "/api/contacts", {"json": {"name": "a\x00b"}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x" * 100_000}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x", "phone": {"a": 1}}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x", "phones": ["1" * 300]}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x", "email": "a@b.cc\x00"}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x", "tags": {"a": 1}}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x", "owner_id": 10**30}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x", "company_id": -1}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x", "custom": [1]}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x", "preferences": "likes tea"}}, 422),
    ("post", "/api/contacts", {"json": {"name": "x", "stage": 5}}, 422),
    ("get", "/api/contacts/abc", {}, 404),
    ("get", "/api/contacts/-1", {}, 404),
    ("get", f"/api/contacts/{2**64}", {}, 404),
    ("patch", f"/api/contacts/{2**63}", {"json": {"name": "y"}}, 404),
    ("delete", f"/api/contacts/{2**63}", {}, 404),
    ("patch", "/api/contacts/{id}", {"json": {"version": 10**30}}, 422),
    ("patch", "/api/contacts/{id}", {"headers": {"If-Match": "junk"}, "json": {"city": "z"}}, 422),
    ("get", "/api/contacts?limit=abc", {}, 422),
    ("get", "/api/contacts?cursor=!!!", {}, 422),
    ("get", f"/api/contacts?company_id={2**70}", {}, 422),
    ("get", f"/api/contacts?owner={2**70}", {}, 422),
    ("get", "/api/contacts?created_from=2024-13-45", {}, 422),
    ("get", "/api/contacts?q=%00", {}, 422),
    ("get", "/api/contacts?sort=password", {}, 422),
    ("post", "/api/contacts/merge", {"json": {"survivor_id": 2**63, "merged_id": "a"}}, 404),
    ("post", "/api/contacts/merge", {"json": {"survivor_id": "{id}", "merged_id": "{id}", "fields": [1]}}, 422),
    ("post", "/api/contacts/{id}/activities", {"json": {"kind": ["x"], "body": None}}, 422),
    ("post", "/api/contacts/{id}/consents", {"json": {"channel": None, "status": 1}}, 422),
    ("post", "/api/contacts/fields", {"json": {"label": {"zh": ["x"]}, "kind": "choice", "choices": {"a": 1}}}, 422),
    ("post", "/api/contacts/fields", {"json": {"label": "x", "kind": "text", "position": "9" * 40}}, 422),
    ("post", "/api/contacts/saved-filters", {"json": {"name": ["a"], "query": None}}, 422),
    ("delete", f"/api/contacts/saved-filters/{2**63}", {}, 404),
    ("get", f"/api/contacts/imports/{2**63}", {}, 404),
    ("post", "/api/contacts/imports", {"files": {"file": ("a.csv", b"\x00\x01\x02", "text/csv")}}, 422),
    ("post", "/api/contacts/imports", {"files": {"file": ("a.xlsx", b"PK junk", "application/octet-stream")}}, 422),
    ("post", "/api/contacts/imports", {"files": {"file": ("a.csv", b"name\nx\n", "text/csv")},
                                       "data": {"mapping": "{nope"}}, 422),
    ("get", "/api/contacts/export?format=pdf", {}, 422),
    ("get", "/contacts/?page=99999999999999999999", {}, 200),
    ("get", "/contacts/?q=%00", {}, 422),
    ("get", f"/contacts/{2**64}", {}, 404),
    ("post", "/contacts/new", {"data": {"name": "a\x00", "kind": "person"}}, 422),
    ("post", "/contacts/new", {"data": {"name": "x" * 300, "kind": "person", "phones": ["123"]}}, 422),
]


def test_bad_input_gets_a_4xx_with_the_error_body_never_a_500(crm: Crm) -> None:
    contact = crm.create("boss", name="靶子", phone="13812345678")
    client = crm.client("boss")
    for method, url, options, expected in BAD_REQUESTS:
        url = url.replace("{id}", str(contact["id"]))
        if "json" in options:
            options = {**options, "json": {k: (contact["id"] if v == "{id}" else v) for k, v in options["json"].items()}
                       if isinstance(options["json"], dict) else options["json"]}
        response = client.request(method, url, **options)
        assert response.status_code == expected, (method, url, str(options)[:80], response.status_code,
                                                  response.text[:300])
        if url.startswith("/api/"):
            error = response.json()["error"]
            assert set(error) >= {"code", "message", "fields"} and error["message"], (method, url)
    # Nothing of it was stored.
    assert [item["name"] for item in client.get("/api/contacts").json()["items"]] == ["靶子"]
