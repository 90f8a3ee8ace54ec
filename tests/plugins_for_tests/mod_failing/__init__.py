"""Test plugin whose second migration fails (it inserts into a table that does not exist)."""

from __future__ import annotations

from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, mapped_column

import kehu
from kehu.db import Model

MANIFEST = kehu.Manifest(name="mod_failing", version="0.1.0", summary="Test: a failing migration")


class FailingA(Model):
    __tablename__ = "mod_failing_a"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class FailingB(Model):
    __tablename__ = "mod_failing_b"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


@kehu.hookimpl
def kehu_models() -> list[type]:
    return [FailingA, FailingB]
