"""kehu backup / kehu restore: a restored deployment holds exactly what was backed up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kehu.config import Settings
from kehu.models import AuditEntry, User
from kehu import audit
from tests.conftest import POSTGRES_URL, boot_with, create_user

KEHU = [sys.executable, "-m", "kehu.cli"]


def run_kehu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([*KEHU, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_backup_then_restore_into_empty_database(settings: Settings, tmp_path: Path) -> None:
    platform = boot_with(settings)
    create_user(platform, "alice")
    with platform.session() as db:
        for i in range(5):
            audit.record(db, "test.event", target=f"thing:{i}")
    (settings.home / "attachments" / "tickets").mkdir(parents=True, exist_ok=True)
    (settings.home / "attachments" / "tickets" / "a.txt").write_bytes(b"attached bytes")

    archive = tmp_path / "backup.tar.gz"
    made = run_kehu("backup", str(archive))
    assert made.returncode == 0, made.stderr
    assert "backup written" in made.stdout

    fresh_home = tmp_path / "restored"
    env = {"KEHU_HOME": str(fresh_home), "KEHU_DATABASE_URL": f"sqlite:///{fresh_home / 'kehu.sqlite3'}"}
    restored = run_kehu("restore", str(archive), env=env)
    assert restored.returncode == 0, restored.stderr

    from kehu.platform import Platform

    copy = Platform.boot(Settings.from_env({**env, "KEHU_MASTER_KEY_FILE": str(settings.master_key_file)}))
    with copy.sessions() as db:
        assert db.scalar(select(User.login).where(User.login == "alice")) == "alice"
        assert db.scalar(select(func.count()).select_from(AuditEntry)) == 5
        assert audit.verify(db) == []
    assert (fresh_home / "attachments" / "tickets" / "a.txt").read_bytes() == b"attached bytes"

    again = run_kehu("restore", str(archive), env=env)
    assert again.returncode != 0
    assert "empty database" in again.stderr


def test_restore_refuses_a_file_that_is_not_a_backup(settings: Settings, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not a tarball")
    result = run_kehu("restore", str(bogus))
    assert result.returncode != 0
    assert "cannot read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not __import__("os").environ.get("KEHU_TEST_POSTGRES_URL"),
                    reason="SQLite-to-PostgreSQL move skipped: set KEHU_TEST_POSTGRES_URL to run it")
def test_backup_moves_a_sqlite_deployment_to_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import uuid

    from sqlalchemy import create_engine, text

    home = tmp_path / "lite"
    env = {"KEHU_HOME": str(home), "KEHU_DATABASE_URL": f"sqlite:///{home / 'kehu.sqlite3'}",
           "KEHU_MASTER_KEY_FILE": str(tmp_path / "master.key"), "KEHU_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    lite_settings = Settings.from_env()
    lite_settings.ensure_home()
    lite = boot_with(lite_settings)
    create_user(lite, "bob")
    archive = tmp_path / "move.tar.gz"
    assert run_kehu("backup", str(archive)).returncode == 0

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        pg_url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        result = run_kehu("restore", str(archive), env={"KEHU_DATABASE_URL": pg_url, "KEHU_HOME": str(tmp_path / "pg")})
        assert result.returncode == 0, result.stderr
        from kehu.platform import Platform

        moved = Platform.boot(Settings.from_env({**env, "KEHU_DATABASE_URL": pg_url, "KEHU_HOME": str(tmp_path / "pg")}))
        with moved.session() as db:
            assert db.scalar(select(User.login).where(User.login == "bob")) == "bob"
            db.add(User(login="carol"))  # sequences were moved past the restored ids
        moved.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
