"""Shared fixtures: a deployment on SQLite (always) or PostgreSQL (when configured).

``KEHU_TEST_POSTGRES_URL`` runs every test that uses the ``database_url`` fixture a second
time on PostgreSQL, each test in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import gc
import os
import secrets
import socket
import subprocess
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, select, text

from kehu import auth, migrations, modules, rbac
from kehu.config import Settings
from kehu.db import psycopg_url
from kehu.models import Role, User
from kehu.platform import Platform

pytest_plugins = ["tests.browser"]


def _redis_url_of_this_worker(url: str, worker: str) -> str:
    """``url`` with a Redis database of its own for the pytest-xdist worker ``worker`` (``gw0``,
    ``gw1``...): the Redis tests purge the ``kehu`` queue and run workers on it, so parallel
    workers must not share one database. ``gw0`` keeps the configured database, the others
    count down from it (``/15``: 15, 14, 13...), or up where that would go below 0."""
    from urllib.parse import urlsplit, urlunsplit

    if not url or not worker.startswith("gw") or not worker[2:].isdigit():
        return url
    index = int(worker[2:])
    parts = urlsplit(url)
    path = parts.path.strip("/")
    base = int(path) if path.isdigit() else 0
    database = base - index if index <= base else base + index
    if database > 15:  # Redis has 16 databases (0-15) unless configured otherwise
        raise pytest.UsageError(
            f"pytest-xdist worker {worker} would need Redis database {database} (one per worker, from "
            f"KEHU_TEST_REDIS_URL's database {base}); Redis has databases 0-15 by default: run fewer workers (-n)")
    return urlunsplit(parts._replace(path=f"/{database}"))


# Before any test module reads it (test modules and the events harness read it at import time,
# and child processes inherit it).
if os.environ.get("KEHU_TEST_REDIS_URL") and os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["KEHU_TEST_REDIS_URL"] = _redis_url_of_this_worker(
        os.environ["KEHU_TEST_REDIS_URL"], os.environ["PYTEST_XDIST_WORKER"])

#: Parallel runs (``make test``: pytest-xdist, ``--dist loadgroup``) schedule each test on its
#: own, except these, which share a module-scoped fixture that is too costly to make on every
#: worker: ``"module"`` keeps the whole module on one worker, ``"params"`` each set of its tests
#: with the same parameters (one running deployment per backend pair).
KEEP_TOGETHER = {
    "tests/test_events.py": "params",
    "tests/test_jobs.py": "params",
    "tests/test_external_plugin.py": "module",  # one pip install for both tests
    "tests/test_reuseport.py": "module",  # one kehu serve --workers 2 for its tests
}


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: no error without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadgroup`` with :data:`KEEP_TOGETHER` as groups. (xdist's own ``xdist_group``
    marks do not group anything on pytest 9.2: pytest-xdist issue #1386.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class KeepTogether(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            if scope != nodeid:  # an xdist_group mark did take effect
                return scope
            path, _, name = nodeid.partition("::")
            how = KEEP_TOGETHER.get(path)
            if how == "module":
                return path
            if how == "params" and name.endswith("]") and "[" in name:
                return f"{path}[{name.split('[', 1)[1]}"
            return nodeid

    return KeepTogether(config, log)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM to a server a test started, SIGKILL when it has not ended within ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for servers a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


POSTGRES_URL = psycopg_url(os.environ.get("KEHU_TEST_POSTGRES_URL", ""))
REDIS_URL = os.environ.get("KEHU_TEST_REDIS_URL", "")
TESTS_DIR = Path(__file__).parent


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kehu.sqlite3'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL run skipped: set KEHU_TEST_POSTGRES_URL (as .ci/run does) to run it")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        _close_connections_of(schema, conn)
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


# The engines a test made (each platform boot makes one) are garbage once it ends, but they sit
# in reference cycles that keep their pooled connections open until Python collects them: a
# long run (several xdist workers) would reach the server's max_connections. So the engines of
# a test's schema are disposed of when it ends, and the rest (connections still checked out)
# collected when the server gets crowded. Not a collection after every test: it takes 0.2 to
# 1 s, as long as many a PostgreSQL test.
_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()


@event.listens_for(Engine, "engine_connect")
def _remember_engine(connection: Connection) -> None:
    _engines.add(connection.engine)


def _close_connections_of(schema: str, admin: Connection) -> None:
    for engine in list(_engines):
        if schema in engine.url.render_as_string(hide_password=True):
            engine.dispose()
    crowded = admin.execute(text(
        "SELECT count(*) * 4 > current_setting('max_connections')::int FROM pg_stat_activity")).scalar_one()
    if crowded:
        gc.collect()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of a fresh deployment in ``tmp_path``; also exported to the environment so
    that child processes (``kehu`` commands, workers) see the same deployment."""
    env = {
        "KEHU_HOME": str(tmp_path / "home"),
        "KEHU_DATABASE_URL": database_url,
        "KEHU_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}",
        "KEHU_MASTER_KEY_FILE": str(tmp_path / "master.key"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = Settings.from_env()
    result.ensure_home()
    return result


def boot_with(settings: Settings, enable: list[str] | tuple[str, ...] = ()) -> Platform:
    """Boot ``settings``'s deployment with ``enable`` enabled, migrated and with default roles."""
    from kehu import crypto

    crypto.ensure_master_key(settings.master_key_file)
    platform = Platform.boot(settings)
    migrations.upgrade_all(platform)
    if enable:
        with platform.session() as db:
            for name in enable:
                modules.enable(db, name, platform.modules)
        platform.close()
        platform = Platform.boot(settings)
        migrations.upgrade_all(platform)
    crypto.ensure_keys(platform)
    with platform.session() as db:
        rbac.sync_roles(platform, db)
    platform.close()
    return Platform.boot(settings)


@pytest.fixture
def platform_factory(settings: Settings) -> Callable[..., Platform]:
    return lambda *enable: boot_with(settings, enable)


def create_user(platform: Platform, login: str, roles: tuple[str, ...] = (), team: str = "") -> tuple[int, str]:
    """Create a user with ``roles``; returns (id, password)."""
    password = secrets.token_urlsafe(12)
    with platform.session() as db:
        user = User(login=login, name=login, team=team, password_hash=auth.hash_password(password))
        user.roles = list(db.scalars(select(Role).where(Role.name.in_(roles))))
        missing = set(roles) - {r.name for r in user.roles}
        assert not missing, f"roles not found: {missing}"
        db.add(user)
        db.flush()
        return user.id, password


@pytest.fixture
def user_factory() -> Callable[..., tuple[int, str]]:
    return create_user


def web_client(settings: Settings, login: str | None = None, password: str | None = None):  # type: ignore[no-untyped-def]
    """A test client of the composed application, logged in when credentials are given."""
    from starlette.testclient import TestClient

    from kehu.web import create_app

    client = TestClient(create_app(settings), base_url="http://testserver", headers={"origin": "http://testserver"})
    if login:
        response = client.post("/login", data={"login": login, "password": password, "next": "/"}, follow_redirects=False)
        assert response.status_code == 303, response.text
        page = client.get("/")
        marker = 'name="csrf-token" content="'
        token = page.text.split(marker, 1)[1].split('"', 1)[0]
        client.headers["X-CSRF-Token"] = token
    return client


@pytest.fixture
def client_factory(settings: Settings) -> Callable[..., object]:
    return lambda login=None, password=None: web_client(settings, login, password)
