"""Signed links to a ticket's status page for its customer (itsdangerous).

The token carries the ticket id and the ticket's ``portal_key`` and is signed with the
deployment's link secret: it opens that ticket's page and no other, and changing the ticket's
``portal_key`` (done at erasure) revokes every link sent before. Links expire after the
``link_max_age_days`` setting.

The secret is the ``KEHU_TICKETS_LINK_SECRET`` setting, else a random key kept in
``<KEHU_HOME>/tickets/link.key`` (created on first use, readable by its owner only), so it is
never in the database or its backups.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from kehu.platform import Platform

from .models import Ticket

SALT = "kehu.tickets.status-link"
FORM_SALT = "kehu.tickets.public-form"


def _key_file(platform: Platform) -> Path:
    return platform.settings.home / "tickets" / "link.key"


def secret(platform: Platform) -> str:
    configured = platform.setting("tickets", "link_secret")
    if configured:
        return configured
    path = _key_file(platform)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it a moment ago
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty: delete it to have a new link secret made")
    return value


def _serializer(platform: Platform, salt: str = SALT) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret(platform), salt=salt)


def token_for(platform: Platform, ticket: Ticket) -> str:
    return _serializer(platform).dumps([ticket.id, ticket.portal_key])


def status_url(platform: Platform, ticket: Ticket) -> str:
    base = platform.setting("tickets", "public_url").rstrip("/")
    return f"{base}/public/tickets/s/{token_for(platform, ticket)}"


def ticket_for(platform: Platform, db: Session, token: str) -> Ticket | None:
    """The ticket a status-page token opens, or ``None`` (bad, expired or revoked)."""
    max_age = int(platform.setting("tickets", "link_max_age_days")) * 86400
    try:
        ticket_id, key = _serializer(platform).loads(token, max_age=max_age)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(ticket_id, int) or not isinstance(key, str):
        return None
    ticket = db.get(Ticket, ticket_id)
    if ticket is None or not hmac.compare_digest(ticket.portal_key, key):
        return None
    return ticket


# --- The public form's proof of a human pace -------------------------------------------------------


def form_token(platform: Platform, issued_at: float) -> str:
    """Signed into the public form when it is shown: when it was shown."""
    return _serializer(platform, FORM_SALT).dumps({"at": issued_at})


def form_issued_at(platform: Platform, token: str, max_age_seconds: int = 2 * 3600) -> float | None:
    try:
        data: Any = _serializer(platform, FORM_SALT).loads(token, max_age=max_age_seconds)
    except (BadSignature, ValueError, TypeError):
        return None
    value = data.get("at") if isinstance(data, dict) else None
    return float(value) if isinstance(value, (int, float)) else None
