"""Importing contacts from CSV (any common encoding, any common dialect) and XLSX files.

1. :func:`read_table` reads the file: CSV bytes are decoded as UTF-8 when they are UTF-8,
   otherwise in the encoding charset-normalizer detects (GBK/GB18030 files from Excel on a
   Chinese Windows); the delimiter comes from :class:`csv.Sniffer`. XLSX files are read by
   openpyxl in read-only mode. The first row holds the column headers.
2. :func:`guess_mapping` maps columns to contact fields from their Chinese or English headers
   (``手机`` and ``Mobile`` → ``phone``); the mapping can be corrected.
3. :class:`Importer` checks every row like the API checks a new contact, then either creates
   the contact or, when a contact with one of the row's phone numbers or e-mail addresses (or
   the same name at the same company) exists, updates it: importing a file twice updates
   instead of duplicating. A row is imported whole or not at all (see :class:`Importer`); a
   rejected row is reported with its line number and the reason. A dry run does the same
   checks and matching without writing anything.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kehu import audit, events
from kehu.auth import CurrentUser
from kehu.errors import DomainError
from kehu.i18n import gettext as _
from kehu.models import User
from kehu.platform import Platform

from . import normalize, security, service
from .display import field_label
from .models import COMPANY, CUSTOMER, FORMER, LEAD, PERSON, Contact, ContactPoint, CustomField

BATCH_ROWS = 1000  # rows per transaction, and between two progress reports
MAX_ROWS = 100_000
MULTI_FIELDS = ("phones", "emails", "wechat_ids", "tags")

#: Importable fields (``custom.<key>`` fields come on top).
FIELDS = ("id", "name", "kind", "phones", "emails", "wechat_ids", "company", "position", "province", "city", "district",
          "street", "address_detail", "tags", "notes", "source", "stage", "owner")

_HEADERS = {
    "id": ("id", "编号", "客户编号", "contactid"),
    "name": ("姓名", "名字", "客户姓名", "客户名称", "联系人", "名称", "name", "fullname", "contact", "contactname"),
    "kind": ("类型", "客户类型", "个人或公司", "kind", "type", "personorcompany"),
    "phones": ("手机", "手机号", "手机号码", "电话", "电话号码", "联系电话", "座机", "固话", "办公电话", "mobile",
               "mobilephone", "cell", "cellphone", "phone", "phonenumber", "tel", "telephone", "workphone"),
    "emails": ("邮箱", "电子邮箱", "电子邮件", "邮件", "邮箱地址", "email", "e-mail", "mail", "emailaddress"),
    "wechat_ids": ("微信", "微信号", "wechat", "wechatid", "weixin"),
    "company": ("公司", "公司名称", "单位", "工作单位", "企业", "企业名称", "company", "companyname",
                "organization", "organisation", "account"),
    "position": ("职位", "职务", "岗位", "头衔", "title", "jobtitle", "position", "role"),
    "province": ("省", "省份", "所在省", "省/直辖市", "province", "state"),
    "city": ("市", "城市", "所在城市", "地级市", "city"),
    "district": ("区", "区县", "县区", "区/县", "县", "district", "county"),
    "street": ("街道", "地址", "街道地址", "通讯地址", "联系地址", "street", "address", "streetaddress"),
    "address_detail": ("详细地址", "门牌号", "补充地址", "地址备注", "addressdetail", "address2", "addressline2"),
    "tags": ("标签", "分类", "tags", "tag", "labels"),
    "notes": ("备注", "说明", "描述", "notes", "note", "remark", "remarks", "comment", "comments", "description"),
    "source": ("来源", "客户来源", "渠道", "source", "leadsource", "channel"),
    "stage": ("阶段", "客户阶段", "状态", "客户状态", "stage", "lifecyclestage", "status"),
    "owner": ("负责人", "负责人登录名", "销售", "归属销售", "跟进人", "owner", "ownerlogin", "salesperson",
              "assignedto"),
}
_STAGES = {LEAD: ("lead", "潜在客户", "线索", "意向客户", "prospect"),
           CUSTOMER: ("customer", "客户", "成交客户", "已成交", "client"),
           FORMER: ("former_customer", "former", "formercustomer", "前客户", "流失客户", "已流失", "churned")}
_KINDS = {PERSON: ("person", "个人", "联系人", "individual"), COMPANY: ("company", "公司", "企业", "organization")}


def _key(text: Any) -> str:
    """A header or value folded for comparison: ``" E-Mail: "`` → ``"e-mail"``, full width folded."""
    folded = unicodedata.normalize("NFKC", str(text or "")).strip().lower()
    return re.sub(r"[\s_:：*（）()]+", "", folded)


_HEADER_FIELD = {_key(alias): name for name, aliases in _HEADERS.items() for alias in aliases}
_STAGE_VALUE = {_key(alias): stage for stage, aliases in _STAGES.items() for alias in aliases}
_KIND_VALUE = {_key(alias): kind for kind, aliases in _KINDS.items() for alias in aliases}


# --- Reading files --------------------------------------------------------------------------------


class UnreadableFile(ValueError):
    """The file is not a CSV or XLSX table we can read; the message says why."""


@dataclass
class Table:
    headers: list[str]
    rows: list[tuple[int, list[str]]]  # (line number in the file, cells)


def read_table(path: Path, max_rows: int = MAX_ROWS) -> Table:
    """Read a CSV or XLSX file into headers and rows (with their line numbers); raises
    :class:`UnreadableFile` when it cannot, or has more than ``max_rows`` rows."""
    return _read(path, max_rows, stop_early=False)


def preview(path: Path, rows: int = 3) -> list[tuple[int, list[str]]]:
    """The first ``rows`` rows of a file (to show examples next to each column)."""
    return _read(path, rows, stop_early=True).rows


def _read(path: Path, max_rows: int, stop_early: bool) -> Table:
    """Read up to ``max_rows`` rows; more is an error, unless ``stop_early`` (then the rest is
    not read at all: a preview of a large CSV file reads its first 64 KiB only)."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path, max_rows, stop_early)
    with path.open("rb") as file:
        raw = file.read(64 * 1024) if stop_early else file.read()
    return _read_csv(raw, max_rows, stop_early)


def decode(raw: bytes) -> str:
    """CSV bytes as text: UTF-8 (with or without BOM) when valid, else the detected encoding."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = from_bytes(raw[:200_000], cp_isolation=["gb18030", "big5", "utf_16", "cp1252", "latin_1"]).best()
    encoding = best.encoding if best is not None else "gb18030"
    if encoding in ("gbk", "gb2312", "hz"):
        encoding = "gb18030"  # a superset: never fails on what GBK files contain
    return raw.decode(encoding, errors="replace")


def _read_csv(raw: bytes, max_rows: int, stop_early: bool) -> Table:
    text = service.CONTROL_CHARACTERS.sub("", decode(raw))  # NUL and such: never data
    if not text.strip():
        raise UnreadableFile(_("The file is empty."))
    sample = text[:20_000]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    rows: list[tuple[int, list[str]]] = []
    headers: list[str] | None = None
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UnreadableFile(_("Line %(line)s cannot be read: %(error)s", line=line, error=str(exc))) from None
        if headers is None:
            headers = [c.strip() for c in cells]
            continue
        if any(c.strip() for c in cells):
            rows.append((line, cells))
            if stop_early and len(rows) >= max_rows:
                break
            if len(rows) > max_rows:
                raise UnreadableFile(_("The file has more than %(n)s rows; split it.", n=max_rows))
    if not headers:
        raise UnreadableFile(_("The file is empty."))
    return Table(headers=headers, rows=rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return service.CONTROL_CHARACTERS.sub("", value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone number Excel stored as a number
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _read_xlsx(path: Path, max_rows: int, stop_early: bool) -> Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001  (zipfile, XML and openpyxl errors alike)
        raise UnreadableFile(_("This is not an Excel (XLSX) file we can read.")) from exc
    try:
        sheet = workbook.worksheets[0]
        headers: list[str] | None = None
        rows: list[tuple[int, list[str]]] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell(v) for v in values]
            if headers is None:
                if any(c.strip() for c in cells):
                    headers = [c.strip() for c in cells]
                continue
            if any(c.strip() for c in cells):
                rows.append((number, cells))
                if stop_early and len(rows) >= max_rows:
                    break
                if len(rows) > max_rows:
                    raise UnreadableFile(_("The file has more than %(n)s rows; split it.", n=max_rows))
    finally:
        workbook.close()
    if not headers:
        raise UnreadableFile(_("The file is empty."))
    return Table(headers=headers, rows=rows)


# --- Mapping columns to fields ------------------------------------------------------------------------


def targets(custom_fields: list[CustomField]) -> list[str]:
    """Every field a column can be mapped to."""
    return [*FIELDS, *(f"custom.{f.key}" for f in custom_fields if f.active)]


def guess_mapping(headers: list[str], custom_fields: list[CustomField]) -> dict[str, str]:
    """``{column index (as text): field}`` for the headers we recognize."""
    custom = {}
    for definition in custom_fields:
        if definition.active:
            for alias in (definition.key, *definition.label.values()):
                custom[_key(alias)] = f"custom.{definition.key}"
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for index, header in enumerate(headers):
        name = custom.get(_key(header)) or _HEADER_FIELD.get(_key(header))
        if name and (name in MULTI_FIELDS or name not in taken):
            mapping[str(index)] = name
            taken.add(name)
    return mapping


def mapping_from_options(headers: list[str], options: list[str], custom_fields: list[CustomField],
                         base: dict[str, str] | None = None) -> dict[str, str]:
    """Apply ``column=field`` corrections (column by header, 1-based number or Excel letter;
    an empty field ignores the column) to ``base`` (the guessed mapping by default)."""
    mapping = dict(guess_mapping(headers, custom_fields) if base is None else base)
    allowed = set(targets(custom_fields))
    for option in options:
        column, sep, name = option.partition("=")
        if not sep:
            raise ValueError(_("Write a mapping as column=field, not %(option)s.", option=option))
        index = column_index(headers, column.strip())
        name = name.strip()
        if name and name not in allowed:
            raise ValueError(_("Unknown field %(name)s; choose from: %(fields)s.", name=name,
                               fields=", ".join(sorted(allowed))))
        if name:
            mapping[str(index)] = name
        else:
            mapping.pop(str(index), None)
    return mapping


def column_index(headers: list[str], column: str) -> int:
    for index, header in enumerate(headers):
        if header == column or _key(header) == _key(column):
            return index
    if column.isdigit() and 1 <= int(column) <= len(headers):
        return int(column) - 1
    if column.isalpha() and len(column) <= 2:
        index = 0
        for letter in column.upper():
            index = index * 26 + ord(letter) - 64
        if 1 <= index <= len(headers):
            return index - 1
    raise ValueError(_("There is no column %(column)s in the file.", column=column))


# --- Importing rows -----------------------------------------------------------------------------------


@dataclass
class RowProblem:
    line: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


@dataclass
class Report:
    """What an import did (or, for a dry run, would do), row by row."""

    total: int = 0
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    outcomes: list[tuple[int, str, int | None]] = field(default_factory=list)  # (line, action, contact id)

    def add(self, line: int, action: str, contact_id: int | None = None, reason: str = "") -> None:
        setattr(self, action, getattr(self, action) + 1)
        self.processed += 1
        self.outcomes.append((line, action, contact_id))
        if reason:
            self.problems.append(RowProblem(line, reason))

    def counts(self) -> dict[str, int]:
        return {"total": self.total, "processed": self.processed, "created": self.created,
                "updated": self.updated, "unchanged": self.unchanged, "rejected": self.rejected}


class RowRejected(Exception):
    """A row that cannot be imported; the message says why."""


class _WriteFailed(Exception):
    """Writing a checked row failed: its batch is rolled back and imported again row by row."""


@dataclass
class _Row:
    """A row of the file on its way in: checked, matched to what exists, and its fate."""

    line: int
    parsed: service.ContactInput | None = None
    wanted: str = ""  # the contact number of an ``id`` column
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (kind, canonical value) of its points
    keys: list[tuple[str, ...]] = field(default_factory=list)  # what identifies its contact
    action: str = ""  # created, updated, unchanged or rejected
    contact: Contact | None = None  # the existing contact it is about
    changes: service.ContactInput | None = None  # what it changes on that contact
    contact_id: int | None = None
    reason: str = ""

    def reject(self, reason: str) -> None:
        self.action, self.reason = "rejected", reason


class Importer:
    """Imports the rows of a :class:`Table` as ``user`` (``None``: the system, as on the
    command line without ``--user``).

    Rows go in batches of :data:`BATCH_ROWS`, one transaction each: every row of the batch is
    checked, then all are matched against existing contacts with a few queries (blind indexes of
    their phone numbers and e-mails, names at companies), then new contacts are written with a
    few bulk INSERTs (:func:`service.create_contacts`) and matched ones updated. Should writing
    fail all the same, the batch is rolled back and imported again one row per transaction, so
    that only the culprit is rejected: a row is imported whole or not at all. Each batch is
    announced with one ``contact.imported`` event (``created`` and ``updated`` contact ids).

    Without ``contacts.write_all``, a row matching a contact owned by someone else is
    rejected, and new contacts belong to ``user``.
    """

    def __init__(self, platform: Platform, user: CurrentUser | None, mapping: dict[str, str], *,
                 dry_run: bool = False) -> None:
        self.platform = platform
        self.user = user
        self.mapping = {int(column): name for column, name in mapping.items() if name}
        self.dry_run = dry_run
        self._owners: dict[str, int | None] = {}
        self._planned: set[tuple[str, ...]] = set()  # dry run: what earlier rows would create

    def run(self, table: Table, progress: Callable[[Report], None] | None = None, file_name: str = "") -> Report:
        """Import (or, for a dry run, check) every row; ``progress`` is called after each batch."""
        if "name" not in self.mapping.values():
            raise ValueError(_("Map a column to the name: every contact needs one."))
        if self.user is not None and not self.user.can(security.WRITE):
            raise ValueError(_("You may not create contacts."))
        report = Report(total=len(table.rows))
        with self.platform.sessions() as db:
            fields = service.custom_fields(db)
        for start in range(0, len(table.rows), BATCH_ROWS):
            batch = table.rows[start:start + BATCH_ROWS]
            if self.dry_run:
                with self.platform.sessions() as db:
                    rows = self._plan(db, fields, batch, self._planned)
            else:
                rows = self._import_batch(fields, batch)
            for row in rows:
                report.add(row.line, row.action, row.contact_id, row.reason)
            if progress is not None:
                progress(report)
        if not self.dry_run:
            with self.platform.session() as db:
                audit.record(db, "contacts.import", actor=self.user, target=file_name[:120], detail=report.counts())
        return report

    def _import_batch(self, fields: list[CustomField], batch: list[tuple[int, list[str]]]) -> list[_Row]:
        try:
            with self.platform.session() as db:
                return self._import_rows(db, fields, batch)
        except _WriteFailed:  # nothing of this batch was kept: again, one transaction per row
            rows = []
            for line, cells in batch:
                try:
                    with self.platform.session() as db:
                        rows += self._import_rows(db, fields, [(line, cells)])
                except _WriteFailed as exc:
                    rows.append(_Row(line, action="rejected", reason=_describe(exc.__cause__)))
            return rows

    def _import_rows(self, db: Session, fields: list[CustomField], batch: list[tuple[int, list[str]]]) -> list[_Row]:
        """Plan and write ``batch`` in ``db``'s transaction; raises :class:`_WriteFailed` when
        writing fails (the transaction must then be rolled back). A row about the same contact
        as an earlier new row of the batch is planned after that one is written."""
        done: list[_Row] = []
        while len(done) < len(batch):
            rows = self._plan(db, fields, batch[len(done):], planned=set(), stop_at_repeat=True)
            try:
                self._write(db, rows)
            except Exception as exc:
                raise _WriteFailed() from exc
            done += rows
        return done

    def _plan(self, db: Session, fields: list[CustomField], batch: list[tuple[int, list[str]]],
              planned: set[tuple[str, ...]], stop_at_repeat: bool = False) -> list[_Row]:
        """What each row does: check it, then match the rows to existing contacts. ``planned``
        holds the keys of the contacts earlier rows create; a row sharing one updates that
        contact (a dry run counts it so) or, with ``stop_at_repeat``, ends the plan before it."""
        rows = []
        for line, cells in batch:
            row = _Row(line)
            try:
                row.parsed, row.wanted = self._parse(db, fields, cells)
                row.pairs = row.parsed.lookups()
                row.keys = self._keys(row)
            except RowRejected as exc:
                row.reject(str(exc))
            rows.append(row)
        self._match(db, [row for row in rows if not row.action])
        for index, row in enumerate(rows):
            if row.action:
                continue
            if any(key in planned for key in row.keys):
                if stop_at_repeat:
                    return rows[:index]
                row.action = "updated"
            elif row.contact is None:
                row.action = "created"
                planned.update(row.keys)
            else:
                assert row.parsed is not None
                row.changes = _changes(row.contact, row.parsed)
                row.action, row.contact_id = "updated" if row.changes else "unchanged", row.contact.id
        return rows

    @staticmethod
    def _keys(row: _Row) -> list[tuple[str, ...]]:
        """What identifies the row's contact for :meth:`_match`, to spot repeats in a file."""
        parsed = row.parsed
        assert parsed is not None
        keys: list[tuple[str, ...]] = list(row.pairs)
        if row.wanted:
            keys.append(("id", row.wanted))
        if not keys and (parsed.company or parsed.values.get("kind") == COMPANY):
            keys.append(("name", parsed.values["name"].lower(), (parsed.company or COMPANY).lower()))
        return keys

    def _parse(self, db: Session, fields: list[CustomField], cells: list[str]) -> tuple[service.ContactInput, str]:
        """The row's input and the contact number it names (an ``id`` column), or
        :class:`RowRejected` with a reason per field."""
        data = self._row_data(db, cells)
        wanted = data.pop("id", "")
        try:
            return service.parse_input(data, fields, creating=True), wanted
        except service.Invalid as exc:
            raise RowRejected("; ".join(f"{_label(key)}: {message}" for key, message in exc.fields.items())) from None

    def _row_data(self, db: Session, cells: list[str]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for column, name in self.mapping.items():
            value = cells[column].strip() if column < len(cells) else ""
            if value[:1] == "'" and value[1:2] in ("=", "+", "-", "@"):
                value = value[1:]  # our export's guard against formula injection
            if not value:
                continue
            if name in MULTI_FIELDS:
                data.setdefault(name, []).extend(service.list_of(value))
            elif name.startswith("custom."):
                custom.setdefault(name.removeprefix("custom."), value)
            elif name == "stage":
                data.setdefault("stage", _STAGE_VALUE.get(_key(value), value))
            elif name == "kind":
                data.setdefault("kind", _KIND_VALUE.get(_key(value), value))
            elif name == "owner":
                data.setdefault("owner_id", self._owner(db, value))
            else:
                data.setdefault(name, value)
        if custom:
            data["custom"] = custom
        return data

    def _owner(self, db: Session, login: str) -> int:
        if login not in self._owners:
            self._owners[login] = db.scalar(select(User.id).where(func.lower(User.login) == login.lower(),
                                                                  User.active.is_(True)))
        owner = self._owners[login]
        if owner is None:
            raise RowRejected(_("Owner: there is no user with login %(login)s.", login=login))
        if self.user is not None and owner != self.user.id and not self.user.can(security.WRITE_ALL):
            raise RowRejected(_("You may only assign contacts to yourself."))
        return owner

    def _match(self, db: Session, rows: list[_Row]) -> None:
        """Find the existing contact each row is about, with a few queries for all of them: the
        one with its number (an ``id`` column), else those with one of its phone numbers,
        e-mails or WeChat ids; for a row with none of these, the contact of the same name at the
        same company (or the company of that name). Rejects the rows that match several
        contacts, a contact that does not exist, or one the user may not change."""
        candidates: dict[int, set[int]] = {}  # row index -> contact ids
        by_point: dict[tuple[str, str], set[int]] = {}
        lookups = {(kind, normalize.lookup(kind, canonical)): (kind, canonical)
                   for row in rows if not row.wanted for kind, canonical in row.pairs}
        if lookups:
            found = db.execute(select(ContactPoint.contact_id, ContactPoint.kind, ContactPoint.lookup).where(
                ContactPoint.kind.in_({kind for kind, _lookup in lookups}),
                ContactPoint.lookup.in_({lookup for _kind, lookup in lookups})))
            for contact_id, kind, lookup in found:
                if (kind, lookup) in lookups:
                    by_point.setdefault(lookups[(kind, lookup)], set()).add(contact_id)
        by_name = [row.parsed for row in rows if row.parsed is not None and not row.wanted and not row.pairs]
        companies = self._companies(db, {(data.values["name"] if data.values.get("kind") == COMPANY
                                          else data.company or "").lower() for data in by_name} - {""})
        same_name = self._people_at(db, rows, companies)
        for index, row in enumerate(rows):
            parsed = row.parsed
            assert parsed is not None
            if row.wanted:
                candidates[index] = {int(row.wanted)} if row.wanted.isdigit() and len(row.wanted) < 10 else set()
            elif row.pairs:
                candidates[index] = set().union(*(by_point.get(pair, set()) for pair in row.pairs))
            elif parsed.values.get("kind") == COMPANY:
                name = parsed.values["name"].lower()
                candidates[index] = {companies[name]} if name in companies else set()
            elif parsed.company and parsed.company.lower() in companies:
                key = (parsed.values["name"].lower(), companies[parsed.company.lower()])
                candidates[index] = same_name.get(key, set())
        wanted_ids = set().union(*candidates.values()) if candidates else set()
        contacts = {c.id: c for c in db.scalars(select(Contact).where(Contact.id.in_(wanted_ids),
                                                                      Contact.erased_at.is_(None)))} if wanted_ids else {}
        for index, row in enumerate(rows):
            matched = [contacts[i] for i in sorted(candidates.get(index, set())) if i in contacts]
            if row.wanted and not matched:
                row.reject(_("There is no contact #%(id)s.", id=row.wanted))
            elif len(matched) > 1:
                row.reject(_("Matches several contacts (%(ids)s); merge them first.",
                             ids=", ".join(f"#{c.id}" for c in matched)))
            elif matched and self.user is not None and not security.may_change(self.user, matched[0]):
                row.reject(_("Matches contact #%(id)s, which you may not change.", id=matched[0].id))
            elif matched:
                row.contact = matched[0]

    @staticmethod
    def _companies(db: Session, names: set[str]) -> dict[str, int]:
        """The oldest company of each name (lower case), for the names that have one."""
        if not names:
            return {}
        found: dict[str, int] = {}
        for company_id, name in db.execute(select(Contact.id, func.lower(Contact.name)).where(
                Contact.kind == COMPANY, func.lower(Contact.name).in_(names)).order_by(Contact.id.desc())):
            found[name] = company_id  # the oldest comes last and wins
        return found

    @staticmethod
    def _people_at(db: Session, rows: list[_Row], companies: dict[str, int]) -> dict[tuple[str, int], set[int]]:
        """Contacts by (lower-case name, company id), for the rows matched by name and company."""
        names = {row.parsed.values["name"].lower() for row in rows if row.parsed is not None and row.parsed.company
                 and row.parsed.company.lower() in companies}
        if not names:
            return {}
        found: dict[tuple[str, int], set[int]] = {}
        for contact_id, name, company_id in db.execute(select(Contact.id, func.lower(Contact.name), Contact.company_id)
                                                       .where(func.lower(Contact.name).in_(names),
                                                              Contact.company_id.in_(set(companies.values())))):
            found.setdefault((name, company_id), set()).add(contact_id)
        return found

    def _write(self, db: Session, rows: list[_Row]) -> None:
        """Write the planned rows: new contacts in bulk, changed ones one by one; announce them."""
        new = [row for row in rows if row.action == "created"]
        created: list[int] = []
        if new:
            for row in new:
                assert row.parsed is not None
                row.parsed.allow_duplicate = True  # what could match was looked up just now
            result = service.create_contacts(self.platform, db, self.user, [row.parsed for row in new],  # type: ignore[misc]
                                             action="imported", announce=False)
            for row, contact_id in zip(new, result.ids, strict=True):
                row.contact_id = contact_id
            created = result.ids + result.company_ids
        updated = []
        for row in rows:
            if row.action == "updated" and row.changes is not None and row.contact is not None:
                service.update_contact(self.platform, db, self.user, row.contact, row.changes, action="imported",
                                       announce=False)
                updated.append(row.contact.id)
        if created or updated:
            events.emit(db, "contact.imported", {"created": created, "updated": sorted(set(updated))},
                        actor_id=getattr(self.user, "id", None))


def _label(name: str) -> str:
    base = {"phone": "phones", "email": "emails", "wechat_id": "wechat_ids", "company_id": "company",
            "owner_id": "owner"}.get(name, name)
    return field_label(base)


def _describe(error: BaseException | None) -> str:
    """Why writing a row failed, without repeating its (personal) data."""
    if isinstance(error, DomainError):
        return error.message
    return _("It could not be saved (%(error)s).", error=type(error).__name__)


def _changes(contact: Contact, parsed: service.ContactInput) -> service.ContactInput | None:
    """What a re-imported row changes on ``contact``: the row's non-empty values replace the
    contact's; its phone numbers, e-mails and tags are added to the contact's (an import never
    removes any). ``None`` when nothing changes."""
    changes = service.ContactInput(allow_duplicate=True)
    changes.values = {name: value for name, value in parsed.values.items()
                      if name != "kind" and value not in ("", None) and getattr(contact, name) != value}
    for kind, points in parsed.points.items():
        have = {p.lookup for p in contact.points if p.kind == kind}
        new = [point for point in points if normalize.lookup(kind, point.canonical) not in have]
        if new:
            changes.points[kind] = [service.point_of(kind, p.value) for p in contact.points if p.kind == kind] + new
    if parsed.tags and not set(parsed.tags) <= set(contact.tags):
        changes.tags = list(dict.fromkeys(contact.tags + parsed.tags))
    if parsed.company and (contact.company is None or contact.company.name.lower() != parsed.company.lower()):
        changes.company = parsed.company
    custom = {key: value for key, value in (parsed.custom or {}).items()
              if value not in (None, "", []) and (contact.custom or {}).get(key) != value}
    if custom:
        changes.custom = custom
    return changes if changes.changed_fields() else None


def error_report_csv(table: Table, problems: list[dict[str, Any]]) -> str:
    """The rejected rows: line number, reason, then the row's cells as they were in the file
    (UTF-8 with a BOM, so that Excel shows Chinese text correctly)."""
    cells = dict(table.rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_("Line"), _("Reason"), *table.headers])
    for problem in problems:
        writer.writerow([problem["line"], problem["reason"], *cells.get(problem["line"], [])])
    return "\ufeff" + out.getvalue()
