"""Test plugin: records in its own table every event and task it handles.

Its handler reacts to events named ``probe.*``. The payload steers it: ``{"fail": "<plugin>"}``
makes that plugin's handler raise, ``{"sleep": seconds}`` makes it linger before writing (to
widen race windows). Each handling writes one :class:`ProbeEffect` row, so a duplicate
delivery would show as a second row.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

import kehu
from kehu.db import Model, UTCDateTime, utcnow
from kehu.declarations import Schedule

MANIFEST = kehu.Manifest(name="events_probe", version="0.1", summary="Test plugin: records handled events and tasks")


class ProbeEffect(Model):
    __tablename__ = "events_probe_effect"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    handler: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def handle_probe_event(plugin: str, event: Any, session: Session) -> None:
    """The handler both probe plugins share."""
    if not event.name.startswith("probe."):
        return
    if event.payload.get("fail") == plugin:
        raise RuntimeError(f"{plugin} was asked to fail")
    time.sleep(float(event.payload.get("sleep", 0)))
    session.add(ProbeEffect(event_id=event.id, handler=plugin, note=event.name))


@kehu.hookimpl
def kehu_models() -> list[type]:
    return [ProbeEffect]


@kehu.hookimpl
def kehu_on_event(event: Any, session: Session) -> None:
    handle_probe_event("events_probe", event, session)


def record_task_run(marker: str, acting_user_id: int | None = None) -> None:
    """A plugin task: writes one row with ``marker`` (and who it acted for)."""
    from kehu.platform import current

    with current().session() as session:
        session.add(ProbeEffect(handler="task", note=f"{marker}|{acting_user_id or ''}"))


@kehu.hookimpl
def kehu_tasks() -> list[Any]:
    return [record_task_run]


@kehu.hookimpl
def kehu_schedules() -> list[Schedule]:
    return [Schedule("record_task_run", 3600, {"marker": "hourly"})]
