"""Test deployments for the jobs and events tests: a platform with both probe plugins enabled,
on SQLite or PostgreSQL, with the embedded SQLite broker or Redis, and a real Celery worker.

A worker on the SQL broker takes 2 to 4 s to stop (Celery's blocking loop drains with a 2 s
timeout, twice), so the tests share one running deployment per module and backend pair
(:func:`running_deployment`) and keep their events apart by id.

PostgreSQL (``KEHU_TEST_POSTGRES_URL``) gets a fresh schema per deployment, dropped afterwards,
so test runs can follow one another on the same database. Redis (``KEHU_TEST_REDIS_URL``)
gets its ``kehu`` queue purged before and after each deployment.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from kombu import Connection
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from kehu import crypto, jobs, migrations, modules
from kehu.config import Settings
from kehu.db import psycopg_url
from kehu.models import EventDelivery, OutboxEvent
from kehu.platform import Platform, current, set_current

from . import ProbeEffect

PROBE_PLUGINS = (
    "events_probe=plugins_for_tests.events_probe",
    "events_probe_b=plugins_for_tests.events_probe_b",
)
POSTGRES_URL = psycopg_url(os.environ.get("KEHU_TEST_POSTGRES_URL", ""))
REDIS_URL = os.environ.get("KEHU_TEST_REDIS_URL", "")
UNREACHABLE_BROKER_URL = "redis://127.0.0.1:1/0"

_NEEDS_POSTGRES = pytest.mark.skipif(
    not POSTGRES_URL, reason="PostgreSQL run skipped: set KEHU_TEST_POSTGRES_URL (a database URL) to run it"
)
_NEEDS_REDIS = pytest.mark.skipif(
    not REDIS_URL, reason="Redis run skipped: set KEHU_TEST_REDIS_URL (redis://host:port/db) to run it"
)


def backend_params(
    databases: tuple[str, ...] = ("sqlite", "postgres"), brokers: tuple[str, ...] = ("sqlite", "redis")
) -> list[Any]:
    """pytest params ``(database, broker)``, skipped with a reason where the server is not configured."""
    params = []
    for database in databases:
        for broker in brokers:
            marks = [_NEEDS_POSTGRES] if database == "postgres" else []
            marks += [_NEEDS_REDIS] if broker == "redis" else []
            params.append(pytest.param((database, broker), id=f"db={database}-broker={broker}", marks=marks))
    return params


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Deployment:
    settings: Settings
    platform: Platform
    database: str
    broker: str
    booted: list[Platform] = field(default_factory=list)
    _cut_off: Platform | None = None

    def boot(self, **overrides: Any) -> Platform:
        """Boot another platform on the same database (``broker_url=`` to point elsewhere);
        it becomes the current one."""
        platform = Platform.boot(replace(self.settings, **overrides) if overrides else self.settings)
        self.booted.append(platform)
        return platform

    @contextmanager
    def cut_off(self) -> Iterator[Platform]:
        """The platform of a process whose broker cannot be reached, current inside the block:
        what it commits is in the database but never dispatched."""
        previous = current()
        if self._cut_off is None:
            self._cut_off = self.boot(broker_url=UNREACHABLE_BROKER_URL)
        set_current(self._cut_off)
        try:
            yield self._cut_off
        finally:
            set_current(previous)

    # -- what the tests look at --------------------------------------------------------

    def effects(
        self, event_id: int | None = None, handler: str | None = None, note: str | None = None
    ) -> list[ProbeEffect]:
        with self.platform.sessions() as session:
            query = select(ProbeEffect).order_by(ProbeEffect.id)
            if event_id is not None:
                query = query.where(ProbeEffect.event_id == event_id)
            if handler is not None:
                query = query.where(ProbeEffect.handler == handler)
            if note is not None:
                query = query.where(ProbeEffect.note.startswith(note))
            return list(session.scalars(query))

    def outbox(self, event_id: int) -> OutboxEvent:
        with self.platform.sessions() as session:
            row = session.get(OutboxEvent, event_id)
            assert row is not None, f"no outbox row {event_id}"
            return row

    def deliveries(self, event_id: int) -> list[str]:
        with self.platform.sessions() as session:
            return sorted(session.scalars(select(EventDelivery.handler).where(EventDelivery.event_id == event_id)))

    def outbox_count(self, name: str) -> int:
        with self.platform.sessions() as session:
            return session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.name == name)) or 0

    def wait_handled(self, event_id: int, timeout: float = 15.0) -> OutboxEvent:
        wait_until(lambda: self.outbox(event_id).handled_at is not None, timeout, f"event {event_id} to be handled")
        return self.outbox(event_id)

    @contextmanager
    def worker(self, pool: str = "solo", concurrency: int = 1) -> Iterator[Any]:
        """A real Celery worker consuming this deployment's queue, in a thread of this process.

        ``solo`` runs one job at a time in queue order, which lets a test know that what was
        queued before a marker has run once the marker has.
        """
        app = jobs.celery_app(self.platform)
        with start_worker(
            app,
            pool=pool,
            concurrency=concurrency,
            perform_ping_check=False,
            shutdown_timeout=20,
            queues=[jobs.DEFAULT_QUEUE],
        ) as worker:
            yield worker


def _purge_redis_queue() -> None:
    with Connection(REDIS_URL) as connection:
        connection.default_channel.queue_purge(jobs.DEFAULT_QUEUE)


@contextmanager
def database_url_for(database: str, folder: Path) -> Iterator[str]:
    """A SQLite file in ``folder``, or a fresh PostgreSQL schema dropped afterwards."""
    if database == "sqlite":
        yield f"sqlite:///{folder / 'kehu.sqlite3'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def deployment(folder: Path, database_url: str, broker: str, **env: str) -> Iterator[Deployment]:
    """Boot a migrated deployment on ``database_url`` with both probe plugins enabled; it is
    the current platform. ``env`` adds ``KEHU_*`` settings."""
    home = folder / "home"
    broker_url = REDIS_URL if broker == "redis" else f"sqla+sqlite:///{home / 'broker.sqlite3'}"
    settings = Settings.from_env(
        env={
            "KEHU_HOME": str(home),
            "KEHU_DATABASE_URL": database_url,
            "KEHU_BROKER_URL": broker_url,
            "KEHU_EXTRA_PLUGINS": ",".join(PROBE_PLUGINS),
            "KEHU_CORE_BROKER_POLLING_SECONDS": "0.05",
            **env,
        }
    )
    settings.ensure_home()
    platforms: list[Platform] = []
    created: Deployment | None = None
    try:
        if broker == "redis":
            _purge_redis_queue()
        first = Platform.boot(settings)
        platforms.append(first)
        migrations.upgrade_all(first)
        with first.session() as session:
            modules.enable(session, "events_probe_b", first.modules)
        platform = Platform.boot(settings)
        platforms.append(platform)
        assert "events_probe_b" in platform.active, platform.modules["events_probe_b"].error
        migrations.upgrade_all(platform)
        crypto.ensure_master_key(settings.master_key_file)  # workers refuse to start without keys
        crypto.ensure_keys(platform)
        jobs.make_celery(platform)
        created = Deployment(
            settings=settings,
            platform=platform,
            database="sqlite" if settings.is_sqlite else "postgres",
            broker=broker,
        )
        yield created
    finally:
        if created is not None:
            platforms.extend(created.booted)
        if broker == "redis":
            _purge_redis_queue()
        for booted in platforms:  # closed before a PostgreSQL schema is dropped
            booted.engine.dispose()


@contextmanager
def running_deployment(folder: Path, database: str, broker: str) -> Iterator[Deployment]:
    """A deployment with a worker running for as long as the block lasts."""
    with database_url_for(database, folder) as database_url:
        with deployment(folder, database_url, broker) as created:
            with created.worker():
                yield created
