"""Administration of users, roles, API tokens and the audit log, and each user's own account.

=================================  ============================================================
``/account``                       own password, second factor (TOTP) and API tokens
``/admin/users``                   users: create, edit, roles, disable, reset password, unlock
``/admin/roles``                   the permission matrix (roles × permissions, per module)
``/admin/roles/{id}``              one role: labels, permissions per module, delete
``/admin/tokens``                  every API token, with revocation
``/admin/audit``                   the audit log, filtered, by keyset pages
=================================  ============================================================

Users and roles need ``core.admin_users``, the audit log ``core.view_audit``. Every change is
written to the audit log in the transaction that makes it. An administrator who does not hold
``*`` can grant only permissions they hold themselves, and nobody can remove the last active
holder of ``*``. Handlers are plain functions run in the thread pool (argon2 hashing and the
database are blocking).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kehu import audit, auth, i18n
from kehu.endpoints import Form, page
from kehu.i18n import gettext as _
from kehu.models import ApiToken, AuditEntry, AuthSession, Role, RolePermission, User, UserRole
from kehu.web import ApiError, current_user, platform_of, redirect, render

ADMIN_USERS = "core.admin_users"
VIEW_AUDIT = "core.view_audit"
LOGIN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,79}$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
CHINA = timezone(timedelta(hours=8))  # the times the pages show and the dates filters take
PAGE_SIZE = 50


# --- plumbing ---------------------------------------------------------------------------


def _me(request: Request) -> auth.CurrentUser:
    user = current_user(request)
    assert user is not None  # requires() ran
    return user


def _ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _field(form: Form, name: str, limit: int = 200) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _back(url: str, message: str = "", error: str = "") -> Response:
    query = urlencode({k: v for k, v in (("message", message), ("error", error)) if v})
    return redirect(f"{url}?{query}" if query else url)


def _flash(request: Request) -> dict[str, str]:
    return {"message": request.query_params.get("message", "")[:300], "error": request.query_params.get("error", "")[:300]}


def _not_found() -> ApiError:
    return ApiError(404, "not_found", _("Not found."))


def local_time(value: datetime | None) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if value else ""


def role_label(role: Role) -> str:
    return i18n.pick(role.label or {}, role.name)


def _permission_groups(request: Request) -> list[dict[str, Any]]:
    """The declared permissions, per module in the order the modules were registered."""
    platform = platform_of(request)
    language = request.scope.get("kehu.language", "zh")
    groups: dict[str, dict[str, Any]] = {}
    for name in platform.active:
        info = platform.modules[name]
        label = info.manifest.display_label(language) if info.manifest else name
        groups[name] = {"module": name, "label": label, "permissions": []}
    for permission in platform.declarations.permissions.values():
        module = permission.name.split(".", 1)[0]
        groups.setdefault(module, {"module": module, "label": module, "permissions": []})
        groups[module]["permissions"].append(
            {"name": permission.name, "label": i18n.pick(permission.label, permission.name)})
    return [g for g in groups.values() if g["permissions"]]


def _declared(request: Request) -> set[str]:
    return set(platform_of(request).declarations.permissions) | {"*"}


def may_grant(actor: auth.CurrentUser, permissions: set[str]) -> bool:
    """An administrator grants only what they hold; ``*`` only a holder of ``*``."""
    return actor.is_admin or ("*" not in permissions and permissions <= actor.permissions)


def _role_permissions(role: Role) -> set[str]:
    return {p.permission for p in role.permissions}


def _active_superusers(db: Session) -> set[int]:
    query = (select(User.id).join(UserRole, UserRole.user_id == User.id)
             .join(RolePermission, RolePermission.role_id == UserRole.role_id)
             .where(User.active, RolePermission.permission == "*"))
    return set(db.scalars(query))


def _keeps_a_superuser(db: Session) -> bool:
    """After pending changes (flushed), is there still an active user holding ``*``?"""
    db.flush()
    return bool(_active_superusers(db))


class Refused(Exception):
    """An administrative change that is not allowed; the message is shown (next to ``field``)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


# --- own account ------------------------------------------------------------------------


@page(None, session_only=True)
def account(request: Request, form: Form) -> Response:
    return _account_page(request)


def _account_page(request: Request, status: int = 200, new_token: str = "", errors: dict[str, str] | None = None,
                  message: str = "") -> Response:
    me = _me(request)
    with platform_of(request).reading() as db:
        user = db.get(User, me.id)
        assert user is not None
        tokens = list(db.scalars(select(ApiToken).where(ApiToken.user_id == me.id).order_by(ApiToken.id.desc())))
        totp_enabled = user.totp_enabled
        sessions = db.scalar(select(func.count()).select_from(AuthSession).where(
            AuthSession.user_id == me.id, AuthSession.second_factor_pending.is_(False)))
    flash = _flash(request)
    return render(request, "admin/account.html", {
        "account": user, "tokens": tokens, "totp_enabled": totp_enabled, "new_token": new_token,
        "errors": errors or {}, "message": message or flash["message"], "error": flash["error"],
        "sessions": sessions, "local_time": local_time, "min_length": auth.PASSWORD_MIN,
        "max_length": auth.PASSWORD_MAX}, status_code=status)


@page(None, session_only=True)
def account_password(request: Request, form: Form) -> Response:
    me = _me(request)
    current, new, again = (str(form.get(n, "")) for n in ("current_password", "new_password", "new_password_again"))
    errors: dict[str, str] = {}
    platform = platform_of(request)
    with platform.reading() as db:
        stored = db.scalar(select(User.password_hash).where(User.id == me.id)) or ""
    ok, _ignored = auth.check_password(stored, current[:1024])
    if not ok:
        errors["current_password"] = _("The current password is wrong.")
    problems = auth.password_problems(new, me.login)
    if problems:
        errors["new_password"] = " ".join(problems)
    elif new != again:
        errors["new_password_again"] = _("The two new passwords differ.")
    if errors:
        return _account_page(request, 422, errors=errors)
    with platform.session() as db:
        user = db.get(User, me.id)
        assert user is not None
        auth.set_password(db, user, new)  # every session of the user ends ...
        cookie = auth.start_session(db, user, ip=_ip(request))  # ... and this browser gets a new one
        audit.record(db, "auth.password", actor=me, target=f"user:{me.id}", ip=_ip(request))
    response = _back("/account", message=_("Your password was changed. Other devices were logged out."))
    response.set_cookie(auth.SESSION_COOKIE, cookie, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")
    return response


@page(None, session_only=True)
def account_totp(request: Request, form: Form) -> Response:
    return _totp_page(request)


def _totp_page(request: Request, status: int = 200, error: str = "") -> Response:
    me = _me(request)
    with platform_of(request).session() as db:
        user = db.get(User, me.id)
        assert user is not None
        enabled = user.totp_enabled
        secret = None if enabled else auth.totp_pending_secret(user)
    uri = auth.totp_uri(secret, me.login) if secret else ""
    flash = _flash(request)
    return render(request, "admin/account_totp.html", {
        "enabled": enabled, "secret": secret, "uri": uri, "qr": auth.totp_qr_svg(uri) if uri else "",
        "grouped_secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)) if secret else "",
        "error": error or flash["error"], "message": flash["message"]}, status_code=status)


@page(None, session_only=True)
def account_totp_start(request: Request, form: Form) -> Response:
    me = _me(request)
    with platform_of(request).session() as db:
        user = db.get(User, me.id)
        assert user is not None
        if user.totp_enabled:
            return _back("/account/totp")
        auth.totp_begin(user)
    return _back("/account/totp")


@page(None, session_only=True)
def account_totp_confirm(request: Request, form: Form) -> Response:
    me = _me(request)
    with platform_of(request).session() as db:
        user = db.get(User, me.id)
        assert user is not None
        if user.totp_enabled or user.totp_pending_sealed is None:
            return _back("/account/totp")
        if not auth.totp_confirm(user, _field(form, "code", 20)):
            confirmed = False
        else:
            confirmed = True
            audit.record(db, "auth.totp", actor=me, target=f"user:{me.id}", detail={"enabled": True}, ip=_ip(request))
    if not confirmed:
        return _totp_page(request, 422, _("Wrong code. Check the time on your phone and try again."))
    return _back("/account", message=_("Two-step verification is on."))


@page(None, session_only=True)
def account_totp_disable(request: Request, form: Form) -> Response:
    me = _me(request)
    platform = platform_of(request)
    with platform.reading() as db:
        stored = db.scalar(select(User.password_hash).where(User.id == me.id)) or ""
    ok, _ignored = auth.check_password(stored, str(form.get("password", ""))[:1024])
    if not ok:
        return _totp_page(request, 422, _("The password is wrong."))
    with platform.session() as db:
        user = db.get(User, me.id)
        assert user is not None
        auth.totp_disable(user)
        audit.record(db, "auth.totp", actor=me, target=f"user:{me.id}", detail={"enabled": False}, ip=_ip(request))
    return _back("/account", message=_("Two-step verification is off."))


@page(None, session_only=True)
def account_token_create(request: Request, form: Form) -> Response:
    me = _me(request)
    name = _field(form, "name", 80)
    if not name:
        return _account_page(request, 422, errors={"name": _("Say what the token is for.")})
    with platform_of(request).session() as db:
        user = db.get(User, me.id)
        assert user is not None
        raw = auth.issue_token(db, user, name)
        token_id = db.scalar(select(ApiToken.id).where(ApiToken.prefix == raw[:12], ApiToken.user_id == me.id)
                             .order_by(ApiToken.id.desc()))
        audit.record(db, "auth.token", actor=me, target=f"token:{token_id}",
                     detail={"created": True, "user": me.login, "name": name}, ip=_ip(request))
    # Shown once, in this response only (never in a URL).
    response = _account_page(request, 201, new_token=raw, message=_("Token created. Copy it now: it is shown only once."))
    response.headers["Cache-Control"] = "no-store"
    return response


@page(None, session_only=True)
def account_token_revoke(request: Request, form: Form) -> Response:
    me = _me(request)
    with platform_of(request).session() as db:
        token = db.get(ApiToken, request.path_params["token_id"])
        if token is None or token.user_id != me.id:
            raise _not_found()
        if auth.revoke_token(db, token):
            audit.record(db, "auth.token", actor=me, target=f"token:{token.id}",
                         detail={"revoked": True, "user": me.login, "name": token.name}, ip=_ip(request))
    return _back("/account", message=_("Token revoked."))


# --- users --------------------------------------------------------------------------------


@page(ADMIN_USERS)
def users_page(request: Request, form: Form) -> Response:
    q = request.query_params.get("q", "").strip()[:80]
    state = request.query_params.get("state", "")
    with platform_of(request).session() as db:
        query = select(User).order_by(User.login)
        if q:
            pattern = f"%{q.lower()}%"
            query = query.where(or_(func.lower(User.login).like(pattern), func.lower(User.name).like(pattern),
                                    func.lower(User.team).like(pattern)))
        if state == "active":
            query = query.where(User.active)
        elif state == "disabled":
            query = query.where(User.active.is_(False))
        users = list(db.scalars(query.limit(500)))
        rows = [{"user": u, "roles": [role_label(r) for r in u.roles], "locked": auth.is_locked(db, u.login)}
                for u in users]
    return render(request, "admin/users.html", {"rows": rows, "q": q, "state": state, "local_time": local_time,
                                                **_flash(request)})


def _roles_for_form(db: Session, actor: auth.CurrentUser) -> list[dict[str, Any]]:
    return [{"role": r, "label": role_label(r), "grantable": may_grant(actor, _role_permissions(r))}
            for r in db.scalars(select(Role).order_by(Role.name))]


@page(ADMIN_USERS)
def user_new(request: Request, form: Form) -> Response:
    me = _me(request)
    values = {"login": "", "name": "", "team": "", "roles": set()}
    errors: dict[str, str] = {}
    generated = ""
    platform = platform_of(request)
    if request.method == "POST":
        values = {"login": _field(form, "login", 80), "name": _field(form, "name", 120),
                  "team": _field(form, "team", 80), "roles": {str(v) for v in form.getlist("roles")}}
        password = str(form.get("password", ""))
        if not LOGIN_PATTERN.match(values["login"]):
            errors["login"] = _("Use letters, digits and . _ @ - (at most 80).")
        if password:
            problems = auth.password_problems(password, values["login"])
            if problems:
                errors["password"] = " ".join(problems)
        else:
            generated = password = secrets.token_urlsafe(12)
        if not errors:
            try:
                with platform.session() as db:
                    if db.scalar(select(User.id).where(func.lower(User.login) == values["login"].lower())):
                        raise Refused(_("A user with this login exists already."), "login")
                    roles = list(db.scalars(select(Role).where(Role.id.in_([int(r) for r in values["roles"]
                                                                             if r.isdigit()]))))
                    for role in roles:
                        if not may_grant(me, _role_permissions(role)):
                            raise Refused(_("You cannot give the role %(role)s: it holds permissions you do not have.",
                                            role=role.name), "roles")
                    user = User(login=values["login"], name=values["name"] or values["login"], team=values["team"],
                                password_hash=auth.hash_password(password), password_changed_at=auth.utcnow())
                    user.roles = roles
                    db.add(user)
                    db.flush()
                    audit.record(db, "users.create", actor=me, target=f"user:{user.id}",
                                 detail={"login": user.login, "roles": sorted(r.name for r in roles)}, ip=_ip(request))
                    new_id = user.id
            except Refused as refused:
                errors[refused.field or "login"] = str(refused)
            else:
                if generated:
                    return _user_page(request, new_id, generated_password=generated, status=201,
                                      message=_("User created. Give them this password; it is shown only once."))
                return _back(f"/admin/users/{new_id}", message=_("User created."))
    with platform.reading() as db:
        roles = _roles_for_form(db, me)
    return render(request, "admin/user_new.html", {"values": values, "errors": errors, "roles": roles,
                                                   "min_length": auth.PASSWORD_MIN},
                  status_code=422 if errors else 200)


@page(ADMIN_USERS)
def user_page(request: Request, form: Form) -> Response:
    return _user_page(request, request.path_params["user_id"])


def _user_page(request: Request, user_id: int, status: int = 200, generated_password: str = "",
               errors: dict[str, str] | None = None, message: str = "") -> Response:
    me = _me(request)
    with platform_of(request).reading() as db:
        user = db.get(User, user_id)
        if user is None:
            raise _not_found()
        tokens = list(db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())))
        roles = _roles_for_form(db, me)
        held = {r.id for r in user.roles}
        locked = auth.is_locked(db, user.login)
        recent = list(db.scalars(select(AuditEntry).where(or_(AuditEntry.actor_id == user.id,
                                                                AuditEntry.target == f"user:{user.id}"))
                                 .order_by(AuditEntry.id.desc()).limit(10)))
    flash = _flash(request)
    return render(request, "admin/user.html", {
        "account": user, "tokens": tokens, "roles": roles, "held": held, "locked": locked, "recent": recent,
        "generated_password": generated_password, "errors": errors or {}, "local_time": local_time,
        "message": message or flash["message"], "error": flash["error"], "is_self": user.id == me.id,
        "languages": i18n.LANGUAGES}, status_code=status,
        headers={"Cache-Control": "no-store"} if generated_password else None)


def _change_user(request: Request, action: Callable[[Session, User, auth.CurrentUser], str]) -> Response:
    """Apply ``action`` (which returns the message to show, or raises Refused) to the user of
    the path, in one transaction that must leave an active holder of ``*``."""
    me = _me(request)
    user_id = request.path_params["user_id"]
    try:
        with platform_of(request).session() as db:
            user = db.get(User, user_id)
            if user is None:
                raise _not_found()
            message = action(db, user, me)
            if not _keeps_a_superuser(db):
                raise Refused(_("Refused: nobody active would hold every permission (*) any more."))
    except Refused as refused:
        return _back(f"/admin/users/{user_id}", error=str(refused))
    return _back(f"/admin/users/{user_id}", message=message)


@page(ADMIN_USERS)
def user_update(request: Request, form: Form) -> Response:
    wanted_roles = {int(v) for v in form.getlist("roles") if isinstance(v, str) and v.isdigit()}
    name, team = _field(form, "name", 120), _field(form, "team", 80)
    language = _field(form, "language", 8)

    def action(db: Session, user: User, me: auth.CurrentUser) -> str:
        if not may_grant(me, user.permissions):
            raise Refused(_("You cannot change a user who holds permissions you do not have."))
        changed = []
        for attribute, value in (("name", name or user.login), ("team", team), ("language", language)):
            if attribute == "language" and value not in i18n.LANGUAGES:
                continue
            if getattr(user, attribute) != value:
                setattr(user, attribute, value)
                changed.append(attribute)
        before = {r.id: r for r in user.roles}
        added = [r for r in db.scalars(select(Role).where(Role.id.in_(wanted_roles - set(before))))]
        removed = [before[i] for i in set(before) - wanted_roles]
        for role in added + removed:
            if not may_grant(me, _role_permissions(role)):
                raise Refused(_("You cannot give or take the role %(role)s: it holds permissions you do not have.",
                                role=role.name))
        if changed:
            audit.record(db, "users.update", actor=me, target=f"user:{user.id}",
                         detail={"login": user.login, "fields": changed}, ip=_ip(request))
        if added or removed:
            user.roles = [r for r in user.roles if r not in removed] + added
            audit.record(db, "users.roles", actor=me, target=f"user:{user.id}",
                         detail={"login": user.login, "added": sorted(r.name for r in added),
                                 "removed": sorted(r.name for r in removed)}, ip=_ip(request))
        return _("Saved.") if changed or added or removed else _("Nothing changed.")

    return _change_user(request, action)


@page(ADMIN_USERS)
def user_disable(request: Request, form: Form) -> Response:
    def action(db: Session, user: User, me: auth.CurrentUser) -> str:
        if user.id == me.id:
            raise Refused(_("You cannot disable yourself."))
        if not may_grant(me, user.permissions):
            raise Refused(_("You cannot change a user who holds permissions you do not have."))
        if user.active:
            user.active = False
            ended = auth.end_all_sessions(db, user.id)
            audit.record(db, "users.disable", actor=me, target=f"user:{user.id}",
                         detail={"login": user.login, "sessions_ended": ended}, ip=_ip(request))
        return _("User disabled; their sessions and API tokens stopped working.")

    return _change_user(request, action)


@page(ADMIN_USERS)
def user_enable(request: Request, form: Form) -> Response:
    def action(db: Session, user: User, me: auth.CurrentUser) -> str:
        if not may_grant(me, user.permissions):
            raise Refused(_("You cannot change a user who holds permissions you do not have."))
        if not user.active:
            user.active = True
            audit.record(db, "users.enable", actor=me, target=f"user:{user.id}", detail={"login": user.login},
                         ip=_ip(request))
        return _("User enabled.")

    return _change_user(request, action)


@page(ADMIN_USERS)
def user_password(request: Request, form: Form) -> Response:
    user_id = request.path_params["user_id"]
    password = str(form.get("password", ""))
    generated = ""
    with platform_of(request).reading() as db:
        user = db.get(User, user_id)
        if user is None:
            raise _not_found()
        login = user.login
    if password:
        problems = auth.password_problems(password, login)
        if problems:
            return _user_page(request, user_id, 422, errors={"password": " ".join(problems)})
    else:
        generated = password = secrets.token_urlsafe(12)

    def action(db: Session, user: User, actor: auth.CurrentUser) -> str:
        if not may_grant(actor, user.permissions):
            raise Refused(_("You cannot change a user who holds permissions you do not have."))
        auth.set_password(db, user, password)
        auth.clear_failures(db, user.login)
        audit.record(db, "users.password_reset", actor=actor, target=f"user:{user.id}",
                     detail={"login": user.login, "generated": bool(generated)}, ip=_ip(request))
        return _("Password reset; the user's sessions ended.")

    response = _change_user(request, action)
    if generated and "error=" not in response.headers.get("location", ""):
        return _user_page(request, user_id, generated_password=generated,
                          message=_("Password reset. Give them this password; it is shown only once."))
    return response


@page(ADMIN_USERS)
def user_unlock(request: Request, form: Form) -> Response:
    def action(db: Session, user: User, me: auth.CurrentUser) -> str:
        auth.clear_failures(db, user.login)
        audit.record(db, "users.unlock", actor=me, target=f"user:{user.id}", detail={"login": user.login},
                     ip=_ip(request))
        return _("Login unlocked.")

    return _change_user(request, action)


@page(ADMIN_USERS)
def user_totp_reset(request: Request, form: Form) -> Response:
    def action(db: Session, user: User, me: auth.CurrentUser) -> str:
        if not may_grant(me, user.permissions):
            raise Refused(_("You cannot change a user who holds permissions you do not have."))
        if user.totp_enabled or user.totp_pending_sealed is not None:
            auth.totp_disable(user)
            audit.record(db, "users.totp_reset", actor=me, target=f"user:{user.id}", detail={"login": user.login},
                         ip=_ip(request))
        return _("Two-step verification turned off for this user.")

    return _change_user(request, action)


# --- API tokens (all users) -------------------------------------------------------------------


@page(ADMIN_USERS)
def tokens_page(request: Request, form: Form) -> Response:
    state = request.query_params.get("state", "active")
    with platform_of(request).reading() as db:
        query = select(ApiToken, User.login).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id.desc())
        if state == "active":
            query = query.where(ApiToken.revoked_at.is_(None))
        elif state == "revoked":
            query = query.where(ApiToken.revoked_at.is_not(None))
        rows = list(db.execute(query.limit(500)))
    return render(request, "admin/tokens.html", {"tokens": [t for t, _login in rows],
                                                 "owners": {t.id: login for t, login in rows}, "state": state,
                                                 "local_time": local_time, **_flash(request)})


@page(ADMIN_USERS)
def token_revoke(request: Request, form: Form) -> Response:
    me = _me(request)
    back = _field(form, "back", 200)
    back = back if back.startswith("/admin/") else "/admin/tokens"
    with platform_of(request).session() as db:
        token = db.get(ApiToken, request.path_params["token_id"])
        if token is None:
            raise _not_found()
        owner = db.get(User, token.user_id)
        if auth.revoke_token(db, token):
            audit.record(db, "auth.token", actor=me, target=f"token:{token.id}",
                         detail={"revoked": True, "user": owner.login if owner else "", "name": token.name},
                         ip=_ip(request))
    return _back(back, message=_("Token revoked."))


# --- roles --------------------------------------------------------------------------------


def _role_users(db: Session) -> dict[int, int]:
    return dict(db.execute(select(UserRole.role_id, func.count()).group_by(UserRole.role_id)).all())  # type: ignore[arg-type]


@page(ADMIN_USERS)
def roles_page(request: Request, form: Form) -> Response:
    return _roles_page(request)


def _roles_page(request: Request, status: int = 200, errors: dict[str, str] | None = None,
                values: dict[str, str] | None = None) -> Response:
    me = _me(request)
    with platform_of(request).reading() as db:
        roles = list(db.scalars(select(Role).order_by(Role.name)))
        counts = _role_users(db)
        columns = [{"role": r, "label": role_label(r), "permissions": _role_permissions(r),
                    "editable": may_grant(me, _role_permissions(r)), "users": counts.get(r.id, 0)} for r in roles]
    flash = _flash(request)
    return render(request, "admin/roles.html", {
        "columns": columns, "groups": _permission_groups(request), "errors": errors or {}, "values": values or {},
        **flash}, status_code=status)


def _save_permissions(request: Request, db: Session, role: Role, wanted: set[str], me: auth.CurrentUser) -> bool:
    """Give ``role`` exactly ``wanted`` among the declared permissions (permissions of modules
    not enabled now are kept as they are); audited. Returns whether anything changed."""
    declared = _declared(request)
    current = _role_permissions(role)
    target = (current - declared) | (wanted & declared)
    added, removed = target - current, current - target
    if not added and not removed:
        return False
    if not may_grant(me, added | removed):
        raise Refused(_("You can only give or take permissions that you hold yourself."))
    role.permissions = [p for p in role.permissions if p.permission not in removed] + [
        RolePermission(permission=p) for p in sorted(added)]
    audit.record(db, "roles.permissions", actor=me, target=f"role:{role.name}",
                 detail={"added": sorted(added), "removed": sorted(removed)}, ip=_ip(request))
    return True


@page(ADMIN_USERS)
def roles_save(request: Request, form: Form) -> Response:
    """The whole matrix: checkboxes named ``<role id>:<permission>``; ``roles`` lists the
    role columns the form showed (others are left alone)."""
    me = _me(request)
    shown = {int(v) for v in form.getlist("roles") if isinstance(v, str) and v.isdigit()}
    wanted: dict[int, set[str]] = {role_id: set() for role_id in shown}
    for value in form.getlist("grant"):
        if isinstance(value, str) and ":" in value:
            role_id, permission = value.split(":", 1)
            if role_id.isdigit() and int(role_id) in wanted:
                wanted[int(role_id)].add(permission)
    changed = 0
    try:
        with platform_of(request).session() as db:
            for role in db.scalars(select(Role).where(Role.id.in_(shown)).order_by(Role.id)):
                if "*" in _role_permissions(role):
                    wanted[role.id].add("*")  # the matrix does not take "every permission" away
                changed += _save_permissions(request, db, role, wanted[role.id], me)
            if not _keeps_a_superuser(db):
                raise Refused(_("Refused: nobody active would hold every permission (*) any more."))
    except Refused as refused:
        return _back("/admin/roles", error=str(refused))
    return _back("/admin/roles", message=_("Saved.") if changed else _("Nothing changed."))


@page(ADMIN_USERS)
def role_new(request: Request, form: Form) -> Response:
    me = _me(request)
    values = {"name": _field(form, "name", 80), "label_zh": _field(form, "label_zh", 80),
              "label_en": _field(form, "label_en", 80)}
    errors = {}
    if not ROLE_PATTERN.match(values["name"]):
        errors["name"] = _("Use lower-case letters, digits and _ (starting with a letter).")
    if not errors:
        with platform_of(request).session() as db:
            if db.scalar(select(Role.id).where(Role.name == values["name"])):
                errors["name"] = _("A role with this name exists already.")
            else:
                role = Role(name=values["name"], module="core",
                            label={k: v for k, v in (("zh", values["label_zh"]), ("en", values["label_en"])) if v})
                db.add(role)
                db.flush()
                audit.record(db, "roles.create", actor=me, target=f"role:{role.name}", detail={"label": role.label},
                             ip=_ip(request))
                role_id = role.id
    if errors:
        return _roles_page(request, 422, errors, values)
    return _back(f"/admin/roles/{role_id}", message=_("Role created. Now choose its permissions."))


@page(ADMIN_USERS)
def role_page(request: Request, form: Form) -> Response:
    me = _me(request)
    with platform_of(request).reading() as db:
        role = db.get(Role, request.path_params["role_id"])
        if role is None:
            raise _not_found()
        permissions = _role_permissions(role)
        members = list(db.scalars(select(User).join(UserRole, UserRole.user_id == User.id)
                                  .where(UserRole.role_id == role.id).order_by(User.login)))
    declared = _declared(request)
    return render(request, "admin/role.html", {
        "role": role, "label": role_label(role), "permissions": permissions, "groups": _permission_groups(request),
        "undeclared": sorted(permissions - declared), "members": members,
        "editable": may_grant(me, permissions), "can_grant_all": me.is_admin, **_flash(request)})


@page(ADMIN_USERS)
def role_save(request: Request, form: Form) -> Response:
    me = _me(request)
    role_id = request.path_params["role_id"]
    wanted = {v for v in form.getlist("permissions") if isinstance(v, str)}
    try:
        with platform_of(request).session() as db:
            role = db.get(Role, role_id)
            if role is None:
                raise _not_found()
            label = {k: v for k, v in (("zh", _field(form, "label_zh", 80)), ("en", _field(form, "label_en", 80))) if v}
            changed = False
            if label and label != role.label:
                if not may_grant(me, _role_permissions(role)):
                    raise Refused(_("You can only give or take permissions that you hold yourself."))
                role.label = label
                audit.record(db, "roles.update", actor=me, target=f"role:{role.name}", detail={"label": label},
                             ip=_ip(request))
                changed = True
            changed = _save_permissions(request, db, role, wanted, me) or changed
            if not _keeps_a_superuser(db):
                raise Refused(_("Refused: nobody active would hold every permission (*) any more."))
    except Refused as refused:
        return _back(f"/admin/roles/{role_id}", error=str(refused))
    return _back(f"/admin/roles/{role_id}", message=_("Saved.") if changed else _("Nothing changed."))


@page(ADMIN_USERS)
def role_delete(request: Request, form: Form) -> Response:
    me = _me(request)
    role_id = request.path_params["role_id"]
    try:
        with platform_of(request).session() as db:
            role = db.get(Role, role_id)
            if role is None:
                raise _not_found()
            if not may_grant(me, _role_permissions(role)):
                raise Refused(_("You can only give or take permissions that you hold yourself."))
            members = db.scalar(select(func.count()).select_from(UserRole).where(UserRole.role_id == role.id)) or 0
            if members:
                raise Refused(_("%(n)s users still have this role; take it from them first.", n=members))
            audit.record(db, "roles.delete", actor=me, target=f"role:{role.name}",
                         detail={"permissions": sorted(_role_permissions(role))}, ip=_ip(request))
            db.delete(role)
    except Refused as refused:
        return _back(f"/admin/roles/{role_id}", error=str(refused))
    return _back("/admin/roles", message=_("Role deleted."))


# --- audit log ----------------------------------------------------------------------------


def _date(value: str, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` in China time; the end of a range includes its whole day."""
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=CHINA)
    except ValueError:
        return None
    return day + timedelta(days=1) if end else day


@page(VIEW_AUDIT)
def audit_page(request: Request, form: Form) -> Response:
    params = request.query_params
    values = {k: params.get(k, "").strip()[:120] for k in ("actor", "action", "since", "until", "q")}
    filters = audit.AuditFilter(actor=values["actor"], action=values["action"], since=_date(values["since"]),
                                until=_date(values["until"], end=True), text=values["q"])
    before = params.get("before", "")
    after = params.get("after", "")
    with platform_of(request).reading() as db:
        entries, older, newer = audit.search(db, filters, before=int(before) if before.isdigit() else None,
                                             after=int(after) if after.isdigit() else None, limit=PAGE_SIZE)
        known_actions = audit.actions(db)
    keep = {k: v for k, v in values.items() if v}
    links = {
        "older": f"/admin/audit?{urlencode({**keep, 'before': entries[-1].id})}" if older and entries else "",
        "newer": f"/admin/audit?{urlencode({**keep, 'after': entries[0].id})}" if newer and entries else "",
        "newest": f"/admin/audit?{urlencode(keep)}" if (before or after) else "",
    }
    return render(request, "admin/audit.html", {"entries": entries, "values": values, "links": links,
                                                 "actions": known_actions, "local_time": local_time,
                                                 "filtered": bool(keep)})


# --- routes -------------------------------------------------------------------------------


def routes() -> list[Route]:
    return [
        Route("/account", account, methods=["GET"]),
        Route("/account/password", account_password, methods=["POST"]),
        Route("/account/totp", account_totp, methods=["GET"]),
        Route("/account/totp/start", account_totp_start, methods=["POST"]),
        Route("/account/totp/confirm", account_totp_confirm, methods=["POST"]),
        Route("/account/totp/disable", account_totp_disable, methods=["POST"]),
        Route("/account/tokens", account_token_create, methods=["POST"]),
        Route("/account/tokens/{token_id:int}/revoke", account_token_revoke, methods=["POST"]),
        Route("/admin/users", users_page, methods=["GET"]),
        Route("/admin/users/new", user_new, methods=["GET", "POST"]),
        Route("/admin/users/{user_id:int}", user_page, methods=["GET"]),
        Route("/admin/users/{user_id:int}", user_update, methods=["POST"]),
        Route("/admin/users/{user_id:int}/disable", user_disable, methods=["POST"]),
        Route("/admin/users/{user_id:int}/enable", user_enable, methods=["POST"]),
        Route("/admin/users/{user_id:int}/password", user_password, methods=["POST"]),
        Route("/admin/users/{user_id:int}/unlock", user_unlock, methods=["POST"]),
        Route("/admin/users/{user_id:int}/totp-reset", user_totp_reset, methods=["POST"]),
        Route("/admin/tokens", tokens_page, methods=["GET"]),
        Route("/admin/tokens/{token_id:int}/revoke", token_revoke, methods=["POST"]),
        Route("/admin/roles", roles_page, methods=["GET"]),
        Route("/admin/roles", roles_save, methods=["POST"]),
        Route("/admin/roles/new", role_new, methods=["POST"]),
        Route("/admin/roles/{role_id:int}", role_page, methods=["GET"]),
        Route("/admin/roles/{role_id:int}", role_save, methods=["POST"]),
        Route("/admin/roles/{role_id:int}/delete", role_delete, methods=["POST"]),
        Route("/admin/audit", audit_page, methods=["GET"]),
    ]

