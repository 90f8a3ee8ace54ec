"""Keep-alive connections recycled now and then, so that they spread over the web processes.

``kehu serve --workers N`` runs N uvicorn processes. Whether they accept from one shared
listening socket (uvicorn's way, ``--shared-socket``) or each from its own
(``SO_REUSEPORT``, :mod:`kehu.reuseport`, the default), a keep-alive connection stays with the
process that accepted it for as long as the client keeps it: a reverse proxy's upstream pool,
a load balancer or a load tool can leave one process with most of the connections while the
other idles. With the shared socket, whichever process wakes first takes a whole burst of new
connections (wrk's 50 split 36/14 and 4/46, with the p95 of the same paced load going from 73
ms at 22/28 to 368 ms at 4/46, see docs/performance.md); with a socket each, the kernel's
hash of the ports decides, even on average but not in every draw.

:class:`KeepAliveRecycling` answers about one response in ``requests`` (at random, so that no
two connections reconnect in step) with ``Connection: close``. uvicorn then closes that
connection after the response and the client opens a new one, which lands on a process drawn
afresh: a new draw every few seconds instead of one split for the whole life of the
connections. This is what nginx's ``keepalive_requests`` does, with a far smaller number than
nginx's 1,000, so that a connection moves within seconds rather than minutes.

``kehu serve`` turns it on by default only where the processes share one socket: with a socket
each, the kernel's draw is already even on average, and recycling raised the p95 of paced runs
there (90 against 44 ms, medians of 8 alternating pairs, docs/performance.md 2026-12-08).
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
