"""The contacts plugin's tables.

A *contact* is a person or a company (``kind``); a person may belong to a company
(``company_id``). Phone numbers, e-mail addresses and WeChat ids live in
:class:`ContactPoint` rows, encrypted, each with a blind index of its canonical form for exact
search; the street address is encrypted too. Everything else a list filters or sorts on (name,
city, stage, owner, tags, custom fields) is plain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kehu import crypto
from kehu.db import Model, UTCDateTime, utcnow

PERSON, COMPANY = "person", "company"
LEAD, CUSTOMER, FORMER = "lead", "customer", "former_customer"
STAGES = (LEAD, CUSTOMER, FORMER)
NOTE, CALL, VISIT = "note", "call", "visit"
ACTIVITY_KINDS = (NOTE, CALL, VISIT)


class Contact(Model, crypto.SealedRow):
    """A person or a company. ``version`` is the optimistic lock: every update bumps it."""

    __tablename__ = "contacts_contact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default=PERSON, index=True)
    name: Mapped[str] = mapped_column(String(200))
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts_contact.id", ondelete="SET NULL"), nullable=True, index=True)
    position: Mapped[str] = mapped_column(String(120), default="")
    source: Mapped[str] = mapped_column(String(80), default="")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("kehu_user.id", ondelete="SET NULL"), nullable=True,
                                                 index=True)
    stage: Mapped[str] = mapped_column(String(20), default=LEAD, index=True)
    province: Mapped[str] = mapped_column(String(40), default="")
    city: Mapped[str] = mapped_column(String(40), default="", index=True)
    district: Mapped[str] = mapped_column(String(40), default="")
    street_sealed: Mapped[bytes | None] = mapped_column(crypto.Encrypted(), nullable=True)
    address_detail_sealed: Mapped[bytes | None] = mapped_column(crypto.Encrypted(), nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    preferences: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    company: Mapped[Contact | None] = relationship(remote_side=[id], lazy="joined", innerjoin=False)
    points: Mapped[list[ContactPoint]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", passive_deletes=True,
        order_by="(ContactPoint.kind, ContactPoint.position, ContactPoint.id)", lazy="selectin")
    tag_rows: Mapped[list[ContactTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="ContactTag.tag", lazy="selectin")

    street = crypto.sealed("street_sealed")
    address_detail = crypto.sealed("address_detail_sealed")

    @property
    def tags(self) -> list[str]:
        """In code point order, whatever the database's collation (the lists read them so)."""
        return sorted(row.tag for row in self.tag_rows)

    def values_of(self, kind: str) -> list[str]:
        """The plain values of this contact's ``kind`` points (``"phone"``, ``"email"``, ...)."""
        return [point.value for point in self.points if point.kind == kind]

    def first(self, kind: str) -> str:
        values = self.values_of(kind)
        return values[0] if values else ""


# Companies are found by name whatever the letter case (also by duplicate detection).
Index("ix_contacts_contact_lower_name", func.lower(Contact.name))
# The list's sort orders, each with the id that breaks its ties: a page is read in index order.
# With the column alone, PostgreSQL sorted each run of equal values and planned a parallel
# worker for it, whose start-up alone took 4 of the 7 ms of a contact list page.
Index("ix_contacts_contact_name_order", Contact.name, Contact.id)
Index("ix_contacts_contact_created_order", Contact.created_at, Contact.id)
Index("ix_contacts_contact_updated_order", Contact.updated_at, Contact.id)
# The list's usual filters in the list's default order (newest first): a page of a city's
# contacts is read in index order instead of sorting every contact of the city.
Index("ix_contacts_contact_city_created", Contact.city, Contact.created_at, Contact.id)
Index("ix_contacts_contact_stage_created", Contact.stage, Contact.created_at, Contact.id)
Index("ix_contacts_contact_owner_created", Contact.owner_id, Contact.created_at, Contact.id)


class ContactPoint(Model, crypto.SealedRow):
    """One phone number, e-mail address, WeChat id or OpenID of a contact.

    ``value`` is sealed (AES-GCM); ``lookup`` is the blind index of its canonical form
    (see :mod:`kehu_plugins.contacts.normalize`), the only way the database can find it.
    """

    __tablename__ = "contacts_contact_point"
    __table_args__ = (
        Index("ix_contacts_contact_point_kind_lookup", "kind", "lookup"),
        # A contact's points in their order: the list reads each contact's first phone number
        # from this index alone (it also serves every look-up by contact).
        Index("ix_contacts_contact_point_contact_order", "contact_id", "kind", "position", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts_contact.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    value_sealed: Mapped[bytes] = mapped_column(crypto.Encrypted())
    lookup: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(20), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    contact: Mapped[Contact] = relationship(back_populates="points")

    value = crypto.sealed("value_sealed")


class ContactTag(Model):
    __tablename__ = "contacts_tag"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts_contact.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class Activity(Model):
    """A note, call or visit a staff member logged on a contact's timeline."""

    __tablename__ = "contacts_activity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts_contact.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default=NOTE)
    body: Mapped[str] = mapped_column(Text, default="")
    happened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("kehu_user.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Revision(Model):
    """Who changed which fields of a contact, per version: the timeline's "edited" lines and
    what an edit conflict (HTTP 409) tells the second editor. Field names only, never values."""

    __tablename__ = "contacts_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts_contact.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20), default="updated")
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor_name: Mapped[str] = mapped_column(String(120), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consent(Model):
    """One consent decision (PIPL): append-only; the newest row per purpose and channel counts."""

    __tablename__ = "contacts_consent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts_contact.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(40), default="marketing")
    channel: Mapped[str] = mapped_column(String(20))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(80), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CustomField(Model):
    """A field an administrator added to contacts without code; values live in ``Contact.custom``."""

    __tablename__ = "contacts_custom_field"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    label: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    kind: Mapped[str] = mapped_column(String(20))
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    show_in_list: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class SavedFilter(Model):
    """A user's named list filter: the list page's query string."""

    __tablename__ = "contacts_saved_filter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("kehu_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    query: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportJob(Model):
    """A CSV or XLSX import started from the web UI or the API, run by a background job."""

    __tablename__ = "contacts_import_job"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("kehu_user.id", ondelete="SET NULL"), nullable=True,
                                                index=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    stored_name: Mapped[str] = mapped_column(String(80), default="")
    status: Mapped[str] = mapped_column(String(20), default="uploaded")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=True)
    headers: Mapped[list[str]] = mapped_column(JSON, default=list)
    mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: The rows that match an existing contact: ``{"line", "contact_id", "action"}`` (``contact_id``
    #: ``None``: a contact an earlier row of the file creates). What a dry run flags before saving.
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def seal(model: type[Model], attribute: str, row_key: str, plain: str | None) -> bytes | None:
    """What the sealed ``attribute`` of ``model`` stores for ``plain`` in the row with
    ``row_key``: for rows written with INSERT statements rather than model objects (bulk
    imports). The same as ``setattr(row, attribute, plain)`` on a model object."""
    if plain in (None, ""):
        return None
    return crypto.encrypt(plain, getattr(model, attribute).field.aad(row_key))


def unseal(model: type[Model], attribute: str, row_key: str, blob: bytes | None) -> str | None:
    """The plain value of a sealed ``attribute`` of ``model`` read with a SELECT of its columns
    (the row's ``row_key`` and the sealed column), without loading a model object: the reverse
    of :func:`seal`."""
    if blob is None:
        return None
    return crypto.decrypt(blob, getattr(model, attribute).field.aad(row_key))


MODELS: list[type[Model]] = [Contact, ContactPoint, ContactTag, Activity, Revision, Consent, CustomField, SavedFilter,
                             ImportJob]
