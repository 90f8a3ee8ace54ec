"""Exporting the contacts a user may see to CSV or XLSX.

The same record rules and masking as on screen apply: a user without ``contacts.read_all``
exports only their own contacts, and one without ``contacts.view_sensitive`` gets masked phone
numbers. Every export is written to the audit log (how many contacts, which filters; never the
search term, which may be a phone number). Column headers are in the user's language and are
recognized by the importer, so an exported file can be edited and imported again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kehu import audit
from kehu.auth import CurrentUser
from kehu.i18n import gettext as _
from kehu.i18n import pick
from kehu.models import User
from kehu.platform import Platform

from . import display, listing, security, service
from .display import field_label
from .models import Contact, CustomField

FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
CHINA = timezone(timedelta(hours=8))
BATCH = 500


def columns(fields: list[CustomField]) -> list[str]:
    return ["ID", _("Name"), field_label("kind"), field_label("company"), field_label("position"),
            field_label("phones"), field_label("emails"), field_label("wechat_ids"), field_label("province"),
            field_label("city"), field_label("district"), field_label("street"), field_label("address_detail"),
            field_label("stage"), field_label("tags"), field_label("owner"), field_label("source"),
            field_label("notes"), _("Created"), _("Updated"), *(pick(f.label, f.key) for f in fields)]


def _local(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def _custom_cell(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else value


def rows(platform: Platform, db: Session, user: CurrentUser, query: listing.ListQuery,
         fields: list[CustomField]) -> Iterator[list[Any]]:
    """The rows of the export, as ``user`` sees them, loaded :data:`BATCH` contacts at a time."""
    logins = dict(db.execute(select(User.id, User.login)).all())
    statement = listing.filtered(platform, user, query, fields).order_by(Contact.id)
    for contact in db.scalars(statement.execution_options(yield_per=BATCH)):
        view = display.ContactView.of(platform, db, user, contact, owners={})
        yield [view.id, view.name, display.kind_label(view.kind), view.company_name, view.position,
               ", ".join(view.phones), ", ".join(view.emails), ", ".join(view.wechat_ids), view.province, view.city,
               view.district, view.street, view.address_detail, display.stage_label(view.stage),
               ", ".join(view.tags), logins.get(view.owner_id or 0, ""), view.source, view.notes,
               _local(view.created_at), _local(view.updated_at), *(_custom_cell(view.custom.get(f.key)) for f in fields)]


def export(platform: Platform, db: Session, user: CurrentUser, query: listing.ListQuery,
           fmt: str) -> tuple[bytes, str, str]:
    """The file's bytes, its name and media type; audited. Needs ``contacts.export``."""
    if not user.can(security.EXPORT):
        raise service.Forbidden(_("You may not export contacts."))
    if fmt not in FORMATS:
        raise service.Invalid(_("Choose CSV or XLSX."), {"format": _("Choose CSV or XLSX.")})
    fields = service.custom_fields(db)
    header = columns(fields)
    count = 0
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        for row in rows(platform, db, user, query, fields):
            writer.writerow([_safe_cell(v, "=+-@") for v in row])
            count += 1
        content = ("\ufeff" + out.getvalue()).encode("utf-8")  # the BOM makes Excel read UTF-8
    else:
        from openpyxl import Workbook  # here: it costs about 70 ms of every process's start-up

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(_("Contacts"))
        sheet.append(header)
        for row in rows(platform, db, user, query, fields):
            sheet.append([_safe_cell(v, "=") for v in row])
            count += 1
        buffer = io.BytesIO()
        workbook.save(buffer)
        content = buffer.getvalue()
    filters = {k: v for k, v in asdict(query).items() if v not in ("", None, [], {}, 0) and k not in (
        "q", "limit", "offset", "cursor", "sort")}
    audit.record(db, "contacts.export", actor=user, target="contacts",
                 detail={"format": fmt, "count": count, "searched": bool(query.q),
                         "masked": not user.can(security.VIEW_SENSITIVE),
                         "filters": {k: str(v) for k, v in filters.items()}})
    stamp = datetime.now(CHINA).strftime("%Y%m%d-%H%M")
    return content, f"contacts-{stamp}.{fmt}", FORMATS[fmt]


def _safe_cell(value: Any, triggers: str) -> Any:
    """Against formula injection, text starting with a character a spreadsheet would read as a
    formula gets a leading apostrophe (the importer removes it again)."""
    if isinstance(value, str) and value[:1] and value[0] in triggers:
        return "'" + value
    return value
