"""PIPL: consent per purpose and channel, a person's data export across plugins, erasure."""

from __future__ import annotations

import io
import json
import zipfile

from sqlalchemy import select

from kehu.models import AuditEntry, OutboxEvent
from kehu_plugins.contacts import service
from kehu_plugins.contacts.models import Activity, Contact, ContactPoint
from tests.contacts_support import SQLITE_ONLY, Crm, crm, sqlite_template  # noqa: F401
from tests.plugins_for_tests import contacts_probe


def test_consent_is_recorded_withdrawn_and_answered_through_the_core_hook(crm: Crm) -> None:
    contact = crm.create("alice", name="同意者", phone="13800001111")
    alice = crm.client("alice")
    url = f"/api/contacts/{contact['id']}/consents"
    hook = crm.platform.pm.hook.kehu_consent_status

    def status(channel: str) -> bool | None:
        with crm.platform.sessions() as db:
            return hook(session=db, contact_id=contact["id"], purpose="marketing", channel=channel)

    assert status("wechat") is False
    assert alice.post(url, json={"channel": "wechat", "status": "granted", "source": "公众号表单"}).status_code == 201
    assert status("wechat") is True and status("sms") is False
    assert alice.post(url, json={"channel": "wechat", "status": "withdrawn", "source": "电话"}).status_code == 201
    assert status("wechat") is False
    bad = alice.post(url, json={"channel": "pigeon", "status": "maybe", "source": ""})
    assert bad.status_code == 422
    assert crm.client("vera").post(url, json={"channel": "sms", "status": "granted", "source": "x"}).status_code == 403
    assert crm.client("bob").get(url).status_code == 404
    consents = alice.get(url).json()
    wechat = next(c for c in consents["current"] if c["channel"] == "wechat")
    assert wechat["status"] == "withdrawn" and wechat["source"] == "电话"
    assert [h["status"] for h in consents["history"]] == ["withdrawn", "granted"]
    with crm.platform.sessions() as db:
        actions = list(db.scalars(select(AuditEntry.action).where(AuditEntry.target == f"contact:{contact['id']}")))
    assert actions == ["contacts.consent.grant", "contacts.consent.withdraw"]


def test_person_export_gathers_every_plugin_into_a_zip(crm: Crm) -> None:
    contact = crm.create("boss", name="导出者", phone="13800002222", email="export@example.com", street="长安街1号")
    api = crm.client("boss")
    api.post(f"/api/contacts/{contact['id']}/activities", json={"kind": "note", "body": "喜欢绿茶"})
    assert crm.client("alice").get(f"/api/contacts/{contact['id']}/person-export").status_code == 403
    response = api.get(f"/api/contacts/{contact['id']}/person-export")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["contacts.json", "contacts_probe.json", "manifest.json"]
    data = json.loads(archive.read("contacts.json"))
    assert data["contact"]["phones"] == ["+8613800002222"] and data["contact"]["street"] == "长安街1号"
    assert data["timeline"][0]["body"] == "喜欢绿茶"
    assert json.loads(archive.read("contacts_probe.json")) == {"probe_records": [f"record of {contact['id']}"]}
    assert json.loads(archive.read("manifest.json"))["plugins"] == ["contacts", "contacts_probe"]
    with crm.platform.sessions() as db:
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "contacts.person_export")).one()
        assert entry.target == f"contact:{contact['id']}" and entry.actor_login == "boss"


def test_erasure_anonymizes_removes_the_index_and_asks_every_plugin(crm: Crm) -> None:
    contact = crm.create("boss", name="被遗忘者", phone="13800003333", email="forget@example.com",
                         street="秘密路1号", notes="私人备注", tags=["VIP"], company="某公司")
    api = crm.client("boss")
    api.post(f"/api/contacts/{contact['id']}/activities", json={"kind": "call", "body": "谈话内容"})
    url = f"/api/contacts/{contact['id']}/erase"
    assert api.post(url, json={}).status_code == 422
    assert crm.client("alice").post(url, json={"confirm": True}).status_code == 403
    assert api.post(url, json={"confirm": True}).status_code == 204

    with crm.platform.sessions() as db:
        row = db.get(Contact, contact["id"])
        assert row.erased_at is not None and row.name == "" and row.notes == "" and row.street is None
        assert row.tags == [] and row.company_id is None
        assert db.scalars(select(ContactPoint).where(ContactPoint.contact_id == contact["id"])).all() == []
        assert service.find_by_point(db, "phone", "13800003333") == []
        assert db.scalars(select(Activity).where(Activity.contact_id == contact["id"])).all() == []
        assert db.scalar(select(AuditEntry).where(AuditEntry.action == "contacts.erase")).detail == {
            "plugins": ["contacts", "contacts_probe"]}
        event = db.scalars(select(OutboxEvent).where(OutboxEvent.name == "contact.erased")).one()
        assert event.payload == {"contact_id": contact["id"]}
    assert contacts_probe.calls("kehu_person_erase") == [{"contact_id": contact["id"], "in_transaction": True}]
    assert api.get("/api/contacts/", params={"q": "13800003333"}).json()["total"] == 0
    assert api.get("/api/contacts/", params={"q": "被遗忘"}).json()["total"] == 0
    # The record stays (other plugins' rows point at it) but can no longer be changed.
    assert api.patch(f"/api/contacts/{contact['id']}", json={"name": "回来"}).status_code == 403
    with crm.platform.sessions() as db:
        assert crm.platform.pm.hook.kehu_person_summary(session=db, contact_id=contact["id"]) is None


@SQLITE_ONLY
def test_privacy_buttons_on_the_contact_page(crm: Crm) -> None:
    contact = crm.create("boss", name="页面隐私")
    boss = crm.client("boss")
    page = boss.get(f"/contacts/{contact['id']}")
    assert f'action="/contacts/{contact["id"]}/erase"' in page.text
    assert f'action="/contacts/{contact["id"]}/erase"' not in crm.client("vera").get(f"/contacts/{contact['id']}").text
    download = boss.post(f"/contacts/{contact['id']}/person-export")
    assert download.status_code == 200 and download.content[:2] == b"PK"
    refused = boss.post(f"/contacts/{contact['id']}/erase", data={"confirm": "no"}, follow_redirects=False)
    assert refused.status_code == 303
    assert boss.get(f"/api/contacts/{contact['id']}").json()["erased"] is False
    done = boss.post(f"/contacts/{contact['id']}/erase", data={"confirm": str(contact["id"])})
    assert done.status_code == 200 and boss.get(f"/api/contacts/{contact['id']}").json()["erased"] is True
