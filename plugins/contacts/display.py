"""What a user sees of a contact: :class:`ContactView` (personal fields masked unless the user
may view them), the timeline, and the labels of stored values in the current language."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from numbers import Number
from typing import Any, NamedTuple

from sqlalchemy import Select, Text, bindparam, cast, func, select
from sqlalchemy.orm import Session, aliased

from kehu import rbac
from kehu.auth import CurrentUser
from kehu.db import kept_rows, read_rows
from kehu.declarations import TimelineEntry
from kehu.i18n import gettext as _
from kehu.i18n import pick
from kehu.models import User
from kehu.platform import Platform

from . import normalize, security
from .models import Activity, Consent, Contact, ContactPoint, ContactTag, CustomField, Revision, unseal

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
        """``contact`` as ``user`` sees it; ``owners`` (user id → name) saves a query per contact.

        For a loaded contact (what a change answers, the export); pages and API reads use
        :func:`views`, which gives the same without loading model objects."""
        owner_name = ""
        if contact.owner_id is not None:
            if owners is not None:
                owner_name = owners.get(contact.owner_id, "")
            elif db is not None:
                owner_name = db.scalar(select(User.name).where(User.id == contact.owner_id)) or ""
        return _view_of(platform, user, contact, street=contact.street, address_detail=contact.address_detail,
                        points={kind: contact.values_of(kind) for kind in normalize.KINDS}, tags=contact.tags,
                        company_name=contact.company.name if contact.company else "", owner_name=owner_name)

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


def _view_of(platform: Platform, user: CurrentUser, contact: Any, *, street: str | None, address_detail: str | None,
             points: Mapping[str, list[str]], tags: list[str], company_name: str, owner_name: str) -> ContactView:
    """The view of ``contact`` (a :class:`Contact` or a row of :func:`view_select`, which name
    their plain columns alike) with its decrypted values, masked here for ``user``."""

    def shown(model: type, attribute: str, value: str | None) -> str:
        return rbac.field_view(platform, user, model, attribute, value or "") or ""

    def shown_points(kind: str) -> list[str]:
        values = points.get(kind, [])
        if kind == normalize.PHONE:
            values = [normalize.display_phone(value) for value in values]
        return [shown(ContactPoint, "value", value) for value in values]

    return ContactView(
        id=contact.id, kind=contact.kind, name=contact.name, company_id=contact.company_id, company_name=company_name,
        position=contact.position, source=contact.source, owner_id=contact.owner_id, owner_name=owner_name,
        stage=contact.stage, province=contact.province, city=contact.city, district=contact.district,
        street=shown(Contact, "street", street), address_detail=shown(Contact, "address_detail", address_detail),
        phones=shown_points(normalize.PHONE), emails=shown_points(normalize.EMAIL),
        wechat_ids=shown_points(normalize.WECHAT), openids=shown_points(normalize.OPENID), tags=tags,
        preferences=dict(contact.preferences or {}), notes=contact.notes, custom=dict(contact.custom or {}),
        version=contact.version, created_at=contact.created_at, updated_at=contact.updated_at,
        erased=contact.erased_at is not None, masked=not user.can(security.VIEW_SENSITIVE),
        can_change=security.may_change(user, contact),
    )


class ContactSummary(NamedTuple):
    """What a list shows of a contact, as one user may see it: the first phone number (masked
    unless they hold ``contacts.view_sensitive``), no other personal field. Read with one plain
    query for a whole page (:func:`summary_select`, :func:`summaries`), without loading model objects.
    (A named tuple: a page builds fifty, and a frozen dataclass sets each field through
    ``object.__setattr__``.)"""

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
    #: The values of the custom fields the list shows (see :func:`summaries`).
    custom: dict[str, Any]
    erased: bool

    @property
    def display_name(self) -> str:
        return _("Erased contact #%(id)s", id=self.id) if self.erased else self.name


_COMPANY, _OWNER = aliased(Contact), aliased(User)
#: A contact's tags in one text, joined by this character (tags hold no control characters).
_TAG_SEPARATOR = "\x1f"
# The statements of the read paths are built once: building a SELECT and working out its cache
# key cost about as much as running it on a page of rows. Statements are immutable: ``.where()``
# and the like return new ones.
_FIRST_PHONE = aliased(ContactPoint)
#: Each contact's first phone number (the lowest position), found in the points' order index.
_FIRST_PHONE_ID = select(ContactPoint.id).where(
    ContactPoint.contact_id == Contact.id, ContactPoint.kind == normalize.PHONE).order_by(
    ContactPoint.position, ContactPoint.id).limit(1).correlate(Contact).scalar_subquery()
_SUMMARY_SELECT = select(
    Contact.id, Contact.kind, Contact.name, Contact.position, Contact.company_id, _COMPANY.name, Contact.owner_id,
    _OWNER.name, Contact.stage, Contact.city, cast(Contact.custom, Text), Contact.erased_at.is_not(None),
    select(func.aggregate_strings(ContactTag.tag, _TAG_SEPARATOR)).where(
        ContactTag.contact_id == Contact.id).scalar_subquery(),
    _FIRST_PHONE.row_key, _FIRST_PHONE.value_sealed,
).select_from(Contact).outerjoin(_COMPANY, _COMPANY.id == Contact.company_id).outerjoin(
    _OWNER, _OWNER.id == Contact.owner_id).outerjoin(_FIRST_PHONE, _FIRST_PHONE.id == _FIRST_PHONE_ID)
_VIEW_SELECT = select(
    Contact.id, Contact.kind, Contact.name, Contact.company_id, _COMPANY.name.label("company_name"),
    Contact.position, Contact.source, Contact.owner_id, _OWNER.name.label("owner_name"), Contact.stage,
    Contact.province, Contact.city, Contact.district, Contact.row_key, Contact.street_sealed,
    Contact.address_detail_sealed, Contact.notes, Contact.preferences, Contact.custom, Contact.version,
    Contact.created_at, Contact.updated_at, Contact.erased_at,
    select(func.aggregate_strings(ContactTag.tag, _TAG_SEPARATOR)).where(
        ContactTag.contact_id == Contact.id).scalar_subquery().label("tags"),
).select_from(Contact).outerjoin(_COMPANY, _COMPANY.id == Contact.company_id).outerjoin(
    _OWNER, _OWNER.id == Contact.owner_id)
# In the order of ``Contact.points``: by kind, then position.
_POINTS = select(ContactPoint.contact_id, ContactPoint.kind, ContactPoint.row_key, ContactPoint.value_sealed).where(
    ContactPoint.contact_id.in_(bindparam("ids"))).order_by(
    ContactPoint.contact_id, ContactPoint.kind, ContactPoint.position, ContactPoint.id)


def summary_select() -> Select[Any]:
    """The SELECT whose rows :func:`summaries` reads: add the filters, order and limit."""
    return _SUMMARY_SELECT


def summaries(platform: Platform, db: Session, user: CurrentUser, rows: Sequence[Any],
              listed: Collection[str] = ()) -> list[ContactSummary]:
    """:class:`ContactSummary` of the rows of a :func:`summary_select` (columns added after its
    own are ignored), in their order: their tags and first phone numbers come in the rows, so no
    other query runs. Their ``custom`` holds the values of the custom fields whose keys are
    ``listed``: the others are not decoded."""
    shown = rbac.field_viewer(platform, user, ContactPoint, "value")
    # Built with tuple.__new__ in ContactSummary's field order: a named tuple's own constructor
    # binds sixteen arguments in Python, which cost as much as the rest of the row.
    return [tuple.__new__(ContactSummary, (
        contact_id, kind, name, position, company_id, company_name or "", owner_id, owner_name or "", stage, city,
        shown(normalize.display_phone(unseal(ContactPoint, "value", phone_key, sealed_phone) or ""))
        if sealed_phone is not None else "",
        _tag_list(tags), _listed_values(custom, listed) if listed else {},
        bool(erased)))
        for (contact_id, kind, name, position, company_id, company_name, owner_id, owner_name, stage, city, custom,
             erased, tags, phone_key, sealed_phone, *_more) in rows]


def _listed_values(custom_json: str | None, listed: Collection[str]) -> dict[str, Any]:
    values = json.loads(custom_json) if custom_json else None
    return {key: values[key] for key in listed if key in values} if values else {}


def view_select() -> Select[Any]:
    """The SELECT whose rows :func:`views` reads: add the filters, order and limit."""
    return _VIEW_SELECT


def views(platform: Platform, db: Session, user: CurrentUser, rows: Sequence[Any]) -> list[ContactView]:
    """:class:`ContactView` of the rows of a :func:`view_select`, in their order, the same as
    :meth:`ContactView.of` gives for their :class:`Contact`; their phone numbers, e-mails, WeChat
    ids are read with one more query, without loading model objects; the tags come in the rows."""
    points = _points_of(db, [row.id for row in rows])
    return [_view_of(platform, user, row, street=unseal(Contact, "street", row.row_key, row.street_sealed),
                     address_detail=unseal(Contact, "address_detail", row.row_key, row.address_detail_sealed),
                     points=points.get(row.id, {}), tags=_tag_list(row.tags), company_name=row.company_name or "",
                     owner_name=row.owner_name or "")
            for row in rows]


def _points_of(db: Session, ids: list[int]) -> dict[int, dict[str, list[str]]]:
    """The plain values of the contacts' points: contact id → kind → values, in their order."""
    points: dict[int, dict[str, list[str]]] = {}
    if ids:
        for contact_id, kind, row_key, sealed_value in read_rows(db, _POINTS, {"ids": ids}):
            value = unseal(ContactPoint, "value", row_key, sealed_value) or ""
            points.setdefault(contact_id, {}).setdefault(kind, []).append(value)
    return points


def _tag_list(joined: str | None) -> list[str]:
    """The tags of a row's aggregated ``tags`` column, in code point order (the same on every
    database, whatever its collation)."""
    return sorted(joined.split(_TAG_SEPARATOR)) if joined else []


_ASSIGNABLE_USERS = select(User.id, User.name).where(User.active.is_(True)).order_by(User.name)


def assignable_users(db: Session) -> list[tuple[int, str]]:
    """``(id, name)`` of the users a page offers to give a contact to, kept for a moment
    (:func:`kehu.db.kept_rows`): saving checks the chosen owner itself."""
    return list(kept_rows(db, _ASSIGNABLE_USERS))


# --- Labels ------------------------------------------------------------------------------------------------


def stage_label(stage: str) -> str:
    return {"lead": _("Lead"), "customer": _("Customer"), "former_customer": _("Former customer")}.get(stage, stage)


def kind_label(kind: str) -> str:
    return _("Company") if kind == "company" else _("Person")


def purpose_label(purpose: str) -> str:
    return {"marketing": _("marketing")}.get(purpose, purpose)


def channel_label(channel: str) -> str:
    return {"wechat": _("WeChat"), "sms": _("SMS"), "email": _("e-mail")}.get(channel, channel)


def field_labels() -> dict[str, str]:
    """The labels of the contact fields in the current language, by field name."""
    return {
        "id": _("Number (ID): update this contact"), "name": _("Name"), "kind": _("Person or company"),
        "phones": _("Phone"), "emails": _("E-mail"), "wechat_ids": _("WeChat id"), "openids": "OpenID",
        "company": _("Company"), "position": _("Position"), "province": _("Province"), "city": _("City"),
        "district": _("District"), "street": _("Street address"), "address_detail": _("Address details"),
        "tags": _("Tags"), "notes": _("Notes"), "source": _("Source"), "stage": _("Stage"),
        "owner": _("Owner (login)"), "owner_id": _("Owner"), "preferences": _("Preferences"),
    }


def field_label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The label of a contact field (``phones``, ``custom.<key>``...) in the current language;
    pass ``labels`` (:func:`field_labels`) when labelling many fields."""
    return (labels if labels is not None else field_labels()).get(name, name.removeprefix("custom."))


def listed_keys(fields: Iterable[CustomField]) -> tuple[str, ...]:
    """The keys of the custom fields a list shows as columns."""
    return tuple(field.key for field in fields if field.show_in_list)


def listed_columns(fields: Iterable[CustomField]) -> list[tuple[str, str]]:
    """``(key, label)`` of the custom fields a list shows as columns, labelled in the current language."""
    return [(field.key, pick(field.label, field.key)) for field in fields if field.show_in_list]


def custom_text(value: Any) -> str:
    """A custom field's value as pages show it: ``—`` when empty, choices joined by commas."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, str | Number):
        return str(value)
    return ", ".join(str(item) for item in value)


# --- The timeline -----------------------------------------------------------------------------------------


_ACTIVITIES = select(Activity.happened_at, Activity.kind, Activity.body, User.name).outerjoin(
    User, User.id == Activity.author_id).where(Activity.contact_id == bindparam("contact_id")).order_by(Activity.id)
_REVISIONS = select(Revision.at, Revision.action, Revision.fields, Revision.actor_name).where(
    Revision.contact_id == bindparam("contact_id")).order_by(Revision.id)
_CONSENTS = select(Consent.at, Consent.purpose, Consent.channel, Consent.granted, Consent.source,
                   Consent.recorded_by_id).where(Consent.contact_id == bindparam("contact_id")).order_by(
    Consent.at.desc(), Consent.id.desc())


def consent_rows(db: Session, contact_id: int) -> Sequence[Any]:
    """The contact's consent decisions, newest first, as plain rows (``at``, ``purpose``,
    ``channel``, ``granted``, ``source``, ``recorded_by_id``): what the timeline and
    :func:`.privacy.consents` show, read once for a page that shows both."""
    return read_rows(db, _CONSENTS, {"contact_id": contact_id})


def timeline(platform: Platform, db: Session, user: CurrentUser, contact_id: int,
             consents: Sequence[Any] | None = None) -> list[TimelineEntry]:
    """The contact's timeline, newest first: notes, calls and visits staff logged, who changed
    what, consent decisions, and the entries other plugins add through ``contacts_timeline``.
    ``consents``: the contact's :func:`consent_rows` when the caller read them already."""
    wanted = {"contact_id": contact_id}
    kinds = {"note": _("Note"), "call": _("Call"), "visit": _("Visit")}
    entries = [TimelineEntry(at=at, kind=kind, body=body, source="contacts",
                             title=" · ".join(filter(None, [kinds.get(kind, kind), author])))
               for at, kind, body, author in db.execute(_ACTIVITIES, wanted)]
    labels = field_labels()
    entries += [_revision_entry(revision, labels) for revision in db.execute(_REVISIONS, wanted)
                if revision.action != "updated" or revision.fields]
    entries += [_consent_entry(consent)
                for consent in (consent_rows(db, contact_id) if consents is None else consents)]
    for impl in platform.pm.hook.contacts_timeline.get_hookimpls():
        try:
            contributed = impl.function(session=db, contact_id=contact_id, user=user) or []
        except Exception:  # noqa: BLE001  (another plugin's bug must not take the contact page down)
            log.exception("contacts_timeline of %s failed", impl.plugin_name)
            continue
        entries += [entry for entry in contributed if isinstance(entry, TimelineEntry)]
    return sorted(entries, key=lambda entry: entry.at, reverse=True)


def _revision_entry(revision: Any, labels: Mapping[str, str]) -> TimelineEntry:
    """The entry of a row of ``_REVISIONS``."""
    who = revision.actor_name or _("The system")
    if revision.action == "created":
        title = _("%(who)s created the contact", who=who)
    elif revision.action == "imported":
        title = _("%(who)s imported the contact", who=who)
    elif revision.action == "merged":
        title = _("%(who)s merged a duplicate into it", who=who)
    else:
        fields = _(", ").join(field_label(name, labels) for name in revision.fields)
        title = _("%(who)s changed %(fields)s", who=who, fields=fields)
    return TimelineEntry(at=revision.at, kind="revision", title=title, source="contacts")


def _consent_entry(consent: Any) -> TimelineEntry:
    """The entry of a row of ``_CONSENTS``."""
    words = {"purpose": purpose_label(consent.purpose), "channel": channel_label(consent.channel)}
    title = (_("Consented to %(purpose)s by %(channel)s", **words) if consent.granted
             else _("Withdrew consent to %(purpose)s by %(channel)s", **words))
    return TimelineEntry(at=consent.at, kind="consent", title=title, body=consent.source, source="contacts")


def owner_logins(db: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    return dict(db.execute(select(User.id, User.login).where(User.id.in_(wanted))).all()) if wanted else {}
