"""The audit log: who did what, when. Append-only and hash-chained.

Each entry stores the hash of the entry before it and its own hash over its canonical content,
so editing or deleting any row breaks the chain at that row (``kehu audit verify`` names it).
The one-row table ``kehu_audit_head`` holds the id and hash of the newest entry, so deleting the
newest entries is detected as well, and writers lock it, so the chain has one writer at a time.

The hashes are HMAC-SHA256 under a key derived from the deployment's blind-index data key,
which is wrapped by the master key outside the database: someone who can only write to the
database cannot recompute the chain after changing a row.

Sensitive values are never written here: record the names of changed fields, not their values.

What the core records (``action``):

=====================  ===========================================================
``auth.login``         a successful login (``detail.second_factor`` when TOTP was used)
``auth.login_failed``  a failed one (``target`` ``login:<name>``, ``detail.reason``)
``auth.password_ok``   a right password, the TOTP code still to come
``auth.totp_failed``   a wrong or replayed TOTP code
``auth.locked``        a login name locked after too many failures
``auth.logout``        a logout
``auth.password``      a user changed their own password
``auth.totp``          a user turned their second factor on or off
``auth.token``         an API token was created or revoked
``access.denied``      a request refused for a missing permission
``users.*``            user administration (create, update, roles, disable, enable,
                       password reset, unlock, second factor reset)
``roles.*``            role administration (create, permissions, delete)
=====================  ===========================================================
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from kehu.models import AuditEntry, AuditHead

GENESIS = "0" * 64
_HEAD_ID = 1


@dataclass(frozen=True)
class Actor:
    """An actor that is not a logged-in user, e.g. ``Actor(login="cli")``."""

    login: str
    id: int | None = None


_key_cache: dict[bytes, bytes] = {}


def _chain_key() -> bytes:
    """The HMAC key of the chain: derived from the index data key (which survives key
    rotation and master key rewrapping)."""
    from kehu import crypto

    try:
        ring = crypto.keyring()
    except crypto.KeyProblem:
        from kehu.platform import current

        ring = crypto.ensure_keys(current())
    index_key = ring.index_key
    if not index_key:
        raise crypto.KeyProblem("no blind index key to derive the audit chain key from: run `kehu db upgrade`")
    if index_key not in _key_cache:
        _key_cache[index_key] = hmac.new(index_key, b"kehu audit chain v1", hashlib.sha256).digest()
    return _key_cache[index_key]


def _canonical(entry: AuditEntry) -> bytes:
    at = entry.at.astimezone(UTC).isoformat(timespec="microseconds")
    content = [entry.id, at, entry.actor_id, entry.actor_login, entry.action, entry.target, entry.detail, entry.ip]
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def entry_hash(prev_hash: str, entry: AuditEntry, key: bytes | None = None) -> str:
    return hmac.new(key or _chain_key(), prev_hash.encode() + _canonical(entry), hashlib.sha256).hexdigest()


def _head(db: Session) -> AuditHead:
    """The head row, locked for this transaction (created on first use)."""
    head = db.scalar(select(AuditHead).where(AuditHead.id == _HEAD_ID).with_for_update()
                     .execution_options(populate_existing=True))
    if head is None:
        dialect = db.get_bind().dialect.name
        if dialect in ("postgresql", "sqlite"):
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            last = db.execute(select(AuditEntry.id, AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)).first()
            db.execute(insert(AuditHead).values(id=_HEAD_ID, last_id=last[0] if last else 0,
                                                last_hash=last[1] if last else GENESIS).on_conflict_do_nothing())
        else:  # pragma: no cover
            db.add(AuditHead(id=_HEAD_ID, last_id=0, last_hash=GENESIS))
            db.flush()
        head = db.scalar(select(AuditHead).where(AuditHead.id == _HEAD_ID).with_for_update()
                         .execution_options(populate_existing=True))
    assert head is not None
    return head


def record(db: Session, action: str, *, actor: Any = None, target: str = "", detail: dict[str, Any] | None = None,
           ip: str = "") -> AuditEntry:
    """Append an entry in the caller's transaction. ``actor`` is a CurrentUser, a User, an
    :class:`Actor` or None. It commits or rolls back with the change it describes."""
    from kehu.db import utcnow

    key = _chain_key()
    head = _head(db)
    entry = AuditEntry(
        id=head.last_id + 1,
        at=utcnow(),
        actor_id=getattr(actor, "id", None),
        actor_login=(getattr(actor, "login", "") or "")[:80],
        action=action[:80],
        target=target[:120],
        detail=detail or {},
        ip=(ip or "")[:64],
        prev_hash=head.last_hash or GENESIS,
    )
    entry.entry_hash = entry_hash(entry.prev_hash, entry, key)
    db.add(entry)
    head.last_id, head.last_hash = entry.id, entry.entry_hash
    db.flush()
    return entry


def verify(db: Session) -> list[str]:
    """Walk the chain; returns one message per broken place (empty when intact). Each message
    names the entry id where the chain breaks."""
    key = _chain_key()
    problems: list[str] = []
    expected_prev = GENESIS
    expected_id = 1
    for entry in db.scalars(select(AuditEntry).order_by(AuditEntry.id)).yield_per(1000):
        if entry.id != expected_id:
            missing = f"entry {expected_id}" if entry.id - 1 == expected_id else f"entries {expected_id}..{entry.id - 1}"
            problems.append(f"{missing} {'is' if entry.id - 1 == expected_id else 'are'} missing (deleted)")
        elif entry.prev_hash != expected_prev:
            problems.append(f"entry {entry.id}: does not follow entry {entry.id - 1}")
        if entry_hash(entry.prev_hash, entry, key) != entry.entry_hash:
            problems.append(f"entry {entry.id} ({entry.action} at {entry.at:%Y-%m-%d %H:%M:%S}) was edited")
        expected_prev = entry.entry_hash
        expected_id = entry.id + 1
    head = db.get(AuditHead, _HEAD_ID)
    if head is None and expected_id > 1:
        problems.append(f"the chain head is missing (entries after {expected_id - 1} may have been deleted)")
    if head is not None and head.last_id >= expected_id:
        missing = f"entry {expected_id}" if head.last_id == expected_id else f"entries {expected_id}..{head.last_id}"
        problems.append(f"{missing} {'is' if head.last_id == expected_id else 'are'} missing (deleted)")
    elif head is not None and head.last_id == expected_id - 1 and head.last_hash != expected_prev and expected_id > 1:
        problems.append(f"entry {head.last_id}: does not match the chain head (edited or replaced)")
    return problems


# --- Browsing -------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""


def search(db: Session, filters: AuditFilter, before: int | None = None, after: int | None = None,
           limit: int = 50) -> tuple[list[AuditEntry], bool, bool]:
    """A page of entries, newest first, by keyset (``before``/``after`` an entry id).
    Returns (entries, whether older ones exist, whether newer ones exist)."""
    query = select(AuditEntry)
    if filters.actor:
        query = query.where(AuditEntry.actor_login == filters.actor)
    if filters.action:
        query = query.where(or_(AuditEntry.action == filters.action, AuditEntry.action.startswith(filters.action + ".")))
    if filters.since:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until:
        query = query.where(AuditEntry.at < filters.until)
    if filters.text:
        def like(value: str) -> str:
            return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").lower() + "%"

        pattern = like(filters.text)
        # JSON is stored with non-ASCII characters escaped (\uXXXX): search that form too.
        escaped = like(json.dumps(filters.text)[1:-1])
        detail = func.lower(cast(AuditEntry.detail, String))
        query = query.where(or_(func.lower(AuditEntry.target).like(pattern, escape="\\"),
                                detail.like(pattern, escape="\\"), detail.like(escaped, escape="\\"),
                                func.lower(AuditEntry.actor_login).like(pattern, escape="\\"),
                                func.lower(AuditEntry.ip).like(pattern, escape="\\")))

    def exists(condition: Any) -> bool:
        return db.scalar(query.where(condition).with_only_columns(AuditEntry.id).limit(1)) is not None

    if after is not None:
        rows = list(db.scalars(query.where(AuditEntry.id > after).order_by(AuditEntry.id.asc()).limit(limit + 1)))
        newer = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        older = exists(AuditEntry.id < (rows[-1].id if rows else after + 1))
        return rows, older, newer
    page = query.where(AuditEntry.id < before) if before is not None else query
    rows = list(db.scalars(page.order_by(AuditEntry.id.desc()).limit(limit + 1)))
    older = len(rows) > limit
    rows = rows[:limit]
    newer = before is not None and exists(AuditEntry.id >= (rows[0].id + 1 if rows else before))
    return rows, older, newer


def actions(db: Session) -> list[str]:
    """The distinct actions recorded so far (for the filter's choices)."""
    return list(db.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


def record_denial(request: Any, message: str = "") -> None:
    """Record that the logged-in user of ``request`` was refused (HTTP 403). Blocking: the web
    layer calls it from a worker thread. Never raises: a failed audit write must not turn a
    403 into a 500 (it is logged instead)."""
    import logging

    user = request.scope.get("kehu.user")
    if user is None:
        return
    try:
        platform = request.app.state.platform
        client = request.client.host if request.client else ""
        with platform.session() as db:
            record(db, "access.denied", actor=user, target=f"{request.method} {request.url.path}",
                   detail={"message": message[:200]} if message else {}, ip=client)
    except Exception:  # noqa: BLE001
        logging.getLogger("kehu.audit").exception("could not record an access denial")
