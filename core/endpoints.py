"""Endpoint decorators for plugins: a page or an API call as a plain synchronous function.

::

    @api("things.write")
    def create_thing(request: Request, body: dict[str, Any]) -> dict[str, Any]:
        ...                                    # runs in the thread pool
        raise errors.Invalid(_("Some fields are not valid."), {"name": _("Required.")})

    @page("things.read")
    def things(request: Request, form: Form) -> Response:
        return render(request, "things/list.html", {...})

The decorators check the permission (403 without it, 401/login when signed out), read the
request body (which needs ``await``), refuse text holding control characters (422) and run the
function in the thread pool. A ``dict`` an API function returns is answered as JSON. A
:class:`kehu.errors.DomainError` raised anywhere in a request is answered by the core: the JSON
error body (``{"error": {"code", "message", "fields", ...extra}}``) for the API and for callers
that accept JSON, the error page otherwise.

What ``body`` is: the request's JSON object (``{}`` when there is none; anything else but an
object is a 400 ``bad_json``), or for a form post a :class:`Form`. JSON bodies are limited to
1 MiB, forms with files to ``max_upload_bytes`` (413 ``too_large`` beyond).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kehu.auth import CurrentUser
from kehu.errors import CONTROL_CHARACTERS, Invalid, MalformedBody, TooLarge
from kehu.i18n import gettext as _
from kehu.web import ApiError, check_access, current_user, user_of

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
MAX_JSON_BYTES = 1024 * 1024
MAX_UPLOAD_BYTES = 60 * 1024 * 1024

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Upload:
    """A file sent in a form (``multipart/form-data``)."""

    filename: str
    content: bytes


class Form(dict[str, Any]):
    """A submitted form: each field's last value by name (text, or an :class:`Upload`).

    ``getlist(name)`` gives every value of a repeated field (checkboxes, several phone
    numbers); ``uploads()`` every file sent, whatever its field.
    """

    def __init__(self, pairs: Iterable[tuple[str, Any]] = ()) -> None:
        self._pairs = list(pairs)
        super().__init__(self._pairs)

    def getlist(self, name: str) -> list[Any]:
        return [value for key, value in self._pairs if key == name]

    def multi_items(self) -> list[tuple[str, Any]]:
        return list(self._pairs)

    def uploads(self) -> list[Upload]:
        return [value for _key, value in self._pairs if isinstance(value, Upload)]


def uploads(body: dict[str, Any]) -> list[Upload]:
    """The files of a request body (none for a JSON body)."""
    return body.uploads() if isinstance(body, Form) else []


def _has_control_characters(value: Any) -> bool:
    if isinstance(value, str):
        return CONTROL_CHARACTERS.search(value) is not None
    if isinstance(value, dict):
        return any(_has_control_characters(k) or _has_control_characters(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_control_characters(v) for v in value)
    return False


def refuse_control_characters(pairs: Iterable[tuple[str, Any]]) -> None:
    """Raise :class:`~kehu.errors.Invalid` (422) naming each field whose text holds NUL or
    another control character; files are not text and are not looked at."""
    fields = {str(key): _("Remove the control characters from this text.") for key, value in pairs
              if not isinstance(value, Upload) and (_has_control_characters(key) or _has_control_characters(value))}
    if fields:
        raise Invalid(_("Some fields are not valid."), fields)


async def read_body(request: Request, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> dict[str, Any]:
    """The request's JSON object, or its :class:`Form`, or ``{}`` (an empty form for a
    method without a body). Raises :class:`~kehu.errors.TooLarge` for a body over the limit,
    :class:`~kehu.errors.MalformedBody` for one that is not a JSON object, and
    :class:`~kehu.errors.Invalid` for text with control characters."""
    if request.method not in BODY_METHODS:
        return Form()
    content_type = request.headers.get("content-type", "")
    is_form = content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded"))
    limit = max_upload_bytes if is_form else MAX_JSON_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(_("The request body is too large."))
    if is_form:
        pairs: list[tuple[str, Any]] = []
        async with request.form() as form:
            for key, value in form.multi_items():
                if isinstance(value, str):
                    pairs.append((key, value))
                elif value.filename:  # a file input left empty sends a part without a name
                    pairs.append((key, Upload(value.filename, await value.read())))
        refuse_control_characters(pairs)
        return Form(pairs)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise TooLarge(_("The request body is too large."))
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise MalformedBody(_("The request body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise MalformedBody(_("The request body must be a JSON object."))
    refuse_control_characters(body.items())
    return body


def api(permission: str, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> Callable[[Handler], Handler]:
    """An API endpoint ``handler(request, body) -> dict | Response`` needing ``permission``."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            result = await _call(handler, request, permission, max_upload_bytes)
            return result if isinstance(result, Response) else JSONResponse(result)

        return _marked(endpoint, permission)

    return decorate


def page(permission: str | None, max_upload_bytes: int = MAX_UPLOAD_BYTES, *,
         session_only: bool = False) -> Callable[[Handler], Handler]:
    """A staff page ``handler(request, form) -> Response`` needing ``permission`` (None: any
    logged-in user); ``form`` is the submitted :class:`Form` of a POST (empty for GET).
    ``session_only``: refused to API tokens (a stolen token must not change a password or a
    second factor, nor mint more tokens)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            return await _call(handler, request, permission, max_upload_bytes, session_only=session_only,
                               form_only=True)

        return _marked(endpoint, permission)

    return decorate


async def _call(handler: Handler, request: Request, permission: str | None, max_upload_bytes: int, *,
                session_only: bool = False, form_only: bool = False) -> Any:
    """Check the user's access, read the body, run ``handler`` in the thread pool. Without a
    body (GET), the user's look-up (if the middleware left it pending) and the checks run in
    the same thread as the handler: one thread round trip per request instead of two. With
    one, the body is only read once the user is known and allowed."""
    if request.method not in BODY_METHODS:
        return await run_in_threadpool(_checked_call, handler, request, Form(), permission, session_only)
    _check(request, await user_of(request), permission, session_only)
    body: Any = await read_body(request, max_upload_bytes)
    if form_only and not isinstance(body, Form):  # JSON posted to a page: its members are the fields
        body = Form((str(key), value) for key, value in body.items())
    return await run_in_threadpool(handler, request, body)


def _checked_call(handler: Handler, request: Request, body: Any, permission: str | None, session_only: bool) -> Any:
    _check(request, current_user(request), permission, session_only)
    return handler(request, body)


def _check(request: Request, user: CurrentUser | None, permission: str | None, session_only: bool) -> None:
    check_access(request, user, permission)
    if session_only and user is not None and user.via_token:
        raise ApiError(403, "forbidden", _("This page needs a login session, not an API token."))
    refuse_control_characters(request.query_params.multi_items())


def _marked(endpoint: Callable[..., Any], permission: str | None) -> Handler:
    endpoint.__kehu_permission__ = permission  # type: ignore[attr-defined]  # read by the route walk
    endpoint.__kehu_looks_up_user__ = True  # type: ignore[attr-defined]  # see kehu.web.LoginRequired
    return endpoint  # type: ignore[return-value]
