"""Contacts: the people and companies a business deals with.

This is Kehu's reference plugin: read it first when you write your own. Every room of a plugin
is here, each in the file the architecture guide names:

=================  ====================================================================
``__init__.py``    the manifest and the hook implementations (this file: thin on purpose)
``models.py``      the tables (``contacts_*``)
``security.py``    permissions, default roles, record rules, personal fields
``service.py``     the rules: validation, duplicates, changes, merge, lists (used by all below)
``views.py``       staff pages under ``/contacts``; templates in ``templates/contacts/``
``api.py``         the JSON API under ``/api/contacts``
``importer.py``    CSV/XLSX import; ``tasks.py`` runs it as a background job
``exporter.py``    CSV/XLSX export
``privacy.py``     consent, a person's data export, erasure (PIPL)
``hookspecs.py``   the hooks this plugin offers others: ``contacts_timeline``, ``contacts_merge``
``cli.py``         ``kehu contacts import``;  ``demo.py``  ``kehu demo load`` data
=================  ====================================================================

Other plugins reach contacts only through hooks and events: the core's ``kehu_person_*`` and
``kehu_consent_status`` hooks, this plugin's own hooks, the ``contacts.detail.panels`` slot of
the contact page, and these events (payloads hold ids only):

- ``contact.created`` and ``contact.updated`` (``contact_id``; ``fields`` for an update), for
  changes made one contact at a time (pages, API, other plugins);
- ``contact.imported`` (``created`` and ``updated``: lists of contact ids), once per batch of up
  to 1,000 imported rows, instead of one event per row;
- ``contact.merged`` (``survivor_id``, ``merged_id``), ``contact.deleted`` and ``contact.erased``
  (``contact_id``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import kehu
from kehu.declarations import MenuItem, Schedule
from kehu.platform import current

from . import api, cli, demo, hookspecs, privacy, security, tasks, views
from .models import MODELS

MANIFEST = kehu.Manifest(
    name="contacts",
    version="1.0.0",
    summary="People and companies, with encrypted contact details, import, export, merge and consent",
    label={"zh": "客户", "en": "Contacts"},
)

_CHINA = timezone(timedelta(hours=8))


# --- Declarations -----------------------------------------------------------------------------


@kehu.hookimpl
def kehu_add_hookspecs(pluginmanager: Any) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@kehu.hookimpl
def kehu_models() -> list[type]:
    return list(MODELS)


@kehu.hookimpl
def kehu_permissions() -> list[Any]:
    return security.PERMISSIONS


@kehu.hookimpl
def kehu_roles() -> list[Any]:
    return security.ROLES


@kehu.hookimpl
def kehu_record_rules() -> list[Any]:
    return security.RECORD_RULES


@kehu.hookimpl
def kehu_personal_fields() -> list[Any]:
    return security.PERSONAL_FIELDS


# --- Web -------------------------------------------------------------------------------------------


@kehu.hookimpl
def kehu_routes() -> list[Any]:
    return views.routes()


@kehu.hookimpl
def kehu_api_routes() -> list[Any]:
    return api.routes()


@kehu.hookimpl
def kehu_menu_items() -> list[MenuItem]:
    return [MenuItem({"zh": "客户", "en": "Contacts"}, "/contacts/", security.READ, order=10)]


def _local_time(moment: datetime, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """A timestamp as the users read it: China Standard Time."""
    return moment.astimezone(_CHINA).strftime(pattern)


@kehu.hookimpl
def kehu_template_globals() -> dict[str, Any]:
    return {"contacts_time": _local_time}


# --- Jobs, command line, demo ------------------------------------------------------------------


@kehu.hookimpl
def kehu_tasks() -> list[Any]:
    return [tasks.run_import, tasks.purge_old_imports]


@kehu.hookimpl
def kehu_schedules() -> list[Schedule]:
    return [Schedule("purge_old_imports", seconds=6 * 3600)]


@kehu.hookimpl
def kehu_cli_commands() -> list[Any]:
    return cli.COMMANDS


@kehu.hookimpl
def kehu_demo_data(session: Any) -> None:
    demo.load(session)


# --- People, for other plugins (privacy rights included) ---------------------------------------------


@kehu.hookimpl
def kehu_person_summary(session: Any, contact_id: int) -> dict[str, Any] | None:
    return privacy.person_summary(session, contact_id)


@kehu.hookimpl
def kehu_person_find_or_create(session: Any, name: str, email: str, phone: str, source: str) -> int | None:
    return privacy.find_or_create(current(), session, name, email, phone, source)


@kehu.hookimpl
def kehu_consent_status(session: Any, contact_id: int, purpose: str, channel: str) -> bool | None:
    return privacy.consent_status(session, contact_id, purpose, channel)


@kehu.hookimpl
def kehu_person_export(session: Any, contact_id: int) -> dict[str, Any] | None:
    return privacy.person_data(session, contact_id)


@kehu.hookimpl
def kehu_person_erase(session: Any, contact_id: int) -> None:
    privacy.anonymize(session, contact_id)
