"""Background jobs: one Celery app per deployment, tasks and schedules from plugins.

The broker is ``Settings.broker_url``. By default it is *embedded*: kombu's SQLAlchemy
transport on a SQLite file in the instance folder (``sqla+sqlite:///$KEHU_HOME/broker.sqlite3``),
so a deployment needs no server; ``kehu serve`` then starts a worker with beat as a child
process (:func:`start_embedded_worker`). ``KEHU_BROKER_URL=redis://...`` switches to Redis
for larger deployments, with ``kehu worker`` and ``kehu beat`` run as services.

Tasks:

* every function a plugin returns from ``kehu_tasks()`` is registered as
  ``<plugin>.<function name>`` and started with :func:`enqueue`;
* the core's own: ``core.deliver_event(event_id)`` and ``core.relay_outbox()`` (see
  :mod:`kehu.events`) and ``core.purge_broker()``, which deletes consumed messages the SQL
  transport keeps in its table.

Delivery is at least once (``acks_late``, ``reject_on_worker_lost``; on Redis one message
prefetched per concurrency slot), so a task must be safe to run twice. A worker killed hard
on the embedded broker loses the messages it had fetched (that transport marks them consumed
on fetch): events come back through the relay, plain tasks do not. Results are not stored:
a task that produces something writes it to the database. Arguments are record ids and plain
values, never personal data, because messages sit in the broker outside erasure's reach.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery, bootsteps
from sqlalchemy import Engine, column, create_engine, delete, false, inspect, table
from sqlalchemy.engine import make_url

from kehu import crypto, events
from kehu.db import refresh_statistics

if TYPE_CHECKING:  # pragma: no cover
    from kehu.config import Settings
    from kehu.platform import Platform

log = logging.getLogger(__name__)

DELIVER_EVENT_TASK = events.DELIVER_TASK
RELAY_OUTBOX_TASK = "core.relay_outbox"
PURGE_BROKER_TASK = "core.purge_broker"
REFRESH_STATISTICS_TASK = "core.refresh_statistics"

#: The queue every Kehu task goes to (a Redis shared with other applications stays tidy).
DEFAULT_QUEUE = "kehu"
RELAY_INTERVAL = timedelta(seconds=10)
PURGE_INTERVAL = timedelta(minutes=5)
STATISTICS_INTERVAL = timedelta(hours=6)
#: Consumed messages of the SQL transport older than this are deleted by ``core.purge_broker``.
CONSUMED_MESSAGE_RETENTION = timedelta(minutes=5)
#: How long a SQLite broker connection waits for the file's write lock.
SQLITE_BROKER_TIMEOUT_SECONDS = 30
#: How often a worker asks an idle SQL broker for messages (kombu's default is 1 s), which
#: bounds how long an event waits; ``KEHU_CORE_BROKER_POLLING_SECONDS`` overrides it.
SQL_BROKER_POLLING_SECONDS = 0.1
#: Messages a worker process holds per concurrency slot: 1 (Redis) keeps a long job from
#: sitting on messages another worker could run. On the SQL transport kombu sleeps a whole
#: polling interval whenever that window is full, which caps a 4-thread worker at about
#: 40 events/s (measured; 4 here: about 115/s). Nothing is lost by it there: the embedded
#: broker has one worker, and that transport marks a message consumed as soon as it is
#: fetched anyway.
SQL_BROKER_PREFETCH_MULTIPLIER = 4
#: Threads of the embedded worker: enough for I/O-bound jobs; SQLite serializes writes anyway.
EMBEDDED_WORKER_CONCURRENCY = 4
#: Set in the embedded worker's environment: it stops when this process is gone.
PARENT_PID_VARIABLE = "KEHU_EMBEDDED_WORKER_PARENT_PID"

_SQL_BROKER_PREFIXES = ("sqla+", "sqlalchemy+")
_app_lock = threading.Lock()
_broker_engines: dict[str, Engine] = {}
_broker_engines_lock = threading.Lock()


# --- The Celery app --------------------------------------------------------------------


def is_sql_broker(broker_url: str) -> bool:
    return broker_url.startswith(_SQL_BROKER_PREFIXES)


def _sql_broker_database_url(broker_url: str) -> str:
    prefix = next(p for p in _SQL_BROKER_PREFIXES if broker_url.startswith(p))
    return broker_url[len(prefix):]


def effective_broker_url(broker_url: str) -> str:
    """The broker URL Celery is given: a SQLite broker gets a lock timeout of 30 s (the
    driver's default of 5 s fails under a burst of publishers)."""
    if not is_sql_broker(broker_url):
        return broker_url
    url = make_url(_sql_broker_database_url(broker_url))
    if url.get_backend_name() != "sqlite" or "timeout" in url.query:
        return broker_url
    prefix = broker_url[: broker_url.index("+") + 1]
    return prefix + url.update_query_dict({"timeout": str(SQLITE_BROKER_TIMEOUT_SECONDS)}).render_as_string(
        hide_password=False
    )


def _prepare_sqlite_broker(broker_url: str) -> None:
    """Create the broker file's folder and switch the file to WAL, so that the consumer's
    polling never blocks publishers (the journal mode is stored in the file)."""
    url = make_url(_sql_broker_database_url(broker_url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    import sqlite3

    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=SQLITE_BROKER_TIMEOUT_SECONDS)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def make_celery(platform: Platform) -> Celery:
    """Build the deployment's Celery app, register every task, store it as ``platform.celery``."""
    settings = platform.settings
    broker_url = effective_broker_url(settings.broker_url)
    if is_sql_broker(broker_url):
        _prepare_sqlite_broker(broker_url)
        # The SQL transport hands these to create_engine(): nothing else may go in.
        transport_options: dict[str, Any] = {}
    else:
        transport_options = {"visibility_timeout": 3600, "socket_connect_timeout": 3}
    app = Celery("kehu", set_as_current=False)
    if is_sql_broker(broker_url):
        app.steps["consumer"].add(_SQLBrokerPollingInterval)
    app.conf.update(
        kehu_sql_broker_polling_seconds=float(
            settings.plugin_value("core", "broker_polling_seconds", str(SQL_BROKER_POLLING_SECONDS))
        ),
        broker_url=broker_url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for its broker, however long
        task_default_queue=DEFAULT_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=SQL_BROKER_PREFETCH_MULTIPLIER if is_sql_broker(broker_url) else 1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_send_task_events=False,
        task_send_sent_event=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule_filename=str(settings.home / "celerybeat-schedule"),
    )
    _register_core_tasks(app, platform)
    _register_plugin_tasks(app, platform)
    app.conf.beat_schedule = beat_schedule(platform, app)
    platform.celery = app
    return app


class _SQLBrokerPollingInterval(bootsteps.StartStopStep):
    """Sets the worker connection's polling interval: the SQL transport cannot take it as a
    transport option (it hands every option to ``create_engine``)."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, consumer: Any) -> None:
        transport = consumer.connection.transport
        if hasattr(transport, "polling_interval"):
            transport.polling_interval = consumer.app.conf.kehu_sql_broker_polling_seconds


def celery_app(platform: Platform | None = None) -> Celery:
    """The platform's Celery app (the current platform's by default), built on first use."""
    if platform is None:
        from kehu.platform import current

        platform = current()
    if platform.celery is None:
        with _app_lock:
            if platform.celery is None:
                make_celery(platform)
    return platform.celery


def _register(app: Celery, name: str, function: Callable[..., Any]) -> None:
    # shared=False: the task belongs to this app only (tests build many apps in a process);
    # lazy=False: registered now, so a bad name fails at start-up, not at first use.
    app.task(name=name, shared=False, lazy=False)(function)


def _register_core_tasks(app: Celery, platform: Platform) -> None:
    def deliver_event(event_id: int) -> None:
        events.deliver(platform, event_id)

    def relay_outbox(undispatched_grace_seconds: float | None = None) -> None:
        if undispatched_grace_seconds is None:
            events.relay(platform)
        else:
            events.relay(platform, undispatched_grace=timedelta(seconds=undispatched_grace_seconds))

    def purge_broker_task() -> None:
        purge_broker(platform)

    def refresh_statistics_task() -> None:
        refresh_statistics(platform.engine)

    _register(app, DELIVER_EVENT_TASK, deliver_event)
    _register(app, RELAY_OUTBOX_TASK, relay_outbox)
    _register(app, PURGE_BROKER_TASK, purge_broker_task)
    _register(app, REFRESH_STATISTICS_TASK, refresh_statistics_task)


def _register_plugin_tasks(app: Celery, platform: Platform) -> None:
    for impl in platform.pm.hook.kehu_tasks.get_hookimpls():
        plugin = impl.plugin_name
        try:
            functions = impl.function() or []
        except Exception:  # noqa: BLE001  (a plugin must never take the platform down)
            log.exception("kehu_tasks of %s failed: its tasks are not registered", plugin)
            continue
        for function in functions:
            function_name = getattr(function, "__name__", "")
            if not callable(function) or not function_name.isidentifier():
                log.error("kehu_tasks of %s returned %r, which is not a named function: skipped", plugin, function)
                continue
            name = f"{plugin}.{function_name}"
            if name in app.tasks:
                log.error("task %s is declared twice: the second one is skipped", name)
                continue
            _register(app, name, function)


def task_name_for(plugin: str, task: str) -> str:
    """The registered name of a plugin's task: ``send_reminders`` → ``crm.send_reminders``."""
    return task if "." in task else f"{plugin}.{task}"


def beat_schedule(platform: Platform, app: Celery) -> dict[str, dict[str, Any]]:
    """The periodic runs: the core's relay (and broker purge) plus every ``kehu_schedules``.

    Each run expires after its interval, so a stopped worker does not find a pile of
    identical runs when it comes back.
    """
    schedule: dict[str, dict[str, Any]] = {
        RELAY_OUTBOX_TASK: _schedule_entry(RELAY_OUTBOX_TASK, RELAY_INTERVAL, {}),
    }
    if is_sql_broker(platform.settings.broker_url):
        schedule[PURGE_BROKER_TASK] = _schedule_entry(PURGE_BROKER_TASK, PURGE_INTERVAL, {})
    if platform.engine.dialect.name == "sqlite":
        schedule[REFRESH_STATISTICS_TASK] = _schedule_entry(REFRESH_STATISTICS_TASK, STATISTICS_INTERVAL, {})
    for impl in platform.pm.hook.kehu_schedules.get_hookimpls():
        plugin = impl.plugin_name
        try:
            declared = impl.function() or []
        except Exception:  # noqa: BLE001
            log.exception("kehu_schedules of %s failed: its schedules are not registered", plugin)
            continue
        for index, entry in enumerate(declared):
            name = task_name_for(plugin, entry.task)
            if name not in app.tasks:
                log.error("%s schedules %s, which is no registered task: skipped", plugin, name)
                continue
            if entry.seconds <= 0:
                log.error("%s schedules %s every %s s: skipped", plugin, name, entry.seconds)
                continue
            key = f"{plugin}: {name} every {entry.seconds:g}s" + (f" #{index}" if index else "")
            schedule[key] = _schedule_entry(name, timedelta(seconds=entry.seconds), dict(entry.kwargs))
    return schedule


def _schedule_entry(task: str, every: timedelta, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"task": task, "schedule": every, "kwargs": kwargs, "options": {"expires": every.total_seconds()}}


# --- Sending tasks ---------------------------------------------------------------------


def enqueue(task_name: str, **kwargs: Any) -> str:
    """Send the task ``task_name`` with keyword arguments ``kwargs``; returns the task id.

    ``task_name`` is ``<plugin>.<function name>`` (or a core task). Arguments are record ids
    and plain JSON values, never personal data. The task may run more than once (delivery
    is at least once) and long after this call, so it loads current data by id.

    A job that acts for a user receives ``acting_user_id=<user id>`` and must check, when it
    runs, that this user still holds the permissions the action needs: the user may have
    lost them, or been deactivated, since the job was queued. A job without
    ``acting_user_id`` acts as the system and must not be started on a user's request
    without that check having been done by the caller.

    The message is sent at once, not at commit: called inside a transaction, the task may
    run before that transaction commits, or after it rolled back. To act on a change, emit an
    event (:func:`kehu.events.emit`) and handle it: it is sent after commit and never lost.

    Raises ``KeyError`` for an unknown task and kombu's ``OperationalError`` when the broker
    cannot be reached.
    """
    app = celery_app()
    task = app.tasks.get(task_name)
    if task is None or task_name.startswith("celery."):
        raise KeyError(f"no task named {task_name!r} (tasks are '<plugin>.<function>', see kehu_tasks)")
    return task.apply_async(kwargs=kwargs).id


#: Publishing after a commit retries once, quickly: a broker that is down must not hold up
#: the request, and the relay sends what was not sent.
DISPATCH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def send_many(
    platform: Platform,
    task_name: str,
    kwargs_list: Iterable[dict[str, Any]],
    on_sent: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Send ``task_name`` once per kwargs over one broker connection; returns how many.

    Stops at the first error and raises it; ``on_sent`` is called after each message the
    broker accepted, so the caller knows which were sent.
    """
    app = celery_app(platform)
    task = app.tasks[task_name]
    count = 0
    with app.producer_or_acquire() as producer:
        for kwargs in kwargs_list:
            task.apply_async(kwargs=kwargs, producer=producer, retry_policy=DISPATCH_RETRY_POLICY)
            count += 1
            if on_sent is not None:
                on_sent(kwargs)
    return count


# --- Broker housekeeping -----------------------------------------------------------------


def _broker_engine(broker_url: str) -> Engine:
    database_url = _sql_broker_database_url(effective_broker_url(broker_url))
    with _broker_engines_lock:
        engine = _broker_engines.get(database_url)
        if engine is None:
            engine = _broker_engines[database_url] = create_engine(database_url)
        return engine


def purge_broker(platform: Platform, retention: timedelta = CONSUMED_MESSAGE_RETENTION) -> int:
    """Delete the consumed messages older than ``retention`` from a SQL broker; returns how many.

    kombu's SQLAlchemy transport only marks a consumed message invisible and keeps it in
    ``kombu_message``; its ``timestamp`` column is set, in local time, when the message is
    consumed. Nothing to do for other brokers.
    """
    broker_url = platform.settings.broker_url
    if not is_sql_broker(broker_url):
        return 0
    engine = _broker_engine(broker_url)
    if not inspect(engine).has_table("kombu_message"):
        return 0
    message = table("kombu_message", column("visible"), column("timestamp"))
    cutoff = datetime.now() - retention  # naive local time, as kombu writes it
    with engine.begin() as connection:
        result = connection.execute(delete(message).where(message.c.visible == false(), message.c.timestamp < cutoff))
    if result.rowcount:
        log.info("deleted %d consumed broker message(s)", result.rowcount)
    return result.rowcount or 0


# --- Running a worker and beat -----------------------------------------------------------

WORKER_POOLS = ("threads", "solo", "prefork")


def worker_main(platform: Platform, concurrency: int, beat: bool, loglevel: str, pool: str = "threads") -> int:
    """Run a worker for ``platform`` (booted in this process) until it is told to stop.

    Called by ``kehu worker``. Returns the exit code. ``beat=True`` also runs the scheduler,
    in a thread of this process (only one process of a deployment may run it).

    The pool defaults to ``threads``: Kehu's jobs wait on the database and on remote
    services, not on the CPU, so threads serve them as well as processes at a fraction of
    the memory; every thread shares the one booted platform (its engine and plugins),
    nothing is forked after boot (no database connection or SQLite file handle crosses a
    fork), and it behaves the same everywhere. ``prefork`` is available for CPU-heavy
    jobs (the engines are disposed in each child); ``solo`` runs one job at a time.
    """
    if pool not in WORKER_POOLS:
        raise ValueError(f"unknown pool {pool!r}: choose one of {', '.join(WORKER_POOLS)}")
    crypto.ensure_keys(platform)  # jobs read and write sealed personal data too
    app = celery_app(platform)
    if pool == "prefork":
        _dispose_engines_in_forked_children(platform)
    parent_pid = os.environ.get(PARENT_PID_VARIABLE)
    if parent_pid and parent_pid.isdigit():  # started by kehu serve: the web processes come first
        _stop_when_parent_exits(int(parent_pid))
        if platform.settings.embedded_worker_nice and hasattr(os, "nice"):
            os.nice(platform.settings.embedded_worker_nice)
    worker = app.Worker(
        hostname=f"kehu-{os.getpid()}@%h",
        concurrency=concurrency,
        pool=pool,
        loglevel=loglevel,
        queues=[DEFAULT_QUEUE],
        optimization="fair",
        # Cluster chatter Kehu does not use; the SQL transport cannot broadcast it anyway.
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    scheduler = _start_beat_thread(app) if beat else None
    try:
        worker.start()
    finally:
        if scheduler is not None:
            scheduler.stop()
    return worker.exitcode or 0


def _start_beat_thread(app: Celery) -> Any:
    # Celery's own ``-B`` forks a process for beat; a thread keeps this process fork-free.
    from celery.beat import EmbeddedService

    scheduler = EmbeddedService(app, thread=True, schedule_filename=app.conf.beat_schedule_filename)
    scheduler.start()
    return scheduler


def beat_main(platform: Platform, loglevel: str = "info") -> int:
    """Run the scheduler alone (``kehu beat``) until stopped; returns the exit code.

    Run exactly one per deployment: two would send every periodic task twice.
    """
    app = celery_app(platform)
    app.Beat(loglevel=loglevel, schedule=app.conf.beat_schedule_filename).run()
    return 0


def _dispose_engines_in_forked_children(platform: Platform) -> None:
    from celery.signals import worker_process_init

    def dispose(**_: Any) -> None:
        platform.engine.dispose(close=False)
        for engine in list(_broker_engines.values()):
            engine.dispose(close=False)
        try:
            from kombu.transport.sqlalchemy import Channel

            for engine, _sessions in list(Channel._engines.values()):
                engine.dispose(close=False)
        except ImportError:  # pragma: no cover
            pass

    worker_process_init.connect(dispose, weak=False)


def _stop_when_parent_exits(parent_pid: int, every_seconds: float = 2.0) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_seconds)
        log.warning("the process that started this worker is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="kehu-parent-watch", daemon=True).start()


# --- The embedded worker of ``kehu serve`` ---------------------------------------------------


def settings_environment(settings: Settings) -> dict[str, str]:
    """Environment variables that make ``Settings.from_env()`` in a child equal ``settings``."""
    environment = dict(settings.extra)
    environment.update(
        KEHU_HOME=str(settings.home),
        KEHU_DATABASE_URL=settings.database_url,
        KEHU_BROKER_URL=settings.broker_url,
        KEHU_MASTER_KEY_FILE=str(settings.master_key_file),
        KEHU_EXTRA_PLUGINS=",".join(settings.extra_plugins),
    )
    return environment


def embedded_worker_command(concurrency: int = EMBEDDED_WORKER_CONCURRENCY) -> list[str]:
    """``kehu worker --concurrency N --beat``, run by this interpreter."""
    launcher = "import sys; from kehu.cli import main; sys.argv[0] = 'kehu'; sys.exit(main())"
    return [sys.executable, "-c", launcher, "worker", "--concurrency", str(concurrency), "--beat"]


def start_embedded_worker(
    settings: Settings,
    concurrency: int = EMBEDDED_WORKER_CONCURRENCY,
    command: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``kehu worker --beat`` as a child process, for ``kehu serve`` on the embedded broker.

    The child boots its own platform from the same settings and stops by itself when this
    process exits (it checks every 2 s); stop it earlier with :func:`stop_embedded_worker`.
    Its output goes to this process's terminal. ``command`` replaces the command line (tests).
    """
    environment = {**os.environ, **settings_environment(settings), PARENT_PID_VARIABLE: str(os.getpid())}
    return subprocess.Popen(command or embedded_worker_command(concurrency), env=environment)


def stop_embedded_worker(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """Ask the worker to finish its running jobs and stop (SIGTERM); kill it after ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the embedded worker did not stop within %s s: killed", timeout)
            process.kill()
            process.wait()
    return process.returncode
