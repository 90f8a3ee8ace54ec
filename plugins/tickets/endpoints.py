"""How the plugin's pages and API endpoints are wired (the same pattern as contacts).

Endpoint bodies are plain synchronous functions run in the thread pool; the decorators check
the permission, read the request body and turn a :class:`~.service.TicketError` into the
answer the caller expects: the core's JSON error body for the API, an error page for pages.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kehu.i18n import gettext as _
from kehu.web import ApiError, error_body, render, requires

from .service import TicketError

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def error_response(error: TicketError) -> JSONResponse:
    body = error_body(error.status, error.message, error.code, error.fields)
    body["error"].update(error.extra)
    return JSONResponse(body, status_code=error.status)


@dataclass(frozen=True)
class Upload:
    filename: str
    content: bytes


async def read_body(request: Request, max_bytes: int = 60 * 1024 * 1024) -> dict[str, Any]:
    """A JSON object, or a multipart form (files as :class:`Upload`), or ``{}``."""
    if request.method not in BODY_METHODS:
        return {}
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ApiError(413, "too_large", _("The request is too large."))
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body: dict[str, Any] = {}
        async with request.form(max_part_size=max_bytes) as form:
            for key, value in form.multi_items():
                if isinstance(value, str):
                    body[key] = value
                elif value.filename:
                    body.setdefault("_files", []).append(Upload(value.filename, await value.read()))
        return body
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        async with request.form() as form:
            return {key: value for key, value in form.items() if isinstance(value, str)}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "bad_json", _("The request body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", _("The request body must be a JSON object."))
    return body


def api(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An API endpoint ``handler(request, body) -> dict | Response`` needing ``permission``."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            body = await read_body(request)
            try:
                result = await run_in_threadpool(handler, request, body)
            except TicketError as error:
                return error_response(error)
            return result if isinstance(result, Response) else JSONResponse(result)

        return requires(permission)(endpoint)

    return decorate


def page(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A staff page ``handler(request, form) -> Response`` needing ``permission``; ``form``
    holds the submitted fields (files as :class:`Upload` under ``_files``)."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            form: dict[str, Any] = {}
            if request.method == "POST":
                if request.headers.get("content-type", "").startswith("multipart/form-data"):
                    form = await read_body(request)
                else:
                    async with request.form() as data:
                        form = form_dict(data)
            try:
                return await run_in_threadpool(handler, request, form)
            except TicketError as error:
                return render(request, "error.html", {"status": error.status, "message": error.message},
                              status_code=error.status)

        return requires(permission)(endpoint)

    return decorate


def form_dict(form: FormData) -> dict[str, Any]:
    """Fields by name (the last value), and every value of repeated fields under ``<name>[]``."""
    data: dict[str, Any] = {}
    for key in form.keys():
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        data[key] = values[-1] if values else ""
        data[f"{key}[]"] = values
    return data
