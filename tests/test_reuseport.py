"""kehu.reuseport: ``kehu serve --workers N`` gives each web process a listening socket of its
own, the kernel spreads connections over them, and a process that dies is replaced on its
socket without losing the connections that waited for it."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kehu import reuseport
from tests.conftest import free_port, stop_process

KEHU = [sys.executable, "-m", "kehu.cli"]

pytestmark = pytest.mark.skipif(not reuseport.available(), reason="this platform has no SO_REUSEPORT")


def test_sockets_share_one_port_and_a_taken_port_is_refused() -> None:
    sockets = reuseport.bind_per_process("127.0.0.1", 0, 3, 128)
    try:
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(ports) == 1 and 0 not in ports  # port 0: the others joined the first one's port
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in sockets)
        # Another server asking for the same port, even one that would share it, is refused.
        with pytest.raises(reuseport.PortTaken, match=f"127.0.0.1:{ports.pop()}: Address already in use"):
            reuseport.bind_per_process("127.0.0.1", sockets[0].getsockname()[1], 2, 128)
    finally:
        for sock in sockets:
            sock.close()
    with socket.create_server(("127.0.0.1", 0)) as plain:  # a plain listener, no SO_REUSEPORT
        with pytest.raises(reuseport.PortTaken, match="Address already in use"):
            reuseport.bind_per_process("127.0.0.1", plain.getsockname()[1], 2, 128)


# --- kehu serve --workers 2 -----------------------------------------------------------------


@dataclass
class Served:
    server: subprocess.Popen[bytes]
    port: int
    log: Path
    env: dict[str, str]

    def web_processes(self) -> list[int]:
        """The server's uvicorn worker processes (spawned by multiprocessing)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.server.pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
        return sorted(found)

    def socket_inodes(self, state: str) -> set[str]:
        """Inodes of the TCP sockets on the served port in ``state`` (0A: listening, 01: established)."""
        inodes = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == self.port:
                inodes.add(fields[9])
        return inodes

    def held_by(self, pid: int, inodes: set[str]) -> set[str]:
        held = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held.add(target[8:-1])
        return held

    def listeners(self) -> dict[int, set[str]]:
        """Each web process's listening sockets on the port."""
        listening = self.socket_inodes("0A")
        return {pid: self.held_by(pid, listening) for pid in self.web_processes()}

    def wait_for_processes(self, count: int, timeout: float = 60) -> dict[int, set[str]]:
        deadline = time.monotonic() + timeout
        while True:
            assert self.server.poll() is None, self.log.read_text()
            found = self.listeners()
            if len(found) == count and all(found.values()) and healthy(self.port):
                return found
            assert time.monotonic() < deadline, f"not {count} web processes listening in {timeout:.0f} s: {found}"
            time.sleep(0.3)


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("reuseport")
    env = {**os.environ, "KEHU_HOME": str(folder / "home"), "KEHU_DATABASE_URL": f"sqlite:///{folder / 'kehu.sqlite3'}",
           "KEHU_MASTER_KEY_FILE": str(folder / "master.key")}
    env.pop("KEHU_REUSE_PORT", None)
    env.pop("KEHU_KEEPALIVE_REQUESTS", None)
    subprocess.run([*KEHU, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = folder / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([*KEHU, "serve", "--port", str(port), "--workers", "2", "--no-worker"], env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Served(server, port, log, env)
    finally:
        stop_process(server)


def test_each_web_process_listens_on_a_socket_of_its_own(served: Served) -> None:
    listeners = served.wait_for_processes(2)
    first, second = listeners.values()
    assert len(first) == len(second) == 1 and first != second, listeners
    assert "one listening socket each (SO_REUSEPORT)" in served.log.read_text()


def test_connections_are_not_recycled_by_default(served: Served) -> None:
    """With a socket each, KEHU_KEEPALIVE_REQUESTS defaults to 0 (recycling raised the p95 there)."""
    served.wait_for_processes(2)
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        for _ in range(300):  # with recycling on (1 in 20), (19/20) ** 300: never kept open by chance
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            response = http.client.HTTPResponse(conn)
            response.begin()
            response.read()
            assert response.status == 200
            assert (response.getheader("connection") or "").lower() != "close"


def test_new_connections_spread_over_both_processes(served: Served) -> None:
    served.wait_for_processes(2)
    connections = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(40)]
    try:
        for conn in connections:  # one request each, so that each connection has been accepted
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert conn.recv(12).startswith(b"HTTP/1.1 200")
        established = served.socket_inodes("01")
        split = sorted(len(served.held_by(pid, established)) for pid in served.web_processes())
    finally:
        for conn in connections:
            conn.close()
    assert sum(split) == 40, split
    # The kernel hashes each connection's ports: a split under 5/35 has a chance of about 1e-7.
    assert split[0] >= 5, split


def test_a_killed_process_is_replaced_on_its_socket_and_waiting_connections_are_served(served: Served) -> None:
    before = served.wait_for_processes(2)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    # Requests made at once: those the kernel sends to the dead process's socket wait in its
    # queue (the supervisor keeps the socket open) until the replacement accepts them.
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=60).status_code,
                                 range(40)))
    assert statuses == [200] * 40
    after = served.wait_for_processes(2)
    assert victim not in after
    assert sorted(map(sorted, after.values())) == sorted(map(sorted, before.values()))  # the same two sockets


def test_ttin_adds_a_process_with_a_socket_and_ttou_removes_it(served: Served) -> None:
    before = served.wait_for_processes(2)
    served.server.send_signal(signal.SIGTTIN)
    grown = served.wait_for_processes(3)
    sockets = [inode for inodes in grown.values() for inode in inodes]
    assert len(sockets) == len(set(sockets)) == 3, grown
    served.server.send_signal(signal.SIGTTOU)
    shrunk = served.wait_for_processes(2)
    assert shrunk == before, (before, shrunk)
    assert healthy(served.port)


def test_a_port_already_served_is_one_line_and_exit_1(served: Served) -> None:
    """Another ``kehu serve`` on the port of one that runs (whose sockets have SO_REUSEPORT)
    must not quietly share its connections."""
    served.wait_for_processes(2)
    done = subprocess.run([*KEHU, "serve", "--port", str(served.port), "--workers", "2", "--no-worker"],
                          env=served.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{served.port}: Address already in use"]
