"""``/healthz``: is the database reachable, the job queue reachable, the schema current?"""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def check(platform) -> tuple[bool, dict[str, object]]:  # type: ignore[no-untyped-def]
    from kehu import migrations

    report: dict[str, object] = {}
    try:
        with platform.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        report["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        report["database"] = f"unreachable: {type(exc).__name__}: {exc}"
    try:
        from kombu import Connection

        with Connection(platform.settings.broker_url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        report["job_queue"] = "ok"
    except Exception as exc:  # noqa: BLE001
        report["job_queue"] = f"unreachable: {type(exc).__name__}: {exc}"
    pending: dict[str, list[str]] = {}
    if report["database"] == "ok":
        for mm in migrations.active_modules(platform):
            waiting = migrations.pending(platform.engine, mm)
            if waiting:
                pending[mm.module] = waiting
    report["migrations"] = "current" if not pending else {"pending": pending}
    report["broken_modules"] = {n: i.error for n, i in platform.modules.items() if i.error}
    healthy = report["database"] == "ok" and report["job_queue"] == "ok" and not pending
    return healthy, report


def healthz(request: Request) -> JSONResponse:
    healthy, report = check(request.app.state.platform)
    return JSONResponse({"status": "ok" if healthy else "failing", **report}, status_code=200 if healthy else 503)


def routes() -> list[Route]:
    return [Route("/healthz", healthz)]
