"""Deployment configuration, read from the environment.

``KEHU_HOME`` (default ``./var``) is the instance folder: the SQLite database, the master key,
attachments and logs live there. Every other value defaults to something inside it, so a fresh
checkout needs no configuration at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable holds a value Kehu cannot use; the message names it."""


#: The job worker that ``kehu serve`` starts on the embedded broker shares the machine with the
#: web processes; it runs at this niceness above theirs, so that a burst of jobs (the SLA watch
#: raising hundreds of alerts in one run) takes the cores the pages leave, rather than half of
#: them while staff wait. Jobs still run at once on an idle machine.
EMBEDDED_WORKER_NICE = 10


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    broker_url: str
    master_key_file: Path
    embedded_worker: bool
    web_threads: int = 2  # threads per web process for blocking work (see web_threads_for)
    keepalive_requests: int = 0  # about one response in this many closes its connection (0: never; kehu.keepalive)
    embedded_worker_nice: int = EMBEDDED_WORKER_NICE  # added to the embedded job worker's niceness (0: none)
    extra_plugins: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("zh", "en")
    default_language: str = "zh"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("KEHU_HOME", "var")).resolve()
        database_url = env.get("KEHU_DATABASE_URL") or f"sqlite:///{home / 'kehu.sqlite3'}"
        broker_url = env.get("KEHU_BROKER_URL") or f"sqla+sqlite:///{home / 'broker.sqlite3'}"
        settings = cls(
            home=home,
            database_url=database_url,
            broker_url=broker_url,
            master_key_file=Path(env.get("KEHU_MASTER_KEY_FILE") or home / "master.key"),
            embedded_worker=env.get("KEHU_EMBEDDED_WORKER", "1") not in ("0", "false", "no"),
            web_threads=_whole_number(env, "KEHU_WEB_THREADS", web_threads_for(database_url)),
            keepalive_requests=_whole_number(env, "KEHU_KEEPALIVE_REQUESTS", 0, minimum=0),
            embedded_worker_nice=_whole_number(env, "KEHU_EMBEDDED_WORKER_NICE", EMBEDDED_WORKER_NICE, minimum=0),
            extra_plugins=tuple(p for p in env.get("KEHU_EXTRA_PLUGINS", "").split(",") if p.strip()),
            extra={k: v for k, v in env.items() if k.startswith("KEHU_")},
        )
        return replace(settings, **overrides) if overrides else settings

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_is_embedded(self) -> bool:
        return self.broker_url.startswith("sqla+")

    def plugin_value(self, plugin: str, name: str, default: str) -> str:
        return self.extra.get(f"KEHU_{plugin}_{name}".upper(), default)

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        for sub in ("attachments", "logs"):
            (self.home / sub).mkdir(exist_ok=True)


#: Threads per web process unless KEHU_WEB_THREADS says otherwise. On SQLite a request is CPU
#: work under the GIL from end to end: two threads kept the staff mix at 320 req/s where eight
#: gave 260 (they spent the difference handing the GIL and SQLite's calls to one another). On a
#: database server, requests also wait for the network, and more threads overlap that waiting.
SQLITE_WEB_THREADS, SERVER_WEB_THREADS = 2, 8


#: ``kehu serve --workers N`` (N > 1) on one shared socket (``--shared-socket``, or a platform
#: other than Linux) recycles keep-alive connections this often unless
#: KEHU_KEEPALIVE_REQUESTS says otherwise: with 300 req/s over 50 connections, a connection
#: moves every 3 s or so. With a socket per process (the default) it stays off: there the
#: kernel's hash already spreads connections, and in alternating paced runs recycling raised
#: the p95 (90 against 44 ms, docs/performance.md 2026-12-08).
SEVERAL_WORKERS_KEEPALIVE_REQUESTS = 20


def web_threads_for(database_url: str) -> int:
    return SQLITE_WEB_THREADS if database_url.startswith("sqlite") else SERVER_WEB_THREADS


def _whole_number(env: dict[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise SettingsError(f"{name} must be a whole number of at least {minimum}, not {raw!r}")
    return int(raw)
