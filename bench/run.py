"""``make bench``: Kehu's figures on this machine, each next to a floor measured in the same run.

    .venv/bin/python bench/run.py                      # 100,000 contacts, 200,000 tickets, SQLite
    .venv/bin/python bench/run.py --quick              # a smoke run on small data (under 2 minutes)
    .venv/bin/python bench/run.py --contacts 1000000   # a million contacts (written in bulk)
    .venv/bin/python bench/run.py --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/run.py --compare bench/results/A.json bench/results/B.json

A fresh deployment in a temporary folder (never ./var; on PostgreSQL a schema of its own,
dropped afterwards), set up through the real command line: ``kehu db upgrade``, ``kehu modules
enable``, ``kehu users create --password-stdin``, ``kehu users token``. Realistic data (Faker
zh_CN: see bench/datagen.py) goes in through the contacts importer (the product's code: the first
``--import-limit`` contacts, 100,000 by default) and the rest (for a million contacts) through
the models in bulk with real encryption and blind indexes; tickets through the tickets models
in bulk. Then each measurement, every one a median of several runs with min and max,
printed next to its floor and the ratio, and written to ``bench/results/<time>-<backend>.json``.
See docs/performance.md for what each figure means. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform as python_platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT))

import datagen  # noqa: E402
import http_mix  # noqa: E402

KEHU = str(Path(sys.executable).parent / "kehu")
RESULTS_DIR = BENCH_DIR / "results"
TEAMS = ["售后一组", "售后二组"]
STAFF_ROLES = ["service", "sales"]

DEFAULT = {"contacts": 100_000, "tickets": 200_000, "runs": 5, "seconds": 20.0, "warmup": 5.0, "connections": 50,
           "staff": 12, "scaling_runs": 3, "import_rows": 2_000, "searches": 200, "hook_requests": 20}
QUICK = {"contacts": 1_000, "tickets": 2_000, "runs": 3, "seconds": 4.0, "warmup": 2.0, "connections": 20,
         "staff": 3, "scaling_runs": 2, "import_rows": 200, "searches": 50, "hook_requests": 5}


# --- Figures -------------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else {}


@dataclass
class Figure:
    """One measured figure and its floor, both as lists of runs. ``ratio`` is figure/floor
    (for the hook layer, the share of the request: shown as a percentage)."""

    name: str
    unit: str
    better: str  # "higher" or "lower"
    target: str
    floor_name: str
    runs: list[float] = field(default_factory=list)
    floor_runs: list[float] = field(default_factory=list)
    percent: bool = False
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if not self.runs or not self.floor_runs or not statistics.median(self.floor_runs):
            return None
        return statistics.median(self.runs) / statistics.median(self.floor_runs)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "figure": summary(self.runs), "floor": summary(self.floor_runs), "ratio": self.ratio}


def number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    s = summary(values)
    return f"{number(s['median'])} [{number(s['min'])}–{number(s['max'])}]"


def print_table(figures: list[dict[str, Any]]) -> None:
    rows = [("measurement", "unit", "Kehu median [min–max]", "floor median [min–max]", "ratio", "target")]
    for f in figures:
        if "error" in f:
            rows.append((f["name"], "", "failed: " + f["error"][:60], "", "", ""))
            continue
        ratio = f["ratio"]
        shown = "-" if ratio is None else f"{ratio:.1%}" if f.get("percent") else f"{ratio:.2f}"
        rows.append((f["name"], f["unit"], spread(f["runs"]), spread(f["floor_runs"]), shown, f["target"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print()
    for f in figures:
        if f.get("floor_name"):
            print(f"  floor of {f['name']}: {f['floor_name']}")
        if f.get("notes"):
            print(f"  note on {f['name']}: {f['notes']}")


# --- The deployment ------------------------------------------------------------------------------------


def deployment_env(folder: Path, database_url: str = "") -> dict[str, str]:
    """The environment of the bench deployment in ``folder`` (its SQLite file unless
    ``database_url`` names another database), also for one kept by ``--keep``."""
    home = folder / "home"
    env = {**os.environ, "KEHU_HOME": str(home), "KEHU_MASTER_KEY_FILE": str(folder / "master.key"),
           "KEHU_DATABASE_URL": database_url or f"sqlite:///{home / 'kehu.sqlite3'}",
           "KEHU_BROKER_URL": f"sqla+sqlite:///{home / 'broker.sqlite3'}"}
    env.pop("KEHU_EXTRA_PLUGINS", None)
    return env


class Deployment:
    """A fresh Kehu deployment in a temporary folder, driven through the ``kehu`` command line."""

    def __init__(self, database_url: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="kehu-bench-"))
        self.schema = ""
        self.admin_url = ""
        if database_url.startswith(("postgresql", "postgres")):
            from sqlalchemy import create_engine, text

            from kehu.db import psycopg_url

            self.admin_url = psycopg_url(database_url)
            self.schema = f"bench_{secrets.token_hex(4)}"
            with create_engine(self.admin_url, isolation_level="AUTOCOMMIT").connect() as connection:
                connection.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            database_url += ("&" if "?" in database_url else "?") + f"options=-csearch_path%3D{self.schema}"
        self.env = deployment_env(self.folder, database_url)
        self.database_url = self.env["KEHU_DATABASE_URL"]
        self.backend = "postgresql" if self.schema else "sqlite"

    def kehu(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run([KEHU, *args], env=self.env, input=stdin, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"kehu {' '.join(args)} failed: {(result.stderr or result.stdout).strip()[-500:]}")
        return result.stdout

    def remove(self, keep: bool) -> None:
        if keep:
            print(f"kept {self.folder}" + (f" and schema {self.schema}: KEHU_DATABASE_URL={self.database_url}"
                                           if self.schema else ""))
            return
        if self.schema:
            from sqlalchemy import create_engine, text

            with create_engine(self.admin_url, isolation_level="AUTOCOMMIT").connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            print(f"dropped schema {self.schema}")
        shutil.rmtree(self.folder, ignore_errors=True)


def tickets_available(deployment: Deployment) -> str:
    """"" when the tickets plugin can be enabled, else why not (said once, and the tickets
    part of the bench is skipped)."""
    listed = deployment.kehu("modules", "list")
    if any(line.split()[:1] == ["tickets"] for line in listed.splitlines()):
        line = next(line for line in listed.splitlines() if line.split()[:1] == ["tickets"])
        return "" if "broken" not in line else f"the tickets plugin is broken: {listed.split('error:', 1)[-1].strip()}"
    probe = subprocess.run([sys.executable, "-c", "import kehu_plugins.tickets"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "the tickets plugin cannot be imported yet: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
    # Importable, not yet registered as an entry point: load it the way plugins under development are.
    deployment.env["KEHU_EXTRA_PLUGINS"] = "tickets=kehu_plugins.tickets"
    print("  (tickets is not an installed entry point yet: loaded with KEHU_EXTRA_PLUGINS)")
    return ""


def set_up(deployment: Deployment, staff_count: int) -> tuple[bool, http_mix.Staff, list[http_mix.Staff]]:
    """Migrate, enable every built-in plugin, create the administrator and the staff with their
    API tokens, all through the command line. Returns (tickets enabled, admin, staff)."""
    from concurrent.futures import ThreadPoolExecutor

    deployment.kehu("db", "upgrade")
    deployment.kehu("modules", "enable", "contacts")
    why_not = tickets_available(deployment)
    if why_not:
        print(f"  SKIPPING the tickets part of the bench: {why_not}")
    else:
        deployment.kehu("modules", "enable", "tickets")
    roles = [r for r in STAFF_ROLES if why_not == "" or r != "service"]

    def create(login: str, team: str, user_roles: list[str]) -> http_mix.Staff:
        password = secrets.token_urlsafe(18)
        role_args = [arg for role in user_roles for arg in ("--role", role)]
        deployment.kehu("users", "create", login, *role_args, "--team", team, "--name", login,
                        "--password-stdin", stdin=password + "\n")
        token = deployment.kehu("users", "token", login, "--name", "bench").strip()
        return http_mix.Staff(login=login, password=password, token=token, team=team)

    admin = create("bench-admin", "", ["admin"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        staff = list(pool.map(lambda n: create(f"staff{n:02d}", TEAMS[n % len(TEAMS)], roles), range(1, staff_count + 1)))
    return not why_not, admin, staff


def boot_in_process(deployment: Deployment) -> Any:
    """The deployment's platform in this process (for loading data and in-process measurements)."""
    os.environ.update(deployment.env)
    from kehu import crypto
    from kehu.config import Settings
    from kehu.platform import Platform

    platform = Platform.boot(Settings.from_env())
    crypto.ensure_keys(platform)
    return platform


def user_of(platform: Any, token: str) -> Any:
    """A staff member as the service layer sees them: resolved from their API token."""
    from kehu import auth

    with platform.session() as db:
        return auth.user_from_token(db, token)


# --- Loading ----------------------------------------------------------------------------------------------


def load(platform: Any, args: argparse.Namespace, with_tickets: bool, admin: http_mix.Staff,
         staff: list[http_mix.Staff], people: list[datagen.Person], folder: Path) -> dict[str, Any]:
    from sqlalchemy import func, select

    from kehu.models import User
    from kehu_plugins.contacts.models import Contact

    report: dict[str, Any] = {}
    started = time.perf_counter()
    imported, bulk = people[:args.import_limit], people[args.import_limit:]
    if imported:
        print(f"importing {len(imported):,} contacts through the contacts importer ...")
        datagen.import_contacts(platform, user_of(platform, admin.token), imported, folder)
        report["imported_seconds"] = time.perf_counter() - started
    if bulk:
        print(f"writing {len(bulk):,} more contacts in bulk through the contacts models ...")
        with platform.sessions() as db:
            owners = dict(db.execute(select(User.login, User.id)).all())
        datagen.bulk_contacts(platform, bulk, owners)
    report["contacts_imported"], report["contacts_bulk"] = len(imported), len(bulk)
    report["contacts_seconds"] = time.perf_counter() - started
    with platform.sessions() as db:
        report["contacts"] = db.scalar(select(func.count()).select_from(Contact).where(Contact.kind == "person"))
        report["companies"] = db.scalar(select(func.count()).select_from(Contact).where(Contact.kind == "company"))
        person_ids = list(db.scalars(select(Contact.id).where(Contact.kind == "person")))
    print(f"  {report['contacts']:,} people and {report['companies']:,} companies in "
          f"{report['contacts_seconds']:.0f} s ({report['contacts'] / report['contacts_seconds']:.0f} people/s)")
    report["tickets"] = 0
    if with_tickets and args.tickets:
        print(f"writing {args.tickets:,} tickets in bulk through the tickets models ...")
        with platform.sessions() as db:
            agents = [(db.scalar(select(User.id).where(User.login == s.login)), s.team) for s in staff]
        started = time.perf_counter()
        report["tickets"] = datagen.bulk_tickets(platform, args.tickets, person_ids, agents)
        report["tickets_seconds"] = time.perf_counter() - started
        print(f"  {report['tickets']:,} tickets in {report['tickets_seconds']:.0f} s")
    settled = datagen.settle_backlog(platform)
    print(f"  {settled:,} events of the load counted as handled; broker queue emptied")
    analyze(platform)
    return report


def analyze(platform: Any) -> None:
    """Fresh planner statistics after a bulk load, as an operator's maintenance would have."""
    with platform.engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")


def mix_data(platform: Any, people: list[datagen.Person], with_tickets: bool, rng: random.Random) -> http_mix.MixData:
    from contacts_bench import formats
    from sqlalchemy import select

    from kehu_plugins.contacts.models import Contact

    with platform.sessions() as db:
        ids = list(db.scalars(select(Contact.id).where(Contact.kind == "person")))
    data = http_mix.MixData(contact_ids=rng.sample(ids, min(2000, len(ids))),
                            phones=[rng.choice(formats(p.phone)) for p in rng.sample(people, min(1000, len(people)))])
    if with_tickets:
        from kehu_plugins.tickets import service
        from kehu_plugins.tickets.models import Ticket

        with platform.sessions() as db:
            open_keys = service.open_status_keys(db)
            for team in TEAMS:
                found = list(db.scalars(select(Ticket.id).where(Ticket.team == team, Ticket.status.in_(open_keys))))
                data.tickets_by_team[team] = rng.sample(found, min(1000, len(found)))
    return data


# --- Measurements -----------------------------------------------------------------------------------------


def measure_http(deployment: Deployment, args: argparse.Namespace, kinds: list[http_mix.Kind],
                 data: http_mix.MixData, staff: list[http_mix.Staff], cookie_name: str) -> list[Figure]:
    wrk = http_mix.ensure_wrk()
    if wrk is None:
        raise RuntimeError("wrk is not installed and could not be installed (apt-get install wrk)")
    port = http_mix.free_port()
    base = f"http://127.0.0.1:{port}"
    logs = deployment.folder / "logs"
    logs.mkdir(exist_ok=True)
    script = deployment.folder / "mix.lua"
    print(f"kehu serve --workers {args.workers}{' --no-worker' if args.no_job_worker else ''} on {base} ...")
    server = http_mix.start_kehu(deployment.env, port, args.workers, logs / "kehu-serve.log",
                                 job_worker=not args.no_job_worker)
    try:
        http_mix.wait_ready(base, server)
        sessions = http_mix.log_in(base, staff, cookie_name)
        print(f"  {sessions} of {len(staff)} staff logged in with the login form (pages go with their session cookie)")
        http_mix.write_lua(script, kinds, data, staff, cookie_name)
        sizes = http_mix.preflight(base, kinds, data, staff, cookie_name)
        print("  median body sizes: " + ", ".join(f"{name} {size:,} B" for name, size in sizes.items()))
        kehu_runs = http_mix.measure_server(wrk, base, script, server, args.runs, args.seconds, args.warmup,
                                            args.connections, "Kehu")
        paced = http_mix.write_paced_lua(deployment.folder / "mix-paced.lua", script, args.rate)
        kehu_paced = http_mix.measure_paced(wrk, base, paced, server, args.paced_runs, args.seconds, args.connections,
                                            args.rate, "Kehu")
    finally:
        http_mix.stop(server)
    port = http_mix.free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"floor: bare Starlette + uvicorn --workers {args.workers} on {base} ...")
    floor = http_mix.start_floor(deployment.env, port, args.workers, deployment.database_url, sizes,
                                 logs / "floor.log")
    try:
        http_mix.wait_ready(base, floor)
        http_mix.preflight(base, kinds, data, staff, cookie_name)
        floor_runs = http_mix.measure_server(wrk, base, script, floor, args.runs, args.seconds, args.warmup,
                                             args.connections, "floor")
        floor_paced = http_mix.measure_paced(wrk, base, paced, floor, args.paced_runs, args.seconds, args.connections,
                                             args.rate, "floor")
    finally:
        http_mix.stop(floor)

    mix = ", ".join(f"{k.name} {k.weight}%" if sum(x.weight for x in kinds) == 100 else f"{k.name} ×{k.weight}"
                    for k in kinds)
    setting = (f"wrk -t2 -c{args.connections}, {args.seconds:.0f} s runs after a {args.warmup:.0f} s warm-up, "
               f"{len(staff)} staff users, {args.workers} uvicorn workers (uvloop, httptools), "
               + ("no job worker" if args.no_job_worker else "with kehu serve's embedded job worker"))
    floor_name = "bare Starlette + uvicorn, same URLs, one plain query each on the same tables, same body sizes"
    errors = sum(r["errors"] for r in kehu_runs)
    silent = sum(1 for r in kehu_runs if r["p95_ms"] is None)
    details = {"mix": mix, "setting": setting, "body_sizes": sizes, "kehu_runs": kehu_runs, "floor_runs": floor_runs,
               "kehu_paced_runs": kehu_paced, "floor_paced_runs": floor_paced, "offered_rate": args.rate}
    busy = {name: statistics.median(r["cores_busy"][name] for r in kehu_runs) for name in kehu_runs[0]["cores_busy"]}
    throughput = Figure("staff mix over HTTP: throughput", "req/s", "higher", ">= 300 req/s (SQLite)", floor_name,
                        [r["rps"] for r in kehu_runs], [r["rps"] for r in floor_runs],
                        notes=f"{setting}; {errors} failed or timed-out requests in the Kehu runs; cores busy "
                              "during them (median): " + ", ".join(f"{name} {cores:.2f}" for name, cores in busy.items()),
                        details=details)
    latency = Figure("staff mix over HTTP: p95 latency at saturation", "ms", "lower", "-", floor_name,
                     [r["p95_ms"] for r in kehu_runs if r["p95_ms"] is not None],
                     [r["p95_ms"] for r in floor_runs if r["p95_ms"] is not None],
                     notes=(f"{silent} of {len(kehu_runs)} Kehu runs recorded no latency (no request answered in time); "
                            if silent else "") + f"{args.connections} connections asking as fast as answered: "
                           "this measures queueing (connections / throughput), not the answer's own time")
    served = [r["rps"] for r in kehu_paced]
    paced_latency = Figure(f"staff mix over HTTP: p95 latency at {args.rate:g} req/s offered", "ms", "lower",
                           f"< 200 ms, all {args.rate:g} req/s served (SQLite)", floor_name,
                           [r["p95_ms"] for r in kehu_paced if r["p95_ms"] is not None],
                           [r["p95_ms"] for r in floor_paced if r["p95_ms"] is not None],
                           notes=f"wrk paced to {args.rate:g} req/s over {args.connections} connections (open loop: "
                                 f"bench/http_mix.py write_paced_lua); served {spread(served)} req/s; machine's "
                                 f"cores busy {spread([r['cores_busy']['machine'] for r in kehu_paced])} (more for "
                                 "the same load: a slower host)",
                           details={"served_rps": served, "floor_served_rps": [r["rps"] for r in floor_paced]})
    memory = Figure("memory of one web process after the mix (RSS)", "MB", "lower", "-",
                    "a worker of the bare Starlette floor after the same mix",
                    [max(r["rss_mb"]) for r in kehu_runs if r["rss_mb"]],
                    [max(r["rss_mb"]) for r in floor_runs if r["rss_mb"]],
                    notes="the largest web process (a uvicorn worker; with --workers 1, the server itself), read from /proc after each run")
    if errors:
        print(f"  WARNING: {errors} requests of the Kehu runs failed (see {logs / 'kehu-serve.log'})")
    return [throughput, paced_latency, latency, memory]


def measure_scaling(deployment: Deployment, args: argparse.Namespace, kinds: list[http_mix.Kind],
                    data: http_mix.MixData, staff: list[http_mix.Staff], cookie_name: str) -> list[Figure]:
    """The staff mix at saturation with each number of web processes in ``--worker-counts``,
    and what one busy core gives: requests per second per core kept busy by the web processes
    and, on PostgreSQL, by the database server. On one machine the counts grow until its cores
    are busy; the per-core figures say what web processes and a database server on cores (or
    machines) of their own would add."""
    wrk = http_mix.ensure_wrk()
    if wrk is None:
        raise RuntimeError("wrk is not installed and could not be installed (apt-get install wrk)")
    logs = deployment.folder / "logs"
    logs.mkdir(exist_ok=True)
    script = deployment.folder / "mix-scaling.lua"
    counts = args.worker_counts
    measured: dict[int, list[dict[str, Any]]] = {}
    for count in counts:
        port = http_mix.free_port()
        base = f"http://127.0.0.1:{port}"
        print(f"kehu serve --workers {count} on {base} ...")
        server = http_mix.start_kehu(deployment.env, port, count, logs / f"kehu-serve-{count}.log",
                                     job_worker=not args.no_job_worker)
        try:
            http_mix.wait_ready(base, server)
            http_mix.log_in(base, staff, cookie_name)
            http_mix.write_lua(script, kinds, data, staff, cookie_name)
            measured[count] = http_mix.measure_server(wrk, base, script, server, args.scaling_runs, args.seconds,
                                                      args.warmup, args.connections, f"{count} web process(es)")
        finally:
            http_mix.stop(server)
    one = statistics.median(r["rps"] for r in measured[1]) if 1 in measured else None
    figures = []
    for count, runs in measured.items():
        busy = {name: statistics.median(r["cores_busy"][name] for r in runs) for name in runs[0]["cores_busy"]}
        linear = [count * one] if one is not None and count > 1 else []
        errors = sum(r["errors"] for r in runs)
        if errors:
            print(f"  WARNING: {errors} requests failed with {count} web processes "
                  f"(see {logs / f'kehu-serve-{count}.log'})")
        figures.append(Figure(
            f"staff mix: throughput with {count} web process{'es' if count > 1 else ''}", "req/s", "higher",
            "grows with web processes until the cores are busy",
            f"{count} × one process's median (growth in proportion)" if linear else "",
            [r["rps"] for r in runs], linear,
            notes=f"{errors} failed or timed-out requests; cores busy (median): "
                  + ", ".join(f"{name} {cores:.2f}" for name, cores in busy.items()),
            details={"runs": runs}))
    every_run = [r for runs in measured.values() for r in runs]
    per_core = [("web", "web core", "what one more core of web processes adds while the database keeps up")]
    if deployment.backend == "postgresql":
        per_core.append(("database server", "database-server core",
                         "how many requests per second one core of PostgreSQL carries before the database, not "
                         "the web processes, is the limit"))
    for group, label, meaning in per_core:
        by_count = {count: statistics.median(r["rps"] / r["cores_busy"][group] for r in runs)
                    for count, runs in measured.items() if all(r["cores_busy"][group] > 0.05 for r in runs)}
        figures.append(Figure(
            f"staff mix: requests per busy {label}", "req/s", "higher", "-", "",
            [r["rps"] / r["cores_busy"][group] for r in every_run if r["cores_busy"][group] > 0.05],
            notes=f"each run's throughput over the cores kept busy by the {group} processes, every count of web "
                  f"processes ({', '.join(f'{count}: {number(value)}' for count, value in by_count.items())}): "
                  + meaning))
    return figures


def measure_phone_search(platform: Any, args: argparse.Namespace, people: list[datagen.Person],
                         searcher: Any, contacts: int, rng: random.Random) -> Figure:
    """The list query of the page and the API for a phone number typed in various formats,
    inside the application; floor: the bare index probe it ends in."""
    from contacts_bench import formats
    from sqlalchemy import text

    from kehu_plugins.contacts import listing, normalize

    figure = Figure("phone search, median of a run", "ms", "lower", "< 5 ms",
                    "SELECT on the blind index (kind, lookup) of the same table, lookup precomputed",
                    notes=f"among {contacts:,} contacts, {args.searches} searches per run; listing.page as the API runs "
                          "it (shape='views'): normalize, blind index, record rules, count, first page read "
                          "and decrypted as the user may see it")
    probe = text("SELECT contact_id FROM contacts_contact_point WHERE kind = 'phone' AND lookup = :lookup")
    misses = 0
    for run in range(1, args.runs + 1):
        timings, floor_timings = [], []
        for person in rng.sample(people, min(args.searches, len(people))):
            query = listing.ListQuery(q=rng.choice(formats(person.phone)))
            with platform.sessions() as db:
                started = time.perf_counter()
                found = listing.page(platform, db, searcher, query, shape="views")
                timings.append((time.perf_counter() - started) * 1000)
            misses += found.total != 1
            lookup = normalize.lookup("phone", normalize.phone(person.phone))
            with platform.engine.connect() as connection:
                started = time.perf_counter()
                connection.execute(probe, {"lookup": lookup}).all()
                floor_timings.append((time.perf_counter() - started) * 1000)
        figure.runs.append(statistics.median(timings))
        figure.floor_runs.append(statistics.median(floor_timings))
        timings.sort()
        print(f"  run {run}/{args.runs}: median {statistics.median(timings):.2f} ms, "
              f"p95 {timings[int(len(timings) * 0.95)]:.2f} ms (floor median {statistics.median(floor_timings):.3f} ms)")
    if misses:
        figure.notes += f"; {misses} searches did not find exactly one contact"
    return figure


def measure_import(platform: Any, args: argparse.Namespace, maker: datagen.PeopleMaker, importer_user: Any,
                   folder: Path) -> Figure:
    """New people each run, imported into the loaded deployment; floor: plain SQLAlchemy Core
    inserts of the same file into plain tables of the same shape (datagen.floor_import)."""
    figure = Figure("contact import (CSV file)", "rows/s", "higher", ">= 1/4 of the floor",
                    "csv module + plain SQLAlchemy Core inserts into plain copies of the contacts tables "
                    "with the same indexes, same transaction size",
                    notes=f"{args.import_rows:,}-row GB18030 files of new people, into the loaded deployment; importer: "
                          "decoding, mapping, validation, duplicate checks, encryption, blind indexes, revisions, "
                          "an event per batch")
    for run in range(1, args.runs + 1):
        path = datagen.write_csv(folder / f"measure-{run}.csv", maker.people(args.import_rows))
        started = time.perf_counter()
        report = datagen.import_file(platform, importer_user, path)
        rate = args.import_rows / (time.perf_counter() - started)
        floor = datagen.floor_import(platform, path)
        figure.runs.append(rate)
        figure.floor_runs.append(floor)
        path.unlink()
        print(f"  run {run}/{args.runs}: {rate:.0f} rows/s ({report.created} created, {report.rejected} rejected); "
              f"floor {floor:.0f} rows/s")
    return figure


def measure_startup(deployment: Deployment, args: argparse.Namespace) -> Figure:
    """Fresh interpreters: every plugin enabled, create_app() and the first response."""
    script = str(BENCH_DIR / "startup_memory.py")
    figure = Figure("start-up: new process to first response, all plugins", "s", "lower", "< 1.5 s",
                    "new process importing starlette + sqlalchemy, a bare app, first response (one query)",
                    notes="wall clock of the whole process until its first response (interpreter start included)")
    samples: dict[str, list[dict[str, Any]]] = {"kehu": [], "floor": []}
    # A deployment's processes start from bytecode, as pip writes it for an installed package
    # (and as the floor's libraries have it). Python writes none for this checkout's modules
    # when PYTHONDONTWRITEBYTECODE is set (it is on some machines): each start then compiled
    # some 40 modules again, about 0.1 s.
    for folder in ("core", "plugins"):
        compileall.compile_dir(BENCH_DIR.parent / folder, quiet=1)
    print(f"  bytecode of core/ and plugins/ compiled (PYTHONDONTWRITEBYTECODE {'set' if sys.flags.dont_write_bytecode else 'not set'})")
    for run in range(args.runs + 1):  # the first of each is a warm-up (file cache)
        for mode in ("kehu", "floor"):
            started = time.perf_counter()
            result = subprocess.run([sys.executable, script, mode], env=deployment.env, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if result.returncode != 0:
                raise RuntimeError(f"startup_memory.py {mode} failed: {result.stderr.strip()[-500:]}")
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            if run:
                samples[mode].append({**measured, "wall": wall})
                (figure.runs if mode == "kehu" else figure.floor_runs).append(wall)
    figure.details = samples
    kehu = samples["kehu"]
    print(f"  Kehu: {spread([s['wall'] for s in kehu])} s wall; in-process: app built after "
          f"{spread([s['built'] for s in kehu])} s, first response after {spread([s['first_response'] for s in kehu])} s "
          f"(status {kehu[0]['status']}), {spread([s['rss_mb'] for s in kehu])} MB")
    floor = samples["floor"]
    print(f"  floor: {spread([s['wall'] for s in floor])} s wall, {spread([s['rss_mb'] for s in floor])} MB")
    return figure


def measure_hooks(platform: Any, args: argparse.Namespace, kinds: list[http_mix.Kind], data: http_mix.MixData,
                  staff: list[http_mix.Staff], cookie_name: str) -> list[Figure]:
    import hooks_cost

    results = hooks_cost.measure(platform.settings, kinds, data, staff, cookie_name, args.runs, args.hook_requests)
    setting = f"{args.hook_requests} requests of each kind of the mix per run, one at a time, in process"
    inclusive = Figure("hook layer: time in hook calls per request", "ms", "lower", "< 5% of the request",
                       "the whole request (time inside the application)",
                       [r["hooks_ms"] for r in results], [r["request_ms"] for r in results], percent=True,
                       notes=f"{setting}; hook implementations' own work included",
                       details={"runs": results})
    dispatch = Figure("hook layer: pluggy dispatch per request", "ms", "lower", "-",
                      "the whole request (time inside the application)",
                      [r["dispatch_ms"] for r in results], [r["request_ms"] for r in results], percent=True)
    return [inclusive, dispatch]


# --- Results --------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), python_platform.processor())
    memory = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gb": round(memory / 1024 / 1024, 1),
            "python": python_platform.python_version(), "system": python_platform.platform(), "commit": commit.strip()}


def compare(first: Path, second: Path) -> None:
    a, b = (json.loads(path.read_text()) for path in (first, second))
    print(f"A: {first} ({a['backend']}, {a['started_at']}, {a['sizes']})")
    print(f"B: {second} ({b['backend']}, {b['started_at']}, {b['sizes']})\n")
    rows = [("measurement", "unit", "A median", "B median", "B/A", "A ratio to floor", "B ratio to floor")]
    theirs = {f["name"]: f for f in b["figures"] if "error" not in f}
    for fa in a["figures"]:
        fb = theirs.get(fa["name"])
        if fb is None or "error" in fa:
            continue
        ma, mb = fa["figure"]["median"], fb["figure"]["median"]
        rows.append((fa["name"], fa["unit"], number(ma), number(mb), f"{mb / ma:.2f}" if ma else "-",
                     "-" if fa["ratio"] is None else f"{fa['ratio']:.3f}",
                     "-" if fb["ratio"] is None else f"{fb['ratio']:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print("\nB/A above 1 is better for req/s and rows/s, worse for ms, s and MB.")


# --- Main -----------------------------------------------------------------------------------------------------


def worker_counts(text: str) -> list[int]:
    """``--worker-counts``: "1,2,3" → [1, 2, 3]."""
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of whole numbers: {text!r}") from None
    if not counts or not all(1 <= count <= 64 for count in counts):
        raise argparse.ArgumentTypeError(f"give numbers of web processes from 1 to 64, not {text!r}")
    return counts


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Kehu's bench: figures against floors on this machine.",
                                     epilog="Defaults: " + ", ".join(f"{k}={v}" for k, v in DEFAULT.items()))
    parser.add_argument("--quick", action="store_true", help="small data and short runs: a smoke run")
    parser.add_argument("--contacts", type=int, help="contacts to load")
    parser.add_argument("--import-limit", type=int, default=100_000,
                        help="load this many contacts through the importer, the rest in bulk through the models")
    parser.add_argument("--tickets", type=int, help="tickets to load")
    parser.add_argument("--database-url", default="", help="e.g. postgresql://postgres@127.0.0.1:5432/test "
                                                           "(a schema of its own); default: SQLite")
    parser.add_argument("--runs", type=int, help="measured runs of each figure")
    parser.add_argument("--seconds", type=float, help="length of each wrk run")
    parser.add_argument("--warmup", type=float, help="length of the wrk warm-up run")
    parser.add_argument("--connections", type=int, help="concurrent wrk connections")
    parser.add_argument("--staff", type=int, help="staff users making the requests")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (Kehu and floor)")
    parser.add_argument("--worker-counts", type=worker_counts, default="1,2,3",
                        help="the scaling part: serve the mix with each of these numbers of web processes")
    parser.add_argument("--scaling-runs", type=int, help="measured runs of each number of web processes")
    parser.add_argument("--rate", type=float, default=300.0,
                        help="requests/s offered in the paced runs that measure latency under a given load")
    parser.add_argument("--paced-runs", type=int, default=3, help="paced runs of each server")
    parser.add_argument("--no-job-worker", action="store_true",
                        help="serve with 'kehu serve --no-worker' (default: with its embedded job worker)")
    parser.add_argument("--import-rows", type=int, help="rows of each import run")
    parser.add_argument("--searches", type=int, help="phone searches per run")
    parser.add_argument("--hook-requests", type=int, help="requests of each kind per hook-cost run")
    parser.add_argument("--skip", default="", help="comma-separated: http, scaling, search, hooks, import, startup")
    parser.add_argument("--keep", action="store_true", help="keep the temporary deployment folder (and the PostgreSQL schema)")
    parser.add_argument("--output", default="", help="JSON file to write (default bench/results/<time>-<backend>.json)")
    parser.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="compare two result files")
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else DEFAULT).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> None:
    args = arguments()
    if args.compare:
        compare(Path(args.compare[0]), Path(args.compare[1]))
        return
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    skip = set(filter(None, args.skip.split(",")))
    deployment = Deployment(args.database_url)
    figures: list[dict[str, Any]] = []
    result: dict[str, Any] = {"kehu_bench": 1, "started_at": started_at.isoformat(timespec="seconds"),
                              "command": " ".join(["bench/run.py", *sys.argv[1:]]), "backend": deployment.backend,
                              "machine": machine(), "settings": {k: v for k, v in vars(args).items() if k != "compare"},
                              "load_average": {"start": os.getloadavg()[0]}}
    print(f"Kehu bench on {deployment.backend}, deployment in {deployment.folder}"
          + (f", schema {deployment.schema}" if deployment.schema else ""))

    def attempt(name: str, work: Any) -> None:
        if name in skip:
            print(f"\n[{name}] skipped (--skip)")
            return
        load_average = os.getloadavg()[0]
        result["load_average"][name] = load_average
        print(f"\n[{name}] (load average {load_average:.2f} on {os.cpu_count()} cores)")
        began = time.perf_counter()
        try:
            produced = work()
            figures.extend(f.as_dict() for f in (produced if isinstance(produced, list) else [produced]))
        except Exception as exc:  # noqa: BLE001  (one failed measurement must not hide the others)
            traceback.print_exc()
            figures.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
        print(f"  ({time.perf_counter() - began:.0f} s)")

    try:
        print("\n[set-up through the command line]")
        with_tickets, admin, staff = set_up(deployment, args.staff)
        platform = boot_in_process(deployment)
        from kehu import auth

        cookie_name = auth.SESSION_COOKIE
        maker = datagen.PeopleMaker(seed=7, owners=[s.login for s in staff], scale=args.contacts)
        print("\n[data]")
        rng = random.Random(1)
        load_started = time.perf_counter()
        loaded_people = maker.people(args.contacts)
        result["load"] = load(platform, args, with_tickets, admin, staff, loaded_people, deployment.folder)
        result["load"]["seconds"] = time.perf_counter() - load_started
        result["sizes"] = {"contacts": result["load"]["contacts"], "companies": result["load"]["companies"],
                           "tickets": result["load"]["tickets"], "staff": len(staff)}
        data = mix_data(platform, loaded_people, with_tickets, rng)
        kinds = http_mix.active_kinds(with_tickets)
        searcher = user_of(platform, staff[0].token)
        attempt("http", lambda: measure_http(deployment, args, kinds, data, staff, cookie_name))
        attempt("scaling", lambda: measure_scaling(deployment, args, kinds, data, staff, cookie_name))
        attempt("search", lambda: measure_phone_search(platform, args, loaded_people, searcher,
                                                       result["load"]["contacts"], rng))
        attempt("hooks", lambda: measure_hooks(platform, args, kinds, data, staff, cookie_name))
        attempt("import", lambda: measure_import(platform, args, maker, user_of(platform, admin.token),
                                                 deployment.folder))
        attempt("startup", lambda: measure_startup(deployment, args))
        platform.engine.dispose()
    finally:
        deployment.remove(args.keep)

    result["figures"] = figures
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\nKehu bench, {deployment.backend}, {result.get('sizes', {})}, {result['seconds']:.0f} s in all; "
          "load average before each part: " + ", ".join(f"{k} {v:.2f}" for k, v in result["load_average"].items()))
    print_table(figures)
    RESULTS_DIR.mkdir(exist_ok=True)
    output = Path(args.output) if args.output else RESULTS_DIR / f"{started_at:%Y%m%d-%H%M%S}-{deployment.backend}.json"
    output.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    print(f"\nresults written to {output}")


if __name__ == "__main__":
    main()
