"""Test plugin: a second ``kehu_on_event`` handler, writing into events_probe's table."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

import kehu

from ..events_probe import handle_probe_event

MANIFEST = kehu.Manifest(
    name="events_probe_b",
    version="0.1",
    summary="Test plugin: a second event handler",
    depends={"events_probe": ""},
)


@kehu.hookimpl
def kehu_on_event(event: Any, session: Session) -> None:
    handle_probe_event("events_probe_b", event, session)
