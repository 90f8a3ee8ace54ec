"""Test plugin: depends on mod_base (>=1.0,<2), its table points at mod_base's."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

import kehu
from kehu.db import Model

MANIFEST = kehu.Manifest(name="mod_child", version="0.3.0", summary="Test: depends on mod_base",
                         depends={"mod_base": ">=1.0,<2"})


class ChildItem(Model):
    __tablename__ = "mod_child_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    thing_id: Mapped[int | None] = mapped_column(ForeignKey("mod_base_thing.id"), nullable=True)
    note: Mapped[str] = mapped_column(String(80))


@kehu.hookimpl
def kehu_models() -> list[type]:
    return [ChildItem]
