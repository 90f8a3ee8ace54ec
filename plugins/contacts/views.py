"""Staff pages, mounted at ``/contacts``.

Each page is a plain function ``(request, form) -> Response`` wrapped by
:func:`kehu.endpoints.page`, which checks the permission and runs it in the
thread pool. Changes go through :mod:`~kehu_plugins.contacts.service` inside their own
transaction; a validation problem comes back as an exception, the transaction rolls back and
the form is shown again with a message next to each field.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kehu.endpoints import Form, Upload, page
from kehu.errors import DomainError
from kehu.i18n import gettext as _
from kehu.i18n import pick
from kehu.web import current_user, platform_of, redirect, render, render_fragment

from . import display, exporter, importer, listing, privacy, security, service, tasks
from .models import ACTIVITY_KINDS, STAGES, CustomField

POINT_INPUTS = ("phones", "emails", "wechat_ids")
#: The list page counts matches up to this many ("1000+" beyond), and pages up to this number.
LIST_COUNT_UP_TO = 1000
MAX_PAGE_NUMBER = 100_000


def _common(request: Request, db: Session) -> dict[str, Any]:
    """What every contacts template uses."""
    return {"stages": STAGES, "stage_label": display.stage_label, "perm": security,
            "stage_labels": {stage: display.stage_label(stage) for stage in STAGES},
            "custom_fields": service.shown_fields(db), "custom_text": display.custom_text}


def _query_string(params: Any, drop: tuple[str, ...] = ()) -> str:
    pairs = [(k, v) for k, v in params.multi_items() if v and k not in drop]
    return urlencode(pairs)


# --- The list ----------------------------------------------------------------------------------


@page(security.READ)
def contact_list(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    params = request.query_params
    errors: dict[str, str] = {}
    try:
        query = listing.list_query_from(params, params.getlist)
    except service.Invalid as exc:
        errors = exc.fields
        query = listing.ListQuery(q=params.get("q", ""))
    number = min(max(1, int(params.get("page", "1")) if params.get("page", "1").isdigit() else 1), MAX_PAGE_NUMBER)
    query.offset, query.cursor = (number - 1) * query.limit, ""
    with platform.reading() as db:
        common = _common(request, db)
        result = listing.page(platform, db, user, query, fields=common["custom_fields"], count_up_to=LIST_COUNT_UP_TO,
                              shape="summaries")
        context = {
            **common,
            "contacts": result.items, "listed_columns": display.listed_columns(common["custom_fields"]),
            "total": result.total, "total_capped": result.total_capped, "page": number,
            "total_shown": f"{LIST_COUNT_UP_TO}+" if result.total_capped else str(result.total),
            "pages": None if result.total_capped else max(1, math.ceil(result.total / query.limit)),
            "has_next": bool(result.next_cursor),
            "query": query, "errors": errors, "params": params,
            "query_string": _query_string(params, drop=("page",)),
            "users": display.assignable_users(db) if user.can(security.READ_ALL) else [],
            "saved_filters": service.saved_filters(db, user),
        }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "contact-results":
        return render(request, "contacts/_results.html", context)
    return render(request, "contacts/list.html", context)


@page(security.EXPORT)
def export_contacts(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    query = listing.list_query_from(request.query_params, request.query_params.getlist)
    with platform.session() as db:
        content, filename, media_type = exporter.export(platform, db, user, query, str(form.get("format", "csv")))
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@page(security.READ)
def save_filter(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    query = str(form.get("query", ""))
    try:
        with platform.session() as db:
            service.save_filter(db, user, str(form.get("name", "")), query)
    except service.Invalid as exc:
        return redirect(f"/contacts/?{query}&{urlencode({'filter_error': next(iter(exc.fields.values()))})}")
    return redirect(f"/contacts/?{query}")


@page(security.READ)
def delete_filter(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        service.delete_filter(db, user, request.path_params["id"])
    return redirect("/contacts/")


# --- Create and edit ----------------------------------------------------------------------------


def _text_fields(form: Form, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """The form's text fields; those named in ``lists`` with every value they were sent."""
    return {key: [v for v in form.getlist(key) if isinstance(v, str)] if key in lists else value
            for key, value in form.items() if isinstance(value, str)}


def _form_input(form: Form, fields: list[CustomField], *, masked: bool) -> dict[str, Any]:
    """The submitted contact form as :func:`service.parse_input` expects it."""
    data = _text_fields(form, lists=POINT_INPUTS)
    if masked:  # the form showed masked values read-only: they are not the user's to change
        for name in (*POINT_INPUTS, "street", "address_detail"):
            data.pop(name, None)
    data["custom"] = {}
    for definition in fields:
        name = f"custom.{definition.key}"
        data.pop(name, None)
        if definition.kind == "multi_choice":
            data["custom"][definition.key] = [v for v in form.getlist(name) if isinstance(v, str)]
        else:
            data["custom"][definition.key] = str(form.get(name, ""))
    return data


def _form_page(request: Request, db: Session, *, values: dict[str, Any], contact: Any = None,
               errors: dict[str, str] | None = None, duplicates: list[Any] | None = None,
               conflict: dict[str, Any] | None = None, status: int = 200) -> Response:
    user = current_user(request)
    context = {
        **_common(request, db), "values": values, "contact": contact, "errors": errors or {},
        "duplicates": duplicates or [], "conflict": conflict, "masked": not user.can(security.VIEW_SENSITIVE)
        and contact is not None, "users": display.assignable_users(db) if user.can(security.WRITE_ALL) else [],
    }
    return render(request, "contacts/form.html", context, status_code=status)


def _values_of(view: display.ContactView) -> dict[str, Any]:
    values = view.as_dict()
    values["tags"] = ", ".join(view.tags)
    return values


@page(security.WRITE)
def new_contact(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    if request.method == "GET":
        with platform.reading() as db:
            values = {"kind": request.query_params.get("kind", "person"), "stage": "lead", "owner_id": user.id,
                      "company": request.query_params.get("company", "")}
            return _form_page(request, db, values=values)
    with platform.reading() as db:
        fields = service.custom_fields(db)
    data = _form_input(form, fields, masked=False)
    try:
        with platform.session() as db:
            contact = service.create_contact(platform, db, user, service.parse_input(data, fields, creating=True))
            contact_id = contact.id
    except (service.Invalid, service.Forbidden) as exc:
        with platform.reading() as db:
            return _form_page(request, db, values=data, errors=exc.fields or {"form": exc.message},
                              status=422)
    except service.DuplicatesFound as exc:
        with platform.reading() as db:
            return _form_page(request, db, values=data, duplicates=exc.extra["duplicates"], status=409)
    return redirect(f"/contacts/{contact_id}")


@page(security.WRITE)
def edit_contact(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        contact = service.get_changeable(platform, db, user, request.path_params["id"])
        view = display.ContactView.of(platform, db, user, contact)
        fields = service.custom_fields(db)
        if request.method == "GET":
            return _form_page(request, db, values=_values_of(view), contact=view)
    data = _form_input(form, fields, masked=view.masked)
    try:
        with platform.session() as db:
            contact = service.get_changeable(platform, db, user, view.id)
            service.update_contact(platform, db, user, contact, service.parse_input(data, fields, creating=False))
    except (service.Invalid, service.Forbidden) as exc:
        with platform.reading() as db:
            return _form_page(request, db, values=data, contact=view,
                              errors=exc.fields or {"form": exc.message}, status=422)
    except service.DuplicatesFound as exc:
        with platform.reading() as db:
            return _form_page(request, db, values=data, contact=view, duplicates=exc.extra["duplicates"],
                              status=409)
    except service.EditConflict as exc:
        # Show their changes; the form keeps the user's input and now carries the current
        # version, so saving again deliberately replaces what the other person saved.
        # (After a race lost at the database itself, there is no detail: reloading shows it.)
        values = {**data, "version": exc.extra.get("current_version", data.get("version"))}
        changes = [{**change, "fields": [display.field_label(f) for f in change["fields"]]}
                   for change in exc.extra.get("changes", [])]
        with platform.reading() as db:
            return _form_page(request, db, values=values, contact=view, status=409, conflict={
                "message": exc.message, "changes": changes, "current": exc.extra.get("current")})
    return redirect(f"/contacts/{view.id}")


# --- The contact page ------------------------------------------------------------------------


@page(security.READ)
def contact_detail(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        view = listing.visible_view(platform, db, user, request.path_params["id"])
        people = []
        if view.kind == "company":
            query = listing.ListQuery(company_id=view.id, sort="name", limit=100)
            people = listing.page(platform, db, user, query, shape="summaries").items
        consent_rows = display.consent_rows(db, view.id)
        context = {
            **_common(request, db), "contact": view, "people": people,
            "timeline": display.timeline(platform, db, user, view.id, consents=consent_rows),
            "consents": privacy.consents(db, view.id, consent_rows)["current"], "channels": privacy.CHANNELS,
            "activity_kinds": ACTIVITY_KINDS, "channel_label": display.channel_label,
            "message": request.query_params.get("message", ""),
        }
        return render(request, "contacts/detail.html", context)


@page(security.WRITE)
def add_activity(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    error = ""
    try:
        with platform.session() as db:
            contact = service.get_changeable(platform, db, user, request.path_params["id"])
            service.log_activity(db, user, contact, str(form.get("kind", "note")), str(form.get("body", "")))
    except service.Invalid as exc:
        error = next(iter(exc.fields.values()), exc.message)
    if request.headers.get("hx-request"):
        with platform.reading() as db:
            view = listing.visible_view(platform, db, user, request.path_params["id"])
            html = render_fragment(request, "contacts/_timeline.html", {
                "contact": view, "timeline": display.timeline(platform, db, user, view.id),
                "activity_kinds": ACTIVITY_KINDS, "activity_error": error, "csrf_token": user.csrf_token})
        return Response(html, media_type="text/html")
    return redirect(f"/contacts/{request.path_params['id']}" + (f"?{urlencode({'message': error})}" if error else "#timeline"))


@page(security.WRITE)
def record_consent(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    message = _("Consent recorded.")
    try:
        with platform.session() as db:
            contact = service.get_changeable(platform, db, user, request.path_params["id"])
            privacy.record_consent(db, user, contact, "marketing", str(form.get("channel", "")),
                                   form.get("status") == "granted", str(form.get("source", "")))
    except service.Invalid as exc:
        message = "; ".join(exc.fields.values())
    return redirect(f"/contacts/{request.path_params['id']}?{urlencode({'message': message})}#consent")


@page(security.DELETE)
def delete_contact(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        contact = service.get_changeable(platform, db, user, request.path_params["id"])
        service.delete_contact(platform, db, user, contact)
    return redirect(f"/contacts/?{urlencode({'message': _('Contact deleted.')})}")


@page(security.PRIVACY)
def person_export(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        contact = service.get_visible(platform, db, user, request.path_params["id"])
        content = privacy.person_export_zip(platform, db, user, contact)
    return Response(content, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="person-{contact.id}.zip"'})


@page(security.PRIVACY)
def erase_person(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    contact_id = request.path_params["id"]
    if str(form.get("confirm", "")).strip() != str(contact_id):
        return redirect(f"/contacts/{contact_id}?{urlencode({'message': _('Type the contact number to confirm.')})}")
    with platform.session() as db:
        contact = service.get_visible(platform, db, user, contact_id)
        if contact.erased_at is None:
            privacy.erase(platform, db, user, contact)
    return redirect(f"/contacts/{contact_id}?{urlencode({'message': _('The person was erased.')})}")


# --- Merge -----------------------------------------------------------------------------------------


@page(security.MERGE)
def merge_page(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    source = form if request.method == "POST" else request.query_params
    ids = [str(source.get("survivor_id", "")).strip(), str(source.get("merged_id", "")).strip()]
    errors: dict[str, str] = {}
    if request.method == "POST" and form.get("confirm"):
        choices = {key[7:]: str(value) for key, value in form.items() if key.startswith("choice.")}
        try:
            with platform.session() as db:
                survivor = service.get_visible(platform, db, user, ids[0])
                merged = service.get_visible(platform, db, user, ids[1])
                service.merge(platform, db, user, survivor, merged, choices)
            return redirect(f"/contacts/{ids[0]}?{urlencode({'message': _('Contacts merged.')})}")
        except DomainError as exc:
            errors = exc.fields or {"form": exc.message}
    with platform.reading() as db:
        pair = []
        for index, contact_id in enumerate(ids):
            if contact_id:
                try:
                    pair.append(display.ContactView.of(platform, db, user,
                                                       service.get_visible(platform, db, user, contact_id)))
                except service.NotFound as exc:
                    errors[("survivor_id", "merged_id")[index]] = exc.message
        rows = []
        if len(pair) == 2 and not errors.get("survivor_id") and not errors.get("merged_id"):
            rows = _merge_rows(pair[0], pair[1], _common(request, db)["custom_fields"])
        return render(request, "contacts/merge.html", {**_common(request, db), "ids": ids, "pair": pair,
                                                       "rows": rows, "errors": errors})


def _merge_rows(survivor: display.ContactView, merged: display.ContactView,
                fields: list[CustomField]) -> list[dict[str, Any]]:
    """One row per choosable field whose values differ: label, both values, the default."""
    def shown(view: display.ContactView, key: str) -> str:
        return {
            "name": view.name, "kind": _("Company") if view.kind == "company" else _("Person"),
            "company": view.company_name, "position": view.position, "source": view.source,
            "owner": view.owner_name, "stage": display.stage_label(view.stage), "address": view.address,
            "notes": view.notes,
        }[key]

    labels = {"name": _("Name"), "kind": _("Person or company"), "company": _("Company"), "position": _("Position"),
              "source": _("Source"), "owner": _("Owner"), "stage": _("Stage"), "address": _("Address"),
              "notes": _("Notes")}
    rows = []
    for key in service.MERGE_FIELDS:
        a, b = shown(survivor, key), shown(merged, key)
        if a != b:
            rows.append({"key": key, "label": labels[key], "survivor": a, "merged": b,
                         "default": "merged" if not a else "survivor"})
    for definition in fields:
        a, b = survivor.custom.get(definition.key), merged.custom.get(definition.key)
        if a != b and b not in (None, "", []):
            rows.append({"key": f"custom.{definition.key}", "label": pick(definition.label, definition.key),
                         "survivor": a or "", "merged": b, "default": "merged" if a in (None, "", []) else "survivor"})
    return rows


# --- Import ---------------------------------------------------------------------------------------


@page(security.IMPORT)
def import_page(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    error = ""
    if request.method == "POST":
        upload = form.get("file")
        if not isinstance(upload, Upload):
            error = _("Choose a CSV or XLSX file.")
        else:
            try:
                with platform.session() as db:
                    job = tasks.create_job(platform, db, user, upload.filename, upload.content)
                    job_id = job.id
                return redirect(f"/contacts/import/{job_id}")
            except service.Invalid as exc:
                error = exc.fields.get("file", exc.message)
    with platform.reading() as db:
        return render(request, "contacts/import.html", {"jobs": tasks.recent_jobs(db, user), "error": error},
                      status_code=422 if error else 200)


def _job_context(request: Request, db: Session, job_id: Any, *, samples: bool) -> dict[str, Any]:
    """The import job page's context; ``samples``: the first rows of the file, for the mapping."""
    job = tasks.visible_job(db, current_user(request), job_id)
    context: dict[str, Any] = {"job": job, "samples": [], "errors": {}}
    if samples:
        try:
            context["samples"] = [cells for _line, cells in importer.preview(tasks.stored_path(platform_of(request), job))]
        except (importer.UnreadableFile, OSError):
            pass
        context["choices"] = [("", _("(ignore this column)"))] + [
            (name, display.field_label(name)) for name in importer.FIELDS] + [
            (f"custom.{f.key}", pick(f.label, f.key)) for f in service.custom_fields(db)]
    return context


@page(security.IMPORT)
def import_job(request: Request, form: Form) -> Response:
    platform = platform_of(request)
    with platform.reading() as db:
        return render(request, "contacts/import_job.html",
                      _job_context(request, db, request.path_params["id"], samples=True))


@page(security.IMPORT)
def import_progress(request: Request, form: Form) -> Response:
    platform = platform_of(request)
    with platform.reading() as db:
        return render(request, "contacts/_import_progress.html",
                      _job_context(request, db, request.path_params["id"], samples=False))


@page(security.IMPORT)
def import_start(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    job_id = request.path_params["id"]
    mapping = {key[4:]: str(value) for key, value in form.items() if key.startswith("map.")}
    try:
        with platform.session() as db:
            job = tasks.visible_job(db, user, job_id)
            tasks.set_mapping(db, job, mapping)
        tasks.start(platform, user, int(job_id), dry_run=form.get("mode") != "import")
    except DomainError as exc:
        with platform.reading() as db:
            context = _job_context(request, db, job_id, samples=True)
            context["errors"] = exc.fields or {"mapping": exc.message}
            return render(request, "contacts/import_job.html", context, status_code=exc.status)
    return redirect(f"/contacts/import/{job_id}")


@page(security.IMPORT)
def import_errors(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        job = tasks.visible_job(db, user, request.path_params["id"])
        content = tasks.error_report(platform, job)
    return Response(content.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="import-{job.id}-errors.csv"'})


@page(security.IMPORT)
def import_discard(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        tasks.discard(platform, db, tasks.visible_job(db, user, request.path_params["id"]))
    return redirect("/contacts/import")


# --- Custom fields ------------------------------------------------------------------------------


@page(security.ADMIN)
def fields_page(request: Request, form: Form) -> Response:
    platform, user = platform_of(request), current_user(request)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        values = _text_fields(form)
        field_id = request.path_params.get("id")
        data = {**values, "label": {"zh": values.get("label_zh", ""), "en": values.get("label_en", "")}}
        for flag in ("required", "show_in_list", "active") if field_id else ("required", "show_in_list"):
            data[flag] = flag in form  # an unticked checkbox sends nothing
        try:
            with platform.session() as db:
                definition = db.get(CustomField, service.id_of(field_id) or 0) if field_id else None
                if field_id and definition is None:
                    raise service.NotFound(_("There is no such field."))
                service.save_custom_field(db, user, definition, data)
            return redirect("/contacts/fields")
        except service.Invalid as exc:
            errors = exc.fields
            if field_id:
                errors = {f"{field_id}.{k}": v for k, v in errors.items()}
    with platform.reading() as db:
        return render(request, "contacts/fields.html", {
            "fields": service.custom_fields(db, active_only=False), "kinds": service.CUSTOM_KINDS,
            "errors": errors, "values": values}, status_code=422 if errors else 200)


def routes() -> list[Route]:
    return [
        Route("/", contact_list, methods=["GET"]),
        Route("/export", export_contacts, methods=["POST"]),
        Route("/filters", save_filter, methods=["POST"]),
        Route("/filters/{id:int}/delete", delete_filter, methods=["POST"]),
        Route("/new", new_contact, methods=["GET", "POST"]),
        Route("/merge", merge_page, methods=["GET", "POST"]),
        Route("/import", import_page, methods=["GET", "POST"]),
        Route("/import/{id:int}", import_job, methods=["GET"]),
        Route("/import/{id:int}/progress", import_progress, methods=["GET"]),
        Route("/import/{id:int}/start", import_start, methods=["POST"]),
        Route("/import/{id:int}/errors.csv", import_errors, methods=["GET"]),
        Route("/import/{id:int}/discard", import_discard, methods=["POST"]),
        Route("/fields", fields_page, methods=["GET", "POST"]),
        Route("/fields/{id:int}", fields_page, methods=["POST"]),
        Route("/{id:int}", contact_detail, methods=["GET"]),
        Route("/{id:int}/edit", edit_contact, methods=["GET", "POST"]),
        Route("/{id:int}/activities", add_activity, methods=["POST"]),
        Route("/{id:int}/consents", record_consent, methods=["POST"]),
        Route("/{id:int}/delete", delete_contact, methods=["POST"]),
        Route("/{id:int}/person-export", person_export, methods=["POST"]),
        Route("/{id:int}/erase", erase_person, methods=["POST"]),
    ]
