"""Staff pages, mounted at ``/tickets``: the queue with its filters and bulk actions, a ticket
with its conversation, opening a ticket, and the administration of workflow, SLA policies,
holidays and teams.

Each page is a plain function ``(request, form) -> Response`` wrapped by
:func:`kehu.endpoints.page` (permission check, thread pool). A change that is refused comes
back as the page again with the message, at the error's status.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kehu.db import utcnow
from kehu.endpoints import Form, page
from kehu.errors import DomainError
from kehu.i18n import gettext as _
from kehu.web import current_user, platform_of, redirect, render

from . import api, display, links, security, service
from .models import CHANNELS, PRIORITIES


#: The queue counts its tickets up to this many and then shows "1000+".
QUEUE_COUNT_UP_TO = 1000


def _common(db: Any) -> dict[str, Any]:
    statuses = service.status_rows(db)
    return {"perm": security, "priorities": PRIORITIES, "channels": CHANNELS,
            "priority_label": service.priority_label, "channel_label": service.channel_label,
            "categories": service.category_rows(db), "statuses": list(statuses.values()), "status_by_key": statuses,
            "status_label": service.status_label, "clock_label": display.clock_label}


def _flash(url: str, message: str) -> Response:
    return redirect(f"{url}{'&' if '?' in url else '?'}{urlencode({'message': message})}")


# --- The queue ---------------------------------------------------------------------------------------------


@page(security.READ)
def queue(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    params = request.query_params
    errors: dict[str, str] = {}
    try:
        query = service.list_query_from(params)
    except service.Invalid as exc:
        errors, query = exc.fields, service.ListQuery()
    number = int(params["page"]) if params.get("page", "").isdigit() and int(params["page"]) > 0 else 1
    query.offset = (number - 1) * query.limit
    with platform.reading() as db:
        items, total = service.page(platform, db, user, query, count_up_to=QUEUE_COUNT_UP_TO)
        capped = total > QUEUE_COUNT_UP_TO
        common = _common(db)
        context = {
            **common, "tickets": display.queue_rows(platform, db, items, statuses=common["status_by_key"]),
            "total": f"{QUEUE_COUNT_UP_TO}+" if capped else total, "page": number,
            "pages": number + 1 if capped and len(items) == query.limit else max(number, math.ceil(total / query.limit)),
            "pages_known": not capped, "query": query, "errors": errors,
            "params": params, "workers": service.workers_for_assignment(db) if user.can(security.ASSIGN) else [],
            "away": service.is_away(db, user.id), "alerts": service.alerts_for(db, user.id, 5),
            "views": [("all", _("All")), ("mine", _("Mine")), ("team", _("My team")),
                      ("unassigned", _("Unassigned")), ("breaching", _("Breaching soon")), ("open", _("Open"))],
            "paging": urlencode([(k, v) for k, v in params.multi_items() if k != "page" and v]),
        }
    return render(request, "tickets/queue.html", context)


@page(security.WRITE)
def bulk(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    ids = [int(i) for i in form.getlist("ids") if str(i).isdigit()]
    back = "/tickets/?" + str(form.get("back", ""))
    if not ids:
        return _flash(back, _("Choose tickets first."))
    action = "close" if form.get("action") == "close" else "assign"
    assignee: Any = form.get("assignee_id", "")
    assignee = None if assignee in ("", "none") else ("auto" if assignee == "auto" else assignee)
    results = api.bulk(platform, user, ids, action, assignee)
    done = sum(r["ok"] for r in results)
    problems = [f"#{r['id']}: {r['error']}" for r in results if not r["ok"]]
    message = _("%(done)s of %(all)s tickets done.", done=done, all=len(results))
    return _flash(back, " ".join([message, *problems[:5]]))


@page(security.READ)
def set_away(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    away = form.get("away") == "1"
    with platform.session() as db:
        service.set_away(db, user.id, away, str(form["email"]) if "email" in form else None)
    return _flash("/tickets/", _("You are marked away.") if away else _("Welcome back."))


# --- Opening a ticket -----------------------------------------------------------------------------------------


@page(security.WRITE)
def new_ticket(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    values: dict[str, Any] = {"contact_id": request.query_params.get("contact_id", ""), "priority": "normal",
                              "channel": "phone", "team": user.team}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            with platform.session() as db:
                data = service.parse_input(db, values, creating=True)
                ticket = service.create_ticket(platform, db, user, data)
                ticket_id = ticket.id
            return _flash(f"/tickets/{ticket_id}", _("The ticket is open."))
        except DomainError as exc:
            errors, status = exc.fields or {"": exc.message}, exc.status
    with platform.reading() as db:
        contact = None
        raw = str(values.get("contact_id") or "")
        if raw.isdigit() and service.may_see_contact(platform, db, user, int(raw)):
            contact = service.contact_names(platform, db, [int(raw)]).get(int(raw))
        return render(request, "tickets/new.html", {**_common(db), "values": values, "errors": errors,
                                                     "contact_name": contact}, status_code=status)


# --- One ticket ------------------------------------------------------------------------------------------------


def _detail(request: Request, ticket_id: Any, error: str = "", status: int = 200) -> Response:
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        ticket = service.get_visible(platform, db, user, ticket_id)
        view = display.ticket_dict(platform, db, user, ticket)
        context = {
            **_common(db), "ticket": view, "error": error, "message": request.query_params.get("message", ""),
            "conversation": display.conversation(db, ticket),
            "files": [display.attachment_dict(a) for a in display.attachments_of(db, ticket.id)
                      if a.comment_id is None],
            "history": display.history(db, ticket), "customer": display.customer(platform, db, user, ticket),
            "allowed": service.allowed_targets(db, ticket.status),
            "workers": service.workers_for_assignment(db) if user.can(security.ASSIGN) else [],
            "may_write": user.can(security.WRITE), "may_assign": user.can(security.ASSIGN),
            "status_link": links.status_url(platform, ticket) if user.can(security.WRITE) else "",
            "lead_id": service.team_lead(db, ticket.team),
        }
    return render(request, "tickets/detail.html", context, status_code=status)


@page(security.READ)
def ticket_page(request: Request, form: Form) -> Response:
    return _detail(request, request.path_params["id"])


def _change(request: Request, action: Any) -> Response:
    """Run ``action(platform, db, user, ticket)``, then back to the ticket (or its error)."""
    platform, user = platform_of(request), current_user(request)
    ticket_id = request.path_params["id"]
    try:
        with platform.session() as db:
            ticket = service.get_workable(platform, db, user, ticket_id)
            message = action(platform, db, user, ticket)
    except service.NotFound:
        raise
    except DomainError as exc:
        details = "; ".join(v for v in exc.fields.values() if v and v != exc.message)
        return _detail(request, ticket_id, exc.message + (f" ({details})" if details else ""), exc.status)
    return _flash(f"/tickets/{ticket_id}", message)


@page(security.WRITE)
def change_status(request: Request, form: Form) -> Response:
    def action(platform: Any, db: Any, user: Any, ticket: Any) -> str:
        service.transition(platform, db, user, ticket, str(form.get("to", "")))
        return _("Status changed.")

    return _change(request, action)


@page(security.WRITE)
def comment(request: Request, form: Form) -> Response:
    def action(platform: Any, db: Any, user: Any, ticket: Any) -> str:
        public = form.get("public") == "1"
        row = service.add_comment(platform, db, user, ticket, str(form.get("body", "")), public=public)
        api._store_files(platform, db, user, ticket, form.uploads(), public, row.id)
        if form.get("then"):
            service.transition(platform, db, user, ticket, str(form["then"]))
        return _("Reply sent.") if public else _("Note saved.")

    return _change(request, action)


@page(security.WRITE)
def assign(request: Request, form: Form) -> Response:
    def action(platform: Any, db: Any, user: Any, ticket: Any) -> str:
        raw = str(form.get("assignee_id", ""))
        if raw == "auto":
            if not user.can(security.ASSIGN):
                raise service.Forbidden(_("You may not assign tickets."))
            if service.assign_round_robin(platform, db, user, ticket) is None:
                raise service.Conflict(_("Nobody in the team %(team)s is available.", team=ticket.team))
        else:
            target = user.id if raw == "me" else (int(raw) if raw.isdigit() else None)
            service.assign(platform, db, user, ticket, target)
        return _("Assignment saved.")

    return _change(request, action)


@page(security.WRITE)
def edit(request: Request, form: Form) -> Response:
    def action(platform: Any, db: Any, user: Any, ticket: Any) -> str:
        values = {k: form[k] for k in ("subject", "priority", "category", "team") if k in form}
        service.update_ticket(platform, db, user, ticket, service.parse_input(db, values, creating=False))
        return _("Saved.")

    return _change(request, action)


@page(security.WRITE)
def rating(request: Request, form: Form) -> Response:
    def action(platform: Any, db: Any, user: Any, ticket: Any) -> str:
        service.rate(db, ticket, form.get("score"), str(form.get("comment", "")), user)
        return _("Rating recorded.")

    return _change(request, action)


@page(security.READ)
def attachment(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        return api.attachment_response(platform, api.visible_attachment(platform, db, user, request.path_params["id"]))


# --- Administration -------------------------------------------------------------------------------------------------


@page(security.ADMIN)
def admin(request: Request, form: Form) -> Response:
    platform = platform_of(request)
    year = request.query_params.get("year", "")
    year = int(year) if year.isdigit() else utcnow().astimezone(service.timezone(platform)).year
    from sqlalchemy import select

    from .models import CalendarDay

    with platform.reading() as db:
        days = [d for d in db.scalars(select(CalendarDay).order_by(CalendarDay.day)) if d.day.year == year]
        context = {**_common(db), "workflow": service.workflow_dict(db), "policies": service.policies(db),
                   "days": days, "year": year, "teams": service.teams(db),
                   "message": request.query_params.get("message", ""),
                   "hours": service.setting(platform, "business_hours"),
                   "timezone": service.setting(platform, "timezone")}
    return render(request, "tickets/admin.html", context)


def _admin_change(request: Request, action: Any, anchor: str) -> Response:
    platform, user = platform_of(request), current_user(request)
    try:
        with platform.session() as db:
            message = action(db, user)
    except DomainError as exc:
        details = "; ".join(exc.fields.values())
        return _flash(f"/tickets/admin#{anchor}", exc.message + (f" ({details})" if details else ""))
    return _flash(f"/tickets/admin#{anchor}", message)


@page(security.ADMIN)
def admin_transition(request: Request, form: Form) -> Response:
    def action(db: Any, user: Any) -> str:
        source, target = str(form.get("from", "")), str(form.get("to", ""))
        if form.get("remove"):
            service.remove_transition(db, user, source, target)
            return _("Transition removed.")
        service.add_transition(db, user, source, target)
        return _("Transition added.")

    return _admin_change(request, action, "workflow")


@page(security.ADMIN)
def admin_policy(request: Request, form: Form) -> Response:
    def action(db: Any, user: Any) -> str:
        service.save_policy(db, user, form)
        return _("Policy saved.")

    return _admin_change(request, action, "policies")


@page(security.ADMIN)
def admin_day(request: Request, form: Form) -> Response:
    def action(db: Any, user: Any) -> str:
        if form.get("remove"):
            service.delete_day(db, user, str(form.get("day", "")))
            return _("Day removed.")
        service.save_day(db, user, form)
        return _("Day saved.")

    return _admin_change(request, action, "calendar")


@page(security.ADMIN)
def admin_team(request: Request, form: Form) -> Response:
    def action(db: Any, user: Any) -> str:
        raw = str(form.get("lead_id", ""))
        service.set_team_lead(db, user, str(form.get("name", "")), int(raw) if raw.isdigit() else None)
        return _("Team saved.")

    return _admin_change(request, action, "teams")


def routes() -> list[Route]:
    return [
        Route("/", queue, methods=["GET"]),
        Route("/bulk", bulk, methods=["POST"]),
        Route("/away", set_away, methods=["POST"]),
        Route("/new", new_ticket, methods=["GET", "POST"]),
        Route("/admin", admin, methods=["GET"]),
        Route("/admin/transitions", admin_transition, methods=["POST"]),
        Route("/admin/policies", admin_policy, methods=["POST"]),
        Route("/admin/calendar", admin_day, methods=["POST"]),
        Route("/admin/teams", admin_team, methods=["POST"]),
        Route("/attachments/{id:int}", attachment, methods=["GET"]),
        Route("/{id:int}", ticket_page, methods=["GET"]),
        Route("/{id:int}/status", change_status, methods=["POST"]),
        Route("/{id:int}/comment", comment, methods=["POST"]),
        Route("/{id:int}/assign", assign, methods=["POST"]),
        Route("/{id:int}/edit", edit, methods=["POST"]),
        Route("/{id:int}/rating", rating, methods=["POST"]),
    ]
