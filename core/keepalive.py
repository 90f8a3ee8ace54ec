"""Keep-alive connections recycled now and then, so that they spread over the web processes.

``kehu serve --workers N`` runs N uvicorn processes that accept connections from one shared
listening socket. Whichever process wakes first takes a whole burst of new connections, and
a keep-alive connection then stays with that process for as long as the client keeps it: a
reverse proxy's upstream pool, a load balancer or a load tool can leave one process with most
of the connections while the other idles. Measured with wrk's 50 connections against two
processes: splits of 36/14 and 4/46, with the p95 of the same paced load going from 73 ms
(22/28) to 368 ms (4/46), see docs/performance.md.

:class:`KeepAliveRecycling` answers about one response in ``requests`` (at random, so that no
two connections reconnect in step) with ``Connection: close``. uvicorn then closes that
connection after the response and the client opens a new one, which lands on whichever
process accepts first: a fresh draw every few seconds instead of one split for the whole life
of the connections. It does not make the split even (the busy process's loop is often the one
awake to accept), but it ends the long runs on one process. This is what nginx's
``keepalive_requests`` does, with a far smaller number than nginx's 1,000, so that a
connection moves within seconds rather than minutes.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLOSE = (b"connection", b"close")


class KeepAliveRecycling:
    """ASGI middleware: ``Connection: close`` on about one HTTP response in ``requests``
    (``requests`` of 0 turns it off). ``chance`` is the random draw in [0, 1), for tests."""

    def __init__(self, app: ASGIApp, requests: int, chance: Callable[[], float] = random.random) -> None:
        if requests < 0:
            raise ValueError(f"requests must be 0 (off) or more, not {requests}")
        self.app = app
        self.probability = 1 / requests if requests else 0.0
        self.chance = chance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.probability or self.chance() >= self.probability:
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
            await send(message)

        await self.app(scope, receive, send_closing)
