"""The JSON API, mounted at ``/api/tickets``.

Every endpoint's docstring ends in an OpenAPI fragment (after ``---``) that goes into
``/api/openapi.json``. Errors use the core's body ``{"error": {"code", "message", "fields"}}``:
422 for values that are not valid (``fields`` says which), 404 for a ticket the caller may not
see, 409 for a change the workflow does not allow (``error.allowed`` lists what it allows).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kehu.auth import CurrentUser
from kehu.endpoints import Upload, api, uploads
from kehu.errors import DomainError
from kehu.i18n import gettext as _
from kehu.web import current_user, platform_of

from . import attachments, display, links, security, service
from .models import Attachment, TicketStatus


def _view(request: Request, db: Any, ticket: Any) -> dict[str, Any]:
    return display.ticket_dict(platform_of(request), db, current_user(request), ticket)


def _int(value: Any, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise service.Invalid(_("Some fields are not valid."), {field: _("Not a number.")})


#: The ticket list counts matching tickets up to this many (a busy team has a year of them).
API_COUNT_UP_TO = 1_000


# --- Tickets -------------------------------------------------------------------------------------


@api(security.READ)
def list_tickets(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The tickets you may see, newest first (``view=breaching``: soonest due first).
    ---
    summary: List tickets
    tags: [tickets]
    parameters:
      - {name: contact_id, in: query, schema: {type: integer}, description: "A customer's tickets"}
      - {name: view, in: query, schema: {type: string, enum: [all, mine, team, unassigned, breaching, open], default: all}}
      - {name: status, in: query, schema: {type: string}}
      - {name: priority, in: query, schema: {type: string, enum: [low, normal, high, urgent]}}
      - {name: category, in: query, schema: {type: string}}
      - {name: assignee_id, in: query, schema: {type: integer}}
      - {name: team, in: query, schema: {type: string}}
      - {name: q, in: query, schema: {type: string}, description: "Number or subject (contains)"}
      - {name: limit, in: query, schema: {type: integer, default: 50, maximum: 500}}
      - {name: offset, in: query, schema: {type: integer, default: 0}}
    responses:
      "200": {description: "{items: [ticket], total, total_capped, limit, offset}: total counts up to 1,000
        matching tickets (as the queue page); beyond, it is 1,001 and total_capped is true: page on with offset"}
      "422": {description: A filter is not valid}
    """
    platform, user = platform_of(request), current_user(request)
    query = service.list_query_from(request.query_params)
    with platform.reading() as db:
        items, total = service.page(platform, db, user, query, count_up_to=API_COUNT_UP_TO)
        return {"items": display.tickets_dicts(platform, db, user, items), "total": total,
                "total_capped": total > API_COUNT_UP_TO, "limit": query.limit, "offset": query.offset}


@api(security.WRITE)
def create_ticket(request: Request, body: dict[str, Any]) -> Response:
    """Open a ticket for a customer.
    ---
    summary: Open a ticket
    tags: [tickets]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [contact_id, subject]
            properties:
              contact_id: {type: integer, description: The customer (a contact you may see)}
              subject: {type: string, maxLength: 200}
              description: {type: string}
              priority: {type: string, enum: [low, normal, high, urgent], default: normal}
              category: {type: string, description: "A category key (GET /api/tickets/categories)"}
              channel: {type: string, enum: [web, phone, email, wechat, staff], default: staff}
              team: {type: string, description: "Defaults to your team"}
              assignee_id: {type: integer}
              auto_assign: {type: boolean, description: "Round robin within the team (default: the auto_assign setting)"}
    responses:
      "201": {description: The ticket}
      "422": {description: "Fields not valid, in error.fields"}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        data = service.parse_input(db, body, creating=True)
        assignee_id = _int(body.get("assignee_id"), "assignee_id")
        auto = body.get("auto_assign")
        ticket = service.create_ticket(platform, db, user, data,
                                       auto_assign=None if auto is None and assignee_id is None else bool(auto))
        if assignee_id is not None:
            service.assign(platform, db, user, ticket, assignee_id)
        result = _view(request, db, ticket)
    return JSONResponse(result, status_code=201, headers={"Location": f"/api/tickets/{result['id']}"})


@api(security.READ)
def get_ticket(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """One ticket with its conversation (404 when it does not exist or you may not see it).
    ---
    summary: Get a ticket
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "The ticket, with comments, attachments, allowed_transitions and customer"}
      "404": {description: Not found}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        ticket = service.get_visible(platform, db, user, request.path_params["id"])
        result = _view(request, db, ticket)
        result["comments"] = display.conversation(db, ticket)
        result["attachments"] = [display.attachment_dict(a) for a in display.attachments_of(db, ticket.id)]
        result["allowed_transitions"] = [s.key for s in service.allowed_targets(db, ticket.status)]
        result["customer"] = display.customer(platform, db, user, ticket)
        return result


@api(security.WRITE)
def update_ticket(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Change a ticket: only the fields sent change. Use the transitions, assign and comments
    endpoints for status, assignee and conversation.
    ---
    summary: Change a ticket
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            properties:
              subject: {type: string}
              description: {type: string}
              priority: {type: string, enum: [low, normal, high, urgent]}
              category: {type: string}
              team: {type: string}
              contact_id: {type: integer}
    responses:
      "200": {description: The ticket}
      "404": {description: Not found}
      "422": {description: Fields not valid}
    """
    platform, user = platform_of(request), current_user(request)
    unknown = set(body) - {"subject", "description", "priority", "category", "team", "contact_id"}
    if unknown:
        raise service.Invalid(_("Some fields are not valid."), {k: _("Cannot be changed here.") for k in unknown})
    with platform.session() as db:
        ticket = service.get_workable(platform, db, user, request.path_params["id"])
        data = service.parse_input(db, body, creating=False)
        service.update_ticket(platform, db, user, ticket, data)
        return _view(request, db, ticket)


# --- Workflow ------------------------------------------------------------------------------------


@api(security.READ)
def list_transitions(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The statuses the ticket may move to now.
    ---
    summary: Allowed status changes of a ticket
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "{status, allowed: [{key, label}]}"}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        ticket = service.get_visible(platform, db, user, request.path_params["id"])
        return {"status": ticket.status, "allowed": [{"key": s.key, "label": service.status_label(s)}
                                                     for s in service.allowed_targets(db, ticket.status)]}


@api(security.WRITE)
def make_transition(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Move the ticket to another status, as the workflow allows; optionally with a reply or note.
    ---
    summary: Change a ticket's status
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [to]
            properties:
              to: {type: string, description: "The status key, e.g. in_progress, waiting, resolved, closed"}
              comment: {type: string}
              public: {type: boolean, default: false, description: "The comment is a reply the customer sees"}
    responses:
      "200": {description: The ticket}
      "409": {description: "The workflow does not allow it: error.message says why, error.allowed what it allows"}
      "422": {description: No such status}
    """
    platform, user = platform_of(request), current_user(request)
    to = str(body.get("to") or "")
    with platform.session() as db:
        ticket = service.get_workable(platform, db, user, request.path_params["id"])
        if str(body.get("comment") or "").strip():
            service.add_comment(platform, db, user, ticket, str(body["comment"]), public=bool(body.get("public")))
        service.transition(platform, db, user, ticket, to)
        return _view(request, db, ticket)


# --- Conversation -----------------------------------------------------------------------------------------


@api(security.READ)
def list_comments(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The conversation: replies, the customer's messages and internal notes, oldest first.
    ---
    summary: A ticket's conversation
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "{items: [{id, body, public, author_kind, author_name, created_at, attachments}]}"}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        ticket = service.get_visible(platform, db, user, request.path_params["id"])
        return {"items": display.conversation(db, ticket)}


def _store_files(platform: Any, db: Any, user: CurrentUser, ticket: Any, files: list[Upload], public: bool,
                 comment_id: int | None) -> list[Attachment]:
    stored = []
    for upload in files:
        try:
            stored.append(attachments.store(platform, db, ticket, upload.filename, upload.content, public=public,
                                            by_customer=False, uploaded_by_id=user.id, comment_id=comment_id))
        except attachments.Rejected as exc:
            raise service.Invalid(str(exc), {"file": str(exc)}) from None
    return stored


@api(security.WRITE)
def add_comment(request: Request, body: dict[str, Any]) -> Response:
    """Reply to the customer (``public: true``, e-mailed to them) or write an internal note.
    Send multipart/form-data to attach files.
    ---
    summary: Reply or write a note
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [body]
            properties:
              body: {type: string}
              public: {type: boolean, default: false}
        multipart/form-data:
          schema:
            type: object
            properties:
              body: {type: string}
              public: {type: string, enum: ["1", "0"]}
              file: {type: string, format: binary}
    responses:
      "201": {description: The comment}
      "422": {description: "Empty, too long, or a file that is not accepted"}
    """
    platform, user = platform_of(request), current_user(request)
    public = body.get("public") in (True, "1", "true", "on")
    with platform.session() as db:
        ticket = service.get_workable(platform, db, user, request.path_params["id"])
        comment = service.add_comment(platform, db, user, ticket, str(body.get("body") or ""), public=public)
        files = _store_files(platform, db, user, ticket, uploads(body), public, comment.id)
        result = display.comment_dict(comment, service.user_names(db, [user.id]), files)
    return JSONResponse(result, status_code=201)


@api(security.WRITE)
def upload_attachment(request: Request, body: dict[str, Any]) -> Response:
    """Attach files to the ticket (multipart/form-data, field ``file``; ``public=1`` shows them
    to the customer).
    ---
    summary: Attach files
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        multipart/form-data:
          schema:
            type: object
            required: [file]
            properties:
              file: {type: string, format: binary}
              public: {type: string, enum: ["1", "0"]}
    responses:
      "201": {description: "{items: [attachment]}"}
      "422": {description: "No file, too large, or of a type not accepted"}
    """
    platform, user = platform_of(request), current_user(request)
    files = uploads(body)
    if not files:
        raise service.Invalid(_("Attach a file."), {"file": _("Attach a file.")})
    with platform.session() as db:
        ticket = service.get_workable(platform, db, user, request.path_params["id"])
        stored = _store_files(platform, db, user, ticket, files, body.get("public") in ("1", "true", "on"), None)
        service.record(db, ticket, "attached", user, service.utcnow(), count=len(stored))
        return JSONResponse({"items": [display.attachment_dict(a) for a in stored]}, status_code=201)


def attachment_response(platform: Any, attachment: Attachment) -> Response:
    path = attachments.path_of(platform, attachment)
    if not path.exists():
        raise service.NotFound(_("The file is gone."))
    from urllib.parse import quote

    return Response(path.read_bytes(), media_type=attachment.content_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.filename)}",
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})


def visible_attachment(platform: Any, db: Any, user: CurrentUser, attachment_id: Any) -> Attachment:
    attachment = db.get(Attachment, attachment_id)
    if attachment is None:
        raise service.NotFound(_("There is no such file."))
    service.get_visible(platform, db, user, attachment.ticket_id)
    return attachment


@api(security.READ)
def download_attachment(request: Request, body: dict[str, Any]) -> Response:
    """Download an attachment of a ticket you may see.
    ---
    summary: Download an attachment
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: The file, as an attachment}
      "404": {description: Not found, or a ticket you may not see}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        return attachment_response(platform, visible_attachment(platform, db, user, request.path_params["id"]))


# --- Assignment, bulk, rating, history, link --------------------------------------------------------------------


@api(security.WRITE)
def assign_ticket(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Assign the ticket: to someone (``tickets.assign``; anyone may take a ticket themselves),
    to nobody, or automatically (round robin within the ticket's team, skipping people away).
    ---
    summary: Assign a ticket
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            properties:
              assignee_id: {type: [integer, "null"]}
              auto: {type: boolean}
    responses:
      "200": {description: The ticket}
      "403": {description: You may only take tickets yourself}
      "409": {description: Nobody in the team is available}
      "422": {description: Not someone who works tickets}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        ticket = service.get_workable(platform, db, user, request.path_params["id"])
        if body.get("auto"):
            if not user.can(security.ASSIGN):
                raise service.Forbidden(_("You may not assign tickets."))
            if service.assign_round_robin(platform, db, user, ticket) is None:
                raise service.Conflict(_("Nobody in the team %(team)s is available.", team=ticket.team))
        else:
            if "assignee_id" not in body:
                raise service.Invalid(_("Some fields are not valid."), {"assignee_id": _("Say whom, or null.")})
            service.assign(platform, db, user, ticket, _int(body.get("assignee_id"), "assignee_id"))
        return _view(request, db, ticket)


def closed_target(db: Any, ticket: Any) -> str | None:
    targets = service.allowed_targets(db, ticket.status)
    for wanted in (lambda s: s.closed, lambda s: s.resolved):
        for status in targets:
            if wanted(status):
                return status.key
    return None


def _close(platform: Any, db: Any, user: CurrentUser, ticket: Any) -> None:
    """Close through the workflow: directly, or by way of a resolved status."""
    for _step in range(2):
        status = db.get(TicketStatus, ticket.status)
        if status is not None and status.closed:
            return
        target = closed_target(db, ticket)
        if target is None:
            break
        service.transition(platform, db, user, ticket, target)
    status = db.get(TicketStatus, ticket.status)
    if status is None or not status.closed:
        service.transition(platform, db, user, ticket, "closed")  # refused: says why and what is allowed


def bulk(platform: Any, user: CurrentUser, ids: list[Any], action: str, assignee_id: Any) -> list[dict]:
    """Assign or close several tickets, each in a transaction of its own: each succeeds or
    fails on its own."""
    results = []
    for raw in ids:
        try:
            with platform.session() as db:
                ticket = service.get_workable(platform, db, user, raw)
                if action == "assign" and assignee_id == "auto":
                    if not user.can(security.ASSIGN):
                        raise service.Forbidden(_("You may not assign tickets."))
                    if service.assign_round_robin(platform, db, user, ticket) is None:
                        raise service.Conflict(_("Nobody in the team %(team)s is available.", team=ticket.team))
                elif action == "assign":
                    service.assign(platform, db, user, ticket, _int(assignee_id, "assignee_id"))
                else:
                    _close(platform, db, user, ticket)
            results.append({"id": raw, "ok": True})
        except DomainError as error:
            results.append({"id": raw, "ok": False, "status": error.status, "error": error.message})
    return results


@api(security.WRITE)
def bulk_action(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Assign or close several tickets at once; each succeeds or fails on its own.
    ---
    summary: Bulk assign or close
    tags: [tickets]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [ids, action]
            properties:
              ids: {type: array, items: {type: integer}, maxItems: 500}
              action: {type: string, enum: [assign, close]}
              assignee_id: {description: "For assign: a user id, null, or \\"auto\\"", oneOf: [{type: integer}, {type: "null"}, {type: string, enum: [auto]}]}
    responses:
      "200": {description: "{results: [{id, ok, status?, error?}], done, failed}"}
      "422": {description: Fields not valid}
    """
    platform, user = platform_of(request), current_user(request)
    ids, action = body.get("ids"), body.get("action")
    problems = {}
    if not isinstance(ids, list) or not ids or len(ids) > 500:
        problems["ids"] = _("A list of 1 to 500 ticket ids.")
    if action not in ("assign", "close"):
        problems["action"] = _("Choose assign or close.")
    if action == "assign" and "assignee_id" not in body:
        problems["assignee_id"] = _("Say whom, or null.")
    if problems:
        raise service.Invalid(_("Some fields are not valid."), problems)
    results = bulk(platform, user, ids, action, body.get("assignee_id"))
    return {"results": results, "done": sum(r["ok"] for r in results), "failed": sum(not r["ok"] for r in results)}


@api(security.WRITE)
def rate_ticket(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Record the customer's satisfaction (for example told on the phone): once, after resolution.
    ---
    summary: Record a rating
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [score]
            properties:
              score: {type: integer, minimum: 1, maximum: 5}
              comment: {type: string}
    responses:
      "200": {description: The ticket}
      "409": {description: Not resolved yet, or rated already}
      "422": {description: Not from 1 to 5}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        ticket = service.get_workable(platform, db, user, request.path_params["id"])
        service.rate(db, ticket, body.get("score"), str(body.get("comment") or ""), user)
        return _view(request, db, ticket)


@api(security.READ)
def ticket_history(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """What happened to the ticket, oldest first.
    ---
    summary: A ticket's history
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "{items: [{at, action, actor_id, actor_name, detail, text}]}"}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        ticket = service.get_visible(platform, db, user, request.path_params["id"])
        return {"items": display.history(db, ticket)}


@api(security.WRITE)
def portal_link(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The customer's signed link to the ticket's status page (to send by hand).
    ---
    summary: The customer's status link
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "{url}"}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        ticket = service.get_visible(platform, db, user, request.path_params["id"])
        return {"url": links.status_url(platform, ticket)}


# --- Reference data and administration ------------------------------------------------------------------------------


@api(security.READ)
def list_categories(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Ticket categories.
    ---
    summary: List categories
    tags: [tickets admin]
    responses:
      "200": {description: "{items: [{key, label, active}]}"}
    """
    with platform_of(request).reading() as db:
        return {"items": [{"key": c.key, "label": c.label, "active": c.active}
                          for c in service.categories(db, active_only=False)]}


@api(security.READ)
def get_workflow(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The workflow: statuses and allowed transitions.
    ---
    summary: Get the workflow
    tags: [tickets admin]
    responses:
      "200": {description: "{statuses: [{key, label, position, initial, pauses_sla, resolved, closed, active}], transitions: [{from, to, label}]}"}
    """
    with platform_of(request).reading() as db:
        return service.workflow_dict(db)


@api(security.ADMIN)
def put_workflow(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Replace the workflow. A status that tickets are in cannot be removed (mark it inactive).
    ---
    summary: Change the workflow
    tags: [tickets admin]
    requestBody:
      content:
        application/json:
          schema: {type: object, required: [statuses, transitions], description: "As GET /api/tickets/workflow returns"}
    responses:
      "200": {description: The new workflow}
      "422": {description: Not valid}
    """
    with platform_of(request).session() as db:
        return service.save_workflow(db, current_user(request), body)


@api(security.READ)
def list_policies(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """SLA policies: targets in business minutes per priority and category (``""``: any).
    ---
    summary: List SLA policies
    tags: [tickets admin]
    responses:
      "200": {description: "{items: [{id, priority, category, response_minutes, resolution_minutes}]}"}
    """
    with platform_of(request).reading() as db:
        return {"items": [service.policy_dict(p) for p in service.policies(db)]}


@api(security.ADMIN)
def save_policy(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Add or change the SLA policy of a priority and category. Applies to tickets opened
    (or re-prioritized) afterwards.
    ---
    summary: Save an SLA policy
    tags: [tickets admin]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [response_minutes, resolution_minutes]
            properties:
              priority: {type: string, enum: ["", low, normal, high, urgent]}
              category: {type: string}
              response_minutes: {type: integer}
              resolution_minutes: {type: integer}
    responses:
      "200": {description: The policy}
    """
    with platform_of(request).session() as db:
        return service.policy_dict(service.save_policy(db, current_user(request), body))


@api(security.READ)
def list_calendar(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Public holidays and make-up working days (调休), and the working hours.
    ---
    summary: The holiday calendar
    tags: [tickets admin]
    parameters: [{name: year, in: query, schema: {type: integer}}]
    responses:
      "200": {description: "{business_hours, timezone, weekdays, items: [{day, kind: holiday|workday, name}]}"}
    """
    from .models import CalendarDay

    platform = platform_of(request)
    year = request.query_params.get("year", "")
    with platform.reading() as db:
        query = select(CalendarDay).order_by(CalendarDay.day)
        rows = [r for r in db.scalars(query) if not year.isdigit() or r.day.year == int(year)]
        return {"business_hours": service.setting(platform, "business_hours"),
                "timezone": service.setting(platform, "timezone"), "weekdays": service.setting(platform, "weekdays"),
                "items": [{"day": r.day.isoformat(), "kind": r.kind, "name": r.name} for r in rows]}


@api(security.ADMIN)
def save_calendar_day(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Enter a public holiday or a make-up working day.
    ---
    summary: Save a calendar day
    tags: [tickets admin]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [day, kind]
            properties:
              day: {type: string, format: date}
              kind: {type: string, enum: [holiday, workday]}
              name: {type: string}
    responses:
      "200": {description: The day}
    """
    with platform_of(request).session() as db:
        row = service.save_day(db, current_user(request), body)
        return {"day": row.day.isoformat(), "kind": row.kind, "name": row.name}


@api(security.ADMIN)
def delete_calendar_day(request: Request, body: dict[str, Any]) -> Response:
    """Remove a day from the calendar.
    ---
    summary: Delete a calendar day
    tags: [tickets admin]
    parameters: [{name: day, in: path, required: true, schema: {type: string, format: date}}]
    responses:
      "204": {description: Deleted}
    """
    with platform_of(request).session() as db:
        service.delete_day(db, current_user(request), request.path_params["day"])
    return Response(status_code=204)


@api(security.READ)
def list_teams(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Teams (from users' teams), their leads and members, and who is away.
    ---
    summary: List teams
    tags: [tickets admin]
    responses:
      "200": {description: "{items: [{name, lead_id, members: [{id, name, away}]}]}"}
    """
    with platform_of(request).reading() as db:
        return {"items": service.teams(db)}


@api(security.ADMIN)
def set_team(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Set a team's lead, who receives escalations.
    ---
    summary: Set a team's lead
    tags: [tickets admin]
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    requestBody:
      content:
        application/json:
          schema: {type: object, properties: {lead_id: {type: [integer, "null"]}}}
    responses:
      "200": {description: "{name, lead_id}"}
    """
    with platform_of(request).session() as db:
        team = service.set_team_lead(db, current_user(request), request.path_params["name"], body.get("lead_id"))
        return {"name": team.name, "lead_id": team.lead_id}


def _agent_dict(db: Any, user_id: int) -> dict[str, Any]:
    from .models import Agent

    agent = db.get(Agent, user_id)
    return {"user_id": user_id, "away": bool(agent and agent.away), "email": agent.email if agent else ""}


@api(security.READ)
def get_me(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Your tickets settings.
    ---
    summary: Your tickets settings
    tags: [tickets]
    responses:
      "200": {description: "{user_id, away, email}"}
    """
    with platform_of(request).reading() as db:
        return _agent_dict(db, current_user(request).id)


@api(security.READ)
def put_me(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Say you are away (automatic assignment skips you) or back, and where SLA warnings reach you.
    ---
    summary: Change your tickets settings
    tags: [tickets]
    requestBody:
      content:
        application/json:
          schema: {type: object, properties: {away: {type: boolean}, email: {type: string}}}
    responses:
      "200": {description: "{user_id, away, email}"}
    """
    user = current_user(request)
    with platform_of(request).session() as db:
        current = _agent_dict(db, user.id)
        service.set_away(db, user.id, bool(body.get("away", current["away"])),
                         str(body["email"]) if "email" in body else None)
        return _agent_dict(db, user.id)


@api(security.ASSIGN)
def put_agent(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Mark a colleague away or back.
    ---
    summary: Change a colleague's away flag
    tags: [tickets]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema: {type: object, properties: {away: {type: boolean}}}
    responses:
      "200": {description: "{user_id, away, email}"}
    """
    from kehu.models import User

    with platform_of(request).session() as db:
        if db.get(User, request.path_params["id"]) is None:
            raise service.NotFound(_("There is no such user."))
        service.set_away(db, request.path_params["id"], bool(body.get("away")))
        return _agent_dict(db, request.path_params["id"])


def routes() -> list[Route]:
    return [
        Route("/", list_tickets, methods=["GET"]),
        Route("/", create_ticket, methods=["POST"]),
        Route("/bulk", bulk_action, methods=["POST"]),
        Route("/categories", list_categories, methods=["GET"]),
        Route("/workflow", get_workflow, methods=["GET"]),
        Route("/workflow", put_workflow, methods=["PUT"]),
        Route("/sla-policies", list_policies, methods=["GET"]),
        Route("/sla-policies", save_policy, methods=["POST"]),
        Route("/calendar", list_calendar, methods=["GET"]),
        Route("/calendar", save_calendar_day, methods=["POST"]),
        Route("/calendar/{day}", delete_calendar_day, methods=["DELETE"]),
        Route("/teams", list_teams, methods=["GET"]),
        Route("/teams/{name}", set_team, methods=["PUT"]),
        Route("/agents/me", get_me, methods=["GET"]),
        Route("/agents/me", put_me, methods=["PUT"]),
        Route("/agents/{id:int}", put_agent, methods=["PUT"]),
        Route("/attachments/{id:int}", download_attachment, methods=["GET"]),
        Route("/{id:int}", get_ticket, methods=["GET"]),
        Route("/{id:int}", update_ticket, methods=["PATCH"]),
        Route("/{id:int}/transitions", list_transitions, methods=["GET"]),
        Route("/{id:int}/transitions", make_transition, methods=["POST"]),
        Route("/{id:int}/comments", list_comments, methods=["GET"]),
        Route("/{id:int}/comments", add_comment, methods=["POST"]),
        Route("/{id:int}/attachments", upload_attachment, methods=["POST"]),
        Route("/{id:int}/assign", assign_ticket, methods=["POST"]),
        Route("/{id:int}/rating", rate_ticket, methods=["POST"]),
        Route("/{id:int}/history", ticket_history, methods=["GET"]),
        Route("/{id:int}/portal-link", portal_link, methods=["GET"]),
    ]
