"""Who is asking: passwords, login throttling, server-side sessions, TOTP, API tokens.

Passwords
    Hashed with argon2id (argon2-cffi) at OWASP's recommended minimum cost (19 MiB, 2 passes,
    1 lane: about 20 ms instead of about 210 ms for argon2-cffi's defaults) and re-hashed at
    login whenever those parameters are raised (``check_needs_rehash``). Policy after OWASP
    ASVS 2.1: 8 to 128 characters, not one of 10,000 common passwords, no composition rules.
    Hashing is CPU work: web code calls the functions here from a worker thread, never on the
    event loop.

Login throttling (state in the database, so every web process sees the same counts)
    10 failures for one login name lock it for 10 minutes, whether or not an account of that
    name exists (so a lock tells nothing about existence); a success clears the count. Failures
    from one client address beyond ``ADDRESS_FREE`` within an hour make that address wait
    ``2**(n - ADDRESS_FREE)`` seconds (at most 15 minutes) before its next try: HTTP 429 with
    ``Retry-After``. Wrong TOTP codes count like wrong passwords.

Sessions
    A random id in an HttpOnly cookie; only its SHA-256 is stored, so the database cannot be
    used to hijack one. A new id at every login; deleted on the server at logout, password
    change and account disable. Idle for 12 hours or older than 7 days: gone.

Second factor
    Optional TOTP (RFC 6238, pyotp, 30 s steps, ±1 step of clock drift). The secret is sealed by
    :mod:`kehu.crypto`. A code works once: the last used time step is stored and only later
    steps are accepted, atomically (``UPDATE … WHERE totp_last_step < step``).

API tokens
    ``kehu_`` + 256 random bits, shown once; only the SHA-256 is stored (a token has full
    entropy, so a slow hash adds nothing). Each acts as its user, can be revoked and records
    when it was last used (to the minute).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.orm import Session

from kehu import crypto
from kehu.db import kept_rows, read_rows
from kehu.models import ApiToken, AuthSession, LoginThrottle, User

if TYPE_CHECKING:  # pragma: no cover
    from kehu.platform import Platform

SESSION_COOKIE = "kehu_session"
SESSION_IDLE_LIMIT = timedelta(hours=12)
SESSION_ABSOLUTE_LIMIT = timedelta(days=7)
SESSION_TOUCH_EVERY = timedelta(minutes=5)  # how stale a session's last-seen time may get
TOKEN_TOUCH_EVERY = timedelta(minutes=1)  # how stale a token's last-used time may get
SECOND_FACTOR_WINDOW = timedelta(minutes=5)  # between the password and the TOTP code
PASSWORD_MIN, PASSWORD_MAX = 8, 128

ACCOUNT_LIMIT = 10  # failures that lock a login name ...
ACCOUNT_LOCK = timedelta(minutes=10)  # ... for this long
ADDRESS_FREE = 20  # failures from one address before it is slowed down
ADDRESS_WINDOW = timedelta(hours=1)  # a count older than this (no failure since) starts over
ADDRESS_MAX_DELAY = timedelta(minutes=15)

TOTP_ISSUER = "Kehu"

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@dataclass(frozen=True)
class CurrentUser:
    """The authenticated user of a request or job, detached from any database session."""

    id: int
    login: str
    name: str
    permissions: frozenset[str]
    team: str = ""
    language: str = "zh"
    session_id_hash: str = ""
    csrf_token: str = ""
    via_token: bool = False  # authenticated by an API token rather than a login session

    def can(self, permission: str) -> bool:
        return "*" in self.permissions or permission in self.permissions

    @property
    def is_admin(self) -> bool:
        return "*" in self.permissions


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- Passwords --------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> tuple[bool, str | None]:
    """(matches, new hash or None): the new hash when the stored one has outdated parameters.

    An empty or malformed hash never matches, after spending the time of a real check."""
    if not password_hash:
        burn_password_check()
        return False, None
    try:
        _hasher.verify(password_hash, password)
    except InvalidHashError:
        burn_password_check()
        return False, None
    except VerificationError:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(password_hash) else None)


def verify_password(user: User, password: str) -> bool:
    """Check ``password``; upgrade the stored hash when the cost parameters changed."""
    ok, new_hash = check_password(user.password_hash, password)
    if ok and new_hash:
        user.password_hash = new_hash
    return ok


def burn_password_check() -> None:
    """Spend the time of a real check, so an unknown login answers as slowly as a known one."""
    _hasher.hash("not-a-real-password")


def password_problems(password: str, login: str = "") -> list[str]:
    """OWASP ASVS: length 8..128, not a common password; no composition rules."""
    from kehu.i18n import gettext as _

    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append(_("Use at least %(n)s characters.", n=PASSWORD_MIN))
    if len(password) > PASSWORD_MAX:
        problems.append(_("Use at most %(n)s characters.", n=PASSWORD_MAX))
    lowered = password.lower()
    if lowered in _common_passwords() or (login and lowered == login.lower()):
        problems.append(_("This password is too common; choose another."))
    return problems


_COMMON: frozenset[str] | None = None


def _common_passwords() -> frozenset[str]:
    """10,000 common passwords of 8 to 64 characters (``core/data/common_passwords.txt``)."""
    global _COMMON
    if _COMMON is None:
        from pathlib import Path

        path = Path(__file__).parent / "data" / "common_passwords.txt"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        _COMMON = frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))
    return _COMMON


def set_password(db: Session, user: User, password: str) -> None:
    """Store a new password and end every session of the user (old cookies stop working)."""
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    end_all_sessions(db, user.id)


# --- Throttling -------------------------------------------------------------------------


def throttle_key(kind: str, value: str) -> str:
    return _digest(f"{kind}:{value.strip().lower() if kind == 'login' else value}")


def _throttle_row(db: Session, kind: str, value: str) -> LoginThrottle:
    """The row for ``kind``/``value``, created if missing and locked for this transaction."""
    key = throttle_key(kind, value)
    dialect = db.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        db.execute(insert(LoginThrottle).values(key=key, kind=kind, failures=0).on_conflict_do_nothing())
    elif db.get(LoginThrottle, key) is None:  # pragma: no cover - other databases
        db.add(LoginThrottle(key=key, kind=kind, failures=0))
        db.flush()
    row = db.scalar(select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
                    .execution_options(populate_existing=True))
    assert row is not None
    return row


@dataclass(frozen=True)
class Block:
    reason: Literal["account", "address"]
    retry_after: int  # seconds


def blocked(db: Session, login: str, address: str, now: datetime | None = None) -> Block | None:
    """Whether a login attempt for ``login`` from ``address`` must wait, and how long."""
    now = now or utcnow()
    keys = {throttle_key("address", address): "address", throttle_key("login", login): "account"}
    found: Block | None = None
    for row in db.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(list(keys)))):
        if row.locked_until and row.locked_until > now:
            seconds = max(1, int((row.locked_until - now).total_seconds() + 0.999))
            if found is None or seconds > found.retry_after:
                found = Block(keys[row.key], seconds)  # type: ignore[arg-type]
    return found


def record_failure(db: Session, login: str, address: str, now: datetime | None = None) -> bool:
    """Count a failed attempt; True when it just locked the login name."""
    now = now or utcnow()
    account = _throttle_row(db, "login", login)
    if account.locked_until and account.locked_until <= now:  # the lock ran out: start over
        account.failures, account.locked_until = 0, None
    account.failures += 1
    account.last_failure_at = now
    locked = False
    if account.failures >= ACCOUNT_LIMIT:
        account.locked_until, account.failures, locked = now + ACCOUNT_LOCK, 0, True
    if address:
        place = _throttle_row(db, "address", address)
        if place.last_failure_at and now - place.last_failure_at > ADDRESS_WINDOW:
            place.failures = 0
        place.failures += 1
        place.last_failure_at = now
        if place.failures > ADDRESS_FREE:
            delay = min(timedelta(seconds=2 ** min(place.failures - ADDRESS_FREE, 20)), ADDRESS_MAX_DELAY)
            place.locked_until = now + delay
    return locked


def clear_failures(db: Session, login: str) -> None:
    """After a successful login, or when an administrator unlocks the account."""
    db.execute(delete(LoginThrottle).where(LoginThrottle.key == throttle_key("login", login)))


def is_locked(db: Session, login: str, now: datetime | None = None) -> bool:
    row = db.get(LoginThrottle, throttle_key("login", login))
    return bool(row and row.locked_until and row.locked_until > (now or utcnow()))


def purge_throttle(db: Session, now: datetime | None = None) -> int:
    """Delete counts that no longer matter (no failure for a day and no running lock)."""
    now = now or utcnow()
    result = db.execute(delete(LoginThrottle).where(
        LoginThrottle.last_failure_at < now - timedelta(days=1),
        (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now)))
    return result.rowcount or 0  # type: ignore[attr-defined]


# --- Logging in -------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    """``ok``: logged in (``cookie``); ``second_factor``: password right, TOTP code next
    (``cookie`` of a pending session); ``failed``; ``locked`` or ``throttled``: wait
    ``retry_after`` seconds."""

    status: Literal["ok", "second_factor", "failed", "locked", "throttled"]
    cookie: str = ""
    retry_after: int = 0
    user_id: int | None = None


def authenticate(platform: Platform, login: str, password: str, address: str,
                 old_cookie: str | None = None) -> LoginResult:
    """The whole password step of a login, audited. Blocking: run it in a worker thread.

    Unknown logins, disabled accounts and wrong passwords give the same answer after the same
    amount of work; a locked login name answers the same whether or not its account exists.
    """
    from kehu import audit

    login = login.strip()[:80]
    with platform.session() as db:
        block = blocked(db, login, address)
        if block is None:
            user = db.scalar(select(User).where(User.login == login))
            stored = (user.id, user.password_hash, user.active) if user else None
    if block is not None:
        return LoginResult("locked" if block.reason == "account" else "throttled", retry_after=block.retry_after)
    ok, new_hash = check_password(stored[1] if stored else "", password)
    with platform.session() as db:
        user = db.get(User, stored[0]) if stored else None
        if not ok or user is None or not user.active:
            reason = "unknown login" if stored is None else ("disabled" if not stored[2] else "wrong password")
            locked_now = record_failure(db, login, address)
            audit.record(db, "auth.login_failed", target=f"login:{login}", detail={"reason": reason}, ip=address)
            if secrets.randbelow(200) == 0:  # now and then, forget counts that no longer matter
                purge_throttle(db)
            if locked_now:
                audit.record(db, "auth.locked", target=f"login:{login}",
                             detail={"minutes": int(ACCOUNT_LOCK.total_seconds() // 60)}, ip=address)
            return LoginResult("failed")
        if new_hash:
            user.password_hash = new_hash
        clear_failures(db, login)
        if old_cookie:
            end_session(db, old_cookie)  # the pre-login session id never survives a login
        if user.totp_enabled:
            cookie = start_session(db, user, second_factor_pending=True, ip=address)
            audit.record(db, "auth.password_ok", actor=user, detail={"second_factor": "pending"}, ip=address)
            return LoginResult("second_factor", cookie=cookie, user_id=user.id)
        cookie = start_session(db, user, ip=address)
        user.last_login_at = utcnow()
        audit.record(db, "auth.login", actor=user, detail={"rehashed": bool(new_hash)} if new_hash else {}, ip=address)
        return LoginResult("ok", cookie=cookie, user_id=user.id)


def pending_user(db: Session, cookie: str) -> User | None:
    """The user of a session that waits for its second factor (and has not waited too long)."""
    row = db.get(AuthSession, _digest(cookie))
    if row is None or not row.second_factor_pending:
        return None
    if utcnow() - row.created_at > SECOND_FACTOR_WINDOW:
        db.delete(row)
        return None
    user = db.get(User, row.user_id)
    return user if user is not None and user.active and user.totp_enabled else None


def second_factor(platform: Platform, cookie: str, code: str, address: str) -> LoginResult:
    """Check the TOTP code of a pending session; on success the pending session is replaced
    by a full one (a new cookie). Audited, throttled like passwords. Run it in a worker thread."""
    from kehu import audit

    with platform.session() as db:
        user = pending_user(db, cookie)
        if user is None:
            return LoginResult("failed")
        block = blocked(db, user.login, address)
        if block is not None:
            if block.reason == "account":
                end_session(db, cookie)
            return LoginResult("locked" if block.reason == "account" else "throttled", retry_after=block.retry_after)
        step = totp_step(totp_secret(user) or "", code, user.totp_last_step)
        if step is not None:
            # Compare-and-set: of two requests with the same code, exactly one wins.
            won = db.execute(update(User).where(User.id == user.id, User.totp_last_step < step)
                             .values(totp_last_step=step)).rowcount == 1  # type: ignore[attr-defined]
            step = step if won else None
        if step is None:
            locked_now = record_failure(db, user.login, address)
            audit.record(db, "auth.totp_failed", actor=user, ip=address)
            if locked_now:
                audit.record(db, "auth.locked", target=f"login:{user.login}",
                              detail={"minutes": int(ACCOUNT_LOCK.total_seconds() // 60)}, ip=address)
                end_session(db, cookie)
                return LoginResult("locked", retry_after=int(ACCOUNT_LOCK.total_seconds()))
            return LoginResult("failed")
        clear_failures(db, user.login)
        end_session(db, cookie)
        new_cookie = start_session(db, user, ip=address)
        user.last_login_at = utcnow()
        audit.record(db, "auth.login", actor=user, detail={"second_factor": "totp"}, ip=address)
        return LoginResult("ok", cookie=new_cookie, user_id=user.id)


# --- TOTP -------------------------------------------------------------------------------

_TOTP_FIELD = crypto.SealedField(User, "totp_secret", "totp_secret_sealed")
_PENDING_FIELD = crypto.SealedField(User, "totp_pending", "totp_pending_sealed")
for _field in (_TOTP_FIELD, _PENDING_FIELD):  # so that `kehu keys rotate` re-encrypts them
    if not any(f.table == _field.table and f.column == _field.column for f in crypto.SEALED_FIELDS):
        crypto.SEALED_FIELDS.append(_field)


def _open(user: User, field: crypto.SealedField, blob: bytes | None) -> str | None:
    if not user.row_key:
        user.row_key = secrets.token_hex(16)
    return None if blob is None else crypto.decrypt(blob, field.aad(user.row_key))


def _seal(user: User, field: crypto.SealedField, value: str | None) -> bytes | None:
    if not user.row_key:
        user.row_key = secrets.token_hex(16)
    return None if value is None else crypto.encrypt(value, field.aad(user.row_key))


def totp_secret(user: User) -> str | None:
    return _open(user, _TOTP_FIELD, user.totp_secret_sealed)


def totp_pending_secret(user: User) -> str | None:
    return _open(user, _PENDING_FIELD, user.totp_pending_sealed)


def totp_step(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to (now, or one step before or after), provided it is
    later than ``last_step``; else None."""
    code = "".join(code.split())
    if not secret or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(datetime.fromtimestamp(now, UTC) if now is not None else utcnow())
    for step in (current - 1, current, current + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def totp_begin(user: User) -> str:
    """Start enrolment: a new secret, kept aside until a code confirms it. Returns it."""
    secret = pyotp.random_base32()
    user.totp_pending_sealed = _seal(user, _PENDING_FIELD, secret)
    return secret


def totp_uri(secret: str, login: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=TOTP_ISSUER)


def totp_confirm(user: User, code: str) -> bool:
    """Finish enrolment with a code from the authenticator app."""
    secret = totp_pending_secret(user)
    step = totp_step(secret or "", code, 0)
    if step is None:
        return False
    user.totp_secret_sealed = _seal(user, _TOTP_FIELD, secret)
    user.totp_pending_sealed = None
    user.totp_last_step = step
    return True


def totp_disable(user: User) -> None:
    user.totp_secret_sealed = None
    user.totp_pending_sealed = None
    user.totp_last_step = 0


def totp_qr_svg(uri: str) -> str:
    """An inline SVG QR code of ``uri`` when the ``segno`` package is installed, else ""."""
    try:
        import segno
    except ImportError:
        return ""
    return segno.make(uri, error="m").svg_inline(scale=4)  # type: ignore[no-any-return]


# --- Sessions -------------------------------------------------------------------------


def current_user_of(user: User, session_row: AuthSession | None = None, via_token: bool = False) -> CurrentUser:
    return CurrentUser(
        id=user.id,
        login=user.login,
        name=user.name or user.login,
        permissions=user.permissions,
        team=user.team,
        language=user.language,
        session_id_hash=session_row.id_hash if session_row else "",
        csrf_token=session_row.csrf_token if session_row else "",
        via_token=via_token,
    )


def start_session(db: Session, user: User, second_factor_pending: bool = False, ip: str = "") -> str:
    """Create a new session (a fresh id at every login) and return the cookie value."""
    raw = secrets.token_urlsafe(32)
    db.add(
        AuthSession(
            id_hash=_digest(raw),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(24),
            second_factor_pending=second_factor_pending,
            ip=ip[:64],
        )
    )
    return raw


def end_session(db: Session, cookie_value: str) -> None:
    db.execute(delete(AuthSession).where(AuthSession.id_hash == _digest(cookie_value)))


def end_all_sessions(db: Session, user_id: int, keep_hash: str = "") -> int:
    """Called on password change and account disable: every old cookie stops working."""
    query = delete(AuthSession).where(AuthSession.user_id == user_id)
    if keep_hash:
        query = query.where(AuthSession.id_hash != keep_hash)
    return db.execute(query).rowcount or 0  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Found:
    """What a look-up found (``user`` is None when nothing valid was found) and whether the
    caller must write afterwards: a session or token to touch, an expired session to remove."""

    user: CurrentUser | None
    must_write: bool = False


_USER_COLUMNS = (User.id, User.login, User.name, User.team, User.language)


def holders_of(db: Session, permission: str) -> list[Any]:
    """The active users who have ``permission`` (or ``*``), as rows of ``id, login, name,
    team``, ordered by team and name: e.g. the people a page offers to assign a ticket to.
    Kept for a moment (:func:`kehu.db.kept_rows`): a change checks the chosen user itself."""
    return list(kept_rows(db, _holders_lookup(), {"permissions": ("*", permission)}))


@functools.cache
def _holders_lookup() -> Any:
    # Built once, as the session look-up: the ticket queue asks on every page.
    from kehu.models import RolePermission, UserRole

    return (select(User.id, User.login, User.name, User.team).distinct()
            .join(UserRole, UserRole.user_id == User.id).join(RolePermission, RolePermission.role_id == UserRole.role_id)
            .where(User.active.is_(True), RolePermission.permission.in_(bindparam("permissions", expanding=True)))
            .order_by(User.team, User.name, User.login))


def _current_user(row: Any, permissions: frozenset[str], **extra: Any) -> CurrentUser:
    return CurrentUser(id=row.id, login=row.login, name=row.name or row.login, team=row.team,
                       language=row.language, permissions=permissions, **extra)


def _with_permissions(statement: Any) -> Any:
    """``statement`` (one user's row) joined with that user's permissions: one row per
    permission, so that the user and what they may do come in one round trip."""
    from kehu.models import RolePermission, UserRole

    return (statement.add_columns(RolePermission.permission)
            .outerjoin(UserRole, UserRole.user_id == User.id)
            .outerjoin(RolePermission, RolePermission.role_id == UserRole.role_id))


@functools.cache
def _session_lookup() -> Any:
    # Built once: every request runs it, and building a SELECT with its joins cost more
    # than running it (the digest is a bound parameter).
    return _with_permissions(select(
        AuthSession.id_hash, AuthSession.csrf_token, AuthSession.created_at, AuthSession.last_seen_at,
        AuthSession.second_factor_pending, *_USER_COLUMNS).join(User, User.id == AuthSession.user_id)
        .where(AuthSession.id_hash == bindparam("digest"), User.active.is_(True)))


@functools.cache
def _token_lookup() -> Any:
    return _with_permissions(select(ApiToken.last_used_at, *_USER_COLUMNS).join(User, User.id == ApiToken.user_id)
                             .where(ApiToken.token_hash == bindparam("digest"), ApiToken.revoked_at.is_(None),
                                    User.active.is_(True)))


def _rows_with_permissions(db: Session | Connection, statement: Any, digest: str) -> tuple[Any, frozenset[str]]:
    """The first row of a lookup (or None) and the user's permissions."""
    rows = read_rows(db, statement, {"digest": digest})
    if not rows:
        return None, frozenset()
    return rows[0], frozenset(row.permission for row in rows if row.permission is not None)


def find_session(db: Session | Connection, cookie_value: str, allow_pending: bool = False) -> Found:
    """The session's user, read only (this runs on every request: one indexed query)."""
    row, permissions = _rows_with_permissions(db, _session_lookup(), _digest(cookie_value))
    if row is None or (row.second_factor_pending and not allow_pending):
        return Found(None)
    now = utcnow()
    if now - row.last_seen_at > SESSION_IDLE_LIMIT or now - row.created_at > SESSION_ABSOLUTE_LIMIT:
        return Found(None, must_write=True)
    user = _current_user(row, permissions, session_id_hash=row.id_hash, csrf_token=row.csrf_token)
    return Found(user, must_write=now - row.last_seen_at > SESSION_TOUCH_EVERY)


def user_from_session(db: Session, cookie_value: str, allow_pending: bool = False) -> CurrentUser | None:
    """The session's user; removes an expired session and records when it was last seen
    (every few minutes, to keep writes rare on the hot path). ``db`` must be able to write."""
    found = find_session(db, cookie_value, allow_pending)
    if found.must_write:
        digest = _digest(cookie_value)
        if found.user is None:
            db.execute(delete(AuthSession).where(AuthSession.id_hash == digest))
        else:
            db.execute(update(AuthSession).where(AuthSession.id_hash == digest).values(last_seen_at=utcnow()))
    return found.user


# --- API tokens -----------------------------------------------------------------------

TOKEN_PREFIX = "kehu_"


def issue_token(db: Session, user: User, name: str = "") -> str:
    """Create an API token; the value is returned once and only its hash is kept."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(ApiToken(user_id=user.id, name=name[:80], token_hash=_digest(raw), prefix=raw[:12]))
    db.flush()
    return raw


def revoke_token(db: Session, token: ApiToken) -> bool:
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True


def find_token(db: Session | Connection, raw: str) -> Found:
    """The token's user, read only."""
    if not raw.startswith(TOKEN_PREFIX):
        return Found(None)
    row, permissions = _rows_with_permissions(db, _token_lookup(), _digest(raw))
    if row is None:
        return Found(None)
    touch = row.last_used_at is None or utcnow() - row.last_used_at > TOKEN_TOUCH_EVERY
    return Found(_current_user(row, permissions, via_token=True), must_write=touch)


def user_from_token(db: Session, raw: str) -> CurrentUser | None:
    """The token's user; records when it was last used (to the minute). ``db`` must be able to write."""
    found = find_token(db, raw)
    if found.must_write:
        db.execute(update(ApiToken).where(ApiToken.token_hash == _digest(raw)).values(last_used_at=utcnow()))
    return found.user


def login_url(next_path: str) -> str:
    return f"/login?next={quote(next_path)}"
