"""Start-up time of a web process, measured in a fresh interpreter.

    python bench/startup_memory.py kehu    # imports, create_app() with every enabled plugin, GET /login
    python bench/startup_memory.py floor   # imports starlette + sqlalchemy, a bare app, GET / (one query)

Prints one JSON line: seconds from the first line of this script to the application built
(``built``) and to the first response (``first_response``), the status of that response and
the process's resident memory then. The parent (bench/run.py) also times the whole process,
interpreter start-up included. The deployment is the one in the environment (KEHU_*).

Memory after warm-up under load is measured on the served web processes (bench/http_mix.py).
"""

import time

STARTED = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


async def first_response(app, path: str) -> int:  # type: ignore[no-untyped-def]
    """One GET through the ASGI interface, as uvicorn would call it; returns the status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    status = 0

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def kehu() -> tuple[float, int]:
    from kehu.web import create_app

    app = create_app()
    built = time.perf_counter() - STARTED
    return built, asyncio.run(first_response(app, "/login"))


def floor() -> tuple[float, int]:
    from sqlalchemy import create_engine, text
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    url = os.environ["KEHU_DATABASE_URL"]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    engine = create_engine(url)

    def home(request):  # type: ignore[no-untyped-def]
        with engine.connect() as connection:
            return JSONResponse({"users": connection.execute(text("SELECT count(*) FROM kehu_user")).scalar()})

    app = Starlette(routes=[Route("/", home)])
    built = time.perf_counter() - STARTED
    return built, asyncio.run(first_response(app, "/"))


if __name__ == "__main__":
    built, status = kehu() if sys.argv[1] == "kehu" else floor()
    print(json.dumps({"built": built, "first_response": time.perf_counter() - STARTED, "status": status,
                      "rss_mb": rss_mb()}))
