"""kehu.keepalive: about one response in N closes its keep-alive connection, and uvicorn and
``kehu serve`` really close it."""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from kehu.config import SEVERAL_WORKERS_KEEPALIVE_REQUESTS, Settings, SettingsError
from kehu.keepalive import KeepAliveRecycling
from tests.conftest import free_port, stop_process

KEHU = [sys.executable, "-m", "kehu.cli"]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def call(app: KeepAliveRecycling, scope_type: str = "http") -> list[Message]:
    """One request through ``app``, on an event loop of its own thread (the suite's thread may
    have one running); returns the messages it sent."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, _call(app, scope_type)).result()


async def _call(app: KeepAliveRecycling, scope_type: str) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": scope_type}, receive, send)
    return sent


def closes(messages: list[Message]) -> bool:
    return (b"connection", b"close") in messages[0]["headers"]


def test_a_response_closes_its_connection_when_the_draw_falls_under_one_in_n() -> None:
    draws = iter([0.10, 0.30, 0.2499, 0.25, 0.99])
    app = KeepAliveRecycling(hello, requests=4, chance=lambda: next(draws))
    answers = [call(app) for _ in range(5)]
    assert [closes(messages) for messages in answers] == [True, False, True, False, False]
    assert all(messages[1]["body"] == b"hello" for messages in answers)  # the body goes through as it was
    assert answers[0][0]["headers"][0] == (b"content-type", b"text/plain")


def test_zero_never_closes_and_other_scopes_pass_untouched() -> None:
    def no_draw() -> float:
        raise AssertionError("requests=0 must not draw at all")

    never = KeepAliveRecycling(hello, 0, chance=no_draw)
    assert [closes(call(never)) for _ in range(50)] == [False] * 50

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "lifespan.startup.complete"})

    assert call(KeepAliveRecycling(lifespan, 1, chance=lambda: 0.0), "lifespan") == [
        {"type": "lifespan.startup.complete"}]
    with pytest.raises(ValueError, match="0 \\(off\\) or more"):
        KeepAliveRecycling(hello, -1)


def test_the_setting_is_read_and_checked() -> None:
    assert Settings.from_env({}).keepalive_requests == 0
    assert Settings.from_env({"KEHU_KEEPALIVE_REQUESTS": "0"}).keepalive_requests == 0
    assert Settings.from_env({"KEHU_KEEPALIVE_REQUESTS": "50"}).keepalive_requests == 50
    for bad in ("-1", "many", "2.5"):
        with pytest.raises(SettingsError,
                           match=f"KEHU_KEEPALIVE_REQUESTS must be a whole number of at least 0, not '{bad}'"):
            Settings.from_env({"KEHU_KEEPALIVE_REQUESTS": bad})


def requests_until_closed(port: int, limit: int, path: str = "/healthz") -> int | None:
    """GET ``path`` over one keep-alive connection until the server answers ``Connection:
    close`` and then really closes it; returns how many requests that took, or None when
    ``limit`` requests all kept the connection open."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for number in range(1, limit + 1):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            response = http.client.HTTPResponse(sock)
            response.begin()
            response.read()
            assert response.status < 500, f"{path} answered {response.status}"
            if (response.getheader("connection") or "").lower() == "close":
                assert sock.recv(1) == b"", "the server said close but left the connection open"
                return number
        return None


@pytest.fixture
def uvicorn_serving() -> Iterator[Callable[[int], int]]:
    """Serves :func:`hello` behind the middleware with ``requests`` given; returns the port."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(requests: int) -> int:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(KeepAliveRecycling(hello, requests), host="127.0.0.1", port=port,
                                               loop="asyncio", http="httptools", log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start in 10 s"
            time.sleep(0.02)
        servers.append((server, thread))
        return port

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_uvicorn_closes_the_connection_it_was_told_to(uvicorn_serving: Callable[[int], int]) -> None:
    port = uvicorn_serving(5)
    counts = [requests_until_closed(port, 200, "/") for _ in range(20)]
    assert None not in counts  # 0.8 ** 200: never kept open by chance
    assert 2 < sum(counts) / len(counts) < 12  # a geometric mean of 5, loosely
    assert requests_until_closed(uvicorn_serving(0), 300, "/") is None


def test_kehu_serve_with_several_workers_on_a_shared_socket_recycles_connections_by_default(tmp_path: Path) -> None:
    env = {**os.environ, "KEHU_HOME": str(tmp_path / "home"),
           "KEHU_DATABASE_URL": f"sqlite:///{tmp_path / 'kehu.sqlite3'}",
           "KEHU_MASTER_KEY_FILE": str(tmp_path / "master.key")}
    env.pop("KEHU_KEEPALIVE_REQUESTS", None)
    subprocess.run([*KEHU, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        server = subprocess.Popen([*KEHU, "serve", "--port", str(port), "--workers", "2", "--shared-socket", "--no-worker"],
                                  env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "kehu serve did not listen in 60 s"
                time.sleep(0.3)
        limit = 30 * SEVERAL_WORKERS_KEEPALIVE_REQUESTS  # (19/20) ** 600: never kept open by chance
        counts = [requests_until_closed(port, limit) for _ in range(5)]
        assert None not in counts, counts
    finally:
        stop_process(server)
