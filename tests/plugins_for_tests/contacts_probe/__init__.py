"""Test plugin: uses every extension point of the contacts plugin and remembers the calls.

``CALLS`` collects ``(hook, arguments)`` in this process, so a test can check that the contacts
plugin called ``contacts_merge``, ``kehu_person_erase`` and the others as its contract says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kehu
from kehu.declarations import Panel, TimelineEntry

MANIFEST = kehu.Manifest(name="contacts_probe", version="0.1", summary="Test plugin for the contacts hooks",
                         depends={"contacts": ">=1.0,<2"})

CALLS: list[tuple[str, dict[str, Any]]] = []
PROBE_TIME = datetime(2024, 1, 2, 3, 4, tzinfo=UTC)


def calls(hook: str) -> list[dict[str, Any]]:
    return [arguments for name, arguments in CALLS if name == hook]


@kehu.hookimpl
def contacts_timeline(session: Any, contact_id: int, user: Any) -> list[TimelineEntry]:
    CALLS.append(("contacts_timeline", {"contact_id": contact_id, "user": user.login}))
    return [TimelineEntry(at=PROBE_TIME, kind="probe", title=f"probe entry for {contact_id}", source="contacts_probe")]


@kehu.hookimpl
def contacts_merge(session: Any, survivor_id: int, merged_id: int) -> None:
    CALLS.append(("contacts_merge", {"survivor_id": survivor_id, "merged_id": merged_id,
                                     "in_transaction": session.in_transaction()}))


@kehu.hookimpl
def kehu_slot(name: str, request: Any, context: dict[str, Any]) -> Panel | None:
    if name != "contacts.detail.panels":
        return None
    contact = context["contact"]
    CALLS.append(("slot", {"id": contact.id, "name": contact.name, "dict_id": contact["id"]}))
    return Panel(title="Probe panel", html=f'<p class="probe">probe panel for #{contact.id}</p>')


@kehu.hookimpl
def kehu_person_export(session: Any, contact_id: int) -> dict[str, Any]:
    return {"probe_records": [f"record of {contact_id}"]}


@kehu.hookimpl
def kehu_person_erase(session: Any, contact_id: int) -> None:
    CALLS.append(("kehu_person_erase", {"contact_id": contact_id, "in_transaction": session.in_transaction()}))
