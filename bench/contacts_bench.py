"""Contacts: the three speed figures of the contacts plugin, each against a floor measured in the
same run on the same database.

    .venv/bin/python bench/contacts_bench.py [--import-rows 100000] [--contacts 1000000]
        [--runs 3] [--seconds 5] [--database-url URL] [--json bench/results/contacts.json]
        [--only import,search,list] [--profile] [--keep]

1. **Import**: a CSV of ``--import-rows`` people (Chinese names, mobile numbers, half with an
   e-mail, a company, a position, an address, a tag), GB18030-encoded like a file from Excel on
   a Chinese Windows, imported by the importer that ``kehu contacts import`` and the web UI use:
   decoding and header mapping, validation, canonical phone numbers, AES-GCM encryption, blind
   indexes, duplicate checks, revisions and one ``contact.imported`` event per batch. The floor
   reads the same file with the ``csv`` module and inserts the same rows with plain SQLAlchemy
   Core into the same tables (a contact row, its phone and e-mail rows holding the values as
   they are in the file, its tag row; no encryption, no blind index, no checks, no revision).
   Target: at least 1/4 of the floor's rate.
2. **Search**: ``--contacts`` contacts (1,000,000 by default; written directly, encrypted and
   indexed like imported ones), then the list query of the page and the API (record rules,
   count and first page) for an exact phone number typed in various formats, inside the
   application. Target: median under 5 ms.
3. **List page**: ``GET /contacts/`` (50 rows, phone numbers masked: the user lacks
   ``contacts.view_sensitive``) through the whole application (session, permissions, record
   rules, decryption, masking, template), against a bare Starlette route that reads 50 contacts
   from the same database and returns an HTML page of the same size. Both are driven the same
   way (httpx over ASGI, one request at a time), in turns of a quarter of a second, so that
   the machine's drift weighs on both alike. Target: at least 1/3 of the floor's throughput.

Each figure is measured ``--runs`` times; the median is reported with the minimum and maximum,
and everything is written as JSON to ``--json``. A PostgreSQL ``--database-url`` gets a schema
of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞宇浩然欣怡子涵雨轩博文思远晓东海燕建国志强"
CITIES = [("上海市", "上海市", "浦东新区"), ("北京市", "北京市", "海淀区"), ("浙江省", "杭州市", "西湖区"),
          ("广东省", "深圳市", "南山区"), ("广东省", "广州市", "天河区"), ("四川省", "成都市", "锦江区"),
          ("湖北省", "武汉市", "江汉区"), ("江苏省", "南京市", "鼓楼区")]
HEADERS = ["姓名", "手机", "邮箱", "公司", "职位", "省", "市", "区", "地址", "标签"]
MOBILE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "158", "159", "186",
                   "187", "188", "189")


# --- Results ----------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure against its floor: ``better`` says whether higher or lower is good."""

    name: str
    unit: str
    better: str  # "higher" or "lower"
    target: str
    runs: list[float] = field(default_factory=list)
    floor_runs: list[float] = field(default_factory=list)
    floor_name: str = ""
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def _summary(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else {}

    @property
    def ratio(self) -> float | None:
        if not self.runs or not self.floor_runs:
            return None
        return statistics.median(self.runs) / statistics.median(self.floor_runs)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(figure=self._summary(self.runs), floor=self._summary(self.floor_runs), ratio=self.ratio)
        return data

    def print(self) -> None:
        figure = self._summary(self.runs)
        print(f"\n== {self.name}")
        print(f"   figure: median {figure['median']:.2f} {self.unit} (min {figure['min']:.2f}, max {figure['max']:.2f}, "
              f"{len(self.runs)} runs)")
        if self.floor_runs:
            floor = self._summary(self.floor_runs)
            print(f"   floor ({self.floor_name}): median {floor['median']:.2f} {self.unit} "
                  f"(min {floor['min']:.2f}, max {floor['max']:.2f})")
            print(f"   ratio figure/floor: {self.ratio:.3f}   target: {self.target}")
        else:
            print(f"   target: {self.target}")
        if self.notes:
            print(f"   {self.notes}")


# --- A deployment of its own ---------------------------------------------------------------------


def deploy(folder: Path, database_url: str) -> Any:
    """A fresh deployment in ``folder`` with contacts enabled and migrated; returns the platform."""
    os.environ.update(KEHU_HOME=str(folder / "home"), KEHU_MASTER_KEY_FILE=str(folder / "master.key"),
                      KEHU_BROKER_URL=f"sqla+sqlite:///{folder / 'broker.sqlite3'}", KEHU_DATABASE_URL=database_url)
    from kehu import crypto, migrations, modules, rbac
    from kehu.config import Settings
    from kehu.platform import Platform

    settings = Settings.from_env()
    settings.ensure_home()
    crypto.ensure_master_key(settings.master_key_file)
    platform = Platform.boot(settings)
    migrations.upgrade_all(platform)
    with platform.session() as db:
        modules.enable(db, "contacts", platform.modules)
    platform = Platform.boot(settings)
    migrations.upgrade_all(platform)
    crypto.ensure_keys(platform)
    with platform.session() as db:
        rbac.sync_roles(platform, db)
    return Platform.boot(settings)


def add_user(platform: Any, login: str, roles: tuple[str, ...]) -> str:
    """Create a user; returns the password."""
    from sqlalchemy import select

    from kehu import auth
    from kehu.models import Role, User

    password = secrets.token_urlsafe(12)
    with platform.session() as db:
        user = User(login=login, name=login, password_hash=auth.hash_password(password))
        user.roles = list(db.scalars(select(Role).where(Role.name.in_(roles))))
        db.add(user)
    return password


def current_user(platform: Any, login: str) -> Any:
    from sqlalchemy import select

    from kehu import auth
    from kehu.models import User

    with platform.sessions() as db:
        return auth.current_user_of(db.scalar(select(User).where(User.login == login)))


def empty_contacts(platform: Any) -> None:
    """Delete every contact (and what hangs off them), so that each import run starts alike."""
    from sqlalchemy import delete

    from kehu.models import OutboxEvent
    from kehu_plugins.contacts.models import MODELS

    with platform.session() as db:
        for model in reversed(MODELS):
            db.execute(delete(model))
        db.execute(delete(OutboxEvent))


# --- Data --------------------------------------------------------------------------------------


def mobiles(count: int, rng: random.Random) -> list[str]:
    numbers: set[str] = set()
    while len(numbers) < count:
        numbers.add(rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}")
    return sorted(numbers, key=lambda _n: rng.random())


def person(number: int, phone: str, rng: random.Random) -> list[str]:
    province, city, district = rng.choice(CITIES)
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
    return [name, phone, f"user{number}@example.com" if number % 2 else "", f"公司{rng.randint(1, 500)}",
            rng.choice(["经理", "采购", "总监", ""]), province, city, district, f"人民路{rng.randint(1, 999)}号",
            rng.choice(["VIP", "展会", ""])]


def write_csv(path: Path, rows: int, rng: random.Random) -> list[str]:
    phones = mobiles(rows, rng)
    with path.open("w", newline="", encoding="gb18030") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        for number, phone in enumerate(phones):
            writer.writerow(person(number, phone, rng))
    return phones


def formats(phone: str) -> list[str]:
    return [phone, f"{phone[:3]} {phone[3:7]} {phone[7:]}", f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}",
            f"0086{phone}", f"+86{phone}"]


# --- 1. Import --------------------------------------------------------------------------------------


def floor_tables(platform: Any) -> Any:
    """The contacts tables as the database describes them (reflected: plain column types, so no
    encryption and no checks on the way in): the floor writes into the very same tables."""
    from sqlalchemy import MetaData

    metadata = MetaData()
    metadata.reflect(platform.engine, only=["contacts_contact", "contacts_contact_point", "contacts_tag"])
    return metadata


def floor_import(platform: Any, path: Path) -> float:
    """Rows per second of plain SQLAlchemy Core inserts of the file's rows into the contacts
    tables (a contact row, its phone and e-mail rows with the values as they are in the file,
    its tag row), in batches of 1,000 rows, one transaction each."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from kehu import crypto

    empty_contacts(platform)
    metadata = floor_tables(platform)
    contact, point, tag = (metadata.tables[n] for n in ("contacts_contact", "contacts_contact_point", "contacts_tag"))
    started = time.perf_counter()
    with path.open(encoding="gb18030", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows = list(reader)
    for start in range(0, len(rows), 1000):
        batch = rows[start:start + 1000]
        now = datetime.now(UTC)
        keys = [crypto.new_row_key() for _row in batch]
        with platform.engine.begin() as conn:
            id_of = dict(conn.execute(insert(contact).returning(contact.c.row_key, contact.c.id), [
                {"row_key": key, "kind": "person", "name": r[0], "position": r[4], "source": "", "stage": "lead",
                 "province": r[5], "city": r[6], "district": r[7], "street_sealed": r[8].encode(), "notes": "",
                 "preferences": "{}", "custom": "{}", "created_at": now, "updated_at": now, "version": 1}
                for key, r in zip(keys, batch, strict=True)]).all())
            ids = [id_of[key] for key in keys]
            points = [{"contact_id": i, "kind": kind, "value_sealed": value.encode(), "lookup": value, "label": "",
                       "position": 0, "row_key": key}
                      for i, key, r in zip(ids, keys, batch, strict=True) for kind, value in (("phone", r[1]), ("email", r[2]))
                      if value]
            conn.execute(insert(point), points)
            tags = [{"contact_id": i, "tag": r[9]} for i, r in zip(ids, batch, strict=True) if r[9]]
            if tags:
                conn.execute(insert(tag), tags)
    seconds = time.perf_counter() - started
    empty_contacts(platform)
    return len(rows) / seconds


def kehu_import(platform: Any, user: Any, path: Path) -> tuple[float, Any]:
    """Rows per second of the contacts importer on the same file; the report."""
    from kehu_plugins.contacts import importer

    empty_contacts(platform)
    started = time.perf_counter()
    table = importer.read_table(path)
    report = importer.Importer(platform, user, importer.guess_mapping(table.headers, [])).run(table, file_name=path.name)
    seconds = time.perf_counter() - started
    assert report.created == len(table.rows) and not report.rejected, (report.counts(), report.problems[:3])
    return len(table.rows) / seconds, report


def bench_import(platform: Any, folder: Path, rows: int, runs: int, rng: random.Random,
                 profile: bool = False) -> Figure:
    figure = Figure("import of a CSV file (GB18030) with encryption, blind indexes and duplicate checks", "rows/s",
                    "higher", ">= 1/4 of the floor (ratio >= 0.25)",
                    floor_name="plain SQLAlchemy Core inserts of the same rows into the same tables")
    user = current_user(platform, "bench")
    path = folder / "people.csv"
    write_csv(path, rows, rng)
    for run in range(runs):
        floor = floor_import(platform, path)
        if profile and run == runs - 1:
            rate = _profiled(lambda: kehu_import(platform, user, path)[0], folder / "import-profile.html")
        else:
            rate = kehu_import(platform, user, path)[0]
        figure.floor_runs.append(floor)
        figure.runs.append(rate)
        print(f"   import run {run + 1}: {rate:.0f} rows/s (floor {floor:.0f} rows/s)", flush=True)
    figure.notes = f"{rows} rows per run"
    return figure


def _profiled(work: Callable[[], float], output: Path) -> float:
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("   (pyinstrument is not installed: no profile)")
        return work()
    profiler = Profiler()
    profiler.start()
    result = work()
    profiler.stop()
    output.write_text(profiler.output_html())
    print(profiler.output_text(unicode=True, color=False, show_all=False)[:6000])
    print(f"   profile written to {output}")
    return result


# --- 2. Search ---------------------------------------------------------------------------------------


def populate(platform: Any, count: int, rng: random.Random) -> list[str]:
    """``count`` contacts written straight into the contacts tables, encrypted and indexed as the
    importer writes them (much faster than importing them). Returns their phone numbers."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, insert, select

    from kehu import crypto
    from kehu_plugins.contacts import normalize
    from kehu_plugins.contacts.models import Contact, ContactPoint

    with platform.sessions() as db:
        existing = db.scalar(select(func.count()).select_from(Contact)) or 0
    if existing >= count:
        with platform.sessions() as db:
            return [normalize.display_phone(p.value).replace(" ", "") for p in db.scalars(
                select(ContactPoint).where(ContactPoint.kind == "phone").limit(5000))]
    empty_contacts(platform)
    phones = mobiles(count, rng)
    point_aad = ContactPoint.value.field.aad
    owner = current_user(platform, "bench").id
    started = time.perf_counter()
    base = datetime.now(UTC) - timedelta(days=400)
    for start in range(0, count, 5000):
        chunk = phones[start:start + 5000]
        contacts = []
        for offset, phone in enumerate(chunk):
            number = start + offset
            province, city, district = CITIES[number % len(CITIES)]
            moment = base + timedelta(seconds=number * 30)
            contacts.append({"kind": "person", "name": SURNAMES[number % len(SURNAMES)] + GIVEN[number % len(GIVEN)],
                             "position": "", "source": "bench", "owner_id": owner, "stage": "lead",
                             "province": province, "city": city, "district": district, "notes": "", "preferences": {},
                             "custom": {}, "created_at": moment, "updated_at": moment, "version": 1,
                             "row_key": crypto.new_row_key()})
        with platform.engine.begin() as conn:
            ids = conn.execute(insert(Contact.__table__).returning(Contact.__table__.c.id, sort_by_parameter_order=True),
                               contacts).scalars().all()
            points = []
            for contact_id, phone in zip(ids, chunk, strict=True):
                canonical = "+86" + phone
                row_key = crypto.new_row_key()
                points.append({"contact_id": contact_id, "kind": "phone", "row_key": row_key, "label": "",
                               "position": 0, "lookup": normalize.lookup("phone", canonical),
                               "value_sealed": crypto.encrypt(canonical, point_aad(row_key))})
            conn.execute(insert(ContactPoint.__table__), points)
        if start and start % 100_000 == 0:
            print(f"   {start} contacts written ({time.perf_counter() - started:.0f} s)", flush=True)
    with platform.engine.begin() as conn:
        if platform.engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
    print(f"   {count} contacts written in {time.perf_counter() - started:.0f} s", flush=True)
    return phones


def bench_search(platform: Any, phones: list[str], runs: int, rng: random.Random) -> Figure:
    from kehu_plugins.contacts import listing

    figure = Figure(f"search by exact phone number among {len(phones) if len(phones) > 5000 else 'the'} contacts",
                    "ms", "lower", "median < 5 ms")
    user = current_user(platform, "bench")
    for run in range(runs):
        timings = []
        for phone in rng.sample(phones, min(200, len(phones))):
            query = listing.ListQuery(q=rng.choice(formats(phone)))
            with platform.sessions() as db:
                begun = time.perf_counter()
                found = listing.page(platform, db, user, query, shape="views")
                timings.append((time.perf_counter() - begun) * 1000)
            assert found.total == 1 and len(found.items) == 1, (phone, found.total)
        timings.sort()
        figure.runs.append(statistics.median(timings))
        print(f"   search run {run + 1}: median {statistics.median(timings):.2f} ms, "
              f"p95 {timings[int(len(timings) * 0.95)]:.2f} ms", flush=True)
    figure.notes = ("listing.page as the API runs it (shape=\"views\"): record rules, blind index look-up, "
                    "count and first page, the found contact read and decrypted as the user may see it")
    return figure


# --- 3. The list page --------------------------------------------------------------------------------


def bare_app(platform: Any, size: int) -> Any:
    """A bare Starlette route: 50 contacts from the same database as an HTML page of ``size`` bytes."""
    from html import escape

    from sqlalchemy import select
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from kehu_plugins.contacts.models import Contact

    query = (select(Contact.id, Contact.name, Contact.city, Contact.stage, Contact.position)
             .order_by(Contact.created_at.desc(), Contact.id.desc()).limit(50))

    def contacts(request: Request) -> HTMLResponse:
        with platform.engine.connect() as conn:
            rows = conn.execute(query).all()
        body = "".join(f'<tr data-contact="{r.id}"><td><a href="/contacts/{r.id}">{escape(r.name)}</a></td>'
                       f"<td>{escape(r.position)}</td><td>{escape(r.city)}</td><td>{escape(r.stage)}</td></tr>"
                       for r in rows)
        page = f"<!doctype html><html><body><table>{body}</table></body></html>"
        return HTMLResponse(page + " " * max(0, size - len(page.encode())))

    return Starlette(routes=[Route("/contacts/", contacts)])


#: The list page, its floor and the home page are measured in turns of this many seconds, so
#: that the machine's drift (other tenants, frequency) weighs on all three alike.
TURN_SECONDS = 0.25


async def _throughputs(targets: list[tuple[Any, str, dict[str, str]]], seconds: float) -> list[tuple[float, int]]:
    """Requests per second of each ``(app, url, cookies)``, one request at a time, taken in turns
    until each has run ``seconds``; with the size of its last answer."""
    import httpx

    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                 cookies=cookies) for app, _url, cookies in targets]
    counts, spent, sizes = [0] * len(targets), [0.0] * len(targets), [0] * len(targets)
    try:
        for client, (_app, url, _cookies) in zip(clients, targets, strict=True):
            for _ in range(5):  # warm up
                response = await client.get(url)
                assert response.status_code == 200, response.text[:500]
        while min(spent) < seconds:
            for index, (client, (_app, url, _cookies)) in enumerate(zip(clients, targets, strict=True)):
                started = time.perf_counter()
                turn_ends = started + TURN_SECONDS
                while time.perf_counter() < turn_ends:
                    response = await client.get(url)
                    assert response.status_code == 200
                    counts[index] += 1
                spent[index] += time.perf_counter() - started
                sizes[index] = len(response.content)
    finally:
        for client in clients:
            await client.aclose()
    return [(count / elapsed, size) for count, elapsed, size in zip(counts, spent, sizes, strict=True)]


def bench_list_page(platform: Any, runs: int, seconds: float) -> Figure:
    import httpx

    from kehu.web import create_app

    figure = Figure("contact list page (50 rows, phone numbers masked)", "pages/s", "higher",
                    ">= 1/3 of the floor (ratio >= 0.333)",
                    floor_name="bare Starlette route returning 50 contacts from the same database, same page size")
    app = create_app(platform.settings)
    password = add_user(platform, "reader", ("viewer",))

    async def log_in() -> tuple[dict[str, str], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post("/login", data={"login": "reader", "password": password, "next": "/"},
                                         headers={"origin": "http://testserver"})
            assert response.status_code == 303, response.text[:300]
            cookies = dict(client.cookies)
            page = await client.get("/contacts/")
            assert page.status_code == 200 and page.text.count('data-contact="') == 50, page.text[:300]
            assert "****" in page.text  # masked
            return cookies, len(page.content)

    cookies, size = asyncio.run(log_in())
    bare = bare_app(platform, size)
    shell: list[float] = []
    for run in range(runs):
        # With the core's own home page: the session, permissions and layout every page pays
        # for, without any contacts work. It bounds what any plugin page can reach.
        (floor, floor_size), (rate, page_size), (home, _home_size) = asyncio.run(_throughputs(
            [(bare, "/contacts/", {}), (app, "/contacts/", cookies), (app, "/", cookies)], seconds))
        shell.append(home)
        figure.floor_runs.append(floor)
        figure.runs.append(rate)
        print(f"   list page run {run + 1}: {rate:.1f} pages/s (floor {floor:.1f} pages/s; "
              f"{page_size} and {floor_size} bytes; the core's home page {shell[-1]:.1f} pages/s)", flush=True)
    shell_ratio = statistics.median(shell) / statistics.median(figure.floor_runs)
    figure.details = {"core_home_page_runs": shell, "core_home_page_ratio": shell_ratio}
    figure.notes = (f"the core's home page alone (session, menu, layout; {statistics.median(shell):.1f} pages/s) is at "
                    f"{shell_ratio:.3f} of the floor")
    return figure


# --- Main --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts to search among (and list)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each list page run")
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--json", default="bench/results/contacts.json", help="where to write the results")
    parser.add_argument("--only", default="import,search,list")
    parser.add_argument("--profile", action="store_true", help="profile the last import run (pyinstrument)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary deployment (its folder is printed)")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    rng = random.Random(7)
    folder = Path(tempfile.mkdtemp(prefix="contacts-bench-"))
    database_url = args.database_url or f"sqlite:///{folder / 'kehu.sqlite3'}"
    schema = ""
    if database_url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        from kehu.db import psycopg_url

        database_url = psycopg_url(database_url)
        schema = f"bench_{secrets.token_hex(4)}"
        admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        database_url += ("&" if "?" in database_url else "?") + f"options=-csearch_path%3D{schema}"
    figures: list[Figure] = []
    try:
        platform = deploy(folder, database_url)
        add_user(platform, "bench", ("admin",))
        print(f"database: {platform.engine.dialect.name}; folder {folder}", flush=True)
        if "import" in wanted:
            figures.append(bench_import(platform, folder, args.import_rows, args.runs, rng, args.profile))
        if wanted & {"search", "list"}:
            phones = populate(platform, args.contacts, rng)
            if "search" in wanted:
                figures.append(bench_search(platform, phones, args.runs, rng))
            if "list" in wanted:
                figures.append(bench_list_page(platform, args.runs, args.seconds))
        platform.engine.dispose()
    finally:
        if schema:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print("\nSummary")
    for figure in figures:
        figure.print()
    results = {"database": database_url.split(":", 1)[0], "import_rows": args.import_rows, "contacts": args.contacts,
               "runs": args.runs, "figures": [f.as_dict() for f in figures]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=2))
    print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
