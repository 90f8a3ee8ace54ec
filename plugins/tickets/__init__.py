"""Tickets: service work orders (工单) with SLAs in business hours, escalation, customer
notifications and a customer portal.

It depends on contacts and composes with it only through hooks and events: a "Tickets" panel
on the contact page (``kehu_slot`` for ``contacts.detail.panels``), ticket events on the
contact's timeline (``contacts_timeline``), tickets that follow merged contacts
(``contacts_merge``), its part of a person's export and erasure, and customers met on the web
form found or created through ``kehu_person_find_or_create``.

=================  ======================================================================
``models.py``      the tables (``tickets_*``)
``security.py``    permissions, the ``service`` and ``service_manager`` roles, the record rule
``sla.py``         business-hours arithmetic (pure, tested with an injected clock)
``service.py``     the rules: numbers, workflow, assignment, comments, ratings, SLA clocks
``api.py``         the JSON API under ``/api/tickets``;  ``views.py``  staff pages under ``/tickets``
``public.py``      the customer's web form and status page under ``/public/tickets``
``notify.py``      notifications and the e-mail channel;  ``tasks.py``  the jobs
``links.py``       signed status links;  ``ratelimit.py``  limits of the public pages
=================  ======================================================================

Events: ``ticket.created``, ``ticket.status_changed``, ``ticket.resolved`` (payload
``ticket_id``, ``contact_id`` / ``from``, ``to``) and ``ticket.sla_breached`` (``ticket_id``,
``clock``, ``escalated_to``).
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select

import kehu
from kehu.db import read_rows
from kehu.declarations import MenuItem, Panel, Schedule, Setting, TimelineEntry
from kehu.i18n import gettext as _
from kehu.platform import current
from kehu.web import current_user, platform_of, render_fragment

from . import api, demo, display, notify, public, security, service, tasks, views
from .models import MODELS, History, Ticket

MANIFEST = kehu.Manifest(
    name="tickets",
    version="1.0.0",
    summary="Service tickets with SLAs in business hours, escalation, notifications and a customer portal",
    depends={"contacts": ">=1.0,<2"},
    label={"zh": "工单", "en": "Tickets"},
)

SETTINGS = [
    Setting("business_hours", "09:00-18:00", "Working hours of the service desk, local time (HH:MM-HH:MM)."),
    Setting("timezone", "Asia/Shanghai", "Time zone of the working hours and of ticket numbers' years."),
    Setting("weekdays", "1-5", "Working weekdays, 1 = Monday ... 7 = Sunday (holidays and make-up days are data)."),
    Setting("warn_before_minutes", "60", "Warn the assignee this many minutes before an SLA is breached."),
    Setting("sla_check_seconds", "60", "How often the SLA watch runs."),
    Setting("default_team", "", "Team of tickets from the public form (and of staff without a team)."),
    Setting("auto_assign", "1", "Assign new tickets round robin within their team (1) or not (0)."),
    Setting("public_url", "http://127.0.0.1:8000", "The address customers and staff reach Kehu at (for links in e-mails)."),
    Setting("link_secret", "", "Signs customers' status links; empty: a random key in KEHU_HOME/tickets/link.key.",
            secret=True),
    Setting("link_max_age_days", "365", "Customers' status links expire after this many days."),
    Setting("customer_language", "zh", "Language of e-mails to customers (zh or en)."),
    Setting("max_attachment_mb", "10", "Largest accepted attachment, in MB."),
    Setting("attachment_types", "jpg,jpeg,png,gif,webp,pdf,txt,csv,log,doc,docx,xls,xlsx,zip,mp4",
            "Accepted attachment extensions."),
    Setting("form_rate_limit", "5/hour", "Tickets one IP address may send through the public form."),
    Setting("reply_rate_limit", "30/hour", "Answers and ratings per IP address and ticket on the status page."),
    Setting("rate_limit_storage", "memory://", "Where rate-limit counters live: memory:// or redis://host:port/db."),
    Setting("min_fill_seconds", "3", "A public form sent back faster than this is taken for a script."),
    Setting("smtp_host", "", "SMTP server for e-mails to customers and staff; empty: no e-mail."),
    Setting("smtp_port", "25", "SMTP port."),
    Setting("smtp_user", "", "SMTP login (empty: none)."),
    Setting("smtp_password", "", "SMTP password.", secret=True),
    Setting("smtp_from", "Kehu <noreply@localhost>", "Sender of the e-mails."),
    Setting("smtp_starttls", "0", "Use STARTTLS (1) or not (0)."),
    Setting("smtp_ssl", "0", "Connect with TLS from the start (1, port 465) or not (0)."),
    Setting("smtp_timeout", "10", "Seconds to wait for the SMTP server."),
]


# --- Declarations --------------------------------------------------------------------------------


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
def kehu_settings() -> list[Setting]:
    return SETTINGS


@kehu.hookimpl
def kehu_startup(platform: Any) -> None:
    from . import sla

    sla.parse_hours(platform.setting("tickets", "business_hours"))
    sla.parse_weekdays(platform.setting("tickets", "weekdays"))
    ZoneInfo(platform.setting("tickets", "timezone"))


# --- Web -------------------------------------------------------------------------------------------


@kehu.hookimpl
def kehu_routes() -> list[Any]:
    return views.routes()


@kehu.hookimpl
def kehu_api_routes() -> list[Any]:
    return api.routes()


@kehu.hookimpl
def kehu_public_routes() -> list[Any]:
    return public.routes()


@kehu.hookimpl
def kehu_menu_items() -> list[MenuItem]:
    return [MenuItem({"zh": "工单", "en": "Tickets"}, "/tickets/", security.READ, order=20)]


def _local_time(moment: datetime | str | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    if not moment:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(service.timezone(current())).strftime(pattern)


@kehu.hookimpl
def kehu_template_globals() -> dict[str, Any]:
    return {"tickets_time": _local_time}


#: Tickets the contact page's panel lists (the newest); a link leads to all of them.
PANEL_TICKETS = 10


def _contact_tickets() -> Any:
    return select(Ticket.id).where(Ticket.contact_id == bindparam("contact_id"))


def _panel_rows() -> Any:
    return (select(Ticket.id, Ticket.number, Ticket.subject, Ticket.status, Ticket.created_at)
            .where(Ticket.contact_id == bindparam("contact_id"))
            .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(PANEL_TICKETS))


def _counted(statement: Any) -> Any:
    return select(func.count()).select_from(statement.subquery())


@kehu.hookimpl
def kehu_slot(name: str, request: Any, context: dict[str, Any]) -> Panel | None:
    """The customer's tickets on the contact page."""
    if name != "contacts.detail.panels":
        return None
    user = current_user(request)
    contact = context.get("contact")
    if user is None or contact is None or not user.can(security.READ):
        return None
    platform = platform_of(request)
    # The contact page holds its own transaction open. Plain rows of what the panel shows, on a
    # connection without an ORM session (no SLA clocks, no model objects): it is on every contact page.
    with platform.reading_connection() as db:
        contact_id = {"contact_id": contact.id}
        rows = read_rows(db, service.visible_statement(platform, user, "contact panel", _panel_rows), contact_id)
        # Most customers have fewer tickets than the panel lists: counting them is then no query.
        total = len(rows) if len(rows) < PANEL_TICKETS else read_rows(db, service.visible_statement(
            platform, user, "contact panel count", _contact_tickets, _counted), contact_id)[0][0]
        statuses = service.status_rows(db)
        tickets = [SimpleNamespace(id=t.id, number=t.number, subject=t.subject, status=t.status,
                                   status_label=service.status_label(statuses.get(t.status), t.status),
                                   created_at=t.created_at) for t in rows]
    html = render_fragment(request, "tickets/_panel.html", {
        "tickets": tickets, "total": total, "contact": contact, "may_write": user.can(security.WRITE),
        "priority_label": service.priority_label, "tickets_time": _local_time})
    return Panel(title=_("Tickets"), html=html, order=40)


# --- Jobs, demo --------------------------------------------------------------------------------------


@kehu.hookimpl
def kehu_tasks() -> list[Any]:
    return list(tasks.TASKS)


@kehu.hookimpl
def kehu_schedules() -> list[Schedule]:
    try:
        every = max(5, int(current().setting("tickets", "sla_check_seconds")))
    except (RuntimeError, KeyError, ValueError):
        every = 60
    return [Schedule("check_sla", seconds=every), Schedule("send_pending", seconds=300)]


@kehu.hookimpl
def kehu_notification_channels() -> list[Any]:
    return [notify.EmailChannel()]


@kehu.hookimpl
def kehu_demo_data(session: Any) -> None:
    demo.load(current(), session)


# --- People (PIPL) and the contacts extension points ------------------------------------------------------


@kehu.hookimpl
def kehu_person_export(session: Any, contact_id: int) -> dict[str, Any] | None:
    return service.person_data(session, contact_id)


@kehu.hookimpl
def kehu_person_erase(session: Any, contact_id: int) -> None:
    service.erase_person(current(), session, contact_id)


@kehu.hookimpl
def contacts_merge(session: Any, survivor_id: int, merged_id: int) -> None:
    service.merge_contacts(session, survivor_id, merged_id)


TIMELINE_ACTIONS = ("created", "status", "reopened", "rated", "sla_breach")


def _timeline_rows() -> Any:
    return (select(Ticket.id, Ticket.number, Ticket.subject, History.at, History.action, History.detail)
            .select_from(Ticket).join(History, History.ticket_id == Ticket.id)
            .where(Ticket.contact_id == bindparam("contact_id"), History.action.in_(TIMELINE_ACTIONS)))


@kehu.hookimpl
def contacts_timeline(session: Any, contact_id: int, user: Any) -> list[TimelineEntry] | None:
    """Ticket events of the tickets of this contact that ``user`` may see."""
    if not user.can(security.READ):
        return None
    # One query: the history of the contact's tickets, narrowed by the record rules on tickets.
    rows = read_rows(session, service.visible_statement(current(), user, "contact timeline", _timeline_rows),
                     {"contact_id": contact_id})
    if not rows:
        return []
    statuses = service.status_rows(session)
    return [TimelineEntry(at=row.at, kind="ticket", source="tickets", url=f"/tickets/{row.id}",
                          title=_("Ticket %(number)s: %(what)s", number=row.number,
                                  what=display.history_text(row, {}, statuses)),
                          body=row.subject if row.action == "created" else "")
            for row in rows]
