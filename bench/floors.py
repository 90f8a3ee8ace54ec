"""The floor of the HTTP measurement: a bare Starlette application on the same database.

It answers the very URLs of the staff mix (the same wrk script runs against it), each with one
plain SQLAlchemy Core query on the same table Kehu reads or writes for that request, and a body
of the size Kehu's answer had (``BENCH_FLOOR_SIZES``, measured just before). No login, no
permissions, no templates, no encryption, no plugins: what any Python web application on this
stack pays at least. Served by uvicorn with Kehu's options (uvloop, httptools, the same number
of workers); endpoints are sync functions in the thread pool, as Kehu's are.

    BENCH_FLOOR_DATABASE_URL=... BENCH_FLOOR_SIZES='{"contact list page": 41000, ...}' \\
        python -m uvicorn --app-dir bench --factory floors:create_floor_app --workers 2 ...
"""

from __future__ import annotations

import json
import os
from typing import Any

from sqlalchemy import create_engine, event, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route


# The request kinds of the staff mix (bench/http_mix.py), by the names both sides use.
CONTACT_LIST = "contact list page"
CONTACT_DETAIL = "contact detail page"
PHONE_SEARCH = "phone search (API)"
CONTACT_API = "contact (API)"
TICKET_QUEUE = "ticket queue page"
TICKET_LIST_API = "ticket list (API)"
TICKET_UPDATE = "ticket update (API)"


def floor_engine(url: str) -> Any:
    """A plain engine; SQLite gets the same connection settings as Kehu's (WAL, NORMAL sync)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if not url.startswith("sqlite"):
        return create_engine(url)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _padded(payload: str, size: int) -> str:
    return payload + " " * max(0, size - len(payload.encode()))


def create_floor_app() -> Starlette:
    engine = floor_engine(os.environ["BENCH_FLOOR_DATABASE_URL"])
    sizes: dict[str, int] = json.loads(os.environ.get("BENCH_FLOOR_SIZES", "{}"))

    def rows(sql: str, **params: Any) -> list[dict[str, Any]]:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(sql), params)]

    def html(kind: str, data: Any) -> HTMLResponse:
        body = "<html><body><pre>" + json.dumps(data, default=str, ensure_ascii=False) + "</pre></body></html>"
        return HTMLResponse(_padded(body, sizes.get(kind, 0)))

    def api(kind: str, data: Any) -> Response:
        return Response(_padded(json.dumps(data, default=str, ensure_ascii=False), sizes.get(kind, 0)),
                        media_type="application/json")

    def contact_list(request: Request) -> Response:
        page = int(request.query_params.get("page", "1") or 1)
        return html(CONTACT_LIST, rows(
            "SELECT id, name, city, stage, created_at FROM contacts_contact ORDER BY created_at DESC, id DESC "
            "LIMIT 50 OFFSET :offset", offset=(page - 1) * 50))

    def contact_detail(request: Request) -> Response:
        return html(CONTACT_DETAIL, rows("SELECT * FROM contacts_contact WHERE id = :id",
                                                id=request.path_params["id"]))

    def contact_search(request: Request) -> Response:  # the same index probe as a phone search
        return api(PHONE_SEARCH, {"items": rows(
            "SELECT contact_id FROM contacts_contact_point WHERE kind = 'phone' AND lookup = :q",
            q=request.query_params.get("q", ""))})

    def contact_api(request: Request) -> Response:
        return api(CONTACT_API, rows("SELECT * FROM contacts_contact WHERE id = :id", id=request.path_params["id"]))

    def ticket_queue(request: Request) -> Response:
        return html(TICKET_QUEUE, rows(
            "SELECT id, number, subject, status, priority, created_at FROM tickets_ticket "
            "ORDER BY created_at DESC, id DESC LIMIT 50"))

    def ticket_list_api(request: Request) -> Response:
        return api(TICKET_LIST_API, {"items": rows(
            "SELECT id, number, subject, status, priority, created_at FROM tickets_ticket "
            "ORDER BY created_at DESC, id DESC LIMIT 20")})

    def ticket_update(request: Request) -> Response:
        with engine.begin() as connection:
            connection.execute(text("UPDATE tickets_ticket SET priority = :p, updated_at = CURRENT_TIMESTAMP "
                                    "WHERE id = :id"), {"p": "high", "id": request.path_params["id"]})
        return api(TICKET_UPDATE, {"id": request.path_params["id"]})

    def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/healthz", health),
        Route("/contacts/", contact_list),
        Route("/contacts/{id:int}", contact_detail),
        Route("/api/contacts/", contact_search),
        Route("/api/contacts/{id:int}", contact_api),
        Route("/tickets/", ticket_queue),
        Route("/api/tickets/", ticket_list_api),
        Route("/api/tickets/{id:int}", ticket_update, methods=["PATCH"]),
    ])
