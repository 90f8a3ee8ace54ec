"""The staff workload over HTTP: wrk, driven by a Lua mix, against ``kehu serve`` and its floor.

Many logged-in staff at once: each request is made as one of the bench's staff users, picked
at random — pages with the user's session cookie (as a browser sends it), API calls with the
user's bearer token. The mix (weights in :data:`KINDS`) is a service desk's working day: contact
lists and contact pages, phone look-ups, the ticket queue, ticket changes and API reads.

The same Lua script then runs against the floor (``bench/floors.py``), which answers the same
URLs with bodies of the sizes Kehu's answers had. Both servers run with uvicorn's uvloop and
httptools and the same number of worker processes, on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from floors import (CONTACT_API, CONTACT_DETAIL, CONTACT_LIST, PHONE_SEARCH, TICKET_LIST_API, TICKET_QUEUE,
                    TICKET_UPDATE)

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    method: str
    path: str  # placeholders: {contact} {phone} {ticket} {list} {queue}
    auth: str  # "cookie" (a page, as a browser asks for it) or "token" (the API)
    body: str = ""  # may hold {priority}
    tickets: bool = False  # needs the tickets plugin


KINDS = [
    Kind(CONTACT_LIST, 20, "GET", "/contacts/?{list}", "cookie"),
    Kind(CONTACT_DETAIL, 20, "GET", "/contacts/{contact}", "cookie"),
    Kind(PHONE_SEARCH, 15, "GET", "/api/contacts/?q={phone}", "token"),
    Kind(CONTACT_API, 10, "GET", "/api/contacts/{contact}", "token"),
    Kind(TICKET_QUEUE, 15, "GET", "/tickets/?{queue}", "cookie", tickets=True),
    Kind(TICKET_LIST_API, 10, "GET", "/api/tickets/?{queue}&limit=20", "token", tickets=True),
    Kind(TICKET_UPDATE, 10, "PATCH", "/api/tickets/{ticket}", "token", '{"priority": "{priority}"}', tickets=True),
]
LIST_QUERIES = ["", "", "", "page=2", "page=3", "stage=customer", "stage=lead", "owner=me", "city=" + quote("上海市"),
                "city=" + quote("深圳市"), "tag=VIP"]
QUEUE_QUERIES = ["view=team", "view=team", "view=mine", "view=open", "view=unassigned", "view=breaching"]
PRIORITIES = ["low", "normal", "normal", "high"]


@dataclass
class Staff:
    login: str
    password: str
    token: str
    team: str
    cookie: str = ""


@dataclass
class MixData:
    contact_ids: list[int]
    phones: list[str]  # as staff type them: several formats
    tickets_by_team: dict[str, list[int]] = field(default_factory=dict)


# --- Servers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_kehu(env: dict[str, str], port: int, workers: int, log: Path, job_worker: bool = True) -> subprocess.Popen[bytes]:
    """``kehu serve`` as an operator starts it (with its embedded job worker unless
    ``job_worker`` is false), in a process group of its own so that :func:`stop` ends exactly
    what it started."""
    command = [str(VENV_BIN / "kehu"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if not job_worker:
        command.append("--no-worker")
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def start_floor(env: dict[str, str], port: int, workers: int, database_url: str, sizes: dict[str, int],
                log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "--factory", "floors:create_floor_app",
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
               "--http", "httptools", "--log-level", "warning"]
    floor_env = {**env, "BENCH_FLOOR_DATABASE_URL": database_url, "BENCH_FLOOR_SIZES": json.dumps(sizes)}
    return subprocess.Popen(command, env=floor_env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} (see its log)")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group this bench started (the server, its workers and its job
    worker); SIGKILL to the same group if it has not stopped after 10 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found + [grandchild for child in found for grandchild in _children(child)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def web_processes(server: subprocess.Popen[bytes]) -> list[int]:
    """The server's uvicorn worker processes (multiprocessing children); with one worker,
    uvicorn serves in the server's own process. The job worker is not a web process."""
    found = []
    for pid in _children(server.pid):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found or [server.pid]


def web_worker_rss(server: subprocess.Popen[bytes]) -> list[float]:
    """Resident memory (MB) of each of the server's web processes."""
    sizes = []
    for pid in web_processes(server):
        try:
            sizes.append(rss_mb(pid))
        except OSError:
            continue
    return sizes


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def cpu_snapshot(server: subprocess.Popen[bytes]) -> dict[str, float]:
    """CPU seconds used so far by the server's web processes, its other children (the embedded
    job worker), the machine's PostgreSQL processes, and the whole machine (``/proc/stat``)."""
    groups = {"web": 0.0, "job worker": 0.0, "database server": 0.0}
    web = set(web_processes(server))
    others = set(_children(server.pid)) - web
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if pid in web:
                group = "web"
            elif pid in others:
                group = "job worker"
            elif (entry / "comm").read_text().strip() == "postgres":
                group = "database server"
            else:
                continue
            groups[group] += _cpu_seconds(pid)
        except (OSError, ValueError, IndexError):  # ended meanwhile
            continue
    busy = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    groups["machine"] = (sum(int(v) for v in busy[:8]) - int(busy[3]) - int(busy[4])) / CLOCK_TICKS  # not idle, iowait
    return groups


def cores_busy(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """How many cores each group kept busy between two snapshots ``seconds`` apart."""
    return {name: round((after[name] - before[name]) / seconds, 2) for name in after}


def connections_per_process(server: subprocess.Popen[bytes], port: int) -> list[int]:
    """Established TCP connections to ``port`` held by each of the server's web processes
    (``/proc/net/tcp*`` matched to the processes' socket descriptors), most first. How wrk's
    connections split between the processes says much of a paced run's latency (see
    kehu.reuseport and kehu.keepalive)."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # ESTABLISHED, local port
                inodes.add(fields[9])
    counts = []
    for pid in web_processes(server):
        count = 0
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                count += target.startswith("socket:[") and target[8:-1] in inodes
        except OSError:
            continue
        counts.append(count)
    return sorted(counts, reverse=True)


def run_wrk_sampled(wrk: str, base: str, script: Path, seconds: float, connections: int,
                    server: subprocess.Popen[bytes]) -> dict[str, Any]:
    """:func:`run_wrk`, with the cores busy during the run and the connections per web process
    sampled in its middle."""
    port = int(base.rsplit(":", 1)[1])
    split: list[int] = []

    def sample() -> None:
        split.extend(connections_per_process(server, port))

    timer = threading.Timer(seconds / 2, sample)
    before, started = cpu_snapshot(server), time.monotonic()
    timer.start()
    try:
        result = run_wrk(wrk, base, script, seconds, connections)
    finally:
        timer.cancel()
    result["cores_busy"] = cores_busy(before, cpu_snapshot(server), time.monotonic() - started)
    result["connections_per_process"] = split
    return result


def _split_text(result: dict[str, Any]) -> str:
    split = result.get("connections_per_process") or []
    return f"; connections per web process {'/'.join(map(str, split))}" if len(split) > 1 else ""


# --- Sessions, the Lua script and the preflight ------------------------------------------------------------


def log_in(base: str, staff: list[Staff], cookie_name: str) -> int:
    """Log each staff user in through the login form (their pages then go with the session
    cookie, as from a browser); returns how many got a session. Those who did not send their
    token with pages too."""
    count = 0
    for person in staff:
        response = httpx.post(f"{base}/login", data={"login": person.login, "password": person.password, "next": "/"},
                              headers={"Origin": base}, follow_redirects=False, timeout=30)
        person.cookie = response.cookies.get(cookie_name) or ""
        count += bool(person.cookie)
    return count


def active_kinds(with_tickets: bool) -> list[Kind]:
    return [kind for kind in KINDS if with_tickets or not kind.tickets]


def _lua_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=True)  # a JSON string is a valid Lua string here


def _lua_list(values: list[Any]) -> str:
    return "{" + ", ".join(_lua_string(str(v)) for v in values) + "}"


def write_lua(path: Path, kinds: list[Kind], data: MixData, staff: list[Staff], cookie_name: str) -> Path:
    teams = sorted(data.tickets_by_team)
    all_tickets = [t for ids in data.tickets_by_team.values() for t in ids]
    team_lists = [data.tickets_by_team[team] for team in teams] + [all_tickets or [0]]
    users = ", ".join(
        "{token=%s, cookie=%s, team=%d}" % (_lua_string(s.token), _lua_string(s.cookie),
                                            teams.index(s.team) + 1 if s.team in teams else len(team_lists))
        for s in staff)
    kind_rows = ", ".join("{name=%s, weight=%d, method=%s, path=%s, auth=%s, body=%s}" % (
        _lua_string(k.name), k.weight, _lua_string(k.method), _lua_string(k.path), _lua_string(k.auth),
        _lua_string(k.body)) for k in kinds)
    path.write_text(f"""-- Generated by bench/http_mix.py: the staff mix for wrk.
local kinds = {{{kind_rows}}}
local users = {{{users}}}
local contacts = {_lua_list(data.contact_ids)}
local phones = {_lua_list([quote(p, safe="") for p in data.phones])}
local lists = {_lua_list(LIST_QUERIES)}
local queues = {_lua_list(QUEUE_QUERIES)}
local priorities = {_lua_list(PRIORITIES)}
local tickets = {{{", ".join(_lua_list(ids) for ids in team_lists)}}}
local cookie_name = {_lua_string(cookie_name)}
local total = 0
for _, kind in ipairs(kinds) do total = total + kind.weight end

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter * 7919)
end

function init(args)
  math.randomseed(seed)
end

local function pick(list) return list[math.random(#list)] end

local function fill(text, user)
  text = text:gsub("{{contact}}", function() return pick(contacts) end)
  text = text:gsub("{{phone}}", function() return pick(phones) end)
  text = text:gsub("{{list}}", function() return pick(lists) end)
  text = text:gsub("{{queue}}", function() return pick(queues) end)
  text = text:gsub("{{priority}}", function() return pick(priorities) end)
  text = text:gsub("{{ticket}}", function() return pick(tickets[user.team]) end)
  return text
end

function request()
  local roll = math.random() * total
  local kind = kinds[#kinds]
  for _, candidate in ipairs(kinds) do
    roll = roll - candidate.weight
    if roll <= 0 then kind = candidate break end
  end
  local user = pick(users)
  local headers = {{}}
  if kind.auth == "cookie" and user.cookie ~= "" then
    headers["Cookie"] = cookie_name .. "=" .. user.cookie
  else
    headers["Authorization"] = "Bearer " .. user.token
  end
  local body = nil
  if kind.body ~= "" then
    headers["Content-Type"] = "application/json"
    body = fill(kind.body, user)
  end
  return wrk.format(kind.method, fill(kind.path, user), headers, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"errors_status": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
""", encoding="utf-8")
    return path


#: wrk threads of every run; a paced script gives each thread its share of the rate.
WRK_THREADS = 2


def write_paced_lua(path: Path, mix_script: Path, rate: float, threads: int = WRK_THREADS) -> Path:
    """The mix script, paced to ``rate`` requests/s in all (open loop, as staff who click at
    their own pace, not as fast as the server answers).

    wrk asks ``delay()`` before each connection's next request; each thread keeps a schedule
    one interval apart and returns how long to wait for the next free slot. When the server
    falls behind, every connection is busy and the rate served drops below ``rate``: the
    served rate is reported beside the latency, which wrk counts from sending.
    """
    interval_ms = 1000.0 * threads / rate
    pacing = f"""
-- Pacing (bench/http_mix.py write_paced_lua): {rate:g} requests/s over {threads} threads.
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} kehu_timespec;
int clock_gettime(int clk_id, kehu_timespec *tp);
]]
local clock = ffi.new("kehu_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end
local interval = {interval_ms!r}
local next_slot = nil

function delay()
  local now = now_ms()
  if next_slot == nil or next_slot < now - 1000 then next_slot = now end  -- no catching up a lost second
  local wait = next_slot - now
  next_slot = next_slot + interval
  return math.max(0, math.floor(wait))
end
"""
    path.write_text(mix_script.read_text(encoding="utf-8") + pacing, encoding="utf-8")
    return path


def request_for(kind: Kind, data: MixData, person: Staff, rng: random.Random,
                cookie_name: str) -> tuple[str, str, dict[str, str], str]:
    """One request of ``kind`` by ``person``, as the Lua script makes it: (method, path,
    headers, body)."""
    tickets = data.tickets_by_team.get(person.team) or [t for ids in data.tickets_by_team.values() for t in ids] or [0]
    values = {"contact": str(rng.choice(data.contact_ids)), "phone": quote(rng.choice(data.phones), safe=""),
              "list": rng.choice(LIST_QUERIES), "queue": rng.choice(QUEUE_QUERIES),
              "priority": rng.choice(PRIORITIES), "ticket": str(rng.choice(tickets))}
    path, body = kind.path, kind.body
    for name, value in values.items():
        path, body = path.replace("{" + name + "}", value), body.replace("{" + name + "}", value)
    if kind.auth == "cookie" and person.cookie:
        headers = {"Cookie": f"{cookie_name}={person.cookie}"}
    else:
        headers = {"Authorization": f"Bearer {person.token}"}
    if body:
        headers["Content-Type"] = "application/json"
    return kind.method, path, headers, body


def preflight(base: str, kinds: list[Kind], data: MixData, staff: list[Staff], cookie_name: str,
              tries: int = 5) -> dict[str, int]:
    """Make each kind of request a few times; returns the median body size per kind. Raises
    when one fails, naming it (a mix that answers errors would measure nothing)."""
    rng = random.Random(3)
    sizes = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for kind in kinds:
            lengths = []
            for attempt in range(tries):
                person = staff[attempt % len(staff)]
                method, path, headers, body = request_for(kind, data, person, rng, cookie_name)
                response = client.request(method, path, headers=headers, content=body or None)
                if response.status_code >= 300:
                    raise RuntimeError(f"{kind.name}: {kind.method} {path} answered {response.status_code}: "
                                       f"{response.text[:300]}")
                lengths.append(len(response.content))
            sizes[kind.name] = int(statistics.median(lengths))
    return sizes


# --- wrk ---------------------------------------------------------------------------------------------------


def ensure_wrk() -> str | None:
    """The path of wrk, installing Debian's package when it is missing and we are root."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("wrk is missing: installing Debian's wrk package (apt-get install -y wrk)")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], **quiet).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], **quiet)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], **quiet)
    return shutil.which("wrk")


def run_wrk(wrk: str, base: str, script: Path, seconds: float, connections: int,
            threads: int = WRK_THREADS) -> dict[str, Any]:
    """One wrk run; requests/s, latency percentiles (ms) and error counts."""
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(script), base + "/"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120).stdout
    line = next((line for line in output.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = sum(value for key, value in raw.items() if key.startswith("errors_"))
    answered = raw["requests"] > 0 and raw["p95_us"] > 0  # no latency was recorded: None, not 0 ms
    return {"rps": raw["requests"] / (raw["duration_us"] / 1e6), "requests": raw["requests"],
            "p50_ms": raw["p50_us"] / 1000 if answered else None, "p95_ms": raw["p95_us"] / 1000 if answered else None,
            "p99_ms": raw["p99_us"] / 1000 if answered else None, "errors": errors, "non_2xx": raw["errors_status"]}


def measure_paced(wrk: str, base: str, script: Path, server: subprocess.Popen[bytes], runs: int, seconds: float,
                  connections: int, rate: float, label: str) -> list[dict[str, Any]]:
    """``runs`` runs of a paced script (:func:`write_paced_lua`): the latency at ``rate``, and
    the cores busy meanwhile (the same load on a slower host keeps more of them busy)."""
    results = []
    for number in range(1, runs + 1):
        result = run_wrk_sampled(wrk, base, script, seconds, connections, server)
        results.append(result)
        latency = (f"p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
                   if result["p95_ms"] is not None else "NO REQUEST ANSWERED IN TIME")
        print(f"  {label} paced run {number}/{runs} at {rate:g} req/s offered: {result['rps']:.1f} req/s served, "
              f"{latency}, {result['errors']} errors; cores busy: {_busy_text(result['cores_busy'])}{_split_text(result)}")
    return results


def _busy_text(busy: dict[str, float]) -> str:
    return ", ".join(f"{name} {cores:.2f}" for name, cores in busy.items() if cores >= 0.01)


def measure_server(wrk: str, base: str, script: Path, server: subprocess.Popen[bytes], runs: int, seconds: float,
                   warmup: float, connections: int, label: str) -> list[dict[str, Any]]:
    """A warm-up run, then ``runs`` measured runs, each followed by the web processes' memory."""
    run_wrk(wrk, base, script, warmup, connections)
    results = []
    for number in range(1, runs + 1):
        result = run_wrk_sampled(wrk, base, script, seconds, connections, server)
        result["rss_mb"] = web_worker_rss(server)
        results.append(result)
        latency = (f"p95 {result['p95_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms" if result["p95_ms"] is not None
                   else "NO REQUEST ANSWERED IN TIME")
        print(f"  {label} run {number}/{runs}: {result['rps']:.1f} req/s, {latency}, {result['errors']} errors "
              f"(wrk counts a time-out after 10 s), web processes {', '.join(f'{m:.0f}' for m in result['rss_mb'])} MB"
              f"; cores busy: {_busy_text(result['cores_busy'])}{_split_text(result)}")
    return results
