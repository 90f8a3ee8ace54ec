"""The audit log: hash-chained, append-only, keyed; verification names the broken entry; it
records logins, failures and denials; several writers keep one chain."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from kehu import audit, web
from kehu.config import Settings
from kehu.models import AuditEntry
from kehu.platform import Platform
from tests.conftest import boot_with, create_user, web_client


@pytest.fixture
def platform(settings: Settings) -> Platform:
    return boot_with(settings)


def _write(platform: Platform, count: int) -> None:
    for number in range(count):
        with platform.session() as db:
            audit.record(db, "test.event", actor=audit.Actor("tester", 7), target=f"thing:{number}",
                         detail={"fields": ["name", "phone"], "n": number}, ip="192.0.2.9")


def _sql(platform: Platform, statement: str) -> None:
    with platform.engine.begin() as conn:
        conn.execute(text(statement))


def test_an_untouched_log_verifies(platform: Platform) -> None:
    _write(platform, 5)
    with platform.sessions() as db:
        assert audit.verify(db) == []
        entries = list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [e.id for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in zip(entries, entries[1:], strict=False))
    assert entries[2].actor_login == "tester" and entries[2].detail == {"fields": ["name", "phone"], "n": 2}


@pytest.mark.parametrize("statement, named", [
    ("UPDATE kehu_audit SET target = 'thing:other' WHERE id = 3", "entry 3 (test.event at"),
    ("UPDATE kehu_audit SET actor_login = 'someone' WHERE id = 1", "entry 1 (test.event at"),
    ("UPDATE kehu_audit SET at = at - INTERVAL '1' DAY WHERE id = 4", "entry 4"),
    ("DELETE FROM kehu_audit WHERE id = 2", "entry 2 is missing (deleted)"),
    ("DELETE FROM kehu_audit WHERE id IN (2, 3)", "entries 2..3 are missing (deleted)"),
    ("DELETE FROM kehu_audit WHERE id = 5", "entry 5 is missing (deleted)"),
    ("DELETE FROM kehu_audit WHERE id >= 4", "entries 4..5 are missing (deleted)"),
])
def test_an_edited_or_deleted_entry_is_named(platform: Platform, statement: str, named: str) -> None:
    _write(platform, 5)
    if "INTERVAL" in statement and platform.engine.dialect.name == "sqlite":
        statement = "UPDATE kehu_audit SET at = datetime(at, '-1 day') WHERE id = 4"
    _sql(platform, statement)
    with platform.sessions() as db:
        problems = audit.verify(db)
    assert problems and any(named in problem for problem in problems), problems


def test_recomputing_hashes_without_the_key_does_not_hide_an_edit(platform: Platform) -> None:
    """Someone who can write to the database but lacks the master key cannot re-chain."""
    _write(platform, 3)
    with platform.session() as db:
        entry = db.get(AuditEntry, 2)
        assert entry is not None
        entry.target = "thing:forged"
        entry.entry_hash = hashlib.sha256(entry.prev_hash.encode() + audit._canonical(entry)).hexdigest()
        following = db.get(AuditEntry, 3)
        assert following is not None
        following.prev_hash = entry.entry_hash
    with platform.sessions() as db:
        problems = audit.verify(db)
    assert any(p.startswith("entry 2 ") and "edited" in p for p in problems), problems


def test_concurrent_writers_keep_one_unbroken_chain(platform: Platform) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            _write(platform, 15)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with platform.sessions() as db:
        assert db.scalar(select(func.count()).select_from(AuditEntry)) == 60
        assert db.scalar(select(func.max(AuditEntry.id))) == 60
        assert audit.verify(db) == []


def test_an_entry_rolls_back_with_the_change_it_describes(platform: Platform) -> None:
    with pytest.raises(RuntimeError), platform.session() as db:
        audit.record(db, "test.event", target="never")
        raise RuntimeError("the change failed")
    _write(platform, 1)
    with platform.sessions() as db:
        assert list(db.scalars(select(AuditEntry.target))) == ["thing:0"]
        assert audit.verify(db) == []


def test_search_filters_and_pages_by_keyset(platform: Platform) -> None:
    _write(platform, 7)
    with platform.session() as db:
        audit.record(db, "users.create", actor=audit.Actor("boss", 1), target="user:9", detail={"login": "王芳"})
        audit.record(db, "users.disable", actor=audit.Actor("boss", 1), target="user:9")
    with platform.sessions() as db:
        rows, older, newer = audit.search(db, audit.AuditFilter(), limit=4)
        assert [r.id for r in rows] == [9, 8, 7, 6] and older and not newer
        rows, older, newer = audit.search(db, audit.AuditFilter(), before=6, limit=4)
        assert [r.id for r in rows] == [5, 4, 3, 2] and older and newer
        rows, older, newer = audit.search(db, audit.AuditFilter(), after=5, limit=4)
        assert [r.id for r in rows] == [9, 8, 7, 6] and older and not newer
        assert [r.id for r in audit.search(db, audit.AuditFilter(action="users"))[0]] == [9, 8]
        assert [r.id for r in audit.search(db, audit.AuditFilter(action="users.create"))[0]] == [8]
        assert [r.id for r in audit.search(db, audit.AuditFilter(actor="boss"))[0]] == [9, 8]
        assert [r.id for r in audit.search(db, audit.AuditFilter(text="王芳"))[0]] == [8]
        assert [r.id for r in audit.search(db, audit.AuditFilter(text="THING:3"))[0]] == [4]
        assert audit.search(db, audit.AuditFilter(text="100%"))[0] == []
        assert "users.disable" in audit.actions(db)


def test_logins_and_failed_logins_are_recorded(settings: Settings) -> None:
    platform = boot_with(settings)
    _id, password = create_user(platform, "alice")
    client = web_client(settings)
    client.post("/login", data={"login": "alice", "password": "not it"})
    client.post("/login", data={"login": "alice", "password": password})
    with platform.sessions() as db:
        entries = list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert audit.verify(db) == []
    assert [(e.action, e.actor_login, e.target, e.ip) for e in entries] == [
        ("auth.login_failed", "", "login:alice", "testclient"),
        ("auth.login", "alice", "", "testclient"),
    ]
    assert "not it" not in str([(e.detail, e.target) for e in entries])  # never a password


WEB_AUDITS_DENIALS = "record_denial" in Path(web.__file__).read_text(encoding="utf-8")


@pytest.mark.xfail(not WEB_AUDITS_DENIALS, strict=True,
                   reason="core/web.py does not call kehu.audit.record_denial for 403 answers yet")
def test_permission_denials_are_recorded(settings: Settings) -> None:
    platform = boot_with(settings)
    _id, password = create_user(platform, "alice")
    client = web_client(settings, "alice", password)
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/modules", headers={"accept": "application/json"}).status_code == 403
    with platform.sessions() as db:
        denied = list(db.scalars(select(AuditEntry).where(AuditEntry.action == "access.denied")
                                 .order_by(AuditEntry.id)))
    assert [(e.actor_login, e.target) for e in denied] == [("alice", "GET /admin/users"),
                                                           ("alice", "GET /admin/modules")]
    assert "core.admin_users" in denied[0].detail["message"]
