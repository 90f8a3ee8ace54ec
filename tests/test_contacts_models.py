"""Contacts storage: personal data encrypted at rest and found by blind index, canonical forms,
versions, companies, and the hooks other plugins call (person summary, find or create)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select, text

from kehu_plugins.contacts import normalize, service
from kehu_plugins.contacts.models import Contact, ContactPoint
from tests.contacts_support import SQLITE_ONLY, Crm, crm, sqlite_template  # noqa: F401


@pytest.mark.parametrize(("raw", "canonical"), [
    ("13812345678", "+8613812345678"), ("138 1234 5678", "+8613812345678"), ("+86-138-1234-5678", "+8613812345678"),
    ("0086 13812345678", "+8613812345678"), ("（010）8888 8888".replace("（", "(").replace("）", ")"), "+861088888888"),
    ("010-88888888", "+861088888888"), ("+1 (415) 555-2671", "+14155552671"), ("１３８１２３４５６７８", "+8613812345678"),
])
def test_phone_numbers_have_one_canonical_form(raw: str, canonical: str) -> None:
    assert normalize.phone(raw) == canonical


@pytest.mark.parametrize("raw", ["12", "abc", "", "+86 1"])
def test_not_phone_numbers(raw: str) -> None:
    with pytest.raises(normalize.InvalidValue):
        normalize.phone(raw)


def test_other_canonical_forms() -> None:
    assert normalize.email(" Wang.Fang＠Example.CN ") == "wang.fang@example.cn"
    assert normalize.wechat("WangFang_88") == "wangfang_88"
    assert normalize.display_phone("+8613812345678") == "138 1234 5678"
    assert normalize.display_phone("+861088888888") == "010 8888 8888"
    assert normalize.looks_like_phone("138 1234") and not normalize.looks_like_phone("王芳")
    with pytest.raises(normalize.InvalidValue):
        normalize.email("wang@localhost")


def _database_bytes(crm: Crm) -> bytes:
    url = crm.settings.database_url
    assert url.startswith("sqlite:///")
    path = Path(url.removeprefix("sqlite:///"))
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


@SQLITE_ONLY  # it reads the SQLite file
def test_phones_emails_addresses_are_not_stored_in_plain_text(crm: Crm) -> None:
    crm.create("boss", name="秘密", phones=["13987654321", "+86 21 6123 4567"], emails=["planted.secret@example.org"],
               wechat_ids=["secretWx_2024"], street="秘密大街99号", address_detail="九楼九号")
    crm.client("boss").get("/api/contacts/", params={"q": "13987654321"})
    crm.platform.engine.dispose()
    data = _database_bytes(crm)
    for planted in ("13987654321", "+8613987654321", "139 8765 4321", "2161234567", "planted.secret", "secretwx_2024",
                    "secretWx_2024", "秘密大街", "九楼九号"):
        for encoding in ("utf-8", "utf-16-le"):
            assert planted.encode(encoding) not in data, planted
    assert "秘密".encode() in data  # the name is plain: it is searched by prefix and contains


def test_points_are_sealed_and_indexed(crm: Crm) -> None:
    contact = crm.create("boss", name="索引", phone="13812345678", email="idx@example.com")
    with crm.platform.sessions() as db:
        rows = db.execute(text("SELECT kind, value_sealed, lookup FROM contacts_contact_point "
                               "WHERE contact_id = :id ORDER BY kind"), {"id": contact["id"]}).all()
        assert [r[0] for r in rows] == ["email", "phone"]
        for kind, sealed, lookup in rows:
            assert b"13812345678" not in bytes(sealed) and b"idx@" not in bytes(sealed)
            assert len(lookup) == 16 and "138" not in lookup  # 64 bits (normalize.lookup)
        found = service.find_by_point(db, "phone", "+86 138 1234 5678")
        assert [c.id for c in found] == [contact["id"]]
        point = db.scalar(select(ContactPoint).where(ContactPoint.kind == "phone"))
        assert point.value == "+8613812345678"


def test_version_counts_every_change_and_companies_link_people(crm: Crm) -> None:
    person = crm.create("boss", name="员工", company="母公司")
    api = crm.client("boss")
    api.patch(f"/api/contacts/{person['id']}", json={"tags": ["a"]})
    api.patch(f"/api/contacts/{person['id']}", json={"phone": "13800000000"})
    assert api.get(f"/api/contacts/{person['id']}").json()["version"] == 3
    with crm.platform.sessions() as db:
        company = db.get(Contact, person["company_id"])
        assert company.kind == "company" and company.name == "母公司"
        assert db.get(Contact, person["id"]).company.name == "母公司"
    again = crm.create("boss", name="同事", company="母公司")
    assert again["company_id"] == person["company_id"]  # found by name, not created twice


def test_person_summary_and_find_or_create_hooks(crm: Crm) -> None:
    contact = crm.create("boss", name="钱七", phone="138 0000 7777", email="qian7@example.com")
    hook = crm.platform.pm.hook
    with crm.platform.session() as db:
        assert hook.kehu_person_summary(session=db, contact_id=contact["id"]) == {
            "id": contact["id"], "name": "钱七", "email": "qian7@example.com", "phone": "+8613800007777",
            "wechat_openid": ""}
        assert hook.kehu_person_summary(session=db, contact_id=999999) is None
        same = hook.kehu_person_find_or_create(session=db, name="", email="QIAN7@example.com", phone="", source="web")
        by_phone = hook.kehu_person_find_or_create(session=db, name="x", email="", phone="13800007777", source="web")
        assert same == by_phone == contact["id"]
        new_id = hook.kehu_person_find_or_create(session=db, name="孙八", email="sun8@example.com", phone="bad",
                                                 source="web form")
        assert new_id not in (None, contact["id"])
        created = db.get(Contact, new_id)
        assert created.name == "孙八" and created.source == "web form" and created.owner_id is None


@SQLITE_ONLY
def test_record_rule_is_declared_for_contacts(crm: Crm) -> None:
    from kehu import rbac

    rules = [r for r in crm.platform.declarations.record_rules if r.model is Contact]
    assert len(rules) == 1
    statement = rbac.restrict(crm.platform, select(Contact.id), Contact, crm.user("alice"))
    assert "owner_id" in str(statement)
    assert str(rbac.restrict(crm.platform, select(Contact.id), Contact, crm.user("vera"))) == str(select(Contact.id))


@SQLITE_ONLY
def test_demo_data_loads_once(crm: Crm) -> None:
    from sqlalchemy import func

    for _ in range(2):
        with crm.platform.session() as db:
            crm.platform.pm.hook.kehu_demo_data(session=db)
    with crm.platform.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Contact)) == 30
    found = crm.client("boss").get("/api/contacts/", params={"q": "+86 138-1661-2345"}).json()["items"]
    assert [c["name"] for c in found] == ["王芳"] and found[0]["company"] == "上海云帆贸易有限公司"


def test_find_or_create_for_strangers_from_web_forms(crm: Crm) -> None:
    """The tickets plugin's public form meets people through kehu_person_find_or_create: any
    format of a known number finds them; invalid values are never stored; an erased person is
    not found again; what it creates is an ordinary contact, found by the blind index."""
    hook = crm.platform.pm.hook
    known = crm.create("alice", name="老客户", phone="138 0000 8888")
    with crm.platform.session() as db:
        for phone in ("+86 138-0000-8888", "008613800008888", "138 0000 8888"):
            assert hook.kehu_person_find_or_create(session=db, name="", email="", phone=phone, source="web") == known["id"]
        stranger = hook.kehu_person_find_or_create(session=db, name=" ", email="not an e-mail", phone="12",
                                                   source="tickets: web form")
        created = db.get(Contact, stranger)
        assert created.name and created.points == [] and created.source == "tickets: web form"
        assert created.owner_id is None and created.version == 1
    erase = crm.client("boss").post(f"/api/contacts/{known['id']}/erase", json={"confirm": True})
    assert erase.status_code == 204
    with crm.platform.session() as db:
        again = hook.kehu_person_find_or_create(session=db, name="新访客", email="Visitor@Example.com",
                                                phone="13800008888", source="web")
        assert again not in (known["id"], stranger)
        found = service.find_by_point(db, "email", "visitor@example.com")
        assert [c.id for c in found] == [again] and found[0].name == "新访客"
        assert hook.kehu_consent_status(session=db, contact_id=again, purpose="marketing", channel="sms") is False
        assert hook.kehu_consent_status(session=db, contact_id=999999, purpose="marketing", channel="sms") is False
    # Salespeople do not see ownerless contacts; an administrator does.
    assert crm.client("alice").get(f"/api/contacts/{again}").status_code == 404
    assert crm.client("boss").get(f"/api/contacts/{again}").json()["phones"] == ["138 0000 8888"]
