"""``kehu demo load``: a ready-to-try deployment with a generated administrator password."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from sqlalchemy import select

from kehu import auth, modules
from kehu.models import Role, User
from kehu.platform import Platform

DEMO_ADMIN = "admin"


def builtin_modules(platform: Platform) -> list[str]:
    return sorted(name for name, info in platform.modules.items()
                  if info.target.startswith("kehu_plugins.") and not info.error)


def load(platform: Platform, names: list[str]) -> Iterator[str]:
    from kehu.cli import boot, upgrade_everything

    with platform.session() as db:
        for name in names or builtin_modules(platform):
            for enabled in modules.enable(db, name, platform.modules):
                yield f"enabled {enabled}"
    platform = upgrade_everything(boot())
    with platform.session() as db:
        if db.scalar(select(User).where(User.login == DEMO_ADMIN)) is None:
            password = secrets.token_urlsafe(12)
            admin = User(login=DEMO_ADMIN, name="演示管理员", password_hash=auth.hash_password(password))
            admin.roles = list(db.scalars(select(Role).where(Role.name == "admin")))
            db.add(admin)
            yield "=" * 60
            yield f"Demo administrator:  login {DEMO_ADMIN}   password {password}"
            yield "This password is shown only once."
            yield "=" * 60
        for plugin_name in platform.active:
            from kehu.platform import plugin_hook_results

            plugin_hook_results(platform.pm, "kehu_demo_data", plugin_name, session=db)
    yield "demo data loaded"
