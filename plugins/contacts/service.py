"""The rules for changing contacts, in one place: the API, the pages, the importer, the demo
data and the command line all call these functions, so every rule is enforced once.

Each function works in the caller's session (its transaction) and takes the acting user (a
:class:`kehu.auth.CurrentUser`; ``None`` for trusted code acting as the system). Problems are
raised as :class:`DomainError` subclasses carrying an HTTP status, so the API and the pages can
answer them directly.

Reading lists is in :mod:`.listing`; what a user sees of a contact (masking, the timeline) in
:mod:`.display`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from kehu import audit, crypto, events, rbac
from kehu.auth import CurrentUser
from kehu.errors import CONTROL_CHARACTERS, Conflict, Forbidden, Invalid, NotFound
from kehu.db import kept_rows, read_rows, utcnow
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
    seal,
)

MAX_POINTS_PER_KIND = 10
MAX_TAGS = 30
MAX_TAG_LENGTH = 40
MAX_PREFERENCES = 5000  # characters of JSON

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


class DuplicatesFound(Conflict):
    """The contact may exist already: ``extra["duplicates"]`` lists the candidates."""

    code = "duplicate"


class EditConflict(Conflict):
    """Someone saved the contact after the version the client edited (see :func:`conflict`)."""

    code = "edit_conflict"


class InUse(Conflict):
    code = "in_use"


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


_LIST_SEPARATORS = re.compile(r"[,，;；、|\n]")
#: Characters no text may hold (NUL and the other C0 controls but tab and line breaks):
#: PostgreSQL refuses NUL in text, and none of them belongs in a contact.
#: The largest id a row can have (PostgreSQL's integer): anything else is not an id.
MAX_ID = 2**31 - 1


def list_of(value: Any) -> list[str]:
    """A list from a JSON list or a text separated by commas (also Chinese ones), semicolons,
    enumeration commas, bars or line breaks."""
    if value is None:
        return []
    if isinstance(value, str):
        if not _LIST_SEPARATORS.search(value):
            return [value.strip()] if value.strip() else []
        return [part.strip() for part in _LIST_SEPARATORS.split(value) if part.strip()]
    if isinstance(value, (list, tuple)):
        return [text_of(part) for part in value if text_of(part)]
    return [text_of(value)]


def flag_of(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def id_of(value: Any) -> int | None:
    """``value`` as a row id (a whole number from 1 to :data:`MAX_ID`, or its text), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 10:
        number = int(value.strip())
    else:
        return None
    return number if 1 <= number <= MAX_ID else None


class _Reader:
    """Reads the fields of a JSON object or a submitted form, noting a problem per field."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: dict[str, str] = {}

    def text(self, name: str, limit: int | None = None) -> str:
        """A text field: a string (or a number, as JSON clients send phone numbers)."""
        value = self.data.get(name)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problems[name] = _("Enter text.")
            return ""
        text = str(value).strip()
        if CONTROL_CHARACTERS.search(text):
            self.problems[name] = _("Remove the control characters from this text.")
        elif limit is not None and len(text) > limit:
            self.problems[name] = _("At most %(n)s characters.", n=limit)
        return text

    def texts(self, name: str) -> list[str]:
        """A list field: a JSON list of texts, or one text separated by commas (see :func:`list_of`)."""
        value = self.data.get(name)
        if isinstance(value, (list, tuple)):
            if any(isinstance(v, bool) or not isinstance(v, (str, int, float)) for v in value if v is not None):
                self.problems[name] = _("Enter a list of texts.")
                return []
        elif value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            self.problems[name] = _("Enter a list of texts.")
            return []
        values = list_of(value)
        if any(CONTROL_CHARACTERS.search(v) for v in values):
            self.problems[name] = _("Remove the control characters from this text.")
        return values

    def identifier(self, name: str, problem: str) -> int | None:
        """An id field: ``None`` when empty; a problem when it is not an id."""
        value = self.data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        number = id_of(value)
        if number is None:
            self.problems[name] = problem
        return number


def parse_input(data: Mapping[str, Any], custom_fields: list[CustomField], *, creating: bool) -> ContactInput:
    """Check ``data`` (a JSON object or a submitted form) and return what it sets.

    Raises :class:`Invalid` with a message per field when anything is wrong, so a form can show
    every problem at once.
    """
    result = ContactInput()
    read = _Reader(data)
    problems = read.problems

    for name, limit in {**TEXT_FIELDS, **SEALED_FIELDS}.items():
        if name in data:
            result.values[name] = read.text(name, limit)
    if (creating or "name" in data) and not result.values.get("name") and "name" not in problems:
        problems["name"] = _("Enter a name.")
    if creating or "kind" in data:
        result.values["kind"] = read.text("kind") or PERSON
        if result.values["kind"] not in (PERSON, COMPANY):
            problems["kind"] = _("Choose a person or a company.")
    if "stage" in data:
        result.values["stage"] = read.text("stage") or STAGES[0]
        if result.values["stage"] not in STAGES:
            problems["stage"] = _("Choose one of: %(choices)s.", choices=", ".join(STAGES))
    if "owner_id" in data:
        result.values["owner_id"] = read.identifier("owner_id", _("Choose a user."))
    if "preferences" in data:
        if isinstance(data["preferences"], dict) and len(json.dumps(data["preferences"])) <= MAX_PREFERENCES:
            result.values["preferences"] = dict(data["preferences"])
        else:
            problems["preferences"] = _("Preferences are an object of names and values (at most %(n)s characters).",
                                        n=MAX_PREFERENCES)

    _parse_points(read, result)

    if "tags" in data:
        result.tags = list(dict.fromkeys(read.texts("tags")))
        if len(result.tags) > MAX_TAGS or any(len(tag) > MAX_TAG_LENGTH for tag in result.tags):
            problems["tags"] = _("At most %(n)s tags of up to 40 characters.", n=MAX_TAGS)
    if text_of(data.get("company_id")):
        result.company_id = read.identifier("company_id", _("Choose a company."))
    elif "company" in data:
        result.company = read.text("company", TEXT_FIELDS["name"])

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
        version = data["version"]
        if isinstance(version, int) and not isinstance(version, bool) and 0 <= version <= MAX_ID:
            result.version = version
        elif isinstance(version, str) and version.strip().isdigit() and len(version.strip()) <= 10:
            result.version = int(version)
        else:
            problems["version"] = _("The version is a whole number.")
    if problems:
        raise Invalid(_("Some fields are not valid."), problems)
    return result


def _parse_points(read: _Reader, result: ContactInput) -> None:
    data, problems = read.data, read.problems
    for name, kind in POINT_LISTS.items():
        if name not in data:
            continue
        raw_values = read.texts(name)
        if len(raw_values) > MAX_POINTS_PER_KIND:
            problems[name] = _("At most %(n)s values.", n=MAX_POINTS_PER_KIND)
            raw_values = raw_values[:MAX_POINTS_PER_KIND]
        points = []
        for raw in raw_values:
            try:
                points.append(point_of(kind, raw))
            except normalize.InvalidValue as exc:
                problems.setdefault(name, str(exc))
        result.points[kind] = unique(points)
    for name, kind in POINT_SINGLES.items():
        if name not in data or kind in result.points:
            continue
        raw = read.text(name)
        if name in problems:
            continue
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


# Built once: every contacts page reads them, and building the statement cost as much as running it.
_ALL_FIELDS = select(CustomField).order_by(CustomField.position, CustomField.id)
_ACTIVE_FIELDS = _ALL_FIELDS.where(CustomField.active.is_(True))


def custom_fields(db: Session, active_only: bool = True) -> list[CustomField]:
    return list(db.scalars(_ACTIVE_FIELDS if active_only else _ALL_FIELDS))


def shown_fields(db: Session) -> Sequence[Any]:
    """The active custom fields as plain rows with the model's attributes, kept for a moment
    (:func:`kehu.db.kept_rows`): for pages that show contacts. Input is checked against
    :func:`custom_fields`."""
    return kept_rows(db, _SHOWN_FIELDS)


_SHOWN_FIELDS = select(*CustomField.__table__.columns).where(CustomField.active.is_(True)).order_by(
    CustomField.position, CustomField.id)


# --- Finding contacts -------------------------------------------------------------------------------


def get_visible(platform: Platform, db: Session, user: CurrentUser, contact_id: Any) -> Contact:
    """The contact if ``user`` may see it; :class:`NotFound` otherwise, also when it exists
    but belongs to someone else (its existence is nobody else's business)."""
    return visible_row(platform, db, user, _CONTACT_BY_ID, contact_id)[0]


_CONTACT_BY_ID = select(Contact).where(Contact.id == bindparam("contact_id"))


def visible_row(platform: Platform, db: Session, user: CurrentUser, statement: Select[Any], contact_id: Any) -> Any:
    """The first row of ``statement`` (a SELECT from the contacts table with a ``:contact_id``
    parameter) for the contact, if ``user`` may see it; :class:`NotFound` otherwise, as
    :func:`get_visible` (the record rules apply, an id that is not one is not found)."""
    wanted = id_of(contact_id)
    row = None
    if wanted is not None and user.can(security.READ):
        row = db.execute(rbac.restrict(platform, statement, Contact, user), {"contact_id": wanted}).first()
    if row is None:
        raise NotFound(_("There is no such contact."))
    return row


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
    return ids_with_points([(kind, canonical)])


def ids_with_points(keys: Sequence[tuple[str, str]]) -> Select[Any]:
    """:func:`ids_with_point` for any of several ``(kind, canonical)`` keys, in one subquery:
    ``id IN (a) OR id IN (b)`` made PostgreSQL walk every contact (18 ms among 100,000)
    where one ``IN`` is two index look-ups."""
    return select(ContactPoint.contact_id).where(or_(*(
        and_(ContactPoint.kind == kind, ContactPoint.lookup == normalize.lookup(kind, canonical))
        for kind, canonical in keys)))


def find_by_point(db: Session, kind: str, raw: str) -> list[Contact]:
    """The contacts with this phone number (e-mail, ...) in any format. No record rules: for
    trusted code such as the ``kehu_person_find_or_create`` hook."""
    try:
        canonical = normalize.canonical(kind, raw)
    except normalize.InvalidValue:
        return []
    return list(db.scalars(select(Contact).where(Contact.id.in_(ids_with_point(kind, canonical)))
                           .order_by(Contact.id)))


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


@dataclass
class _Company:
    """The company an input asks for: an existing one, a new one to create by name, or none."""

    mentioned: bool
    company_id: int | None = None
    new_name: str = ""


def _companies_of(db: Session, inputs: list[ContactInput]) -> list[_Company]:
    """The company each input asks for, found with two queries whatever the number of inputs."""
    wanted_ids = {data.company_id for data in inputs if data.company_id is not None}
    known_ids = set(db.scalars(select(Contact.id).where(Contact.id.in_(wanted_ids), Contact.kind == COMPANY))
                    ) if wanted_ids else set()
    names = {data.company.lower() for data in inputs if data.company_id is None and data.company}
    by_name: dict[str, int] = {}
    if names:
        for company_id, name in db.execute(select(Contact.id, func.lower(Contact.name)).where(
                Contact.kind == COMPANY, func.lower(Contact.name).in_(names)).order_by(Contact.id.desc())):
            by_name[name] = company_id  # the oldest comes last and wins
    companies = []
    for data in inputs:
        if data.company_id is not None:
            if data.company_id not in known_ids:
                raise Invalid(_("Some fields are not valid."), {"company_id": _("There is no such company.")})
            companies.append(_Company(True, data.company_id))
        elif data.company is None:
            companies.append(_Company(False))
        elif not data.company:
            companies.append(_Company(True))
        elif data.company.lower() in by_name:
            companies.append(_Company(True, by_name[data.company.lower()]))
        else:
            companies.append(_Company(True, new_name=data.company))
    return companies


def _company_of(db: Session, data: ContactInput) -> _Company:
    return _companies_of(db, [data])[0]


def _create_companies(db: Session, user: CurrentUser | None, companies: list[_Company], owners: list[int | None],
                      announce: bool) -> list[int]:
    """Create the new companies that ``companies`` name (one per name, letter case aside, owned
    by the owner of the first contact naming it) and fill in their ids; returns the new ids."""
    new: dict[str, tuple[str, int | None]] = {}
    for company, owner_id in zip(companies, owners, strict=True):
        if company.new_name:
            new.setdefault(company.new_name.lower(), (company.new_name, owner_id))
    if not new:
        return []
    inputs = [ContactInput(values={"name": name, "kind": COMPANY}) for name, _owner in new.values()]
    ids = _insert_contacts(db, user, inputs, [owner for _name, owner in new.values()], [None] * len(inputs),
                           "created", announce)
    created = dict(zip(new, ids, strict=True))
    for company in companies:
        if company.new_name:
            company.company_id = created[company.new_name.lower()]
    return ids


#: What a new contact has unless its input says otherwise.
CONTACT_DEFAULTS: dict[str, Any] = {"kind": PERSON, "position": "", "source": "", "stage": STAGES[0], "province": "",
                                    "city": "", "district": "", "notes": "", "erased_at": None}


def _insert_contacts(db: Session, user: CurrentUser | None, inputs: list[ContactInput], owners: list[int | None],
                     company_ids: list[int | None], action: str, announce: bool) -> list[int]:
    """Write new contacts with a handful of INSERT statements whatever their number: the
    contacts (personal fields sealed), their points (sealed, with their blind index), tags and
    first revision. Returns their ids, in order. Checks nothing: see :func:`create_contacts`."""
    actor = getattr(user, "id", None)
    now = utcnow()
    rows = []
    for data, owner_id, company_id in zip(inputs, owners, company_ids, strict=True):
        row_key = crypto.new_row_key()
        row = {**CONTACT_DEFAULTS, **{name: value for name, value in data.values.items() if name not in SEALED_FIELDS}}
        for name in SEALED_FIELDS:
            row[f"{name}_sealed"] = seal(Contact, name, row_key, data.values.get(name))
        row.update(row_key=row_key, owner_id=owner_id, company_id=company_id, custom=data.custom or {},
                   preferences=data.values.get("preferences") or {}, created_at=now, updated_at=now,
                   created_by_id=actor, updated_by_id=actor, version=1)
        rows.append(row)
    # Each row's random row key says which id it got (in one multi-row INSERT per 1,000 rows or
    # so: asking for the ids in parameter order would make SQLite insert one row at a time).
    table = Contact.__table__
    id_of = dict(db.execute(insert(table).returning(table.c.row_key, table.c.id), rows).all())
    ids = [id_of[row["row_key"]] for row in rows]
    points: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    revisions: list[dict[str, Any]] = []
    for contact_id, data in zip(ids, inputs, strict=True):
        wanted = {**{kind: [first] for kind, first in data.first_points.items()}, **data.points}
        for kind, kind_points in wanted.items():
            for position, point in enumerate(kind_points):
                row_key = crypto.new_row_key()
                points.append({"contact_id": contact_id, "kind": kind, "row_key": row_key, "label": "",
                               "position": position, "lookup": normalize.lookup(kind, point.canonical),
                               "value_sealed": seal(ContactPoint, "value", row_key, point.shown)})
        tags += [{"contact_id": contact_id, "tag": tag} for tag in data.tags or []]
        revisions.append({"contact_id": contact_id, "version": 1, "action": action, "fields": data.changed_fields(),
                          "actor_id": actor, "actor_name": getattr(user, "name", "") or "", "at": now})
    for model, values in ((ContactPoint, points), (ContactTag, tags), (Revision, revisions)):
        if values:
            db.execute(insert(model.__table__), values)
    if announce:
        for contact_id in ids:
            events.emit(db, "contact.created", {"contact_id": contact_id}, actor_id=actor)
    return ids


@dataclass
class Created:
    """What :func:`create_contacts` created: the contacts, in the order of the inputs, and the
    companies they named that did not exist yet."""

    ids: list[int]
    company_ids: list[int]


def create_contacts(platform: Platform, db: Session, user: CurrentUser | None, inputs: list[ContactInput], *,
                    action: str = "created", announce: bool = True) -> Created:
    """Create contacts from validated input with a few statements, however many there are.

    Each contact belongs to ``user`` unless its input's ``owner_id`` says otherwise; a company
    given by name is found (letter case aside) or created. Duplicates are not looked for here:
    :func:`create_contact` and the importer do that first. ``announce`` emits
    ``contact.created`` for each contact and new company; the importer announces a whole batch
    with one ``contact.imported`` instead.
    """
    owners = [data.values.get("owner_id", getattr(user, "id", None)) for data in inputs]
    if user is not None:
        if not user.can(security.WRITE):
            raise Forbidden(_("You may not create contacts."))
        for data in inputs:
            _check_personal_writes(platform, user, data, creating=True)
        for owner_id in set(owners):
            _check_owner(db, user, owner_id)
    companies = _companies_of(db, inputs)
    company_ids = _create_companies(db, user, companies, owners, announce)
    ids = _insert_contacts(db, user, inputs, owners, [c.company_id for c in companies], action, announce)
    return Created(ids=ids, company_ids=company_ids)


def create_contact(platform: Platform, db: Session, user: CurrentUser | None, data: ContactInput, *,
                   action: str = "created") -> Contact:
    """Create one contact from validated input (see :func:`create_contacts`). Raises
    :class:`DuplicatesFound`, before writing anything, when it may exist already (unless
    ``data.allow_duplicate``)."""
    if not data.allow_duplicate:
        company = _company_of(db, data)
        duplicates = find_duplicates(platform, db, user, data.lookups(), name=data.values.get("name", ""),
                                     company_id=company.company_id)
        if duplicates:
            raise DuplicatesFound(_("This contact may already exist."), duplicates=duplicates)
    created = create_contacts(platform, db, user, [data], action=action)
    contact = db.get(Contact, created.ids[0])
    assert contact is not None
    return contact


def update_contact(platform: Platform, db: Session, user: CurrentUser | None, contact: Contact, data: ContactInput,
                   *, action: str = "updated", announce: bool = True) -> Contact:
    """Apply ``data`` to ``contact`` (found with :func:`get_changeable`); ``announce`` emits
    ``contact.updated`` (the importer announces a whole batch with ``contact.imported``).

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
        _create_companies(db, user, [company], [contact.owner_id], announce)
        contact.company_id = company.company_id
    _apply(contact, data)
    contact.updated_at = utcnow()  # the row is always updated, which bumps the version
    contact.updated_by_id = getattr(user, "id", None)
    try:
        db.flush()
    except StaleDataError:
        raise EditConflict(_("Someone else saved this contact while you were editing it.")) from None
    _revision(db, contact, action, data.changed_fields(), user)
    if announce:
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
    read = _Reader(data)
    problems = read.problems
    label = data.get("label", definition.label if definition else {})
    if isinstance(label, str):
        label = {"zh": label, "en": label}
    if not isinstance(label, Mapping) or not all(isinstance(label.get(lang, ""), str) for lang in ("zh", "en")):
        label = {}
    label = {lang: text_of(label.get(lang))[:80] for lang in ("zh", "en") if text_of(label.get(lang))}
    if not label:
        problems["label"] = _("Give the field a name.")
    kind = definition.kind if definition else read.text("kind")
    if kind not in CUSTOM_KINDS:
        problems["kind"] = _("Choose one of: %(choices)s.", choices=", ".join(CUSTOM_KINDS))
    choices = list(dict.fromkeys(read.texts("choices") if "choices" in data
                                 else definition.choices if definition else []))
    if kind in ("choice", "multi_choice") and not choices:
        problems["choices"] = _("List the choices, one per line or separated by commas.")
    if any('"' in choice or len(choice) > 80 for choice in choices):
        problems["choices"] = _("Choices have at most 80 characters and no double quotes.")
    key = definition.key if definition else read.text("key").lower()
    position = read.text("position")
    if position and (not position.lstrip("-").isdigit() or abs(int(position)) > 10**6):
        problems["position"] = _("Enter a whole number.")
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
    if position:
        definition.position = int(position)
    db.flush()
    audit.record(db, "contacts.custom_field", actor=user, target=f"custom_field:{definition.key}",
                 detail={"kind": definition.kind, "active": definition.active})
    return definition


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40]
    return slug if slug[:1].isalpha() else ""


_SAVED_FILTERS = select(SavedFilter.id, SavedFilter.name, SavedFilter.query).where(
    SavedFilter.user_id == bindparam("user_id")).order_by(SavedFilter.name)


def saved_filters(db: Session, user: CurrentUser) -> list[Any]:
    """The user's saved filters: rows of ``id``, ``name`` and ``query``, by name."""
    return list(read_rows(db, _SAVED_FILTERS, {"user_id": user.id}))


def save_filter(db: Session, user: CurrentUser, name: Any, query: Any) -> SavedFilter:
    """Save (or replace) the user's filter ``name``: a query string of the list."""
    read = _Reader({"name": name, "query": query})
    name, query = read.text("name"), read.text("query").lstrip("?")
    problems = read.problems
    if not name or len(name) > 80:
        problems.setdefault("name", _("Give the filter a name of up to 80 characters."))
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
    row = db.get(SavedFilter, id_of(filter_id)) if id_of(filter_id) is not None else None
    if row is None or row.user_id != user.id:
        raise NotFound(_("There is no such filter."))
    db.delete(row)
