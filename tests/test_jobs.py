"""Background jobs: the Celery app, plugin tasks run by a real worker, schedules, broker
housekeeping, the worker and embedded-worker entry points.

Runs with the embedded SQLite broker always, and with Redis when ``KEHU_TEST_REDIS_URL`` is set.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kehu import events, jobs  # noqa: E402
from kehu.config import EMBEDDED_WORKER_NICE  # noqa: E402
from kehu.platform import set_current  # noqa: E402
from plugins_for_tests.events_probe.harness import (  # noqa: E402
    Deployment,
    backend_params,
    deployment,
    running_deployment,
    wait_until,
)

TESTS_FOLDER = Path(__file__).resolve().parent


@pytest.fixture(scope="module", params=backend_params(databases=("sqlite",)))
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    database, broker = request.param
    with running_deployment(tmp_path_factory.mktemp(f"jobs-{broker}"), database, broker) as created:
        yield created


@pytest.fixture
def dep(running: Deployment) -> Deployment:
    set_current(running.platform)
    return running


@pytest.fixture
def idle_dep(tmp_path: Path) -> Iterator[Deployment]:
    """A deployment of its own, with no worker running."""
    with deployment(tmp_path, f"sqlite:///{tmp_path / 'kehu.sqlite3'}", "sqlite") as created:
        yield created


def test_celery_app_is_configured_for_at_least_once_json_and_no_results(dep: Deployment) -> None:
    app = jobs.celery_app(dep.platform)
    assert dep.platform.celery is app
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == (jobs.SQL_BROKER_PREFETCH_MULTIPLIER if dep.broker == "sqlite" else 1)
    assert conf.task_serializer == "json" and list(conf.accept_content) == ["json"]
    assert conf.task_ignore_result and not conf.result_backend
    assert conf.task_default_queue == jobs.DEFAULT_QUEUE
    if dep.broker == "sqlite":
        assert conf.broker_url.startswith("sqla+sqlite:///") and "timeout=30" in conf.broker_url
        broker_file = dep.settings.home / "broker.sqlite3"
        assert sqlite3.connect(broker_file).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    else:
        assert conf.broker_url.startswith("redis://")
    assert {"core.deliver_event", "core.relay_outbox", "core.purge_broker", "events_probe.record_task_run"} <= set(
        app.tasks
    )


def test_plugin_task_runs_in_the_worker_via_enqueue(dep: Deployment) -> None:
    task_id = jobs.enqueue("events_probe.record_task_run", marker="hello", acting_user_id=7)
    runs = wait_until(lambda: dep.effects(handler="task", note="hello"), what="the task to run")
    assert isinstance(task_id, str) and task_id
    assert [run.note for run in runs] == ["hello|7"]


def test_enqueue_refuses_unknown_tasks(dep: Deployment) -> None:
    with pytest.raises(KeyError, match="no task named"):
        jobs.enqueue("events_probe.no_such_task")
    with pytest.raises(KeyError):
        jobs.enqueue("celery.backend_cleanup")


def test_schedules_go_into_beat_schedule_with_the_core_ones(dep: Deployment) -> None:
    schedule = jobs.celery_app(dep.platform).conf.beat_schedule
    probe = schedule["events_probe: events_probe.record_task_run every 3600s"]
    assert probe["task"] == "events_probe.record_task_run"
    assert probe["schedule"] == timedelta(hours=1)
    assert probe["kwargs"] == {"marker": "hourly"}
    assert probe["options"] == {"expires": 3600.0}
    assert schedule["core.relay_outbox"]["schedule"] == jobs.RELAY_INTERVAL
    # Only the SQL transport keeps consumed messages to purge.
    assert ("core.purge_broker" in schedule) == (dep.broker == "sqlite")
    # Only SQLite lacks an automatic refresh of the planner's statistics.
    assert ("core.refresh_statistics" in schedule) == (dep.platform.engine.dialect.name == "sqlite")


def test_purge_broker_deletes_consumed_messages_only(dep: Deployment) -> None:
    if dep.broker != "sqlite":
        assert jobs.purge_broker(dep.platform, retention=timedelta(0)) == 0
        return
    for number in range(5):
        jobs.enqueue("events_probe.record_task_run", marker=f"purge run {number}")
    wait_until(lambda: len(dep.effects(handler="task", note="purge run")) == 5, what="five task runs")
    # A message no worker consumes (another queue) stays visible.
    app = jobs.celery_app(dep.platform)
    app.tasks["events_probe.record_task_run"].apply_async(kwargs={"marker": "never"}, queue="kehu_unconsumed")
    broker_file = dep.settings.home / "broker.sqlite3"

    def messages(visible: bool) -> int:
        with sqlite3.connect(broker_file) as connection:
            return connection.execute("SELECT count(*) FROM kombu_message WHERE visible = ?", (visible,)).fetchone()[0]

    wait_until(lambda: messages(visible=False) >= 5, what="consumed messages to be marked")
    assert messages(visible=True) == 1
    assert jobs.purge_broker(dep.platform) == 0  # consumed moments ago: kept for a while
    assert jobs.purge_broker(dep.platform, retention=timedelta(0)) >= 5
    assert messages(visible=False) == 0 and messages(visible=True) == 1


def test_worker_main_in_a_child_process_handles_events_and_stops_cleanly(idle_dep: Deployment) -> None:
    dep = idle_dep
    # What `kehu worker --concurrency 2 --beat` does: boot the platform, run worker_main.
    launcher = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS_FOLDER)!r})
        from kehu import jobs
        from kehu.platform import Platform
        sys.exit(jobs.worker_main(Platform.boot(), concurrency=2, beat=True, loglevel="warning"))
        """
    )
    process = jobs.start_embedded_worker(dep.settings, command=[sys.executable, "-c", launcher])
    try:
        with dep.platform.session() as session:
            emitted = events.emit(session, "probe.for_child", {"contact_id": 1})
            session.flush()
            event_id = emitted.id
        jobs.enqueue("events_probe.record_task_run", marker="child")
        dep.wait_handled(event_id, timeout=30)
        wait_until(lambda: dep.effects(handler="task"), what="the task to run in the child")
        wait_until(lambda: list(dep.settings.home.glob("celerybeat-schedule*")), what="beat to start")
        assert process.poll() is None
        # Started by a parent as kehu serve starts it: it yields the cores to the web processes.
        expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + EMBEDDED_WORKER_NICE)
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == expected
    finally:
        exit_code = jobs.stop_embedded_worker(process, timeout=20)
    assert exit_code == 0
    assert sorted(effect.handler for effect in dep.effects(event_id)) == ["events_probe", "events_probe_b"]


def test_embedded_worker_command_and_environment(idle_dep: Deployment) -> None:
    command = jobs.embedded_worker_command(3)
    assert command[0] == sys.executable and command[-4:] == ["worker", "--concurrency", "3", "--beat"]
    environment = jobs.settings_environment(idle_dep.settings)
    from kehu.config import Settings

    again = Settings.from_env(env=environment)
    for name in ("home", "database_url", "broker_url", "master_key_file", "extra_plugins"):
        assert getattr(again, name) == getattr(idle_dep.settings, name)


def test_embedded_worker_stops_when_its_parent_is_gone(idle_dep: Deployment, tmp_path: Path) -> None:
    # A parent (standing in for `kehu serve`) starts the worker, then dies without stopping it.
    pid_file = tmp_path / "worker.pid"
    parent = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS_FOLDER)!r})
        from pathlib import Path
        from kehu import jobs
        from kehu.config import Settings
        worker_launcher = (
            "import sys; sys.path.insert(0, {str(TESTS_FOLDER)!r}); from kehu import jobs; "
            "from kehu.platform import Platform; "
            "sys.exit(jobs.worker_main(Platform.boot(), concurrency=1, beat=False, loglevel='error'))"
        )
        child = jobs.start_embedded_worker(Settings.from_env(), command=[sys.executable, "-c", worker_launcher])
        Path({str(pid_file)!r}).write_text(str(child.pid))
        """
    )
    environment = {**os.environ, **jobs.settings_environment(idle_dep.settings)}
    subprocess.run([sys.executable, "-c", parent], env=environment, check=True, timeout=30)
    child_pid = int(pid_file.read_text())

    def child_gone() -> bool:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return True
        # A zombie is gone too (its parent, reparented to init, may reap it late).
        status = Path(f"/proc/{child_pid}/stat")
        return status.exists() and status.read_text().split(") ")[1].startswith("Z")

    try:
        wait_until(child_gone, timeout=20, what="the orphaned worker to stop")
    finally:
        if not child_gone():
            os.kill(child_pid, 9)
