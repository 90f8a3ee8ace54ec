"""Contacts: import speed and phone-number search latency on a deployment of its own.

    .venv/bin/python bench/contacts_bench.py [--rows 10000] [--database-url URL]

Writes a CSV of ``--rows`` people (Chinese names, mobile numbers, half with an e-mail, 500
companies), imports it with the importer the web UI and ``kehu contacts import`` use (one
transaction and one ``contact.created`` event per row, on the embedded job broker), then looks
up 300 of the phone numbers, each typed in another format, through the list query the page and
the API use. Prints rows per second and the search latency (median, p95).
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞宇浩然欣怡子涵雨轩博文思远晓东海燕建国志强"
CITIES = [("上海市", "上海市"), ("北京市", "北京市"), ("浙江省", "杭州市"), ("广东省", "深圳市"), ("广东省", "广州市"),
          ("四川省", "成都市"), ("湖北省", "武汉市"), ("江苏省", "南京市")]


def write_csv(path: Path, rows: int, rng: random.Random) -> list[str]:
    phones = rng.sample(range(13000000000, 13999999999), rows)
    with path.open("w", newline="", encoding="gb18030") as fh:
        writer = csv.writer(fh)
        writer.writerow(["姓名", "手机", "邮箱", "公司", "职位", "省", "市", "标签"])
        for number, phone in enumerate(phones):
            province, city = rng.choice(CITIES)
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
            writer.writerow([name, str(phone), f"user{number}@example.com" if number % 2 else "",
                             f"公司{rng.randint(1, 500)}", "经理", province, city, rng.choice(["VIP", "展会", ""])])
    return [str(p) for p in phones]


def formats(phone: str) -> list[str]:
    return [phone, f"{phone[:3]} {phone[3:7]} {phone[7:]}", f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}",
            f"0086{phone}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    rng = random.Random(7)
    folder = Path(tempfile.mkdtemp(prefix="contacts-bench-"))
    database_url = args.database_url or f"sqlite:///{folder / 'kehu.sqlite3'}"
    if database_url.startswith("postgresql"):  # a schema of its own, dropped afterwards
        from sqlalchemy import create_engine, text

        schema = f"bench_{folder.name.replace('-', '_').lower()}"
        admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        database_url += ("&" if "?" in database_url else "?") + f"options=-csearch_path%3D{schema}"
    import os

    os.environ.update(KEHU_HOME=str(folder / "home"), KEHU_MASTER_KEY_FILE=str(folder / "master.key"),
                      KEHU_BROKER_URL=f"sqla+sqlite:///{folder / 'broker.sqlite3'}", KEHU_DATABASE_URL=database_url)
    try:
        run(args.rows, rng, folder)
    finally:
        if args.database_url.startswith("postgresql"):
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def run(rows: int, rng: random.Random, folder: Path) -> None:
    from kehu.config import Settings
    from kehu_plugins.contacts import importer, listing
    from tests.conftest import boot_with

    settings = Settings.from_env()
    settings.ensure_home()
    platform = boot_with(settings, ["contacts"])
    from tests.contacts_support import Crm

    crm = Crm(settings=settings, platform=platform)
    crm.add_user("bench", ("admin",))
    user = crm.user("bench")

    path = folder / "people.csv"
    phones = write_csv(path, rows, rng)
    started = time.perf_counter()
    table = importer.read_table(path)
    report = importer.Importer(platform, user, importer.guess_mapping(table.headers, [])).run(table)
    seconds = time.perf_counter() - started
    print(f"database: {platform.engine.dialect.name}; imported {report.created} of {len(table.rows)} rows "
          f"({report.rejected} rejected) in {seconds:.1f} s: {len(table.rows) / seconds:.0f} rows/s")

    timings = []
    for phone in rng.sample(phones, 300):
        query = listing.ListQuery(q=rng.choice(formats(phone)))
        with platform.sessions() as db:
            begun = time.perf_counter()
            found = listing.page(platform, db, user, query)
            timings.append((time.perf_counter() - begun) * 1000)
        assert found.total == 1, (phone, found.total)
    timings.sort()
    print(f"phone search over {report.created} contacts: median {statistics.median(timings):.1f} ms, "
          f"p95 {timings[int(len(timings) * 0.95)]:.1f} ms (300 look-ups, formats mixed)")

    client = crm.client("bench")
    timings = []
    for phone in rng.sample(phones, 100):
        begun = time.perf_counter()
        response = client.get("/api/contacts/", params={"q": rng.choice(formats(phone))})
        timings.append((time.perf_counter() - begun) * 1000)
        assert response.json()["total"] == 1
    timings.sort()
    print(f"GET /api/contacts/?q=<phone> end to end (test client): median {statistics.median(timings):.1f} ms, "
          f"p95 {timings[int(len(timings) * 0.95)]:.1f} ms")


if __name__ == "__main__":
    main()
