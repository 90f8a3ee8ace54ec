"""Authorization: roles from plugin declarations, record rules and field masking.

Roles are sets of permissions; users have roles. The core ships ``admin`` (the wildcard ``*``);
plugins ship default roles through ``kehu_roles``, created the first time their module is
enabled and the administrators' to change afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from kehu.auth import CurrentUser
from kehu.models import Role, RolePermission, SeededRole
from kehu.platform import Platform


def sync_roles(platform: Platform, db: Session) -> list[str]:
    """Create the default roles of active modules that were never created; returns their names.

    A plugin's default role is created once: one an administrator deleted is not created again.
    The core's (``admin``) is created whenever it is missing: the command line and the set-up
    need it.
    """
    seeded = set(db.scalars(select(SeededRole.name)))
    existing = set(db.scalars(select(Role.name)))
    created = []
    for module, template in platform.declarations.roles:
        if template.name in seeded:
            continue
        if module != "core":
            db.add(SeededRole(name=template.name, module=module))
            seeded.add(template.name)
        if template.name in existing:  # there already (or an administrator made one of that name)
            continue
        role = Role(name=template.name, label=dict(template.label), module=module)
        role.permissions = [RolePermission(permission=p) for p in template.permissions]
        db.add(role)
        existing.add(template.name)
        created.append(template.name)
    return created


def only_rules(platform: Platform, model: type, rules: list[Any]) -> bool:
    """Whether ``rules`` (a plugin's own, say) are all the record rules declared for ``model``
    and in force: a plugin that knows its rules depend on the user alone may then keep
    statements built for a user."""
    return [rule for rule in platform.declarations.record_rules if rule.model is model] == rules


def restrict(platform: Platform, query: Select[Any], model: type, user: CurrentUser) -> Select[Any]:
    """AND every record rule declared for ``model`` into ``query`` for ``user``."""
    for rule in platform.declarations.record_rules:
        if rule.model is model:
            clause = rule.where(user)
            if clause is not None:
                query = query.where(clause)
    return query


def visible(platform: Platform, db: Session, model: type, user: CurrentUser, record_id: Any) -> Any:
    """The record with ``record_id`` if ``user`` may see it, else ``None`` (answer 404, not 403)."""
    primary_key = model.__mapper__.primary_key[0]  # type: ignore[attr-defined]
    return db.scalar(restrict(platform, select(model).where(primary_key == record_id), model, user))


def mask_value(value: str | None) -> str | None:
    """``13800138000`` → ``138****8000``; ``alice@example.com`` → ``a***@example.com``."""
    if not value:
        return value
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(value) >= 7:
        return f"{value[:3]}****{value[-4:]}"
    return "*" * len(value)


def field_view(platform: Platform, user: CurrentUser, model: type, attribute: str, value: str | None) -> str | None:
    """The value of a personal field as ``user`` may see it: plain, or masked."""
    return field_viewer(platform, user, model, attribute)(value)


def field_viewer(platform: Platform, user: CurrentUser, model: type, attribute: str) -> Callable[[str | None], str | None]:
    """What :func:`field_view` does to each value of one field for ``user``, worked out once: for
    a page that shows the field on many rows."""
    for declared in platform.declarations.personal_fields:
        if declared.model is model and declared.attribute == attribute:
            if user.can(declared.view_permission):
                return _as_it_is
            mask = declared.mask or mask_value
            return lambda value: mask(value) if value else value
    return _as_it_is


def _as_it_is(value: str | None) -> str | None:
    return value


def may_write_field(platform: Platform, user: CurrentUser, model: type, attribute: str) -> bool:
    for declared in platform.declarations.personal_fields:
        if declared.model is model and declared.attribute == attribute:
            return user.can(declared.write_permission)
    return True
