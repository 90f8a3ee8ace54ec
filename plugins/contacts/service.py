"""The rules for changing contacts, in one place: the API, the pages, the importer, the demo
data and the command line all call these functions, so every rule is enforced once.

Each function works in the caller's session (its transaction) and takes the acting user (a
:class:`kehu.auth.CurrentUser`; ``None`` for trusted code acting as the system). Problems are
raised as :class:`ContactError` subclasses carrying an HTTP status, so the API and the pages can
answer them directly.

Reading lists is in :mod:`.listing`; what a user sees of a contact (masking, the timeline) in
:mod:`.display`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from kehu import audit, events, rbac
from kehu.auth import CurrentUser
from kehu.db import utcnow
from kehu.i18n import gettext as _
from kehu.models import User
from kehu.platform import Platform

from . import normalize, security
from .display import ContactView, field_label
from .models import (
    ACTIVITY_KINDS,
    COMPANY,
    PERSON,
    STAGES,
    Activity,
    Consent,
    Contact,
    ContactPoint,
    ContactTag,
    CustomField,
    Revision,
    SavedFilter,
)

MAX_POINTS_PER_KIND = 10
MAX_TAGS = 30
MAX_TAG_LENGTH = 40

#: Plain text fields a client may set, with their maximum length.
TEXT_FIELDS = {"name": 200, "position": 120, "source": 80, "province": 40, "city": 40, "district": 40,
               "notes": 20000}
#: Encrypted text fields (personal data), with their maximum length.
SEALED_FIELDS = {"street": 200, "address_detail": 500}
#: Input lists of contact points, by the kind of point they hold ...
POINT_LISTS = {"phones": normalize.PHONE, "emails": normalize.EMAIL, "wechat_ids": normalize.WECHAT,
               "openids": normalize.OPENID}
#: ... and the singular inputs, which set only the first point of their kind.
POINT_SINGLES = {"phone": normalize.PHONE, "email": normalize.EMAIL, "wechat_id": normalize.WECHAT,
                 "openid": normalize.OPENID}
LIST_OF_KIND = {kind: name for name, kind in POINT_LISTS.items()}
CUSTOM_KINDS = ("text", "number", "date", "choice", "multi_choice")


# --- Errors ----------------------------------------------------------------------------------


class ContactError(Exception):
    """A request that cannot be carried out; ``status`` is the HTTP status to answer with.

    ``fields`` holds a message per input field; ``extra`` what else the answer carries (the
    ``duplicates`` found, the ``changes`` of an edit conflict).
    """

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra


class NotFound(ContactError):
    status, code = 404, "not_found"


class Forbidden(ContactError):
    status, code = 403, "forbidden"


class Invalid(ContactError):
    status, code = 422, "invalid"


class DuplicatesFound(ContactError):
    """The contact may exist already: ``extra["duplicates"]`` lists the candidates."""

    status, code = 409, "duplicate"


class EditConflict(ContactError):
    """Someone saved the contact after the version the client edited (see :func:`conflict`)."""

    status, code = 409, "edit_conflict"


class InUse(ContactError):
    status, code = 409, "in_use"


# --- Reading input -----------------------------------------------------------------------------


class Point(NamedTuple):
    """A contact point as entered (``shown``) and in canonical form (what the index is of)."""

    shown: str
    canonical: str


@dataclass
class ContactInput:
    """Validated input for :func:`create_contact` or :func:`update_contact`: only what was sent."""

    values: dict[str, Any] = field(default_factory=dict)  # plain and sealed fields, owner_id, preferences
    points: dict[str, list[Point]] = field(default_factory=dict)  # kind -> every point of that kind
    first_points: dict[str, Point] = field(default_factory=dict)  # kind -> the first point only
    tags: list[str] | None = None
    company: str | None = None  # a company's name; "" removes the company
    company_id: int | None = None
    custom: dict[str, Any] | None = None
    allow_duplicate: bool = False
    version: int | None = None

    def changed_fields(self) -> list[str]:
        """The names of the fields this input sets (for revisions, events and the audit log)."""
        names = list(self.values)
        names += [LIST_OF_KIND[kind] for kind in {*self.points, *self.first_points}]
        if self.tags is not None:
            names.append("tags")
        if self.company is not None or self.company_id is not None:
            names.append("company")
        names += [f"custom.{key}" for key in self.custom or {}]
        return sorted(set(names))

    def lookups(self) -> list[tuple[str, str]]:
        """``(kind, canonical value)`` of every contact point this input sets."""
        pairs = [(kind, point.canonical) for kind, points in self.points.items() for point in points]
        return pairs + [(kind, point.canonical) for kind, point in self.first_points.items()]


def text_of(value: Any) -> str:
    return "" if value is None else str(value).strip()


def list_of(value: Any) -> list[str]:
    """A list from a JSON list or a text separated by commas (also Chinese ones), semicolons,
    enumeration commas, bars or line breaks."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,，;；、|\n]", value) if part.strip()]
    if isinstance(value, (list, tuple)):
        return [text_of(part) for part in value if text_of(part)]
    return [text_of(value)]


def flag_of(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_input(data: Mapping[str, Any], custom_fields: list[CustomField], *, creating: bool) -> ContactInput:
    """Check ``data`` (a JSON object or a submitted form) and return what it sets.

    Raises :class:`Invalid` with a message per field when anything is wrong, so a form can show
    every problem at once.
    """
    result = ContactInput()
    problems: dict[str, str] = {}

    for name, limit in {**TEXT_FIELDS, **SEALED_FIELDS}.items():
        if name in data:
            result.values[name] = text_of(data[name])
            if len(result.values[name]) > limit:
                problems[name] = _("At most %(n)s characters.", n=limit)
    if (creating or "name" in data) and not result.values.get("name"):
        problems["name"] = _("Enter a name.")
    if creating or "kind" in data:
        result.values["kind"] = text_of(data.get("kind")) or PERSON
        if result.values["kind"] not in (PERSON, COMPANY):
            problems["kind"] = _("Choose a person or a company.")
    if "stage" in data:
        result.values["stage"] = text_of(data["stage"]) or STAGES[0]
        if result.values["stage"] not in STAGES:
            problems["stage"] = _("Choose one of: %(choices)s.", choices=", ".join(STAGES))
    if "owner_id" in data:
        try:
            result.values["owner_id"] = int(data["owner_id"]) if text_of(data["owner_id"]) else None
        except (TypeError, ValueError):
            problems["owner_id"] = _("Choose a user.")
    if "preferences" in data:
        if isinstance(data["preferences"], dict):
            result.values["preferences"] = dict(data["preferences"])
        else:
            problems["preferences"] = _("Preferences are an object of names and values.")

    _parse_points(data, result, problems)

    if "tags" in data:
        result.tags = list(dict.fromkeys(list_of(data["tags"])))
        if len(result.tags) > MAX_TAGS or any(len(tag) > MAX_TAG_LENGTH for tag in result.tags):
            problems["tags"] = _("At most %(n)s tags of up to 40 characters.", n=MAX_TAGS)
    if text_of(data.get("company_id")):
        try:
            result.company_id = int(data["company_id"])
        except (TypeError, ValueError):
            problems["company_id"] = _("Choose a company.")
    elif "company" in data:
        result.company = text_of(data["company"])
        if len(result.company) > TEXT_FIELDS["name"]:
            problems["company"] = _("At most %(n)s characters.", n=TEXT_FIELDS["name"])

    custom = data.get("custom")
    if custom is not None and not isinstance(custom, Mapping):
        problems["custom"] = _("Custom fields are an object of field keys and values.")
        custom = None
    values, custom_problems = parse_custom(custom or {}, custom_fields, creating=creating)
    problems.update(custom_problems)
    if custom is not None or values:
        result.custom = values

    result.allow_duplicate = flag_of(data.get("allow_duplicate", ""))
    if text_of(data.get("version")):
        try:
            result.version = int(str(data["version"]))
        except ValueError:
            problems["version"] = _("The version is a whole number.")
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    return result


def _parse_points(data: Mapping[str, Any], result: ContactInput, problems: dict[str, str]) -> None:
    for name, kind in POINT_LISTS.items():
        if name not in data:
            continue
        raw_values = list_of(data[name])
        if len(raw_values) > MAX_POINTS_PER_KIND:
            problems[name] = _("At most %(n)s values.", n=MAX_POINTS_PER_KIND)
        points = []
        for raw in raw_values:
            try:
                points.append(point_of(kind, raw))
            except normalize.InvalidValue as exc:
                problems[name] = str(exc)
        result.points[kind] = unique(points)
    for name, kind in POINT_SINGLES.items():
        if name not in data or kind in result.points:
            continue
        raw = text_of(data[name])
        try:
            if raw:
                result.first_points[kind] = point_of(kind, raw)
            else:
                result.points[kind] = []  # "phone": "" removes the phone numbers
        except normalize.InvalidValue as exc:
            problems[name] = str(exc)


def point_of(kind: str, raw: str) -> Point:
    """A point from what someone typed; raises :class:`normalize.InvalidValue`.

    Phone numbers and e-mail addresses are kept in canonical form (shown formatted); a WeChat id
    as typed, since its letter case is how its owner writes it.
    """
    canonical = normalize.canonical(kind, raw)
    return Point(text_of(raw) if kind == normalize.WECHAT else canonical, canonical)


def unique(points: Iterable[Point]) -> list[Point]:
    """``points`` without repeats (same canonical value), in order."""
    seen: dict[str, Point] = {}
    for point in points:
        seen.setdefault(point.canonical, point)
    return list(seen.values())


def parse_custom(data: Mapping[str, Any], custom_fields: list[CustomField], *,
                 creating: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate custom field values given by field key; returns ``(values, problems)``."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    known = {f.key: f for f in custom_fields if f.active}
    for key in data:
        if key not in known:
            problems[f"custom.{key}"] = _("There is no custom field %(key)s.", key=key)
    for key, definition in known.items():
        if key not in data:
            if creating and definition.required:
                problems[f"custom.{key}"] = _("This field is required.")
            continue
        try:
            values[key] = custom_value(definition, data[key])
        except ValueError as exc:
            problems[f"custom.{key}"] = str(exc)
            continue
        if definition.required and values[key] in (None, "", []):
            problems[f"custom.{key}"] = _("This field is required.")
    return values, problems


def custom_value(definition: CustomField, raw: Any) -> Any:
    """``raw`` as the stored value of a custom field; raises ``ValueError`` saying why not.

    Numbers are stored as numbers, dates as ``YYYY-MM-DD`` (so they sort and compare as text),
    multi-choice values as a list.
    """
    if raw is None or raw == "" or raw == []:
        return [] if definition.kind == "multi_choice" else None
    if definition.kind == "text":
        text = text_of(raw)
        if len(text) > 500:
            raise ValueError(_("At most %(n)s characters.", n=500))
        return text
    if definition.kind == "number":
        try:
            number = float(str(raw).replace(",", "").strip())
        except ValueError:
            raise ValueError(_("Enter a number.")) from None
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if definition.kind == "date":
        if isinstance(raw, (date, datetime)):
            return (raw.date() if isinstance(raw, datetime) else raw).isoformat()
        try:
            return date.fromisoformat(text_of(raw).replace("/", "-")).isoformat()
        except ValueError:
            raise ValueError(_("Enter a date as YYYY-MM-DD.")) from None
    if definition.kind == "choice":
        if text_of(raw) not in definition.choices:
            raise ValueError(_("Choose one of: %(choices)s.", choices=", ".join(definition.choices)))
        return text_of(raw)
    chosen = list(dict.fromkeys(list_of(raw)))
    if any(choice not in definition.choices for choice in chosen):
        raise ValueError(_("Choose from: %(choices)s.", choices=", ".join(definition.choices)))
    return chosen


def custom_fields(db: Session, active_only: bool = True) -> list[CustomField]:
    query = select(CustomField).order_by(CustomField.position, CustomField.id)
    if active_only:
        query = query.where(CustomField.active.is_(True))
    return list(db.scalars(query))


# --- Finding contacts -------------------------------------------------------------------------------


def get_visible(platform: Platform, db: Session, user: CurrentUser, contact_id: Any) -> Contact:
    """The contact if ``user`` may see it; :class:`NotFound` otherwise, also when it exists
    but belongs to someone else (its existence is nobody else's business)."""
    try:
        contact_id = int(contact_id)
    except (TypeError, ValueError):
        raise NotFound(_("There is no such contact.")) from None
    contact = rbac.visible(platform, db, Contact, user, contact_id) if user.can(security.READ) else None
    if contact is None:
        raise NotFound(_("There is no such contact."))
    return contact


def get_changeable(platform: Platform, db: Session, user: CurrentUser, contact_id: Any) -> Contact:
    """The contact if ``user`` may see and change it (:class:`Forbidden` when only see it)."""
    contact = get_visible(platform, db, user, contact_id)
    if not security.may_change(user, contact):
        raise Forbidden(_("You may not change this contact."))
    if contact.erased_at is not None:
        raise Forbidden(_("This contact was erased and cannot be changed."))
    return contact


def ids_with_point(kind: str, canonical: str) -> Select[Any]:
    """``SELECT contact_id`` of the points of ``kind`` whose canonical value is ``canonical``:
    an equality on the blind index, the only way the database can find an encrypted value."""
    return select(ContactPoint.contact_id).where(ContactPoint.kind == kind,
                                                 ContactPoint.lookup == normalize.lookup(kind, canonical))


def find_by_point(db: Session, kind: str, raw: str) -> list[Contact]:
    """The contacts with this phone number (e-mail, ...) in any format. No record rules: for
    trusted code such as the ``kehu_person_find_or_create`` hook."""
    try:
        canonical = normalize.canonical(kind, raw)
    except normalize.InvalidValue:
        return []
    return list(db.scalars(select(Contact).where(Contact.id.in_(ids_with_point(kind, canonical)))
                           .order_by(Contact.id)))


def find_company(db: Session, name: str) -> Contact | None:
    """The company of this name (letter case aside), the oldest when there are several."""
    return db.scalar(select(Contact).where(Contact.kind == COMPANY, func.lower(Contact.name) == name.lower())
                     .order_by(Contact.id).limit(1))


# --- Duplicates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Duplicate:
    """An existing contact a new one may duplicate, and why (``phone``, ``email``, ``wechat``,
    ``openid`` or ``name_company``). One the user may not see is described without its name."""

    contact_id: int
    reason: str
    visible: bool
    name: str = ""
    owner_name: str = ""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.contact_id, "reason": self.reason, "visible": self.visible,
                                "owner": self.owner_name}
        if self.visible:
            data.update(name=self.name, url=f"/contacts/{self.contact_id}")
        return data


def find_duplicates(platform: Platform, db: Session, user: CurrentUser | None, lookups: list[tuple[str, str]],
                    name: str = "", company_id: int | None = None, exclude_id: int | None = None) -> list[Duplicate]:
    """Contacts with one of these ``(kind, canonical)`` points, or named ``name`` at the company
    ``company_id``; ``exclude_id`` is the contact being changed."""
    reasons: dict[int, str] = {}
    for kind, canonical in lookups:
        for contact_id in db.scalars(ids_with_point(kind, canonical)):
            reasons.setdefault(contact_id, kind)
    if name and company_id:
        same_name = select(Contact.id).where(func.lower(Contact.name) == name.lower(), Contact.company_id == company_id)
        for contact_id in db.scalars(same_name):
            reasons.setdefault(contact_id, "name_company")
    if exclude_id is not None:
        reasons.pop(exclude_id, None)
    if not reasons:
        return []
    rows = db.execute(select(Contact.id, Contact.name, User.name).outerjoin(User, User.id == Contact.owner_id)
                      .where(Contact.id.in_(reasons), Contact.erased_at.is_(None)).order_by(Contact.id)).all()
    visible = set(reasons) if user is None else set(db.scalars(
        rbac.restrict(platform, select(Contact.id).where(Contact.id.in_(reasons)), Contact, user)))
    return [Duplicate(contact_id=contact_id, reason=reasons[contact_id], visible=contact_id in visible,
                      name=contact_name, owner_name=owner_name or "") for contact_id, contact_name, owner_name in rows]


# --- Creating and changing -------------------------------------------------------------------------------


def _check_personal_writes(platform: Platform, user: CurrentUser, data: ContactInput, creating: bool) -> None:
    """Personal fields need their write permission; changing existing ones the view
    permission too, so nobody overwrites what they were only shown masked."""
    sent: dict[str, tuple[type, str]] = {name: (Contact, name) for name in data.values if name in SEALED_FIELDS}
    for kind in {*data.points, *data.first_points}:
        sent[LIST_OF_KIND[kind]] = (ContactPoint, "value")
    problems = {name: _("You may not change this field.") for name, (model, attribute) in sent.items()
                if not rbac.may_write_field(platform, user, model, attribute)
                or (not creating and not user.can(security.VIEW_SENSITIVE))}
    if problems:
        raise Forbidden(_("You may not change some of these fields."), problems)


def _check_owner(db: Session, user: CurrentUser, owner_id: int | None) -> None:
    if owner_id is None or owner_id == user.id:
        return
    if not user.can(security.WRITE_ALL):
        raise Forbidden(_("You may only assign contacts to yourself."), {"owner_id": _("Choose yourself.")})
    if db.scalar(select(User.id).where(User.id == owner_id, User.active.is_(True))) is None:
        raise Invalid(_("Some fields are not valid."), {"owner_id": _("There is no such user.")})


@dataclass
class _Company:
    """The company an input asks for: an existing one, a new one to create by name, or none."""

    mentioned: bool
    company_id: int | None = None
    new_name: str = ""


def _company_of(db: Session, data: ContactInput) -> _Company:
    if data.company_id is not None:
        company = db.get(Contact, data.company_id)
        if company is None or company.kind != COMPANY:
            raise Invalid(_("Some fields are not valid."), {"company_id": _("There is no such company.")})
        return _Company(True, company.id)
    if data.company is None:
        return _Company(False)
    if not data.company:
        return _Company(True)
    existing = find_company(db, data.company)
    return _Company(True, existing.id) if existing else _Company(True, new_name=data.company)


def _company_id(db: Session, user: CurrentUser | None, company: _Company, owner_id: int | None) -> int | None:
    """The id of ``company``, creating it first when it is new."""
    if not company.new_name:
        return company.company_id
    created = Contact(kind=COMPANY, name=company.new_name, owner_id=owner_id, created_by_id=getattr(user, "id", None),
                      updated_by_id=getattr(user, "id", None), points=[], tag_rows=[], custom={}, preferences={})
    db.add(created)
    db.flush()
    _revision(db, created, "created", ["name", "kind"], user)
    events.emit(db, "contact.created", {"contact_id": created.id}, actor_id=getattr(user, "id", None))
    return created.id


def _set_points(contact: Contact, kind: str, wanted: list[Point]) -> None:
    """Make ``contact``'s points of ``kind`` exactly ``wanted``, in order, keeping the rows
    (and so the ids) of the points it already has."""
    existing = {point.lookup: point for point in contact.points if point.kind == kind}
    kept = []
    for position, wanted_point in enumerate(wanted):
        lookup = normalize.lookup(kind, wanted_point.canonical)
        point = existing.pop(lookup, None) or ContactPoint(kind=kind, value=wanted_point.shown, lookup=lookup)
        point.position = position
        kept.append(point)
    contact.points = [p for p in contact.points if p.kind != kind] + kept


def _points_of(contact: Contact, kind: str) -> list[Point]:
    return [Point(p.value, normalize.canonical(kind, p.value)) for p in contact.points if p.kind == kind]


def _apply(contact: Contact, data: ContactInput) -> None:
    for name, value in data.values.items():
        setattr(contact, name, value)
    for kind, points in data.points.items():
        _set_points(contact, kind, points)
    for kind, first in data.first_points.items():
        _set_points(contact, kind, unique([first, *_points_of(contact, kind)[1:]]))
    if data.tags is not None:
        contact.tag_rows = [row for row in contact.tag_rows if row.tag in data.tags] + [
            ContactTag(tag=tag) for tag in data.tags if tag not in contact.tags]
    if data.custom is not None:
        contact.custom = {**(contact.custom or {}), **data.custom}


def _revision(db: Session, contact: Contact, action: str, fields: Iterable[str], user: CurrentUser | None) -> None:
    db.add(Revision(contact_id=contact.id, version=contact.version, action=action, fields=sorted(set(fields)),
                    actor_id=getattr(user, "id", None), actor_name=getattr(user, "name", "") or ""))


def create_contact(platform: Platform, db: Session, user: CurrentUser | None, data: ContactInput, *,
                   action: str = "created") -> Contact:
    """Create a contact from validated input; it belongs to ``user`` unless ``owner_id`` says
    otherwise. Raises :class:`DuplicatesFound`, before writing anything, when it may exist
    already (unless ``data.allow_duplicate``)."""
    owner_id = data.values.get("owner_id", getattr(user, "id", None))
    if user is not None:
        if not user.can(security.WRITE):
            raise Forbidden(_("You may not create contacts."))
        _check_personal_writes(platform, user, data, creating=True)
        _check_owner(db, user, owner_id)
    company = _company_of(db, data)
    if not data.allow_duplicate:
        duplicates = find_duplicates(platform, db, user, data.lookups(), name=data.values.get("name", ""),
                                     company_id=company.company_id)
        if duplicates:
            raise DuplicatesFound(_("This contact may already exist."), duplicates=duplicates)
    contact = Contact(owner_id=owner_id, created_by_id=getattr(user, "id", None),
                      updated_by_id=getattr(user, "id", None), points=[], tag_rows=[], custom={}, preferences={})
    contact.company_id = _company_id(db, user, company, owner_id)
    _apply(contact, data)
    db.add(contact)
    db.flush()
    _revision(db, contact, action, data.changed_fields(), user)
    events.emit(db, "contact.created", {"contact_id": contact.id}, actor_id=getattr(user, "id", None))
    return contact


def update_contact(platform: Platform, db: Session, user: CurrentUser | None, contact: Contact, data: ContactInput,
                   *, action: str = "updated") -> Contact:
    """Apply ``data`` to ``contact`` (found with :func:`get_changeable`).

    When ``data.version`` is given and the contact was saved since, raises
    :class:`EditConflict` saying who changed what; nothing is written. Two saves racing each
    other are caught by the version column too (SQLAlchemy's ``version_id_col``).
    """
    if data.version is not None and data.version != contact.version:
        raise conflict(platform, db, user, contact, data.version)
    if user is not None:
        _check_personal_writes(platform, user, data, creating=False)
        if data.values.get("owner_id", contact.owner_id) != contact.owner_id:
            _check_owner(db, user, data.values["owner_id"])
    company = _company_of(db, data)
    if not data.allow_duplicate:
        have = {(p.kind, p.lookup) for p in contact.points}
        new = [(kind, canonical) for kind, canonical in data.lookups()
               if (kind, normalize.lookup(kind, canonical)) not in have]
        duplicates = find_duplicates(platform, db, user, new, exclude_id=contact.id)
        if duplicates:
            raise DuplicatesFound(_("Another contact has this phone number or e-mail address."), duplicates=duplicates)
    if company.mentioned:
        contact.company_id = _company_id(db, user, company, contact.owner_id)
    _apply(contact, data)
    contact.updated_at = utcnow()  # the row is always updated, which bumps the version
    contact.updated_by_id = getattr(user, "id", None)
    try:
        db.flush()
    except StaleDataError:
        raise EditConflict(_("Someone else saved this contact while you were editing it.")) from None
    _revision(db, contact, action, data.changed_fields(), user)
    events.emit(db, "contact.updated", {"contact_id": contact.id, "fields": data.changed_fields()},
                actor_id=getattr(user, "id", None))
    return contact


def conflict(platform: Platform, db: Session, user: CurrentUser | None, contact: Contact,
             edited_version: int) -> EditConflict:
    """The :class:`EditConflict` for someone who edited ``edited_version`` of ``contact``:
    ``extra`` holds ``changes`` (version, by, at, fields of each save since), ``current`` (the
    contact as they may see it now) and both version numbers."""
    revisions = list(db.scalars(select(Revision).where(Revision.contact_id == contact.id,
                                                       Revision.version > edited_version).order_by(Revision.version)))
    changes = [{"version": r.version, "by": r.actor_name, "at": r.at.isoformat(), "fields": r.fields}
               for r in revisions]
    who = ", ".join(sorted({r.actor_name or _("someone") for r in revisions})) or _("someone")
    fields = _(", ").join(field_label(f) for f in sorted({f for r in revisions for f in r.fields})) or "-"
    message = _("%(who)s saved this contact after you opened it (changed: %(fields)s). Review their changes and "
                "save again.", who=who, fields=fields)
    current = ContactView.of(platform, db, user, contact).as_dict() if user is not None else {"id": contact.id}
    return EditConflict(message, edited_version=edited_version, current_version=contact.version, changes=changes,
                        current=current)


def delete_contact(platform: Platform, db: Session, user: CurrentUser, contact: Contact) -> None:
    """Delete a contact with its points, tags, timeline and consent records; audited.

    Plugins whose rows point at contacts either cascade (their foreign key), handle the
    ``contact.deleted`` event, or make the delete fail (:class:`InUse`).
    """
    if not user.can(security.DELETE):
        raise Forbidden(_("You may not delete contacts."))
    contact_id = contact.id
    db.execute(update(Contact).where(Contact.company_id == contact_id).values(company_id=None))
    db.delete(contact)
    try:
        db.flush()
    except IntegrityError:
        raise InUse(_("Other records still refer to this contact; it cannot be deleted.")) from None
    audit.record(db, "contacts.delete", actor=user, target=f"contact:{contact_id}")
    events.emit(db, "contact.deleted", {"contact_id": contact_id}, actor_id=user.id)


def log_activity(db: Session, user: CurrentUser, contact: Contact, kind: str, body: str) -> Activity:
    """Add a note, call or visit to the contact's timeline."""
    problems = {}
    if kind not in ACTIVITY_KINDS:
        problems["kind"] = _("Choose a note, a call or a visit.")
    if not body.strip():
        problems["body"] = _("Write what happened.")
    elif len(body) > TEXT_FIELDS["notes"]:
        problems["body"] = _("At most %(n)s characters.", n=TEXT_FIELDS["notes"])
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    activity = Activity(contact_id=contact.id, kind=kind, body=body.strip(), author_id=user.id)
    db.add(activity)
    db.flush()
    return activity


def purge_points(db: Session, contact_id: int) -> None:
    """Delete a contact's points, and with them their blind index entries."""
    db.execute(delete(ContactPoint).where(ContactPoint.contact_id == contact_id))


# --- Merging ---------------------------------------------------------------------------------------------

#: What a merge chooses between the two contacts, each a field or a group of fields.
MERGE_FIELDS = {
    "name": ("name",),
    "kind": ("kind",),
    "company": ("company_id",),
    "position": ("position",),
    "source": ("source",),
    "owner": ("owner_id",),
    "stage": ("stage",),
    "address": ("province", "city", "district", "street", "address_detail"),
    "notes": ("notes",),
}


def _empty(value: Any) -> bool:
    return value in (None, "", [], {})


def merge(platform: Platform, db: Session, user: CurrentUser, survivor: Contact, merged: Contact,
          choices: Mapping[str, str]) -> Contact:
    """Merge ``merged`` into ``survivor``, then delete ``merged``; audited.

    ``choices`` maps a :data:`MERGE_FIELDS` key or ``custom.<key>`` to ``"survivor"`` or
    ``"merged"``: whose value stays (by default the survivor's, or the merged contact's where
    the survivor has none). Phone numbers, e-mails, WeChat ids, tags, preferences, the timeline
    and consent records of both are kept, and people of a merged company move to the survivor.
    Other plugins repoint their rows in the ``contacts_merge`` hook, in this transaction.
    """
    if not user.can(security.MERGE):
        raise Forbidden(_("You may not merge contacts."))
    if survivor.id == merged.id:
        raise Invalid(_("Choose two different contacts."), {"merged_id": _("Choose another contact.")})
    for contact in (survivor, merged):
        if not security.may_change(user, contact) or contact.erased_at is not None:
            raise Forbidden(_("You may not change contact #%(id)s.", id=contact.id))
    wrong = {key: _("Choose survivor or merged.") for key, side in choices.items()
             if side not in ("survivor", "merged") or (key not in MERGE_FIELDS and not key.startswith("custom."))}
    if wrong:
        raise Invalid(_("Some fields are not valid."), wrong)

    changed = _merge_values(survivor, merged, choices)
    known = {(p.kind, p.lookup) for p in survivor.points}
    for point in sorted(merged.points, key=lambda p: (p.kind, p.position)):
        if (point.kind, point.lookup) not in known:
            survivor.points.append(ContactPoint(kind=point.kind, value=point.value, lookup=point.lookup,
                                                label=point.label, position=MAX_POINTS_PER_KIND + point.position))
            known.add((point.kind, point.lookup))
            changed.add(LIST_OF_KIND[point.kind])
    for tag in merged.tags:
        if tag not in survivor.tags:
            survivor.tag_rows.append(ContactTag(tag=tag))
            changed.add("tags")

    merged_id = merged.id
    for model in (Activity, Consent, Revision):
        db.execute(update(model).where(model.contact_id == merged_id).values(contact_id=survivor.id))
    db.execute(update(Contact).where(Contact.company_id == merged_id, Contact.id != survivor.id)
               .values(company_id=survivor.id))
    platform.pm.hook.contacts_merge(session=db, survivor_id=survivor.id, merged_id=merged_id)
    db.delete(merged)
    survivor.updated_at = utcnow()
    survivor.updated_by_id = user.id
    db.flush()
    _revision(db, survivor, "merged", changed, user)
    audit.record(db, "contacts.merge", actor=user, target=f"contact:{survivor.id}",
                 detail={"survivor_id": survivor.id, "merged_id": merged_id, "fields": sorted(changed)})
    events.emit(db, "contact.merged", {"survivor_id": survivor.id, "merged_id": merged_id}, actor_id=user.id)
    return survivor


def _merge_values(survivor: Contact, merged: Contact, choices: Mapping[str, str]) -> set[str]:
    """Copy the chosen values of ``merged`` to ``survivor``; returns what changed."""
    changed: set[str] = set()
    for key, attributes in MERGE_FIELDS.items():
        theirs = choices.get(key) == "merged" or (
            key not in choices and all(_empty(getattr(survivor, a)) for a in attributes))
        if theirs and any(getattr(survivor, a) != getattr(merged, a) for a in attributes):
            for attribute in attributes:
                setattr(survivor, attribute, getattr(merged, attribute))
            changed.add(key)
    if survivor.company_id == survivor.id:  # a company merged into one of its people
        survivor.company_id = None
    custom = dict(survivor.custom or {})
    for key, value in (merged.custom or {}).items():
        choice = choices.get(f"custom.{key}")
        if (choice == "merged" or (choice is None and _empty(custom.get(key)))) and custom.get(key) != value:
            custom[key] = value
            changed.add(f"custom.{key}")
    survivor.custom = custom
    survivor.preferences = {**(merged.preferences or {}), **(survivor.preferences or {})}
    return changed


# --- Custom fields and saved filters --------------------------------------------------------------------

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def save_custom_field(db: Session, user: CurrentUser, definition: CustomField | None,
                      data: Mapping[str, Any]) -> CustomField:
    """Create (``definition`` None) or change a custom field; audited. Its key and kind never
    change, since stored values and saved filters use them."""
    problems: dict[str, str] = {}
    label = data.get("label", definition.label if definition else {})
    if isinstance(label, str):
        label = {"zh": label, "en": label}
    label = {lang: text_of(label.get(lang)) for lang in ("zh", "en")
             if isinstance(label, Mapping) and text_of(label.get(lang))}
    if not label:
        problems["label"] = _("Give the field a name.")
    kind = definition.kind if definition else text_of(data.get("kind"))
    if kind not in CUSTOM_KINDS:
        problems["kind"] = _("Choose one of: %(choices)s.", choices=", ".join(CUSTOM_KINDS))
    choices = list(dict.fromkeys(list_of(data.get("choices", definition.choices if definition else []))))
    if kind in ("choice", "multi_choice") and not choices:
        problems["choices"] = _("List the choices, one per line or separated by commas.")
    if any('"' in choice or len(choice) > 80 for choice in choices):
        problems["choices"] = _("Choices have at most 80 characters and no double quotes.")
    key = definition.key if definition else text_of(data.get("key")).lower()
    if definition is None:
        key = key or _slug(label.get("en", "")) or f"field_{(db.scalar(select(func.max(CustomField.id))) or 0) + 1}"
        if not _KEY.match(key):
            problems["key"] = _("Use a-z, 0-9 and _, starting with a letter.")
        elif db.scalar(select(CustomField.id).where(CustomField.key == key)) is not None:
            problems["key"] = _("Another field has this key.")
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    if definition is None:
        definition = CustomField(key=key, kind=kind)
        db.add(definition)
    definition.label = label
    definition.choices = choices if kind in ("choice", "multi_choice") else []
    for flag in ("required", "show_in_list", "active"):
        if flag in data:
            setattr(definition, flag, flag_of(data[flag]))
    if text_of(data.get("position")).lstrip("-").isdigit():
        definition.position = int(text_of(data["position"]))
    db.flush()
    audit.record(db, "contacts.custom_field", actor=user, target=f"custom_field:{definition.key}",
                 detail={"kind": definition.kind, "active": definition.active})
    return definition


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40]
    return slug if slug[:1].isalpha() else ""


def saved_filters(db: Session, user: CurrentUser) -> list[SavedFilter]:
    return list(db.scalars(select(SavedFilter).where(SavedFilter.user_id == user.id).order_by(SavedFilter.name)))


def save_filter(db: Session, user: CurrentUser, name: str, query: str) -> SavedFilter:
    """Save (or replace) the user's filter ``name``: a query string of the list."""
    name, query = name.strip(), query.strip().lstrip("?")
    problems = {}
    if not name or len(name) > 80:
        problems["name"] = _("Give the filter a name of up to 80 characters.")
    if len(query) > 2000:
        problems["query"] = _("At most %(n)s characters.", n=2000)
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    row = db.scalar(select(SavedFilter).where(SavedFilter.user_id == user.id, SavedFilter.name == name))
    if row is None:
        row = SavedFilter(user_id=user.id, name=name)
        db.add(row)
    row.query = query
    db.flush()
    return row


def delete_filter(db: Session, user: CurrentUser, filter_id: Any) -> None:
    row = db.get(SavedFilter, int(filter_id))
    if row is None or row.user_id != user.id:
        raise NotFound(_("There is no such filter."))
    db.delete(row)
