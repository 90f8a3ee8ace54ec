"""Test plugin: depends on mod_child (any version), so on mod_base through it."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

import kehu
from kehu.db import Model

MANIFEST = kehu.Manifest(name="mod_top", version="0.1.0", summary="Test: depends on mod_child",
                         depends={"mod_child": ""})


class TopEntry(Model):
    __tablename__ = "mod_top_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("mod_child_item.id"), nullable=True)
    note: Mapped[str] = mapped_column(String(80))


@kehu.hookimpl
def kehu_models() -> list[type]:
    return [TopEntry]
