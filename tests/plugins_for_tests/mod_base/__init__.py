"""Test plugin for module life-cycle tests: owns one table, depended on by mod_child."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

import kehu
from kehu.db import Model
from kehu.declarations import Permission, RoleTemplate

MANIFEST = kehu.Manifest(name="mod_base", version="1.2.0", summary="Test: base module",
                         label={"zh": "基础测试模块", "en": "Base test module"})


class BaseThing(Model):
    __tablename__ = "mod_base_thing"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(80))


@kehu.hookimpl
def kehu_models() -> list[type]:
    return [BaseThing]


@kehu.hookimpl
def kehu_permissions() -> list[Permission]:
    return [Permission("mod_base.read", {"en": "Read base things"})]


@kehu.hookimpl
def kehu_roles() -> list[RoleTemplate]:
    return [RoleTemplate("mod_base_reader", ("mod_base.read",), {"en": "Base reader"})]
