"""Every hook the core calls, in one place.

Each specification says when the core calls it and what it returns. Plugins implement them
with ``@kehu.hookimpl`` on functions of their entry-point module (or of an object it
registers). A function named ``kehu_*`` that matches no specification here is an error at
start-up (``PluginManager.check_pending``), so a misspelled hook never fails silently.

``docs/plugins.md`` documents each of these hooks; ``tests/test_hookspecs_documented.py``
fails when one is missing from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kehu import hookspec

if TYPE_CHECKING:  # pragma: no cover
    import click
    from sqlalchemy.orm import Session
    from starlette.requests import Request
    from starlette.routing import BaseRoute

    from kehu.declarations import (
        MenuItem,
        Panel,
        PersonalField,
        Permission,
        RecordRule,
        RoleTemplate,
        Schedule,
        Setting,
    )
    from kehu.events import Event
    from kehu.platform import Platform


# --- Declarations: called once at start-up, after the plugin is registered. -------------


@hookspec
def kehu_add_hookspecs(pluginmanager: Any) -> None:
    """Called at start-up so a plugin can publish hook specifications of its own.

    Use it to offer extension points to plugins that depend on yours:
    ``pluginmanager.add_hookspecs(my_plugin.hookspecs)``. Returns nothing.
    """


@hookspec
def kehu_models() -> list[type]:
    """Called at start-up. Returns the SQLAlchemy model classes (subclasses of
    ``kehu.db.Model``) whose tables this plugin owns. Their tables are created by the
    plugin's own migrations and dropped by ``kehu modules remove``."""


@hookspec
def kehu_permissions() -> list[Permission]:
    """Called at start-up. Returns the permissions the plugin checks, named
    ``<plugin>.<action>`` (``contacts.read``)."""


@hookspec
def kehu_roles() -> list[RoleTemplate]:
    """Called at start-up. Returns default roles; each is created the first time the plugin
    is enabled and is afterwards the administrators' to change."""


@hookspec
def kehu_record_rules() -> list[RecordRule]:
    """Called at start-up. Returns record rules that restrict which rows a user sees."""


@hookspec
def kehu_personal_fields() -> list[PersonalField]:
    """Called at start-up. Returns the columns that hold personal data; they are masked for
    users without the view permission and included in a person's export and erasure."""


@hookspec
def kehu_settings() -> list[Setting]:
    """Called at start-up. Returns the configuration values the plugin reads; see
    ``kehu.declarations.Setting`` for where each value comes from."""


@hookspec
def kehu_startup(platform: Platform) -> None:
    """Called once after every enabled plugin is registered and declared. Raise to refuse
    to start: the plugin is then shown as ``broken`` and the rest of the application runs."""


# --- Web: called when the Starlette application is assembled. ---------------------------


@hookspec
def kehu_routes() -> list[BaseRoute]:
    """Returns the plugin's staff page routes, mounted under ``/<plugin name>``. Anonymous
    visitors are sent to the login page before any of them runs; check permissions in the
    endpoint with ``@kehu.web.requires("<plugin>.<action>")``."""


@hookspec
def kehu_public_routes() -> list[BaseRoute]:
    """Returns routes that need no staff login (customer pages, WeChat H5 pages, web forms),
    mounted under ``/public/<plugin name>``. Every other route of a plugin requires a login;
    a public route must protect itself (signed links, rate limits)."""


@hookspec
def kehu_api_routes() -> list[BaseRoute]:
    """Returns the plugin's JSON API routes, mounted under ``/api/<plugin name>``. A route
    endpoint's docstring may hold an OpenAPI YAML fragment after a ``---`` line; it goes into
    ``/api/openapi.json``."""


@hookspec
def kehu_menu_items() -> list[MenuItem]:
    """Returns navigation entries. The layout shows those whose permission the user holds."""


@hookspec
def kehu_slot(name: str, request: Request, context: dict[str, Any]) -> Panel | list[Panel] | None:
    """Called while a page renders ``{{ slot("<name>", ...) }}``. ``name`` identifies the
    place (``contacts.detail.panels``, ``base.head``); ``context`` holds what the page passes
    (for example the ``contact``). Returns a panel, a list of panels, or ``None`` to stay out."""


@hookspec
def kehu_template_globals() -> dict[str, Any]:
    """Called once when the template environment is built. Returns functions and values
    added to every template's globals (``{"money": format_money}``)."""


# --- Events, jobs, command line. -----------------------------------------------------


@hookspec
def kehu_on_event(event: Event, session: Session) -> None:
    """Called by a background worker for each domain event (``contact.created``,
    ``ticket.closed``, ...) after the transaction that raised it committed. Work done with
    ``session`` commits together with the record that the event was handled, so a handler's
    effect is applied exactly once even though delivery is at least once. Returns nothing."""


@hookspec
def kehu_tasks() -> list[Any]:
    """Returns plain functions to run as background tasks. Each is registered under
    ``<plugin>.<function name>`` and started with ``kehu.jobs.enqueue(name, **kwargs)``;
    arguments are record ids and other plain values, never personal data."""


@hookspec
def kehu_schedules() -> list[Schedule]:
    """Returns periodic runs of the plugin's tasks (run by ``kehu beat``, or the embedded
    worker of ``kehu serve``)."""


@hookspec
def kehu_cli_commands() -> list[click.Command]:
    """Returns click commands or groups added to the ``kehu`` command line."""


@hookspec
def kehu_demo_data(session: Session) -> None:
    """Called by ``kehu demo load`` with the plugin enabled, inside one transaction. Adds a
    little realistic sample data (idempotently: do nothing when it is already there)."""


# --- Privacy: a person's data across every plugin. -------------------------------------


@hookspec
def kehu_person_export(session: Session, contact_id: int) -> dict[str, Any] | None:
    """Called when a person's data export (PIPL access right) is assembled. Returns what the
    plugin holds about the person with this contact id, as JSON-ready data, or ``None``."""


@hookspec
def kehu_person_erase(session: Session, contact_id: int) -> None:
    """Called, inside the erasure's transaction, when a person's data is erased. The plugin
    deletes or anonymizes what it holds about them. Returns nothing."""


@hookspec(firstresult=True)
def kehu_person_summary(session: Session, contact_id: int) -> dict[str, Any] | None:
    """Called when a plugin needs to address a person (for example to notify a ticket's
    customer). The plugin that keeps people (contacts) returns
    ``{"id", "name", "email", "phone", "wechat_openid"}`` (unmasked: the caller is trusted
    code and must not show it to users without permission), or ``None``. First answer wins."""


@hookspec(firstresult=True)
def kehu_person_find_or_create(session: Session, name: str, email: str, phone: str, source: str) -> int | None:
    """Called when a plugin meets a person from outside (a customer's web form, a WeChat
    follower). The plugin that keeps people finds them by email or phone, or creates them, and
    returns their contact id; ``None`` when no plugin keeps people. First answer wins."""


@hookspec(firstresult=True)
def kehu_consent_status(session: Session, contact_id: int, purpose: str, channel: str) -> bool | None:
    """Called before a plugin markets to a person. Returns ``True`` when the person consented
    to ``purpose`` (``"marketing"``) on ``channel`` (``"wechat"``, ``"sms"``, ``"email"``) and has
    not withdrawn it, ``False`` when not, ``None`` when the plugin does not keep consent."""


@hookspec
def kehu_notification_channels() -> list[Any]:
    """Called whenever a plugin sends a message to a person (``kehu.notify.offer``).

    Returns notification channels: objects with a ``name`` (``"email"``, ``"sms"``,
    ``"wechat"``...), a ``send(recipient: dict, subject: str, body: str) -> None`` method that
    raises when sending fails, and optionally ``reaches(recipient) -> bool``. ``recipient`` holds
    the person's addresses as ``kehu_person_summary`` gives them. :func:`kehu.notify.offer`
    sends through every channel that reaches the recipient."""
