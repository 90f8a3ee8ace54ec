"""Scale-out: two web processes and one Celery worker on PostgreSQL and Redis.

Concurrent edits of the same contacts and concurrent imports go through both web processes;
afterwards no update was lost silently (every accepted write has its own version and the last
one is what is stored; the others were answered 409), every contact event was handled exactly
once, and every imported row exists exactly once. Loopback only, bounded in count and time.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_URL, REDIS_URL, free_port

REPO = Path(__file__).resolve().parent.parent
KEHU = [sys.executable, "-m", "kehu.cli"]
EDITORS, EDITS_EACH, CONTACTS = 6, 12, 8
IMPORT_ROWS = 200

pytestmark = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL),
    reason="multi-process run skipped: set KEHU_TEST_POSTGRES_URL and KEHU_TEST_REDIS_URL (as .ci/run does)")


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[dict[str, object]]:
    schema = f"scale_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    database_url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    env = {
        **os.environ,
        "KEHU_HOME": str(tmp_path / "home"),
        "KEHU_DATABASE_URL": database_url,
        "KEHU_BROKER_URL": REDIS_URL,
        "KEHU_MASTER_KEY_FILE": str(tmp_path / "master.key"),
        "KEHU_EXTRA_PLUGINS": "scale_probe=tests.plugins_for_tests.scale_probe",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    }

    def kehu(*args: str, stdin: str | None = None) -> str:
        result = subprocess.run([*KEHU, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"kehu {' '.join(args)}: {result.stderr}{result.stdout}"
        return result.stdout

    kehu("db", "upgrade")
    kehu("modules", "enable", "scale_probe")
    kehu("users", "create", "boss", "--role", "admin", "--password-stdin", stdin="a-long-boss-password\n")
    token = kehu("users", "token", "boss").strip()
    engine = create_engine(database_url)
    with ExitStack() as stack:
        logs = tmp_path / "logs"
        logs.mkdir()
        processes = []
        ports = [free_port(), free_port()]
        for port in ports:
            log = stack.enter_context((logs / f"web-{port}.log").open("w"))
            processes.append(subprocess.Popen([*KEHU, "serve", "--port", str(port), "--no-worker"], env=env,
                                              stdout=log, stderr=subprocess.STDOUT))
        log = stack.enter_context((logs / "worker.log").open("w"))
        processes.append(subprocess.Popen([*KEHU, "worker", "--concurrency", "2"], env=env,
                                          stdout=log, stderr=subprocess.STDOUT))
        try:
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            deadline = time.monotonic() + 60
            for base in bases:
                while True:
                    assert all(p.poll() is None for p in processes), _logs(logs)
                    try:
                        if httpx.get(f"{base}/healthz", timeout=2).status_code < 600:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, f"web processes did not answer in 60 s\n{_logs(logs)}"
                    time.sleep(0.3)
            yield {"bases": bases, "token": token, "engine": engine, "logs": logs}
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def _logs(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(folder.glob("*.log")))


def test_two_web_processes_and_a_worker_lose_nothing(deployment: dict[str, object]) -> None:
    bases: list[str] = deployment["bases"]  # type: ignore[assignment]
    engine = deployment["engine"]
    headers = {"Authorization": f"Bearer {deployment['token']}"}
    clients = [httpx.Client(base_url=base, headers=headers, timeout=30) for base in bases]

    # Contacts to fight over, created through both processes.
    ids = []
    for n in range(CONTACTS):
        response = clients[n % 2].post("/api/contacts", json={"name": f"并发{n}", "phone": f"1390000{n:04d}"})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])

    accepted: list[tuple[int, int, str]] = []  # (contact, version it got, value written)
    conflicts = [0]
    problems: list[str] = []
    lock = threading.Lock()

    def editor(number: int) -> None:
        client = clients[number % 2]
        for edit in range(EDITS_EACH):
            contact_id = ids[(number + edit) % CONTACTS]
            current = client.get(f"/api/contacts/{contact_id}")
            if current.status_code != 200:
                problems.append(f"GET {contact_id}: {current.status_code} {current.text[:200]}")
                return
            value = f"editor{number}-edit{edit}"
            answer = client.patch(f"/api/contacts/{contact_id}",
                                  json={"position": value, "version": current.json()["version"]})
            with lock:
                if answer.status_code == 200:
                    accepted.append((contact_id, answer.json()["version"], value))
                elif answer.status_code == 409:
                    conflicts[0] += 1
                else:
                    problems.append(f"PATCH {contact_id}: {answer.status_code} {answer.text[:200]}")

    # Two imports of different files at once, one through each web process.
    def csv_file(offset: int) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["姓名", "手机", "公司"])
        for row in range(IMPORT_ROWS):
            writer.writerow([f"导入{offset}-{row}", f"1370{offset}{row:06d}", f"公司{row % 7}"])
        return buffer.getvalue().encode("gb18030")

    import_ids: list[int] = []

    def importer(offset: int) -> None:
        client = clients[offset % 2]
        answer = client.post("/api/contacts/imports", data={"start": "import"},
                             files={"file": (f"batch{offset}.csv", csv_file(offset), "text/csv")})
        if answer.status_code != 201:
            problems.append(f"import {offset}: {answer.status_code} {answer.text[:300]}")
            return
        with lock:
            import_ids.append(answer.json()["id"])

    threads = [threading.Thread(target=editor, args=(n,)) for n in range(EDITORS)]
    threads += [threading.Thread(target=importer, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not problems, problems

    # No silent loss: each accepted write got a version of its own, the newest is what is stored,
    # and the stored version counts exactly the accepted writes.
    assert accepted and conflicts[0] > 0, "the editors never collided: the test proves nothing"
    for contact_id in ids:
        mine = sorted((version, value) for c, version, value in accepted if c == contact_id)
        versions = [v for v, _ in mine]
        assert len(versions) == len(set(versions)), f"two writes of contact {contact_id} got the same version"
        stored = clients[0].get(f"/api/contacts/{contact_id}").json()
        if mine:
            assert stored["position"] == mine[-1][1] and stored["version"] == mine[-1][0]
            assert stored["version"] == 1 + len(mine), f"contact {contact_id}: an update is missing"

    # Both imports end, every row exactly once.
    deadline = time.monotonic() + 120
    for job_id in import_ids:
        while True:
            job = clients[0].get(f"/api/contacts/imports/{job_id}").json()
            if job["status"] in ("done", "failed"):
                break
            assert time.monotonic() < deadline, f"import {job_id} did not finish: {job}\n{_logs(deployment['logs'])}"
            time.sleep(0.5)
        assert job["status"] == "done" and job["created"] == IMPORT_ROWS and job["rejected"] == 0, job
    with engine.connect() as conn:  # type: ignore[attr-defined]
        imported = conn.execute(text("SELECT count(*), count(DISTINCT name) FROM contacts_contact "
                                     "WHERE name LIKE '导入%'")).one()
    assert tuple(imported) == (2 * IMPORT_ROWS, 2 * IMPORT_ROWS)
    for offset in (1, 2):  # found by phone through the blind index, once
        found = clients[1].get("/api/contacts", params={"q": f"+86 1370{offset}000007"}).json()
        assert found["total"] == 1 and found["items"][0]["name"] == f"导入{offset}-7"

    # Every contact event handled once by the worker, none twice.
    with engine.connect() as conn:  # type: ignore[attr-defined]
        expected = conn.execute(text("SELECT count(*) FROM kehu_outbox WHERE name IN "
                                     "('contact.created', 'contact.updated', 'contact.imported')")).scalar_one()
        singles = conn.execute(text("SELECT count(*) FROM kehu_outbox WHERE name IN "
                                    "('contact.created', 'contact.updated')")).scalar_one()
    assert singles == CONTACTS + len(accepted)  # one per API create and per accepted edit
    assert expected > singles  # and the imports' batch events
    deadline = time.monotonic() + 120
    while True:
        with engine.connect() as conn:  # type: ignore[attr-defined]
            distinct = conn.execute(text("SELECT count(DISTINCT event_id) FROM scale_probe_handled")).scalar_one()
            most = conn.execute(text(
                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM scale_probe_handled "
                "GROUP BY event_id, contact_id) AS per_contact_and_event")).scalar_one()
        assert most <= 1, "an event was handled twice with visible effect"
        if distinct == expected:
            break
        assert time.monotonic() < deadline, f"{distinct} of {expected} events handled\n{_logs(deployment['logs'])}"
        time.sleep(0.5)
    with engine.connect() as conn:  # type: ignore[attr-defined]
        imported_seen = conn.execute(text(
            "SELECT count(DISTINCT h.contact_id) FROM scale_probe_handled h JOIN contacts_contact c "
            "ON c.id = h.contact_id WHERE h.name = 'contact.imported' AND c.name LIKE '导入%'")).scalar_one()
    assert imported_seen == 2 * IMPORT_ROWS
    for client in clients:
        client.close()
