"""Test plugin for the multi-process test: one row per contact event it handles.

No unique constraint on purpose: an event handled twice would show as two rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

import kehu
from kehu.db import Model

MANIFEST = kehu.Manifest(name="scale_probe", version="0.1", summary="Test plugin: counts handled contact events",
                         depends={"contacts": ">=1.0"})


class HandledEvent(Model):
    __tablename__ = "scale_probe_handled"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(80))
    contact_id: Mapped[int] = mapped_column(Integer)


@kehu.hookimpl
def kehu_models() -> list[type]:
    return [HandledEvent]


@kehu.hookimpl
def kehu_on_event(event: Any, session: Session) -> None:
    if event.name in ("contact.created", "contact.updated"):
        session.add(HandledEvent(event_id=event.id, name=event.name, contact_id=event.payload["contact_id"]))
    elif event.name == "contact.imported":
        for contact_id in [*event.payload["created"], *event.payload["updated"]]:
            session.add(HandledEvent(event_id=event.id, name=event.name, contact_id=contact_id))
