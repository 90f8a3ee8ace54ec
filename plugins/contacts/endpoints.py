"""How the plugin's pages and API endpoints are wired: two small decorators.

Endpoint bodies are plain synchronous functions (the database layer is synchronous). The
decorators check the permission, read the request body (which needs ``await``), run the body
in the thread pool and turn a :class:`~kehu_plugins.contacts.service.ContactError` into the
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

from .service import CONTROL_CHARACTERS, ContactError, Invalid

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def error_response(error: ContactError) -> JSONResponse:
    """The core's error body, plus what the error carries (``duplicates``, ``changes``, ...)."""
    body = error_body(error.status, error.message, error.code, error.fields)
    body["error"].update(_jsonable(error.extra))
    return JSONResponse(body, status_code=error.status)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart request."""

    filename: str
    content: bytes


#: The largest JSON body an endpoint reads (uploads are multipart, limited by the importer).
MAX_JSON_BYTES = 1024 * 1024


def _has_control_characters(value: Any) -> bool:
    if isinstance(value, str):
        return CONTROL_CHARACTERS.search(value) is not None
    if isinstance(value, dict):
        return any(_has_control_characters(k) or _has_control_characters(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_control_characters(v) for v in value)
    return False


def refuse_control_characters(values: Any) -> None:
    """Raise :class:`ContactError` (422) naming each field of ``values`` (a mapping, or a list
    of pairs) whose text holds NUL or another control character: nothing stores them."""
    pairs = values.items() if isinstance(values, dict) else values
    fields = {str(key): _("Remove the control characters from this text.")
              for key, value in pairs if _has_control_characters(key) or _has_control_characters(value)}
    if fields:
        raise Invalid(_("Some fields are not valid."), fields)


async def _body(request: Request) -> dict[str, Any]:
    """A JSON object, or a multipart form (files as :class:`Upload`), or ``{}``."""
    if request.method not in BODY_METHODS:
        return {}
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body: dict[str, Any] = {}
        async with request.form() as form:
            for key, value in form.multi_items():
                body[key] = value if isinstance(value, str) else Upload(value.filename or "", await value.read())
        return body
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", _("The request body is too large."))
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            raise ApiError(413, "too_large", _("The request body is too large."))
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_json", _("The request body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", _("The request body must be a JSON object."))
    return body


def api(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An API endpoint ``handler(request, body) -> dict | Response`` needing ``permission``.

    ``body`` is the request's JSON object, or its multipart form with files as
    :class:`Upload` (``{}`` for GET and DELETE); a ``dict`` result is answered as JSON.
    """

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            body = await _body(request)
            try:
                refuse_control_characters(request.query_params.multi_items())
                refuse_control_characters({k: v for k, v in body.items() if not isinstance(v, Upload)})
                result = await run_in_threadpool(handler, request, body)
            except ContactError as error:
                return error_response(error)
            return result if isinstance(result, Response) else JSONResponse(result)

        return requires(permission)(endpoint)

    return decorate


def page(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A staff page ``handler(request, form) -> Response`` needing ``permission``.

    ``form`` is the submitted form of a POST (an empty ``FormData`` for GET). A
    :class:`ContactError` the handler lets through becomes an error page with its status.
    """

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            form = FormData()
            if request.method == "POST":
                form = await request.form()
            try:
                refuse_control_characters(request.query_params.multi_items())
                refuse_control_characters([(k, v) for k, v in form.multi_items() if isinstance(v, str)])
                return await run_in_threadpool(handler, request, form)
            except ContactError as error:
                return render(request, "error.html", {"status": error.status, "message": error.message},
                              status_code=error.status)
            finally:
                if request.method == "POST":
                    await form.close()

        return requires(permission)(endpoint)

    return decorate


def form_dict(form: FormData, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """A submitted form as a dict; fields in ``lists`` keep every value they were sent."""
    data: dict[str, Any] = {}
    for key in form.keys():
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        data[key] = values if key in lists else (values[-1] if values else "")
    return data
