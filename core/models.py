"""The core's own tables: module state, users and roles, sessions, tokens, audit, outbox."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kehu.db import Model, UTCDateTime, utcnow


class ModuleState(Model):
    """One row per module that was ever enabled on this deployment."""

    __tablename__ = "kehu_module"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[str] = mapped_column(String(40), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def _new_row_key() -> str:
    return secrets.token_hex(16)


class User(Model):
    __tablename__ = "kehu_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="zh")
    team: Mapped[str] = mapped_column(String(80), default="")
    # The TOTP secrets are sealed by kehu.crypto (AES-256-GCM, bound to this row's row_key);
    # kehu.auth reads and writes them. Confirmed secret, and one being enrolled.
    row_key: Mapped[str] = mapped_column(String(32), default=_new_row_key)
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_pending_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)  # a code works once
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    roles: Mapped[list[Role]] = relationship(secondary="kehu_user_role", lazy="selectin")

    @property
    def permissions(self) -> frozenset[str]:
        return frozenset(p.permission for role in self.roles for p in role.permissions)

    @property
    def totp_enabled(self) -> bool:
        return self.totp_secret_sealed is not None


class Role(Model):
    __tablename__ = "kehu_role"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    label: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    module: Mapped[str] = mapped_column(String(40), default="core")

    permissions: Mapped[list[RolePermission]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", back_populates="role"
    )


class SeededRole(Model):
    """A module's default role that was created once: it is not created again, so a default
    role an administrator deleted stays deleted (removing the module forgets it)."""

    __tablename__ = "kehu_seeded_role"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    module: Mapped[str] = mapped_column(String(40))
    seeded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolePermission(Model):
    __tablename__ = "kehu_role_permission"

    role_id: Mapped[int] = mapped_column(ForeignKey("kehu_role.id", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(120), primary_key=True)

    role: Mapped[Role] = relationship(back_populates="permissions")


class UserRole(Model):
    __tablename__ = "kehu_user_role"

    user_id: Mapped[int] = mapped_column(ForeignKey("kehu_user.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("kehu_role.id", ondelete="CASCADE"), primary_key=True)


class AuthSession(Model):
    """A server-side login session; the cookie holds only a random id whose hash is stored."""

    __tablename__ = "kehu_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("kehu_user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    second_factor_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    ip: Mapped[str] = mapped_column(String(64), default="")


class LoginThrottle(Model):
    """Failed logins counted per login name (``kind`` "login", whether or not such an account
    exists) and per client address (``kind`` "address"). ``key`` is a SHA-256 of the name or
    address, so what people mistype into the login field is not kept in clear."""

    __tablename__ = "kehu_login_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)


class ApiToken(Model):
    __tablename__ = "kehu_api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("kehu_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEntry(Model):
    """Append-only, hash-chained: ``entry_hash = sha256(prev_hash + canonical row)``."""

    __tablename__ = "kehu_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    actor_login: Mapped[str] = mapped_column(String(80), default="")
    action: Mapped[str] = mapped_column(String(80), index=True)
    target: Mapped[str] = mapped_column(String(120), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str] = mapped_column(String(64), default="")
    prev_hash: Mapped[str] = mapped_column(String(64), default="")
    entry_hash: Mapped[str] = mapped_column(String(64), default="")


class AuditHead(Model):
    """One row: the id and hash of the newest audit entry, so deleting the newest entries is
    detected too; writers lock it, so the chain has one writer at a time."""

    __tablename__ = "kehu_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="")


class DataKey(Model):
    """A data-encryption key, stored wrapped (AES-KW) by the master key outside the database."""

    __tablename__ = "kehu_data_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))  # "encrypt" or "index"
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OutboxEvent(Model):
    """A domain event, written in the transaction of the change that raised it."""

    __tablename__ = "kehu_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")


class EventDelivery(Model):
    """That one handler (a plugin) has handled one event; committed with the handler's work."""

    __tablename__ = "kehu_event_delivery"
    __table_args__ = (UniqueConstraint("event_id", "handler"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("kehu_outbox.id", ondelete="CASCADE"))
    handler: Mapped[str] = mapped_column(String(40))
    handled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


CORE_MODELS: list[type[Model]] = [
    ModuleState,
    User,
    Role,
    RolePermission,
    UserRole,
    AuthSession,
    LoginThrottle,
    ApiToken,
    AuditEntry,
    AuditHead,
    DataKey,
    OutboxEvent,
    EventDelivery,
]
