"""Who is asking: passwords, server-side login sessions, API tokens and the current user.

Passwords are hashed with argon2id (argon2-cffi) at OWASP's recommended minimum cost
(19 MiB, 2 passes, 1 lane: about 20 ms here instead of about 210 ms for argon2-cffi's defaults),
and re-hashed at login whenever those parameters are raised. A login session is a random id
in an HttpOnly cookie; only its SHA-256 is stored, so the database cannot be used to hijack one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kehu.models import ApiToken, AuthSession, User

SESSION_COOKIE = "kehu_session"
SESSION_IDLE_LIMIT = timedelta(hours=12)
PASSWORD_MIN, PASSWORD_MAX = 8, 128

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

    def can(self, permission: str) -> bool:
        return "*" in self.permissions or permission in self.permissions

    @property
    def is_admin(self) -> bool:
        return "*" in self.permissions


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    """Check ``password``; upgrade the stored hash when the cost parameters changed."""
    if not user.password_hash:
        _hasher.hash(password)  # same cost whether or not the account can log in
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def burn_password_check() -> None:
    """Spend the time of a real check, so an unknown login answers as slowly as a known one."""
    _hasher.hash("not-a-real-password")


def current_user_of(user: User, session_row: AuthSession | None = None) -> CurrentUser:
    return CurrentUser(
        id=user.id,
        login=user.login,
        name=user.name or user.login,
        permissions=user.permissions,
        team=user.team,
        language=user.language,
        session_id_hash=session_row.id_hash if session_row else "",
        csrf_token=session_row.csrf_token if session_row else "",
    )


# --- Sessions -------------------------------------------------------------------------


def start_session(db: Session, user: User, second_factor_pending: bool = False) -> str:
    """Create a new session (a fresh id at every login) and return the cookie value."""
    raw = secrets.token_urlsafe(32)
    db.add(
        AuthSession(
            id_hash=_digest(raw),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(24),
            second_factor_pending=second_factor_pending,
        )
    )
    return raw


def end_session(db: Session, cookie_value: str) -> None:
    db.execute(delete(AuthSession).where(AuthSession.id_hash == _digest(cookie_value)))


def end_all_sessions(db: Session, user_id: int) -> None:
    """Called on password change and account disable: every old cookie stops working."""
    db.execute(delete(AuthSession).where(AuthSession.user_id == user_id))


def user_from_session(db: Session, cookie_value: str, allow_pending: bool = False) -> CurrentUser | None:
    row = db.get(AuthSession, _digest(cookie_value))
    if row is None or (row.second_factor_pending and not allow_pending):
        return None
    now = datetime.now(UTC)
    if now - row.last_seen_at > SESSION_IDLE_LIMIT:
        db.delete(row)
        return None
    user = db.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if now - row.last_seen_at > timedelta(minutes=5):  # keep writes rare on the hot path
        row.last_seen_at = now
    return current_user_of(user, row)


# --- API tokens -----------------------------------------------------------------------

TOKEN_PREFIX = "kehu_"


def issue_token(db: Session, user: User, name: str = "") -> str:
    """Create an API token; the value is returned once and only its hash is kept."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(ApiToken(user_id=user.id, name=name, token_hash=_digest(raw), prefix=raw[:12]))
    return raw


def user_from_token(db: Session, raw: str) -> CurrentUser | None:
    token = db.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(raw), ApiToken.revoked_at.is_(None)))
    if token is None:
        return None
    user = db.get(User, token.user_id)
    if user is None or not user.active:
        return None
    now = datetime.now(UTC)
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    return current_user_of(user)


def password_problems(password: str) -> list[str]:
    """OWASP ASVS: length 8..128, not a common password; no composition rules."""
    from kehu.i18n import gettext as _

    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append(_("Use at least %(n)s characters.", n=PASSWORD_MIN))
    if len(password) > PASSWORD_MAX:
        problems.append(_("Use at most %(n)s characters.", n=PASSWORD_MAX))
    if password.lower() in _common_passwords():
        problems.append(_("This password is too common; choose another."))
    return problems


_COMMON: frozenset[str] | None = None


def _common_passwords() -> frozenset[str]:
    global _COMMON
    if _COMMON is None:
        from pathlib import Path

        path = Path(__file__).parent / "data" / "common_passwords.txt"
        words = path.read_text(encoding="utf-8").split() if path.exists() else []
        _COMMON = frozenset(w.strip().lower() for w in words if w.strip())
    return _COMMON
