"""Errors a plugin's business code raises when a request cannot be carried out.

They know nothing of HTTP requests: the service layer raises them, and the endpoint decorators
of :mod:`kehu.endpoints` answer them — the core's JSON error body for the API
(``{"error": {"code", "message", "fields", ...extra}}``), an error page for staff pages.
A plugin subclasses them for its own cases (a ``409 duplicate`` carrying the candidates, say).
"""

from __future__ import annotations

import re
from typing import Any

#: Text may hold tabs and line breaks, nothing else below U+0020 (nor DEL): nothing stores them.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class DomainError(Exception):
    """A request that cannot be carried out; ``status`` is the HTTP status to answer with.

    ``message`` is for a person (translate it); ``fields`` holds a message per input field;
    ``extra`` is what else the answer carries (e.g. the ``duplicates`` found), merged into the
    error body. Values in ``extra`` with an ``as_dict()`` method are answered as that dict.
    """

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra


class NotFound(DomainError):
    status, code = 404, "not_found"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class Invalid(DomainError):
    status, code = 422, "invalid"


class Conflict(DomainError):
    status, code = 409, "conflict"


class TooLarge(DomainError):
    """A request body over the endpoint's limit."""

    status, code = 413, "too_large"


class MalformedBody(DomainError):
    """A request body that is not what the endpoint reads (not JSON, not a JSON object)."""

    status, code = 400, "bad_json"
