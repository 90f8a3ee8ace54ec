"""Merging duplicates: field-by-field choices, everything of both kept, other plugins repoint
their rows through ``contacts_merge`` in the same transaction, audited, an event raised."""

from __future__ import annotations

from sqlalchemy import select

from kehu.models import AuditEntry, OutboxEvent
from kehu_plugins.contacts.models import Activity
from tests.contacts_support import Crm, crm, sqlite_template  # noqa: F401
from tests.plugins_for_tests import contacts_probe


def test_merge_keeps_chosen_values_and_everything_of_both(crm: Crm) -> None:
    api = crm.client("boss")
    survivor = crm.create("boss", name="王芳", phone="13811110000", city="上海市", tags=["VIP"], position="",
                          company="云帆")
    merged = crm.create("boss", name="王 芳", phones=["13811110000", "13922220000"], email="wf@example.com",
                        city="杭州市", tags=["展会"], position="采购经理", stage="customer", allow_duplicate=True)
    api.post(f"/api/contacts/{merged['id']}/activities", json={"kind": "call", "body": "谈了价格"})
    api.post(f"/api/contacts/{merged['id']}/consents", json={"channel": "sms", "status": "granted", "source": "表格"})

    response = api.post("/api/contacts/merge", json={"survivor_id": survivor["id"], "merged_id": merged["id"],
                                                     "fields": {"city": "merged", "stage": "merged"}})
    assert response.status_code == 422  # "city" is part of "address"
    response = api.post("/api/contacts/merge", json={"survivor_id": survivor["id"], "merged_id": merged["id"],
                                                     "fields": {"address": "merged", "stage": "merged"}})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["id"] == survivor["id"]
    assert result["name"] == "王芳"  # not chosen: the survivor's
    assert result["city"] == "杭州市" and result["stage"] == "customer"  # chosen
    assert result["position"] == "采购经理"  # the survivor's was empty
    assert result["phones"] == ["138 1111 0000", "139 2222 0000"]  # union, no duplicate
    assert result["emails"] == ["wf@example.com"] and sorted(result["tags"]) == ["VIP", "展会"]
    assert api.get(f"/api/contacts/{merged['id']}").status_code == 404

    with crm.platform.sessions() as db:
        assert db.scalar(select(Activity.contact_id).where(Activity.body == "谈了价格")) == survivor["id"]
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "contacts.merge")).one()
        assert entry.detail["survivor_id"] == survivor["id"] and entry.detail["merged_id"] == merged["id"]
        event = db.scalars(select(OutboxEvent).where(OutboxEvent.name == "contact.merged")).one()
        assert event.payload == {"survivor_id": survivor["id"], "merged_id": merged["id"]}
    consents = api.get(f"/api/contacts/{survivor['id']}/consents").json()
    assert {(c["channel"], c["status"]) for c in consents["current"]} >= {("sms", "granted")}
    assert contacts_probe.calls("contacts_merge") == [
        {"survivor_id": survivor["id"], "merged_id": merged["id"], "in_transaction": True}]


def test_merging_a_company_repoints_its_people(crm: Crm) -> None:
    api = crm.client("boss")
    one = crm.create("boss", name="云帆贸易", kind="company")
    two = crm.create("boss", name="云帆贸易有限公司", kind="company")
    person = crm.create("boss", name="员工甲", company_id=two["id"])
    assert api.post("/api/contacts/merge", json={"survivor_id": one["id"], "merged_id": two["id"]}).status_code == 200
    assert api.get(f"/api/contacts/{person['id']}").json()["company_id"] == one["id"]


def test_merge_needs_permission_and_both_contacts_visible(crm: Crm) -> None:
    mine = crm.create("alice", name="甲")
    theirs = crm.create("bob", name="乙")
    assert crm.client("alice").post("/api/contacts/merge", json={"survivor_id": mine["id"],
                                                                 "merged_id": theirs["id"]}).status_code == 403
    crm.add_user("merger", permissions=("contacts.read", "contacts.write", "contacts.merge"))
    merger = crm.client("merger")
    own = crm.create("merger", name="丙")
    response = merger.post("/api/contacts/merge", json={"survivor_id": own["id"], "merged_id": theirs["id"]})
    assert response.status_code == 404
    same = merger.post("/api/contacts/merge", json={"survivor_id": own["id"], "merged_id": own["id"]})
    assert same.status_code == 422
    assert contacts_probe.calls("contacts_merge") == []


def test_merge_page_compares_and_merges(crm: Crm) -> None:
    a = crm.create("boss", name="李雷", city="北京市")
    b = crm.create("boss", name="李雷 ", city="天津市", phone="13700001234", allow_duplicate=True)
    page = crm.client("boss").get("/contacts/merge", params={"survivor_id": a["id"], "merged_id": b["id"]})
    assert page.status_code == 200 and "天津市" in page.text and 'name="choice.address"' in page.text
    done = crm.client("boss").post("/contacts/merge", data={
        "survivor_id": a["id"], "merged_id": b["id"], "choice.address": "merged", "confirm": "1"},
        follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(f"/contacts/{a['id']}")
    got = crm.client("boss").get(f"/api/contacts/{a['id']}").json()
    assert got["city"] == "天津市" and got["phones"] == ["137 0000 1234"]
