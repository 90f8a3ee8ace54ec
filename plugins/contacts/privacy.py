"""Personal information rights (PIPL): consent, a person's data export, erasure.

* Consent is recorded per purpose (``marketing``) and channel (``wechat``, ``sms``, ``email``)
  as append-only :class:`~kehu_plugins.contacts.models.Consent` rows; the newest row of a
  purpose and channel is the person's current decision. Other plugins ask through the core hook
  ``kehu_consent_status`` before they market to someone.
* A person's data export gathers, through ``kehu_person_export``, what *every* enabled plugin
  holds about them into a ZIP of JSON files (one per plugin).
* Erasure anonymizes the contact (name, notes, address, custom fields, timeline), deletes
  their phone numbers, e-mails and WeChat ids with their blind index entries, and calls
  ``kehu_person_erase`` on every plugin, in one transaction.

Both the export and the erasure are written to the audit log.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kehu import audit, events
from kehu.auth import CurrentUser
from kehu.db import utcnow
from kehu.i18n import gettext as _
from kehu.platform import Platform

from . import display, normalize, service
from .models import Activity, Consent, Contact, ContactTag

PURPOSES = ("marketing",)
CHANNELS = ("wechat", "sms", "email")


# --- Consent ---------------------------------------------------------------------------------


def consent_status(db: Session, contact_id: int, purpose: str, channel: str) -> bool:
    """Whether the person consented to ``purpose`` on ``channel`` and has not withdrawn it
    (never for an erased person)."""
    contact = db.get(Contact, contact_id)
    if contact is None or contact.erased_at is not None:
        return False
    granted = db.scalar(select(Consent.granted).where(Consent.contact_id == contact_id, Consent.purpose == purpose,
                                                      Consent.channel == channel)
                        .order_by(Consent.at.desc(), Consent.id.desc()).limit(1))
    return bool(granted)


def record_consent(db: Session, user: CurrentUser | None, contact: Contact, purpose: str, channel: str,
                   granted: bool, source: str, at: datetime | None = None) -> Consent:
    """Record that the person gave (``granted``) or withdrew consent; audited."""
    problems = {}
    if purpose not in PURPOSES:
        problems["purpose"] = _("Choose one of: %(choices)s.", choices=", ".join(PURPOSES))
    if channel not in CHANNELS:
        problems["channel"] = _("Choose one of: %(choices)s.", choices=", ".join(CHANNELS))
    if not source.strip():
        problems["source"] = _("Say where the consent comes from (a signed form, a web form, a call...).")
    if len(source) > 80:
        problems["source"] = _("At most %(n)s characters.", n=80)
    if problems:
        raise service.Invalid(_("Some fields are not valid."), problems)
    if contact.erased_at is not None:
        raise service.Forbidden(_("This contact was erased and cannot be changed."))
    row = Consent(contact_id=contact.id, purpose=purpose, channel=channel, granted=granted, source=source.strip(),
                  at=at or utcnow(), recorded_by_id=getattr(user, "id", None))
    db.add(row)
    db.flush()
    audit.record(db, "contacts.consent." + ("grant" if granted else "withdraw"), actor=user,
                 target=f"contact:{contact.id}", detail={"purpose": purpose, "channel": channel})
    return row


def consents(db: Session, contact_id: int, rows: Sequence[Any] | None = None) -> dict[str, Any]:
    """``{"current": [...one per purpose and channel...], "history": [...newest first...]}``,
    from ``rows`` when given (:func:`.display.consent_rows` of the same contact)."""
    history = [consent_dict(row) for row in (display.consent_rows(db, contact_id) if rows is None else rows)]
    current: dict[tuple[str, str], dict[str, Any]] = {}
    for item in history:
        current.setdefault((item["purpose"], item["channel"]), item)
    return {"current": [current.get((p, c)) or {"purpose": p, "channel": c, "status": "unknown"}
                        for p in PURPOSES for c in CHANNELS],
            "history": history}


def consent_dict(row: Any) -> dict[str, Any]:
    """A consent decision (a :class:`Consent` or a row of :func:`.display.consent_rows`) as the API gives it."""
    return {"purpose": row.purpose, "channel": row.channel, "status": "granted" if row.granted else "withdrawn",
            "source": row.source, "at": row.at.isoformat(), "recorded_by_id": row.recorded_by_id}


# --- What the contacts plugin holds about a person (its kehu_person_* hooks) --------------------


def person_summary(db: Session, contact_id: int) -> dict[str, Any] | None:
    contact = db.get(Contact, contact_id)
    if contact is None or contact.erased_at is not None:
        return None
    return {"id": contact.id, "name": contact.name, "email": contact.first(normalize.EMAIL),
            "phone": contact.first(normalize.PHONE), "wechat_openid": contact.first(normalize.OPENID)}


def person_data(db: Session, contact_id: int) -> dict[str, Any] | None:
    """Everything this plugin holds about the person, unmasked (for their data export)."""
    contact = db.get(Contact, contact_id)
    if contact is None:
        return None
    return {
        "contact": {
            "id": contact.id, "kind": contact.kind, "name": contact.name,
            "company": contact.company.name if contact.company else "", "position": contact.position,
            "source": contact.source, "stage": contact.stage, "province": contact.province, "city": contact.city,
            "district": contact.district, "street": contact.street or "", "address_detail": contact.address_detail or "",
            "phones": contact.values_of(normalize.PHONE), "emails": contact.values_of(normalize.EMAIL),
            "wechat_ids": contact.values_of(normalize.WECHAT), "openids": contact.values_of(normalize.OPENID),
            "tags": contact.tags, "preferences": contact.preferences, "notes": contact.notes,
            "custom": contact.custom, "created_at": contact.created_at.isoformat(),
            "updated_at": contact.updated_at.isoformat(),
        },
        "timeline": [{"kind": a.kind, "body": a.body, "at": a.happened_at.isoformat()}
                     for a in db.scalars(select(Activity).where(Activity.contact_id == contact_id)
                                         .order_by(Activity.happened_at))],
        "consents": consents(db, contact_id)["history"],
    }


def anonymize(db: Session, contact_id: int) -> None:
    """This plugin's part of an erasure. The row stays, since other plugins' records point at
    it, but everything about the person goes: name, notes, address, custom fields, tags, the
    logged timeline, and the phone numbers, e-mails and WeChat ids with their blind index.
    Kept: consent decisions (the proof of what they agreed to) and the list of edits, which
    hold dates and field names only."""
    contact = db.get(Contact, contact_id)
    if contact is None:
        return
    service.purge_points(db, contact_id)
    db.execute(delete(ContactTag).where(ContactTag.contact_id == contact_id))
    db.execute(delete(Activity).where(Activity.contact_id == contact_id))
    db.expire(contact, ["points", "tag_rows"])
    contact.name = ""
    contact.position = contact.source = contact.notes = ""
    contact.province = contact.city = contact.district = ""
    contact.street = None
    contact.address_detail = None
    contact.preferences = {}
    contact.custom = {}
    contact.company_id = None
    contact.erased_at = utcnow()
    contact.updated_at = utcnow()


def find_or_create(platform: Platform, db: Session, name: str, email: str, phone: str, source: str) -> int:
    """The person with this e-mail address, else this phone number, or a new contact (for
    ``kehu_person_find_or_create``). Values that are not valid are left out, never stored."""
    for kind, raw in ((normalize.EMAIL, email), (normalize.PHONE, phone)):
        for contact in service.find_by_point(db, kind, raw) if raw else []:
            if contact.erased_at is None:
                return contact.id
    data: dict[str, Any] = {"name": name.strip() or _("Unknown"), "source": source.strip()[:80]}
    for key, raw, kind in (("email", email, normalize.EMAIL), ("phone", phone, normalize.PHONE)):
        try:
            data[key] = service.point_of(kind, raw).shown if raw else ""
        except normalize.InvalidValue:
            continue
    parsed = service.parse_input(data, [], creating=True)
    parsed.allow_duplicate = True
    return service.create_contact(platform, db, None, parsed).id


# --- The requests themselves ----------------------------------------------------------------------


def person_export_zip(platform: Platform, db: Session, user: CurrentUser, contact: Contact) -> bytes:
    """A ZIP with one JSON file per plugin holding data about the person; audited."""
    buffer = io.BytesIO()
    included = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for impl in platform.pm.hook.kehu_person_export.get_hookimpls():
            data = impl.function(session=db, contact_id=contact.id)
            if data is None:
                continue
            included.append(impl.plugin_name)
            archive.writestr(f"{impl.plugin_name}.json",
                             json.dumps(data, ensure_ascii=False, indent=2, default=str))
        archive.writestr("manifest.json", json.dumps(
            {"contact_id": contact.id, "generated_at": utcnow().isoformat(), "plugins": sorted(included)},
            ensure_ascii=False, indent=2))
    audit.record(db, "contacts.person_export", actor=user, target=f"contact:{contact.id}",
                 detail={"plugins": sorted(included)})
    return buffer.getvalue()


def erase(platform: Platform, db: Session, user: CurrentUser, contact: Contact) -> None:
    """Erase the person: every plugin's ``kehu_person_erase``, in this transaction; audited."""
    contact_id = contact.id
    plugins = [impl.plugin_name for impl in platform.pm.hook.kehu_person_erase.get_hookimpls()]
    platform.pm.hook.kehu_person_erase(session=db, contact_id=contact_id)
    db.flush()
    audit.record(db, "contacts.erase", actor=user, target=f"contact:{contact_id}",
                 detail={"plugins": sorted(plugins)})
    events.emit(db, "contact.erased", {"contact_id": contact_id}, actor_id=user.id)

