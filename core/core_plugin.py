"""The core registers its own declarations through the same hooks as every plugin."""

from __future__ import annotations

from kehu import hookimpl
from kehu.declarations import MenuItem, Permission, RoleTemplate
from kehu.models import CORE_MODELS

CORE_PERMISSIONS = [
    Permission("core.admin_modules", {"zh": "管理模块", "en": "Manage modules"}),
    Permission("core.admin_users", {"zh": "管理用户与角色", "en": "Manage users and roles"}),
    Permission("core.view_audit", {"zh": "查看审计日志", "en": "View the audit log"}),
]


@hookimpl
def kehu_models() -> list[type]:
    return list(CORE_MODELS)


@hookimpl
def kehu_permissions() -> list[Permission]:
    return CORE_PERMISSIONS


@hookimpl
def kehu_roles() -> list[RoleTemplate]:
    # "admin" holds every permission of every module; it is expanded when roles are synced.
    return [RoleTemplate("admin", ("*",), {"zh": "管理员", "en": "Administrator"})]


@hookimpl
def kehu_menu_items() -> list[MenuItem]:
    return [
        MenuItem({"zh": "模块", "en": "Modules"}, "/admin/modules", "core.admin_modules", order=900),
        MenuItem({"zh": "用户", "en": "Users"}, "/admin/users", "core.admin_users", order=910),
        MenuItem({"zh": "角色", "en": "Roles"}, "/admin/roles", "core.admin_users", order=912),
        MenuItem({"zh": "API 令牌", "en": "API tokens"}, "/admin/tokens", "core.admin_users", order=914),
        MenuItem({"zh": "审计日志", "en": "Audit log"}, "/admin/audit", "core.view_audit", order=920),
    ]
