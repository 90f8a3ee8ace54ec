"""The platform object: its database pool."""

from __future__ import annotations

from pathlib import Path

from kehu.config import Settings
from kehu.platform import CONNECTIONS_PER_THREAD, Platform


def test_a_database_server_pool_holds_connections_for_every_thread(tmp_path: Path) -> None:
    # Nothing connects here: engines open connections when first asked for one.
    env = {"KEHU_HOME": str(tmp_path), "KEHU_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
           "KEHU_WEB_THREADS": "6"}
    platform = Platform(Settings.from_env(env))
    try:
        assert platform.engine.pool.size() == CONNECTIONS_PER_THREAD * 6
    finally:
        platform.close()
    sqlite = Platform(Settings.from_env({"KEHU_HOME": str(tmp_path)}))
    try:
        assert sqlite.engine.pool.size() == 5  # SQLAlchemy's default: two threads on SQLite
    finally:
        sqlite.close()
