"""The JSON API, mounted at ``/api/contacts``.

Every endpoint's docstring ends in an OpenAPI fragment (after ``---``) that goes into
``/api/openapi.json``. Errors use the core's body ``{"error": {"code", "message", "fields"}}``;
validation errors answer 422 with a message per field, possible duplicates 409 with
``error.duplicates``, an edit of an outdated version 409 with ``error.changes`` (who changed
what since) and ``error.current``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kehu.endpoints import Upload, api
from kehu.i18n import gettext as _
from kehu.web import current_user, platform_of

from . import display, exporter, listing, privacy, security, service, tasks
from .models import CustomField


def _view(request: Request, db: Any, contact: Any) -> dict[str, Any]:
    return display.ContactView.of(platform_of(request), db, current_user(request), contact).as_dict()


def _if_match(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The version to check: the ``If-Match`` header (``"3"`` or ``W/"3"``) or ``version``."""
    header = request.headers.get("if-match", "").strip()
    if header and "version" not in body:
        body = {**body, "version": header.removeprefix("W/").strip('"')}
    return body


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


# --- Contacts ---------------------------------------------------------------------------------


@api(security.READ)
def list_contacts(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """List and search the contacts you may see.
    ---
    summary: List and search contacts
    tags: [contacts]
    parameters:
      - {name: q, in: query, schema: {type: string}, description: "Name or company (contains), or a phone number, e-mail address or WeChat id (exact, any format)"}
      - {name: kind, in: query, schema: {type: string, enum: [person, company]}}
      - {name: tag, in: query, schema: {type: array, items: {type: string}}, description: "Repeat for several tags (all must match)"}
      - {name: owner, in: query, schema: {type: string}, description: "A user id, 'me' or 'none'"}
      - {name: province, in: query, schema: {type: string}}
      - {name: city, in: query, schema: {type: string}}
      - {name: stage, in: query, schema: {type: string, enum: [lead, customer, former_customer]}}
      - {name: company_id, in: query, schema: {type: integer}}
      - {name: created_from, in: query, schema: {type: string, format: date}}
      - {name: created_to, in: query, schema: {type: string, format: date}}
      - {name: "cf.<key>", in: query, schema: {type: string}, description: "A custom field equals (choice), contains (text, multi-choice); cf.<key>.min / cf.<key>.max for numbers and dates"}
      - {name: sort, in: query, schema: {type: string, default: "-created_at", enum: [name, "-name", created_at, "-created_at", updated_at, "-updated_at", id, "-id"]}}
      - {name: limit, in: query, schema: {type: integer, default: 50, maximum: 500}}
      - {name: cursor, in: query, schema: {type: string}, description: "next_cursor of the previous page (keyset paging)"}
      - {name: offset, in: query, schema: {type: integer}, description: "Offset paging, when no cursor is given"}
    responses:
      "200":
        description: "{items: [contact], total, next_cursor, limit, offset}"
      "422": {description: A filter is not valid}
    """
    platform, user = platform_of(request), current_user(request)
    query = listing.list_query_from(request.query_params, request.query_params.getlist)
    with platform.reading() as db:
        result = listing.page(platform, db, user, query, shape="views")
        items = [view.as_dict() for view in result.items]
    return {"items": items, "total": result.total, "next_cursor": result.next_cursor or None,
            "limit": result.limit, "offset": result.offset}


@api(security.WRITE)
def create_contact(request: Request, body: dict[str, Any]) -> Response:
    """Create a contact.
    ---
    summary: Create a contact
    tags: [contacts]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [name]
            properties:
              name: {type: string}
              kind: {type: string, enum: [person, company], default: person}
              phone: {type: string, description: "One phone number, any common format"}
              phones: {type: array, items: {type: string}}
              email: {type: string}
              emails: {type: array, items: {type: string}}
              wechat_id: {type: string}
              wechat_ids: {type: array, items: {type: string}}
              openid: {type: string}
              company: {type: string, description: "The company's name; created when new"}
              company_id: {type: integer}
              position: {type: string}
              source: {type: string}
              owner_id: {type: integer, description: "Defaults to you; others need contacts.write_all"}
              stage: {type: string, enum: [lead, customer, former_customer]}
              province: {type: string}
              city: {type: string}
              district: {type: string}
              street: {type: string}
              address_detail: {type: string}
              tags: {type: array, items: {type: string}}
              preferences: {type: object}
              notes: {type: string}
              custom: {type: object, description: "Custom field values by key"}
              allow_duplicate: {type: boolean, description: "Create even when the contact may exist"}
    responses:
      "201": {description: The contact}
      "409": {description: "Possible duplicates, in error.duplicates (send allow_duplicate: true to create anyway)"}
      "422": {description: Fields not valid, in error.fields}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        data = service.parse_input(body, service.custom_fields(db), creating=True)
        contact = service.create_contact(platform, db, user, data)
        result = _view(request, db, contact)
    return JSONResponse(result, status_code=201, headers={**_etag(result["version"]),
                                                          "Location": f"/api/contacts/{result['id']}"})


@api(security.READ)
def get_contact(request: Request, body: dict[str, Any]) -> Response:
    """One contact (404 when it does not exist or you may not see it).
    ---
    summary: Get a contact
    tags: [contacts]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "The contact; its version is also the ETag"}
      "404": {description: Not found}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        result = listing.visible_view(platform, db, user, request.path_params["id"]).as_dict()
    return JSONResponse(result, headers=_etag(result["version"]))


@api(security.WRITE)
def update_contact(request: Request, body: dict[str, Any]) -> Response:
    """Change a contact: only the fields sent are changed.

    Send the version you edited (``If-Match: "3"`` or ``"version": 3``): when someone saved the
    contact since, nothing is changed and the answer is 409 with their changes.
    ---
    summary: Change a contact
    tags: [contacts]
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer}}
      - {name: If-Match, in: header, schema: {type: string}, description: "The version you edited, e.g. \\"3\\""}
    requestBody:
      content:
        application/json:
          schema: {type: object, description: "The fields of POST /api/contacts, plus version"}
    responses:
      "200": {description: The changed contact}
      "403": {description: You may not change it}
      "404": {description: Not found}
      "409": {description: "Edit conflict (error.changes, error.current) or duplicates (error.duplicates)"}
      "422": {description: Fields not valid}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        contact = service.get_changeable(platform, db, user, request.path_params["id"])
        data = service.parse_input(_if_match(request, body), service.custom_fields(db), creating=False)
        contact = service.update_contact(platform, db, user, contact, data)
        result = _view(request, db, contact)
    return JSONResponse(result, headers=_etag(result["version"]))


@api(security.DELETE)
def delete_contact(request: Request, body: dict[str, Any]) -> Response:
    """Delete a contact (with its timeline and consent records).
    ---
    summary: Delete a contact
    tags: [contacts]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "204": {description: Deleted}
      "404": {description: Not found}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        contact = service.get_changeable(platform, db, user, request.path_params["id"])
        service.delete_contact(platform, db, user, contact)
    return Response(status_code=204)


# --- Timeline -------------------------------------------------------------------------------------


@api(security.READ)
def get_timeline(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The contact's timeline: notes, calls and visits, changes, consent, and other plugins' entries.
    ---
    summary: A contact's timeline
    tags: [contacts]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "{items: [{at, kind, title, body, url, source}]}, newest first"}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        contact_id = listing.visible_id(platform, db, user, request.path_params["id"])
        entries = display.timeline(platform, db, user, contact_id)
    return {"items": [{"at": e.at.isoformat(), "kind": e.kind, "title": e.title, "body": e.body, "url": e.url,
                       "source": e.source} for e in entries]}


@api(security.WRITE)
def log_activity(request: Request, body: dict[str, Any]) -> Response:
    """Log a note, call or visit on the contact's timeline.
    ---
    summary: Log a note, call or visit
    tags: [contacts]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [kind, body]
            properties:
              kind: {type: string, enum: [note, call, visit]}
              body: {type: string}
    responses:
      "201": {description: Logged}
      "422": {description: Fields not valid}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        contact = service.get_changeable(platform, db, user, request.path_params["id"])
        activity = service.log_activity(db, user, contact, str(body.get("kind", "")), str(body.get("body", "")))
        result = {"id": activity.id, "kind": activity.kind, "body": activity.body,
                  "at": activity.happened_at.isoformat()}
    return JSONResponse(result, status_code=201)


# --- Merge ------------------------------------------------------------------------------------


@api(security.MERGE)
def merge_contacts(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Merge one contact into another.
    ---
    summary: Merge two contacts
    tags: [contacts]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [survivor_id, merged_id]
            properties:
              survivor_id: {type: integer, description: The contact that stays}
              merged_id: {type: integer, description: "The contact merged into it, then deleted"}
              fields:
                type: object
                description: "For name, kind, company, position, source, owner, stage, address, notes or custom.<key>: 'survivor' or 'merged' (whose value to keep; default the survivor's unless empty)"
    responses:
      "200": {description: The surviving contact}
      "404": {description: One of them is not found}
    """
    platform, user = platform_of(request), current_user(request)
    choices = body.get("fields") or {}
    if not isinstance(choices, dict):
        raise service.Invalid(_("Some fields are not valid."), {"fields": _("An object.")})
    with platform.session() as db:
        survivor = service.get_visible(platform, db, user, body.get("survivor_id"))
        merged = service.get_visible(platform, db, user, body.get("merged_id"))
        contact = service.merge(platform, db, user, survivor, merged, choices)
        return _view(request, db, contact)


# --- Export -----------------------------------------------------------------------------------


@api(security.EXPORT)
def export_contacts(request: Request, body: dict[str, Any]) -> Response:
    """Export the contacts you may see (masked as on screen), with the list's filters.
    ---
    summary: Export contacts to CSV or XLSX
    tags: [contacts]
    parameters:
      - {name: format, in: query, schema: {type: string, enum: [csv, xlsx], default: csv}}
      - {name: q, in: query, schema: {type: string}, description: "And every other filter of GET /api/contacts"}
    responses:
      "200": {description: The file}
      "403": {description: You may not export}
    """
    platform, user = platform_of(request), current_user(request)
    query = listing.list_query_from(request.query_params, request.query_params.getlist)
    with platform.session() as db:
        content, filename, media_type = exporter.export(platform, db, user, query,
                                                        request.query_params.get("format", "csv"))
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --- Privacy -----------------------------------------------------------------------------------


@api(security.READ)
def get_consents(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The person's consent: current status per purpose and channel, and the history.
    ---
    summary: A contact's consent records
    tags: [contacts privacy]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "{current: [{purpose, channel, status, source, at}], history: [...]}"}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        return privacy.consents(db, listing.visible_id(platform, db, user, request.path_params["id"]))


@api(security.WRITE)
def record_consent(request: Request, body: dict[str, Any]) -> Response:
    """Record that the person gave or withdrew consent.
    ---
    summary: Record consent or its withdrawal
    tags: [contacts privacy]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [channel, status, source]
            properties:
              purpose: {type: string, enum: [marketing], default: marketing}
              channel: {type: string, enum: [wechat, sms, email]}
              status: {type: string, enum: [granted, withdrawn]}
              source: {type: string, description: "Where it comes from: a signed form, a web form, a call..."}
    responses:
      "201": {description: Recorded}
      "422": {description: Fields not valid}
    """
    platform, user = platform_of(request), current_user(request)
    status = str(body.get("status", ""))
    if status not in ("granted", "withdrawn"):
        raise service.Invalid(_("Some fields are not valid."),
                              {"status": _("Choose granted or withdrawn.")})
    with platform.session() as db:
        contact = service.get_changeable(platform, db, user, request.path_params["id"])
        row = privacy.record_consent(db, user, contact, str(body.get("purpose") or "marketing"),
                                     str(body.get("channel", "")), status == "granted", str(body.get("source", "")))
        result = privacy.consent_dict(row)
    return JSONResponse(result, status_code=201)


@api(security.PRIVACY)
def person_export(request: Request, body: dict[str, Any]) -> Response:
    """Everything every plugin holds about the person (PIPL access request), as a ZIP of JSON files.
    ---
    summary: A person's data export
    tags: [contacts privacy]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "application/zip: one <plugin>.json per plugin, and manifest.json"}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        contact = service.get_visible(platform, db, user, request.path_params["id"])
        content = privacy.person_export_zip(platform, db, user, contact)
    return Response(content, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="person-{contact.id}.zip"'})


@api(security.PRIVACY)
def erase_person(request: Request, body: dict[str, Any]) -> Response:
    """Erase the person: the contact is anonymized and every plugin erases what it holds.
    ---
    summary: Erase a person's data
    tags: [contacts privacy]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema: {type: object, required: [confirm], properties: {confirm: {type: boolean, enum: [true]}}}
    responses:
      "204": {description: Erased}
      "422": {description: "confirm: true is missing"}
    """
    platform, user = platform_of(request), current_user(request)
    if body.get("confirm") is not True:
        raise service.Invalid(_("Confirm the erasure."), {"confirm": _("Send confirm: true.")})
    with platform.session() as db:
        contact = service.get_visible(platform, db, user, request.path_params["id"])
        if contact.erased_at is None:
            privacy.erase(platform, db, user, contact)
    return Response(status_code=204)


# --- Imports --------------------------------------------------------------------------------------


@api(security.IMPORT)
def upload_import(request: Request, body: dict[str, Any]) -> Response:
    """Upload a CSV or XLSX file to import; its columns are mapped automatically.
    ---
    summary: Upload a file to import
    tags: [contacts import]
    requestBody:
      content:
        multipart/form-data:
          schema:
            type: object
            required: [file]
            properties:
              file: {type: string, format: binary}
              mapping: {type: string, description: "JSON {column index: field} correcting the guessed mapping"}
              start: {type: string, enum: ["dry_run", "import", ""], description: "Start a dry run or the import at once"}
    responses:
      "201": {description: "The import job: {id, status, headers, mapping, ...}"}
      "422": {description: The file cannot be read}
    """
    upload = body.get("file")
    if not isinstance(upload, Upload):
        raise service.Invalid(_("Upload a CSV or XLSX file."), {"file": _("Upload a CSV or XLSX file.")})
    try:
        mapping = json.loads(body.get("mapping") or "null")
    except ValueError:
        raise service.Invalid(_("The mapping is not valid JSON."),
                              {"mapping": _("The mapping is not valid JSON.")}) from None
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        job_id = tasks.create_job(platform, db, user, upload.filename or "upload.csv", upload.content,
                                  mapping if isinstance(mapping, dict) else None).id
    if body.get("start") in ("dry_run", "import"):
        tasks.start(platform, user, job_id, dry_run=body["start"] == "dry_run")
    with platform.reading() as db:
        return JSONResponse(tasks.job_dict(tasks.visible_job(db, user, job_id)), status_code=201)


@api(security.IMPORT)
def get_import(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """An import job's state and progress; the first 100 rejected rows in ``errors``, and the
    first 100 rows that match existing contacts (what a dry run flags) in ``matches``.
    ---
    summary: An import's status
    tags: [contacts import]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: "{id, status (uploaded, queued, running, done, failed), dry_run, total, processed, created, updated, unchanged, rejected, errors: [{line, reason}], error_count, matches: [{line, contact_id, action}] (rows matching existing contacts: updated or unchanged), match_count}"}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        return tasks.job_dict(tasks.visible_job(db, user, request.path_params["id"]))


@api(security.IMPORT)
def start_import(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Start (or restart) an import: a dry run, or the import itself.
    ---
    summary: Start an import
    tags: [contacts import]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            properties:
              dry_run: {type: boolean, default: false}
              mapping: {type: object, description: "{column index: field}; field '' ignores the column"}
    responses:
      "200": {description: The job, queued}
      "422": {description: The mapping is not valid}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        job = tasks.visible_job(db, user, request.path_params["id"])
        if isinstance(body.get("mapping"), dict):
            tasks.set_mapping(db, job, body["mapping"])
        job_id = job.id
    tasks.start(platform, user, job_id, dry_run=bool(body.get("dry_run")))
    with platform.reading() as db:
        return tasks.job_dict(tasks.visible_job(db, user, job_id))


@api(security.IMPORT)
def import_errors(request: Request, body: dict[str, Any]) -> Response:
    """The rejected rows as CSV: line number, reason, then the row as it was in the file.
    ---
    summary: An import's error report
    tags: [contacts import]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: text/csv}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.reading() as db:
        job = tasks.visible_job(db, user, request.path_params["id"])
        content = tasks.error_report(platform, job)
    return Response(content.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="import-{job.id}-errors.csv"'})


# --- Custom fields -----------------------------------------------------------------------------


def field_dict(definition: CustomField) -> dict[str, Any]:
    return {"id": definition.id, "key": definition.key, "label": definition.label, "kind": definition.kind,
            "choices": definition.choices, "required": definition.required,
            "show_in_list": definition.show_in_list, "position": definition.position, "active": definition.active}


@api(security.READ)
def list_fields(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The custom fields of contacts.
    ---
    summary: List custom fields
    tags: [contacts fields]
    responses:
      "200": {description: "{items: [{id, key, label: {zh, en}, kind, choices, required, show_in_list, position, active}]}"}
    """
    with platform_of(request).reading() as db:
        return {"items": [field_dict(f) for f in service.custom_fields(db, active_only=False)]}


@api(security.ADMIN)
def create_field(request: Request, body: dict[str, Any]) -> Response:
    """Add a custom field.
    ---
    summary: Add a custom field
    tags: [contacts fields]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [label, kind]
            properties:
              key: {type: string, description: "a-z, 0-9 and _; made from the label when left out"}
              label: {type: object, description: "{zh: ..., en: ...}, or one string"}
              kind: {type: string, enum: [text, number, date, choice, multi_choice]}
              choices: {type: array, items: {type: string}}
              required: {type: boolean}
              show_in_list: {type: boolean}
              position: {type: integer}
    responses:
      "201": {description: The field}
      "422": {description: Fields not valid}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        definition = service.save_custom_field(db, user, None, body)
        return JSONResponse(field_dict(definition), status_code=201)


@api(security.ADMIN)
def update_field(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Change a custom field (its key and kind stay); ``active: false`` hides it, keeping the values.
    ---
    summary: Change a custom field
    tags: [contacts fields]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "200": {description: The field}
    """
    platform, user = platform_of(request), current_user(request)
    with platform.session() as db:
        field_id = service.id_of(request.path_params["id"])
        definition = db.get(CustomField, field_id) if field_id is not None else None
        if definition is None:
            raise service.NotFound(_("There is no such field."))
        return field_dict(service.save_custom_field(db, user, definition, body))


# --- Saved filters -------------------------------------------------------------------------------


@api(security.READ)
def list_saved_filters(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Your saved list filters.
    ---
    summary: List your saved filters
    tags: [contacts]
    responses:
      "200": {description: "{items: [{id, name, query}]}; query is a query string for GET /api/contacts"}
    """
    with platform_of(request).reading() as db:
        rows = service.saved_filters(db, current_user(request))
        return {"items": [{"id": r.id, "name": r.name, "query": r.query} for r in rows]}


@api(security.READ)
def create_saved_filter(request: Request, body: dict[str, Any]) -> Response:
    """Save a list filter under a name.
    ---
    summary: Save a filter
    tags: [contacts]
    requestBody:
      content:
        application/json:
          schema: {type: object, required: [name, query], properties: {name: {type: string}, query: {type: string}}}
    responses:
      "201": {description: The saved filter}
    """
    user = current_user(request)
    with platform_of(request).session() as db:
        row = service.save_filter(db, user, body.get("name"), body.get("query"))
        return JSONResponse({"id": row.id, "name": row.name, "query": row.query}, status_code=201)


@api(security.READ)
def delete_saved_filter(request: Request, body: dict[str, Any]) -> Response:
    """Delete one of your saved filters.
    ---
    summary: Delete a saved filter
    tags: [contacts]
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    responses:
      "204": {description: Deleted}
    """
    user = current_user(request)
    with platform_of(request).session() as db:
        service.delete_filter(db, user, request.path_params["id"])
    return Response(status_code=204)


def routes() -> list[Route]:
    return [
        Route("/", list_contacts, methods=["GET"]),
        Route("/", create_contact, methods=["POST"]),
        Route("/merge", merge_contacts, methods=["POST"]),
        Route("/export", export_contacts, methods=["GET"]),
        Route("/imports", upload_import, methods=["POST"]),
        Route("/imports/{id:int}", get_import, methods=["GET"]),
        Route("/imports/{id:int}/start", start_import, methods=["POST"]),
        Route("/imports/{id:int}/errors", import_errors, methods=["GET"]),
        Route("/fields", list_fields, methods=["GET"]),
        Route("/fields", create_field, methods=["POST"]),
        Route("/fields/{id:int}", update_field, methods=["PATCH"]),
        Route("/saved-filters", list_saved_filters, methods=["GET"]),
        Route("/saved-filters", create_saved_filter, methods=["POST"]),
        Route("/saved-filters/{id:int}", delete_saved_filter, methods=["DELETE"]),
        Route("/{id:int}", get_contact, methods=["GET"]),
        Route("/{id:int}", update_contact, methods=["PATCH"]),
        Route("/{id:int}", delete_contact, methods=["DELETE"]),
        Route("/{id:int}/timeline", get_timeline, methods=["GET"]),
        Route("/{id:int}/activities", log_activity, methods=["POST"]),
        Route("/{id:int}/consents", get_consents, methods=["GET"]),
        Route("/{id:int}/consents", record_consent, methods=["POST"]),
        Route("/{id:int}/person-export", person_export, methods=["GET"]),
        Route("/{id:int}/erase", erase_person, methods=["POST"]),
    ]
