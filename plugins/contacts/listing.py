"""Lists of contacts: search, filters, sorting and paging, for the list page, the API and
the export. Every list goes through :func:`filtered`, which applies the record rules first.

Search matches names and company names by substring, and phone numbers, e-mail addresses and
WeChat ids exactly, in any common format, through their blind index (:mod:`.normalize`).
Paging is by keyset (``cursor``: stable while rows are added) or by ``offset`` (page numbers).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import Select, bindparam, exists, false, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from kehu import rbac
from kehu.auth import CurrentUser
from kehu.db import KeptStatements, count_capped, read_rows
from kehu.i18n import gettext as _
from kehu.platform import Platform

from . import display, normalize, security
from .models import COMPANY, STAGES, Contact, ContactTag, CustomField
from .service import Invalid, custom_fields, id_of, ids_with_points, list_of, text_of, visible_row

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
SORTS = {"name": Contact.name, "created_at": Contact.created_at, "updated_at": Contact.updated_at, "id": Contact.id}
DEFAULT_SORT = "-created_at"
#: Dates in filters are days in China (UTC+8), where the users are.
LOCAL_OFFSET = timedelta(hours=8)


@dataclass
class ListQuery:
    """What a list asks for; read it from query parameters with :func:`list_query_from`."""

    q: str = ""
    kind: str = ""
    tags: list[str] = field(default_factory=list)  # all of them
    owner: str = ""  # a user id, "me" or "none"
    province: str = ""
    city: str = ""
    stage: str = ""
    company_id: int | None = None
    created_from: date | None = None
    created_to: date | None = None
    custom: dict[str, str] = field(default_factory=dict)  # "<key>", "<key>.min", "<key>.max" -> value
    sort: str = DEFAULT_SORT
    limit: int = PAGE_SIZE
    offset: int = 0
    cursor: str = ""


def list_query_from(params: Mapping[str, Any], getlist: Callable[[str], list[str]] | None = None) -> ListQuery:
    """Read a :class:`ListQuery` from query parameters (custom fields as ``cf.<key>``,
    ``cf.<key>.min``, ``cf.<key>.max``); raises :class:`Invalid` naming each bad parameter."""
    problems: dict[str, str] = {}

    def as_date(name: str) -> date | None:
        try:
            return date.fromisoformat(text_of(params.get(name))) if text_of(params.get(name)) else None
        except ValueError:
            problems[name] = _("Enter a date as YYYY-MM-DD.")
            return None

    def as_int(name: str, default: int, low: int, high: int) -> int:
        try:
            return max(low, min(high, int(text_of(params.get(name))))) if text_of(params.get(name)) else default
        except ValueError:
            problems[name] = _("Enter a whole number.")
            return default

    tags = [tag for value in (getlist("tag") if getlist else [params.get("tag")]) for tag in list_of(value)]
    query = ListQuery(
        q=text_of(params.get("q"))[:200], kind=text_of(params.get("kind")), tags=tags,
        owner=text_of(params.get("owner")), province=text_of(params.get("province")),
        city=text_of(params.get("city")), stage=text_of(params.get("stage")),
        created_from=as_date("created_from"), created_to=as_date("created_to"),
        custom={key[3:]: text_of(value) for key, value in params.items() if key.startswith("cf.") and text_of(value)},
        sort=text_of(params.get("sort")) or DEFAULT_SORT, limit=as_int("limit", PAGE_SIZE, 1, MAX_PAGE_SIZE),
        offset=as_int("offset", 0, 0, 10**9), cursor=text_of(params.get("cursor")),
    )
    if text_of(params.get("company_id")):
        query.company_id = id_of(params.get("company_id"))
        if query.company_id is None:
            problems["company_id"] = _("Choose a company.")
    if query.owner not in ("", "me", "none") and id_of(query.owner) is None:
        problems["owner"] = _("Choose a user, 'me' or 'none'.")
    if query.sort.lstrip("-") not in SORTS:
        problems["sort"] = _("Sort by one of: %(choices)s.", choices=", ".join(SORTS))
    if query.stage and query.stage not in STAGES:
        problems["stage"] = _("Choose one of: %(choices)s.", choices=", ".join(STAGES))
    if problems:
        raise Invalid(_("Some filters are not valid."), problems)
    return query


def search_clause(text: str) -> Any:
    """Contacts whose name or company's name contains ``text``, or with a phone number, e-mail
    address or WeChat id equal to it in any common format. A term that is a phone number or an
    e-mail address is only looked up in the blind index, which is what keeps it fast."""
    keys = normalize.search_keys(text)
    exact = [Contact.id.in_(ids_with_points(keys))] if keys else []
    if exact and (normalize.looks_like_phone(text) or "@" in text):
        return exact[0]
    company = aliased(Contact)
    return or_(Contact.name.icontains(text, autoescape=True),
               Contact.company_id.in_(select(company.id).where(company.kind == COMPANY,
                                                               company.name.icontains(text, autoescape=True))),
               *exact)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC) - LOCAL_OFFSET


def _custom_clause(definition: CustomField, bound: str, value: str, dialect: str) -> Any:
    stored = Contact.custom[definition.key]
    if definition.kind in ("number", "date"):
        if definition.kind == "number":
            try:
                column, wanted = stored.as_float(), float(value)
            except ValueError:
                return false()
        else:
            column, wanted = stored.as_string(), value  # YYYY-MM-DD compares as text
        return column >= wanted if bound == "min" else column <= wanted if bound == "max" else column == wanted
    if definition.kind == "multi_choice":  # one of the chosen values is ``value``
        if dialect == "postgresql":
            chosen = func.json_array_elements_text(stored).table_valued("value")
        else:
            chosen = func.json_each(Contact.custom, f'$."{definition.key}"').table_valued("value")
        return exists(select(1).select_from(chosen).where(chosen.c.value == value))
    if definition.kind == "choice":
        return stored.as_string() == value
    return stored.as_string().icontains(value, autoescape=True)


def filtered(platform: Platform, user: CurrentUser, query: ListQuery, fields: list[CustomField],
             base: Select[Any] | None = None, common_tags: frozenset[str] = frozenset()) -> Select[Any]:
    """``SELECT Contact`` (or ``base``, a select from the contacts table) of what ``user`` may
    see, matching ``query`` (not sorted, not paged). Erased people are left out.

    A tag in ``common_tags`` is tested contact by contact (the database walks the list in its
    order and stops at a page); another one gives its few contacts from the tag index.
    """
    statement = rbac.restrict(platform, select(Contact) if base is None else base, Contact, user)
    statement = statement.where(Contact.erased_at.is_(None))
    if query.q:
        statement = statement.where(search_clause(query.q))
    for tag in query.tags:
        if tag in common_tags:
            statement = statement.where(exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag == tag))
        else:
            statement = statement.where(Contact.id.in_(select(ContactTag.contact_id).where(ContactTag.tag == tag)))
    if query.owner == "me":
        statement = statement.where(Contact.owner_id == user.id)
    elif query.owner == "none":
        statement = statement.where(Contact.owner_id.is_(None))
    elif query.owner.isdigit():
        statement = statement.where(Contact.owner_id == int(query.owner))
    for column, value in ((Contact.kind, query.kind), (Contact.province, query.province), (Contact.city, query.city),
                          (Contact.stage, query.stage), (Contact.company_id, query.company_id)):
        if value:
            statement = statement.where(column == value)
    if query.created_from:
        statement = statement.where(Contact.created_at >= _day_start(query.created_from))
    if query.created_to:
        statement = statement.where(Contact.created_at < _day_start(query.created_to) + timedelta(days=1))
    by_key = {f.key: f for f in fields}
    for name, value in query.custom.items():
        key, _dot, bound = name.partition(".")
        if key in by_key:
            statement = statement.where(_custom_clause(by_key[key], bound, value, platform.engine.dialect.name))
    return statement


@dataclass
class Page:
    items: list[Any]  # of the shape :func:`page` was asked for
    total: int  # at most ``count_up_to`` + 1 when counting stopped there (``total_capped``)
    next_cursor: str  # "" on the last page
    offset: int
    limit: int
    total_capped: bool = False


#: A tag that this many contacts have counts as common (see :func:`filtered`).
COMMON_TAG = 2000

#: What :func:`page` can give as items: :class:`~.models.Contact` objects, or what a user sees
#: of them, read with plain queries.
Shape = Literal["contacts", "summaries", "views"]
#: The SELECT each shape of items is read with (``"contacts"``: model objects, through the ORM).
_SELECTS: dict[str, Callable[[], Select[Any]] | None] = {
    "contacts": None, "summaries": display.summary_select, "views": display.view_select}


def common_tags(db: Session, tags: list[str]) -> frozenset[str]:
    """Those of ``tags`` that at least :data:`COMMON_TAG` contacts have (counted no further)."""
    return frozenset(tag for tag in tags if db.scalar(select(func.count()).select_from(
        select(ContactTag.contact_id).where(ContactTag.tag == tag).limit(COMMON_TAG).subquery())) >= COMMON_TAG)


def page(platform: Platform, db: Session, user: CurrentUser, query: ListQuery, *,
         fields: list[CustomField] | None = None, count_up_to: int | None = None, shape: Shape = "contacts") -> Page:
    """One page of the contacts ``user`` may see that match ``query``, with their number.

    ``fields`` are the custom fields (read when not given and the query filters by them);
    summaries carry the values of those a list shows.
    Counting stops after ``count_up_to`` (the list page shows "1000+": counting a million rows
    takes longer than the page itself), and such a count is remembered for
    :data:`kehu.db.CAPPED_COUNT_SECONDS`; a first page that holds every match needs no count at all.
    ``shape`` chooses the items: :class:`~.models.Contact` objects (``"contacts"``, to change
    them), or, read with plain queries without model objects,
    :class:`~.display.ContactSummary` (``"summaries"``: what a list shows) or
    :class:`~.display.ContactView` (``"views"``: everything the user may see).
    """
    if fields is None:  # they are only needed to filter by them
        fields = custom_fields(db) if query.custom else []
    common = common_tags(db, query.tags)
    paged, counted = _statements(platform, user, query, fields, shape, common, count_up_to)
    offset = {"offset": 0 if query.cursor else query.offset}  # a cursor says where the page starts
    if shape == "contacts":
        found: list[Any] = list(db.scalars(paged, offset).unique())
    else:
        found = read_rows(db, paged, offset)
    more = len(found) > query.limit  # the one row past the page is only read to know that
    items = found[:query.limit]
    if shape == "summaries":
        items = display.summaries(platform, db, user, items, listed=display.listed_keys(fields))
    elif shape == "views":
        items = display.views(platform, db, user, items)
    next_cursor = _cursor_after(found[query.limit - 1], shape, query.sort) if more else ""
    if not query.cursor and not query.offset and not next_cursor:
        return Page(items=items, total=len(items), next_cursor="", offset=0, limit=query.limit)
    if count_up_to is None or not rbac.only_rules(platform, Contact, security.RECORD_RULES):
        # Another plugin's rule may depend on more than the user and the filters of the key.
        total = read_rows(db, counted)[0][0] or 0
    else:
        total = count_capped(db, counted, count_up_to, ("contacts", str(platform.engine.url), user.id,
                                                       user.permissions, _filters_of(query)))
    capped = count_up_to is not None and total > count_up_to
    return Page(items=items, total=total, next_cursor=next_cursor, offset=query.offset, limit=query.limit,
                total_capped=capped)


def _filters_of(query: ListQuery) -> tuple[Any, ...]:
    """What narrows ``query``'s list (not its order or paging), hashable."""
    return (query.q, query.kind, tuple(query.tags), query.owner, query.province, query.city, query.stage,
            query.company_id, query.created_from, query.created_to, tuple(sorted(query.custom.items())))


_NO_FILTERS = _filters_of(ListQuery())
#: The statements of lists that no filter changes, page after page, built once: building the
#: SELECT and working out its cache key cost as much as the database's work on it. Shared by
#: the users whom no record rule narrows (administrators, viewers); one per user when the only
#: rule on contacts is this plugin's own (a salesperson's own contacts), which depends on the
#: user alone; built each time when another plugin adds a rule.
_WHOLE_LISTS = KeptStatements(1000)  # one per user at most (about 18 KB each)


def _statements(platform: Platform, user: CurrentUser, query: ListQuery, fields: list[CustomField], shape: Shape,
                common: frozenset[str], count_up_to: int | None) -> tuple[Select[Any], Select[Any]]:
    """The SELECT of ``query``'s page (its offset a parameter, ``offset``) and the one counting
    its rows (up to ``count_up_to`` + 1)."""
    key: tuple[Any, ...] | None = None
    if not query.cursor and _filters_of(query) == _NO_FILTERS:
        if not any(rule.where(user) is not None for rule in platform.declarations.record_rules
                   if rule.model is Contact):
            key = (shape, query.sort, query.limit, count_up_to)
        elif rbac.only_rules(platform, Contact, security.RECORD_RULES):  # ours depends on the user alone
            key = (shape, query.sort, query.limit, count_up_to, user.id, user.permissions)
    kept = _WHOLE_LISTS.get(key) if key is not None else None
    if kept is not None:
        return kept
    base = _SELECTS[shape]
    statement = filtered(platform, user, query, fields, base=base() if base else None, common_tags=common)
    name, descending = query.sort.lstrip("-"), query.sort.startswith("-")
    column = SORTS[name]
    paged = statement
    if query.cursor:
        position = tuple_(column, Contact.id)
        after = _decode_cursor(query.cursor, name)
        paged = paged.where(position < after if descending else position > after)
    order = (column.desc(), Contact.id.desc()) if descending else (column.asc(), Contact.id.asc())
    paged = paged.order_by(*order).limit(query.limit + 1).offset(bindparam("offset"))
    if base is not None:  # rows, not model objects: the next page's cursor is made from this
        paged = paged.add_columns(column.label("sort_value"))
    counted = filtered(platform, user, query, fields, base=select(Contact.id), common_tags=common)
    if count_up_to is not None:
        counted = counted.limit(count_up_to + 1)
    statements = paged, select(func.count()).select_from(counted.subquery())
    return _WHOLE_LISTS.keep(key, statements) if key is not None else statements


# Built once: for a user whom no record rule narrows (one who reads every contact), neither the
# statement nor its cache key is worked out again for each request.
_VIEW_BY_ID = display.view_select().where(Contact.id == bindparam("contact_id"))
_ID_BY_ID = select(Contact.id).where(Contact.id == bindparam("contact_id"))


def visible_view(platform: Platform, db: Session, user: CurrentUser, contact_id: Any) -> display.ContactView:
    """What ``user`` sees of the contact, read without model objects; :class:`NotFound` when
    they may not see it, as :func:`~.service.get_visible` (an erased contact is found: its view says so)."""
    return display.views(platform, db, user, [visible_row(platform, db, user, _VIEW_BY_ID, contact_id)])[0]


def visible_id(platform: Platform, db: Session, user: CurrentUser, contact_id: Any) -> int:
    """The contact's id if ``user`` may see it; :class:`NotFound` otherwise, as :func:`~.service.get_visible`."""
    return int(visible_row(platform, db, user, _ID_BY_ID, contact_id).id)


def _cursor_after(last: Any, shape: Shape, sort: str) -> str:
    """The cursor of the page that starts after ``last``, a read row (its ``sort_value``) or a model object."""
    return _encode_cursor(getattr(last, sort.lstrip("-")) if shape == "contacts" else last.sort_value, last.id)


def _encode_cursor(value: Any, contact_id: int) -> str:
    plain = value.isoformat() if isinstance(value, datetime) else value
    return base64.urlsafe_b64encode(json.dumps([plain, contact_id]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    try:
        value, contact_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort in ("created_at", "updated_at"):
            value = datetime.fromisoformat(value)
        return value, int(contact_id)
    except (ValueError, TypeError):
        raise Invalid(_("Some filters are not valid."), {"cursor": _("This cursor is not valid.")}) from None
