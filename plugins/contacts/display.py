"""What a user sees of a contact: :class:`ContactView` (personal fields masked unless the user
may view them), the timeline, and the labels of stored values in the current language."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from kehu import rbac
from kehu.auth import CurrentUser
from kehu.declarations import TimelineEntry
from kehu.i18n import gettext as _
from kehu.models import User
from kehu.platform import Platform

from . import normalize, security
from .models import Activity, Consent, Contact, ContactPoint, ContactTag, Revision, unseal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContactView:
    """A contact as one user may see it: phone numbers, e-mails, WeChat ids and the street
    address are masked (``138****8000``) unless they hold ``contacts.view_sensitive``.

    Pages render it, the API returns :meth:`as_dict`, and the contact page passes it to the
    ``contacts.detail.panels`` slot as ``contact``. Both ``contact.id`` and ``contact["id"]``
    work.
    """

    id: int
    kind: str
    name: str
    company_id: int | None
    company_name: str
    position: str
    source: str
    owner_id: int | None
    owner_name: str
    stage: str
    province: str
    city: str
    district: str
    street: str
    address_detail: str
    phones: list[str]
    emails: list[str]
    wechat_ids: list[str]
    openids: list[str]
    tags: list[str]
    preferences: dict[str, Any]
    notes: str
    custom: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    erased: bool
    masked: bool
    can_change: bool

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    @property
    def phone(self) -> str:
        return self.phones[0] if self.phones else ""

    @property
    def email(self) -> str:
        return self.emails[0] if self.emails else ""

    @property
    def display_name(self) -> str:
        return _("Erased contact #%(id)s", id=self.id) if self.erased else self.name

    @property
    def address(self) -> str:
        """The address the Chinese way, largest first: 上海市浦东新区世纪大道100号 3楼."""
        parts = [self.province, "" if self.city == self.province else self.city, self.district, self.street]
        return f"{''.join(parts)} {self.address_detail}".strip()

    @classmethod
    def of(cls, platform: Platform, db: Session | None, user: CurrentUser, contact: Contact,
           owners: Mapping[int, str] | None = None) -> ContactView:
        """``contact`` as ``user`` sees it; ``owners`` (user id → name) saves a query per contact."""

        def shown(model: type, attribute: str, value: str | None) -> str:
            return rbac.field_view(platform, user, model, attribute, value or "") or ""

        def points(kind: str) -> list[str]:
            values = contact.values_of(kind)
            if kind == normalize.PHONE:
                values = [normalize.display_phone(value) for value in values]
            return [shown(ContactPoint, "value", value) for value in values]

        owner_name = ""
        if contact.owner_id is not None:
            if owners is not None:
                owner_name = owners.get(contact.owner_id, "")
            elif db is not None:
                owner_name = db.scalar(select(User.name).where(User.id == contact.owner_id)) or ""
        return cls(
            id=contact.id, kind=contact.kind, name=contact.name, company_id=contact.company_id,
            company_name=contact.company.name if contact.company else "", position=contact.position,
            source=contact.source, owner_id=contact.owner_id, owner_name=owner_name, stage=contact.stage,
            province=contact.province, city=contact.city, district=contact.district,
            street=shown(Contact, "street", contact.street),
            address_detail=shown(Contact, "address_detail", contact.address_detail),
            phones=points(normalize.PHONE), emails=points(normalize.EMAIL), wechat_ids=points(normalize.WECHAT),
            openids=points(normalize.OPENID), tags=contact.tags, preferences=dict(contact.preferences or {}),
            notes=contact.notes, custom=dict(contact.custom or {}), version=contact.version,
            created_at=contact.created_at, updated_at=contact.updated_at, erased=contact.erased_at is not None,
            masked=not user.can(security.VIEW_SENSITIVE), can_change=security.may_change(user, contact),
        )

    def as_dict(self) -> dict[str, Any]:
        """The API's representation of a contact."""
        return {
            "id": self.id, "kind": self.kind, "name": self.name, "company": self.company_name,
            "company_id": self.company_id, "position": self.position, "source": self.source,
            "owner_id": self.owner_id, "owner": self.owner_name, "stage": self.stage, "province": self.province,
            "city": self.city, "district": self.district, "street": self.street,
            "address_detail": self.address_detail, "phone": self.phone, "phones": self.phones, "email": self.email,
            "emails": self.emails, "wechat_ids": self.wechat_ids, "openids": self.openids, "tags": self.tags,
            "preferences": self.preferences, "notes": self.notes, "custom": self.custom, "version": self.version,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "erased": self.erased, "masked": self.masked,
        }


@dataclass(frozen=True)
class ContactSummary:
    """What a list shows of a contact, as one user may see it: the first phone number (masked
    unless they hold ``contacts.view_sensitive``), no other personal field. Read with three
    plain queries for a whole page by :func:`summaries`, without loading model objects."""

    id: int
    kind: str
    name: str
    position: str
    company_id: int | None
    company_name: str
    owner_id: int | None
    owner_name: str
    stage: str
    city: str
    phone: str
    tags: list[str]
    custom: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    erased: bool

    @property
    def display_name(self) -> str:
        return _("Erased contact #%(id)s", id=self.id) if self.erased else self.name


_COMPANY, _OWNER = aliased(Contact), aliased(User)


def summary_select() -> Any:
    """The SELECT whose rows :func:`summaries` reads: add the filters, order and limit."""
    return select(Contact.id, Contact.kind, Contact.name, Contact.position, Contact.company_id, _COMPANY.name,
                  Contact.owner_id, _OWNER.name, Contact.stage, Contact.city, Contact.custom, Contact.created_at,
                  Contact.updated_at, Contact.erased_at).select_from(Contact).outerjoin(
        _COMPANY, _COMPANY.id == Contact.company_id).outerjoin(_OWNER, _OWNER.id == Contact.owner_id)


def summaries(platform: Platform, db: Session, user: CurrentUser, rows: list[Any]) -> list[ContactSummary]:
    """:class:`ContactSummary` of the rows of a :func:`summary_select`, in their order; their
    first phone numbers and tags are read with two more queries."""
    ids = [row[0] for row in rows]
    phones: dict[int, str] = {}
    tags: dict[int, list[str]] = {}
    if ids:
        first_phones = select(ContactPoint.contact_id, ContactPoint.row_key, ContactPoint.value_sealed).where(
            ContactPoint.contact_id.in_(ids), ContactPoint.kind == normalize.PHONE).order_by(
            ContactPoint.contact_id, ContactPoint.position.desc(), ContactPoint.id.desc())
        for contact_id, row_key, sealed_value in db.execute(first_phones):
            phones[contact_id] = unseal(ContactPoint, "value", row_key, sealed_value) or ""  # the first comes last
        for contact_id, tag in db.execute(select(ContactTag.contact_id, ContactTag.tag)
                                          .where(ContactTag.contact_id.in_(ids)).order_by(ContactTag.tag)):
            tags.setdefault(contact_id, []).append(tag)
    return [ContactSummary(
        id=contact_id, kind=kind, name=name, position=position, company_id=company_id, company_name=company_name or "",
        owner_id=owner_id, owner_name=owner_name or "", stage=stage, city=city,
        phone=rbac.field_view(platform, user, ContactPoint, "value",
                              normalize.display_phone(phones[contact_id])) or "" if contact_id in phones else "",
        tags=tags.get(contact_id, []), custom=dict(custom or {}), created_at=created_at, updated_at=updated_at,
        erased=erased_at is not None)
        for (contact_id, kind, name, position, company_id, company_name, owner_id, owner_name, stage, city, custom,
             created_at, updated_at, erased_at) in rows]


def views_of(platform: Platform, db: Session, user: CurrentUser, contacts: list[Contact]) -> list[ContactView]:
    """Views of many contacts, with their owners' names in one query."""
    ids = {c.owner_id for c in contacts if c.owner_id is not None}
    owners = dict(db.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    return [ContactView.of(platform, db, user, contact, owners) for contact in contacts]


def assignable_users(db: Session) -> list[tuple[int, str]]:
    """``(id, name)`` of the users a contact can be given to."""
    return list(db.execute(select(User.id, User.name).where(User.active.is_(True)).order_by(User.name)).all())


# --- Labels ------------------------------------------------------------------------------------------------


def stage_label(stage: str) -> str:
    return {"lead": _("Lead"), "customer": _("Customer"), "former_customer": _("Former customer")}.get(stage, stage)


def kind_label(kind: str) -> str:
    return _("Company") if kind == "company" else _("Person")


def purpose_label(purpose: str) -> str:
    return {"marketing": _("marketing")}.get(purpose, purpose)


def channel_label(channel: str) -> str:
    return {"wechat": _("WeChat"), "sms": _("SMS"), "email": _("e-mail")}.get(channel, channel)


def field_label(name: str) -> str:
    """The label of a contact field (``phones``, ``custom.<key>``...) in the current language."""
    labels = {
        "id": _("Number (ID): update this contact"), "name": _("Name"), "kind": _("Person or company"),
        "phones": _("Phone"), "emails": _("E-mail"), "wechat_ids": _("WeChat id"), "openids": "OpenID",
        "company": _("Company"), "position": _("Position"), "province": _("Province"), "city": _("City"),
        "district": _("District"), "street": _("Street address"), "address_detail": _("Address details"),
        "tags": _("Tags"), "notes": _("Notes"), "source": _("Source"), "stage": _("Stage"),
        "owner": _("Owner (login)"), "owner_id": _("Owner"), "preferences": _("Preferences"),
    }
    return labels.get(name, name.removeprefix("custom."))


# --- The timeline -----------------------------------------------------------------------------------------


def timeline(platform: Platform, db: Session, user: CurrentUser, contact: Contact) -> list[TimelineEntry]:
    """The contact's timeline, newest first: notes, calls and visits staff logged, who changed
    what, consent decisions, and the entries other plugins add through ``contacts_timeline``."""
    authors = dict(db.execute(select(User.id, User.name)).all())
    kinds = {"note": _("Note"), "call": _("Call"), "visit": _("Visit")}
    entries = [TimelineEntry(at=a.happened_at, kind=a.kind, body=a.body, source="contacts",
                             title=" · ".join(filter(None, [kinds.get(a.kind, a.kind), authors.get(a.author_id or 0)])))
               for a in db.scalars(select(Activity).where(Activity.contact_id == contact.id))]
    entries += [_revision_entry(r) for r in db.scalars(select(Revision).where(Revision.contact_id == contact.id))
                if r.action != "updated" or r.fields]
    entries += [_consent_entry(c) for c in db.scalars(select(Consent).where(Consent.contact_id == contact.id))]
    for impl in platform.pm.hook.contacts_timeline.get_hookimpls():
        try:
            contributed = impl.function(session=db, contact_id=contact.id, user=user) or []
        except Exception:  # noqa: BLE001  (another plugin's bug must not take the contact page down)
            log.exception("contacts_timeline of %s failed", impl.plugin_name)
            continue
        entries += [entry for entry in contributed if isinstance(entry, TimelineEntry)]
    return sorted(entries, key=lambda entry: entry.at, reverse=True)


def _revision_entry(revision: Revision) -> TimelineEntry:
    who = revision.actor_name or _("The system")
    fields = _(", ").join(field_label(f) for f in revision.fields)
    title = {"created": _("%(who)s created the contact", who=who),
             "imported": _("%(who)s imported the contact", who=who),
             "merged": _("%(who)s merged a duplicate into it", who=who)}.get(
        revision.action, _("%(who)s changed %(fields)s", who=who, fields=fields))
    return TimelineEntry(at=revision.at, kind="revision", title=title, source="contacts")


def _consent_entry(consent: Consent) -> TimelineEntry:
    words = {"purpose": purpose_label(consent.purpose), "channel": channel_label(consent.channel)}
    title = (_("Consented to %(purpose)s by %(channel)s", **words) if consent.granted
             else _("Withdrew consent to %(purpose)s by %(channel)s", **words))
    return TimelineEntry(at=consent.at, kind="consent", title=title, body=consent.source, source="contacts")


def owner_logins(db: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    return dict(db.execute(select(User.id, User.login).where(User.id.in_(wanted))).all()) if wanted else {}
