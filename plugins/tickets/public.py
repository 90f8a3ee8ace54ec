"""Customer pages, mounted at ``/public/tickets`` (no staff login).

* ``/public/tickets/new``: the web form. Rate-limited per IP address (:mod:`.ratelimit`), and
  guarded against scripts by a honeypot field that people never see and a signed timestamp:
  a form sent back faster than ``min_fill_seconds`` after it was shown, or with the honeypot
  filled, is refused. The customer is found or created through the core hook
  ``kehu_person_find_or_create`` (the contacts plugin answers it).
* ``/public/tickets/s/<token>``: the status page of one ticket, reached by the signed link of
  :mod:`.links` (sent by e-mail). It shows the replies (never internal notes) and the files
  shared with the customer, takes the customer's answers, and asks for a rating once the ticket
  is resolved. Nothing there leads to another ticket.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kehu.endpoints import Upload, read_body, uploads
from kehu.errors import DomainError
from kehu.i18n import gettext as _
from kehu.web import platform_of, redirect, render

from . import attachments, display, links, ratelimit, service
from .models import CUSTOMER, Attachment, TicketStatus

HONEYPOT = "website"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limited(request: Request, name: str, key: str) -> bool:
    """True when the request is over the limit ``<name>_rate_limit`` for ``key``."""
    platform = platform_of(request)
    return not ratelimit.limiter(platform).hit(service.setting(platform, f"{name}_rate_limit"), name, key)


def _too_many(request: Request) -> Response:
    return render(request, "tickets/public_message.html",
                  {"title": _("Too many requests"),
                   "text": _("Too many requests from your network. Please try again later.")},
                  status_code=429, headers={"Retry-After": "600"})


# --- The web form --------------------------------------------------------------------------------------


def _form(request: Request, values: dict[str, Any], errors: dict[str, str], status: int = 200) -> Response:
    platform = platform_of(request)
    with platform.reading() as db:
        context = {"values": values, "errors": errors, "categories": service.category_rows(db),
                   "form_token": links.form_token(platform, time.time()), "honeypot": HONEYPOT}
    return render(request, "tickets/public_form.html", context, status_code=status)


def _create(request: Request, values: dict[str, Any], files: list[Upload]) -> tuple[dict[str, str], str]:
    platform = platform_of(request)
    errors: dict[str, str] = {}
    name, email, phone = (str(values.get(k, "")).strip() for k in ("name", "email", "phone"))
    if not name:
        errors["name"] = _("Tell us your name.")
    if not email and not phone:
        errors["email"] = _("Leave an e-mail address or a phone number so we can answer you.")
    if email and ("@" not in email or len(email) > 200):
        errors["email"] = _("Not an e-mail address.")
    with platform.session() as db:
        try:
            data = service.parse_input(db, {**values, "contact_id": 1, "channel": "web", "priority": "normal"},
                                       creating=True)
        except service.Invalid as exc:
            errors.update({k: v for k, v in exc.fields.items() if k not in ("channel", "priority")})
        checked = []
        for upload in files:
            try:
                checked.append(attachments.check(platform, upload.filename, upload.content))
            except attachments.Rejected as exc:
                errors["file"] = str(exc)
        if errors:
            return errors, ""
        contact_id = platform.pm.hook.kehu_person_find_or_create(
            session=db, name=name, email=email, phone=phone, source="tickets: web form")
        if contact_id is None:
            return {"": _("Requests cannot be taken at the moment.")}, ""
        data["contact_id"] = contact_id
        ticket = service.create_ticket(platform, db, None, data)
        for upload in files:
            attachments.store(platform, db, ticket, upload.filename, upload.content, public=True, by_customer=True)
        return {}, links.token_for(platform, ticket)


async def new_form(request: Request) -> Response:
    if request.method == "GET":
        return await run_in_threadpool(_form, request, {}, {})
    body = await read_body(request, max_upload_bytes=30 * 1024 * 1024)
    values = {k: v for k, v in body.items() if isinstance(v, str)}
    files = [f for f in uploads(body) if f.content]
    platform = platform_of(request)
    if _limited(request, "form", client_ip(request)):
        return _too_many(request)
    issued = links.form_issued_at(platform, str(values.get("form_token", "")))
    minimum = float(service.setting(platform, "min_fill_seconds"))
    if values.get(HONEYPOT) or issued is None or time.time() - issued < minimum:
        # A script (or a form left open for hours): ask again, with a fresh form.
        return await run_in_threadpool(
            _form, request, values, {"": _("Please check the form and send it again.")}, 400)
    errors, token = await run_in_threadpool(_create, request, values, files)
    if errors:
        return await run_in_threadpool(_form, request, values, errors, 422)
    return redirect(f"/public/tickets/s/{token}?sent=1")


# --- The status page --------------------------------------------------------------------------------------------


def _ticket_or_404(request: Request, db: Any) -> Any:
    ticket = links.ticket_for(platform_of(request), db, request.path_params["token"])
    if ticket is None:
        raise HTTPException(404, _("This link is not valid (any more). Ask us for a new one."))
    return ticket


def _status_page(request: Request, error: str = "", status: int = 200) -> Response:
    platform = platform_of(request)
    with platform.reading() as db:
        ticket = _ticket_or_404(request, db)
        state = db.get(TicketStatus, ticket.status)
        messages = display.conversation(db, ticket, public_only=True)
        files = [display.attachment_dict(a) for a in display.attachments_of(db, ticket.id, public_only=True)
                 if a.comment_id is None]
        context = {
            "ticket": ticket, "status_label": service.status_label(state, ticket.status),
            "closed": bool(state and state.closed), "resolved": bool(state and (state.resolved or state.closed)),
            "messages": messages, "files": files, "token": request.path_params["token"], "error": error,
            "sent": request.query_params.get("sent") == "1", "message": request.query_params.get("message", ""),
            "category": service.category_label(db, ticket.category),
        }
    response = render(request, "tickets/public_status.html", context, status_code=status)
    response.headers["Referrer-Policy"] = "same-origin"  # the link never leaks to other sites
    response.headers["Cache-Control"] = "private, no-store"
    return response


async def status_page(request: Request) -> Response:
    return await run_in_threadpool(_status_page, request)


def _reply(request: Request, body: str, files: list[Upload]) -> str:
    platform = platform_of(request)
    with platform.session() as db:
        ticket = _ticket_or_404(request, db)
        comment = service.add_comment(platform, db, None, ticket, body, public=True, author_kind=CUSTOMER)
        for upload in files:
            try:
                attachments.store(platform, db, ticket, upload.filename, upload.content, public=True,
                                  by_customer=True, comment_id=comment.id)
            except attachments.Rejected as exc:
                raise service.Invalid(str(exc), {"file": str(exc)}) from None
    return _("Thank you, we received your answer.")


async def reply(request: Request) -> Response:
    body = await read_body(request, max_upload_bytes=30 * 1024 * 1024)
    token = request.path_params["token"]
    if _limited(request, "reply", f"{client_ip(request)}:{token[-16:]}"):
        return _too_many(request)
    try:
        message = await run_in_threadpool(_reply, request, str(body.get("body", "")),
                                          [f for f in uploads(body) if f.content])
    except DomainError as exc:
        return await run_in_threadpool(_status_page, request, exc.message, exc.status)
    return redirect(f"/public/tickets/s/{token}?{_query(message)}")


def _rate(request: Request, score: Any, comment: str) -> str:
    platform = platform_of(request)
    with platform.session() as db:
        ticket = _ticket_or_404(request, db)
        service.rate(db, ticket, score, comment, None)
    return _("Thank you for your rating!")


async def rate(request: Request) -> Response:
    body = await read_body(request)
    token = request.path_params["token"]
    if _limited(request, "reply", f"{client_ip(request)}:{token[-16:]}"):
        return _too_many(request)
    try:
        message = await run_in_threadpool(_rate, request, body.get("score"), str(body.get("comment", "")))
    except DomainError as exc:
        return await run_in_threadpool(_status_page, request, exc.message, exc.status)
    return redirect(f"/public/tickets/s/{token}?{_query(message)}")


def _download(request: Request) -> Response:
    from .api import attachment_response

    platform = platform_of(request)
    with platform.reading() as db:
        ticket = _ticket_or_404(request, db)
        found = db.get(Attachment, request.path_params["id"])
        if found is None or found.ticket_id != ticket.id or not found.public:
            raise HTTPException(404, _("There is no such file."))
        try:
            return attachment_response(platform, found)
        except service.NotFound as exc:
            raise HTTPException(404, exc.message) from None


async def download(request: Request) -> Response:
    return await run_in_threadpool(_download, request)


def _query(message: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"message": message})


def routes() -> list[Route]:
    return [
        Route("/new", new_form, methods=["GET", "POST"]),
        Route("/s/{token}", status_page, methods=["GET"]),
        Route("/s/{token}/reply", reply, methods=["POST"]),
        Route("/s/{token}/rate", rate, methods=["POST"]),
        Route("/s/{token}/files/{id:int}", download, methods=["GET"]),
    ]
