"""The contacts JSON API: CRUD, search, paging, filters, record rules, masking, optimistic
locking, duplicates and validation, on SQLite (and PostgreSQL when configured)."""

from __future__ import annotations

import pytest

from tests.contacts_support import SQLITE_ONLY, Crm, crm, sqlite_template  # noqa: F401

PHONE_FORMATS = ["13812345678", "138 1234 5678", "138-1234-5678", "+86 138 1234 5678", "+8613812345678",
                 "0086 138 1234 5678", "86 13812345678", "(+86) 138-1234-5678", "１３８１２３４５６７８"]


def test_create_read_update_delete(crm: Crm) -> None:
    api = crm.client("boss")
    created = crm.create("boss", name="王芳", phone="138 1234 5678", email="Wang.Fang@Example.CN",
                         company="上海云帆贸易有限公司", position="采购经理", province="上海市", city="上海市",
                         district="浦东新区", street="世纪大道100号", tags=["VIP", "展会"], stage="customer")
    assert created["phones"] == ["138 1234 5678"] and created["phone"] == "138 1234 5678"
    assert created["emails"] == ["wang.fang@example.cn"]
    assert created["company"] == "上海云帆贸易有限公司" and created["company_id"]
    assert created["tags"] == ["VIP", "展会"] and created["version"] == 1
    assert created["owner_id"] == crm.ids["boss"]

    contact_id = created["id"]
    got = api.get(f"/api/contacts/{contact_id}")
    assert got.status_code == 200 and got.json() == created and got.headers["etag"] == '"1"'

    changed = api.patch(f"/api/contacts/{contact_id}", json={"city": "苏州市", "phones": ["13812345678", "021-6888 8888"],
                                                             "version": 1})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["city"] == "苏州市" and body["version"] == 2
    assert body["phones"] == ["138 1234 5678", "021 6888 8888"]
    assert body["street"] == "世纪大道100号"  # untouched fields stay

    assert api.delete(f"/api/contacts/{contact_id}").status_code == 204
    assert api.get(f"/api/contacts/{contact_id}").status_code == 404
    # The company is a contact too, and stays.
    assert api.get(f"/api/contacts/{created['company_id']}").json()["kind"] == "company"


@SQLITE_ONLY
def test_post_without_trailing_slash_reaches_the_collection(crm: Crm) -> None:
    response = crm.client("boss").post("/api/contacts", json={"name": "赵六"})
    assert response.status_code == 201, response.text


def test_search_by_phone_in_every_format(crm: Crm) -> None:
    target = crm.create("boss", name="李强", phone="+86 138-1234-5678")
    crm.create("boss", name="李强的同事", phone="13900001111")
    for query in PHONE_FORMATS:
        found = crm.client("boss").get("/api/contacts/", params={"q": query}).json()
        assert [item["id"] for item in found["items"]] == [target["id"]], query
        assert found["total"] == 1


def test_search_by_email_name_and_company(crm: Crm) -> None:
    a = crm.create("boss", name="陈静", email="chenjing@qinghe.example.cn", company="杭州青禾茶业")
    b = crm.create("boss", name="陈静怡", company="深圳极光电子")
    api = crm.client("boss")

    def ids(q: str) -> set[int]:
        return {item["id"] for item in api.get("/api/contacts/", params={"q": q}).json()["items"]}

    assert ids(" ChenJing@QingHe.Example.CN ") == {a["id"]}
    assert ids("陈静") == {a["id"], b["id"]}
    assert ids("青禾") == {a["id"], a["company_id"]}
    assert ids("静怡") == {b["id"]}
    assert ids("chenjing@qinghe") == set()  # e-mails match exactly (blind index), not by part
    assert ids("100%_") == set()  # LIKE wildcards are escaped


def test_paging_sorting_and_filters(crm: Crm) -> None:
    api = crm.client("boss")
    for number in range(7):
        crm.create("boss", name=f"客户{number}", city="杭州市" if number % 2 else "上海市",
                   tags=["VIP"] if number < 3 else [], stage="customer" if number == 6 else "lead")
    first = api.get("/api/contacts/", params={"limit": 3, "sort": "name"}).json()
    assert first["total"] == 7 and [i["name"] for i in first["items"]] == ["客户0", "客户1", "客户2"]
    second = api.get("/api/contacts/", params={"limit": 3, "sort": "name", "cursor": first["next_cursor"]}).json()
    assert [i["name"] for i in second["items"]] == ["客户3", "客户4", "客户5"]
    third = api.get("/api/contacts/", params={"limit": 3, "sort": "name", "cursor": second["next_cursor"]}).json()
    assert [i["name"] for i in third["items"]] == ["客户6"] and third["next_cursor"] is None
    by_offset = api.get("/api/contacts/", params={"limit": 2, "offset": 2, "sort": "-name"}).json()
    assert [i["name"] for i in by_offset["items"]] == ["客户4", "客户3"]
    newest = api.get("/api/contacts/", params={"limit": 2}).json()
    assert [i["name"] for i in newest["items"]] == ["客户6", "客户5"]
    newest_next = api.get("/api/contacts/", params={"limit": 2, "cursor": newest["next_cursor"]}).json()
    assert [i["name"] for i in newest_next["items"]] == ["客户4", "客户3"]

    def names(**params: str) -> list[str]:
        return sorted(i["name"] for i in api.get("/api/contacts/", params=params).json()["items"])

    assert names(city="杭州市") == ["客户1", "客户3", "客户5"]
    assert names(tag="VIP", city="上海市") == ["客户0", "客户2"]
    # A common tag is tested contact by contact, a rare one read from the tag index: same answer.
    from kehu_plugins.contacts import listing

    rare = api.get("/api/contacts/", params={"tag": "VIP", "limit": 2}).json()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(listing, "COMMON_TAG", 1)
        common = api.get("/api/contacts/", params={"tag": "VIP", "limit": 2}).json()
        assert names(tag="VIP", city="上海市") == ["客户0", "客户2"]
    assert common == rare and rare["total"] == 3 and [i["name"] for i in rare["items"]] == ["客户2", "客户1"]
    assert names(stage="customer") == ["客户6"]
    assert names(owner="me", kind="person", created_from="2000-01-01", created_to="2999-12-31") == [
        f"客户{n}" for n in range(7)]
    assert names(created_to="2000-01-01") == []
    bad = api.get("/api/contacts/", params={"sort": "password", "created_from": "yesterday"})
    assert bad.status_code == 422
    assert set(bad.json()["error"]["fields"]) == {"sort", "created_from"}


def test_custom_fields_validated_stored_and_filtered(crm: Crm) -> None:
    api = crm.client("boss")
    for definition in ({"label": {"zh": "年采购额", "en": "Annual purchases"}, "kind": "number", "key": "annual"},
                       {"label": "行业", "kind": "choice", "key": "industry", "choices": ["茶叶", "电子"]},
                       {"label": "兴趣", "kind": "multi_choice", "key": "interests", "choices": ["新品", "促销"]},
                       {"label": "签约日", "kind": "date", "key": "signed", "required": False}):
        response = api.post("/api/contacts/fields", json=definition)
        assert response.status_code == 201, response.text
    assert crm.client("alice").post("/api/contacts/fields", json={"label": "x", "kind": "text"}).status_code == 403

    bad = api.post("/api/contacts/", json={"name": "甲", "custom": {"annual": "lots", "industry": "钢铁",
                                                                     "signed": "31/02/2024", "nope": 1}})
    assert bad.status_code == 422
    assert set(bad.json()["error"]["fields"]) == {"custom.annual", "custom.industry", "custom.signed", "custom.nope"}

    crm.create("boss", name="甲", custom={"annual": "1,200,000", "industry": "茶叶", "interests": ["新品", "促销"],
                                          "signed": "2024/03/01"})
    crm.create("boss", name="乙", custom={"annual": 50000, "industry": "电子", "interests": ["促销"]})
    crm.create("boss", name="丙")
    got = api.get("/api/contacts/", params={"q": "甲"}).json()["items"][0]["custom"]
    assert got == {"annual": 1200000, "industry": "茶叶", "interests": ["新品", "促销"], "signed": "2024-03-01"}

    def names(**params: str) -> list[str]:
        return sorted(i["name"] for i in api.get("/api/contacts/", params=params).json()["items"])

    assert names(**{"cf.industry": "电子"}) == ["乙"]
    assert names(**{"cf.annual.min": "100000"}) == ["甲"]
    assert names(**{"cf.annual.max": "100000"}) == ["乙"]
    assert names(**{"cf.interests": "促销"}) == ["乙", "甲"]
    assert names(**{"cf.interests": "新品"}) == ["甲"]
    assert names(**{"cf.signed.min": "2024-01-01", "cf.signed.max": "2024-12-31"}) == ["甲"]


def test_salesperson_sees_and_changes_only_own_contacts(crm: Crm) -> None:
    mine = crm.create("alice", name="爱丽丝的客户", phone="13700000001")
    theirs = crm.create("bob", name="鲍勃的客户", phone="13700000002", email="bob.client@example.com")
    alice = crm.client("alice")
    assert {i["id"] for i in alice.get("/api/contacts/").json()["items"]} == {mine["id"]}
    assert alice.get(f"/api/contacts/{theirs['id']}").status_code == 404
    assert alice.patch(f"/api/contacts/{theirs['id']}", json={"city": "x"}).status_code == 404
    assert alice.delete(f"/api/contacts/{theirs['id']}").status_code in (403, 404)
    assert alice.get(f"/api/contacts/{theirs['id']}/timeline").status_code == 404
    assert alice.get("/api/contacts/", params={"q": "13700000002"}).json()["items"] == []
    assert alice.get("/api/contacts/", params={"q": "bob.client@example.com"}).json()["total"] == 0
    assert alice.get("/api/contacts/", params={"owner": str(crm.ids["bob"])}).json()["items"] == []
    assert alice.get("/api/contacts/export").status_code == 403
    # Their own contact: full phone number, and they may change it.
    assert alice.get(f"/api/contacts/{mine['id']}").json()["phones"] == ["137 0000 0001"]
    assert alice.patch(f"/api/contacts/{mine['id']}", json={"city": "杭州市"}).status_code == 200
    # They may not give contacts away.
    given = alice.patch(f"/api/contacts/{mine['id']}", json={"owner_id": crm.ids["bob"]})
    assert given.status_code == 403 and "owner_id" in given.json()["error"]["fields"]


def test_viewer_reads_everything_masked_and_changes_nothing(crm: Crm) -> None:
    contact = crm.create("alice", name="被查看的人", phone="13812345678", email="someone@example.com",
                         street="南京路1号")
    vera = crm.client("vera")
    got = vera.get(f"/api/contacts/{contact['id']}").json()
    assert got["phones"] == ["138****5678"] and got["emails"] == ["s***@example.com"]
    assert got["street"] == "****" and got["masked"] is True
    listed = vera.get("/api/contacts/", params={"q": "13812345678"}).json()["items"]
    assert [i["phone"] for i in listed] == ["138****5678"]
    assert vera.patch(f"/api/contacts/{contact['id']}", json={"city": "x"}).status_code == 403
    assert vera.post("/api/contacts/", json={"name": "x"}).status_code == 403
    assert vera.get("/api/contacts/export").status_code == 403


def test_optimistic_lock_conflict_describes_the_other_change(crm: Crm) -> None:
    contact = crm.create("boss", name="并发", phone="13812340000")
    url = f"/api/contacts/{contact['id']}"
    boss, alice_like = crm.client("boss"), crm.client("boss")
    assert boss.patch(url, json={"city": "北京市"}, headers={"If-Match": '"1"'}).status_code == 200
    stale = alice_like.patch(url, json={"city": "天津市", "position": "经理"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    error = stale.json()["error"]
    assert error["code"] == "edit_conflict" and error["current_version"] == 2 and error["edited_version"] == 1
    assert error["changes"] == [{"version": 2, "by": "boss", "at": error["changes"][0]["at"], "fields": ["city"]}]
    assert error["current"]["city"] == "北京市" and "boss" in error["message"]
    assert boss.get(url).json()["city"] == "北京市"  # nothing was written
    assert alice_like.patch(url, json={"city": "天津市", "version": 2}).json()["version"] == 3


def test_duplicates_are_flagged_before_saving(crm: Crm) -> None:
    first = crm.create("alice", name="张伟", phone="13811112222", email="zw@example.com", company="云帆")
    api = crm.client("boss")
    for payload, reason in (({"name": "张伟伟", "phone": "+86 138 1111 2222"}, "phone"),
                            ({"name": "Z", "emails": ["x@example.com", "ZW@example.com"]}, "email"),
                            ({"name": "张伟", "company": "云帆"}, "name_company")):
        response = api.post("/api/contacts/", json=payload)
        assert response.status_code == 409, payload
        duplicates = response.json()["error"]["duplicates"]
        assert [(d["id"], d["reason"], d["name"]) for d in duplicates] == [(first["id"], reason, "张伟")]
    # Someone who may not see the duplicate learns that it exists, not whose it is by name.
    hidden = crm.client("bob").post("/api/contacts/", json={"name": "另一个", "phone": "13811112222"})
    assert hidden.status_code == 409
    assert hidden.json()["error"]["duplicates"] == [{"id": first["id"], "reason": "phone", "visible": False,
                                                     "owner": "alice"}]
    forced = api.post("/api/contacts/", json={"name": "张伟", "company": "云帆", "allow_duplicate": True})
    assert forced.status_code == 201
    # Changing a contact to another's phone number is flagged too.
    other = crm.create("boss", name="其他人")
    clash = api.patch(f"/api/contacts/{other['id']}", json={"phone": "138 1111 2222"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "duplicate"


def test_validation_errors_are_422_with_fields(crm: Crm) -> None:
    response = crm.client("boss").post("/api/contacts/", json={
        "name": "", "phone": "12", "email": "not-an-email", "stage": "vip", "kind": "robot", "tags": ["x" * 41]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"name", "phone", "email", "stage", "kind", "tags"}
    assert crm.client("boss").post("/api/contacts/", content=b"[1,2]",
                                   headers={"content-type": "application/json"}).status_code == 400


@SQLITE_ONLY
def test_anonymous_is_refused_and_openapi_documents_the_api(crm: Crm) -> None:
    from tests.conftest import web_client

    anonymous = web_client(crm.settings)
    assert anonymous.get("/api/contacts/").status_code == 401
    spec = anonymous.get("/api/openapi.json").json()
    paths = spec["paths"]
    for path, method in (("/api/contacts", "get"), ("/api/contacts", "post"), ("/api/contacts/{id}", "patch"),
                         ("/api/contacts/{id}", "delete"), ("/api/contacts/merge", "post"),
                         ("/api/contacts/imports", "post"), ("/api/contacts/imports/{id}", "get"),
                         ("/api/contacts/imports/{id}/errors", "get"), ("/api/contacts/export", "get"),
                         ("/api/contacts/{id}/consents", "post"), ("/api/contacts/{id}/person-export", "get"),
                         ("/api/contacts/{id}/erase", "post")):
        assert method in paths[path], (path, method)
    assert paths["/api/contacts"]["post"]["summary"] == "Create a contact"


@SQLITE_ONLY
def test_api_token_works_without_csrf(crm: Crm) -> None:
    from kehu import auth
    from kehu.models import User
    from tests.conftest import web_client

    with crm.platform.session() as db:
        token = auth.issue_token(db, db.get(User, crm.ids["alice"]), "test")
    client = web_client(crm.settings)
    client.headers.pop("origin", None)
    response = client.post("/api/contacts/", json={"name": "令牌"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201 and response.json()["owner_id"] == crm.ids["alice"]
