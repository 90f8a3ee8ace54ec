"""Instructions per request: what pages cost, counted rather than timed.

Timed figures on a shared 2-core machine move by 15-35 % from one run to the next (the same
code measured 7.5 and 10.2 ms per list page five minutes apart), which hides the effect of
most single changes. ``valgrind --tool=callgrind`` counts the instructions the process runs
instead: the same code gives the same count within about 2 %, whatever else the machine does.
Use it to compare two versions of the code; use ``make bench`` for what a deployment serves.

Each page is requested in process (httpx over ASGI, one request at a time, as
``contacts_bench.py`` measures the list page) by a user of the given roles. Only the requests
are counted: start-up and log-in run before counting is switched on (``callgrind_control``).
The floor is ``contacts_bench.bare_app``: a bare Starlette route returning 50 contacts from the
same database as a page of the contact list's size. The ratio floor ÷ page is the list-page
figure of issue #4 in instructions (target: at least 1/3).

    .venv/bin/python bench/run.py --skip http,search,hooks,import,startup --keep   # prints its folder
    .venv/bin/python bench/instructions.py /tmp/kehu-bench-XXXX --team 售后一组 \\
        / /contacts/ "/contacts/?page=2" /contacts/93381 "/tickets/?view=team"

A folder kept by ``contacts_bench.py --keep`` works too (``--database kehu.sqlite3``; it has
no tickets). Needs valgrind; a run of five pages takes about three minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
FLOOR = "floor"


def _environment(folder: Path, database: str) -> dict[str, str]:
    return {"KEHU_HOME": str(folder / "home"), "KEHU_MASTER_KEY_FILE": str(folder / "master.key"),
            "KEHU_BROKER_URL": f"sqla+sqlite:///{folder / 'broker.sqlite3'}",
            "KEHU_DATABASE_URL": f"sqlite:///{folder / database}"}


def count(folder: Path, database: str, url: str, args: argparse.Namespace, page_size: int = 0) -> tuple[float, int]:
    """Instructions per request of ``url`` (or of the floor) and the size of its answer."""
    with tempfile.TemporaryDirectory() as scratch:
        output, report = Path(scratch) / "callgrind.out", Path(scratch) / "report.json"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={output}",
                   sys.executable, __file__, "--child", str(report), "--requests", str(args.requests),
                   "--roles", args.roles, "--team", args.team, "--page-size", str(page_size), str(folder), url]
        env = {**os.environ, **_environment(folder, database)}
        finished = subprocess.run(command, env=env, capture_output=True, text=True)
        if finished.returncode != 0 or not report.exists():
            raise SystemExit(f"{url}: the counted run failed:\n{finished.stderr[-2000:]}")
        totals = next(line for line in output.read_text().splitlines() if line.startswith("totals:"))
        return int(totals.split()[1]) / args.requests, json.loads(report.read_text())["size"]


def child(report: Path, folder: Path, url: str, args: argparse.Namespace) -> None:
    """Runs under valgrind: log in, warm up, then count ``args.requests`` requests of ``url``."""
    import httpx
    from sqlalchemy import delete, update

    sys.path.insert(0, str(BENCH))
    import contacts_bench
    from kehu.config import Settings
    from kehu.models import User
    from kehu.platform import Platform
    from kehu.web import create_app

    settings = Settings.from_env()
    platform = Platform.boot(settings)
    login = "count_" + secrets.token_hex(4)
    password = contacts_bench.add_user(platform, login, tuple(args.roles.split(",")))
    if args.team:
        with platform.session() as db:
            db.execute(update(User).where(User.login == login).values(team=args.team))
    app = contacts_bench.bare_app(platform, args.page_size) if url == FLOOR else create_app(settings)
    path = "/contacts/" if url == FLOOR else url

    async def run() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            if url != FLOOR:
                answer = await client.post("/login", data={"login": login, "password": password, "next": "/"},
                                           headers={"origin": "http://testserver"})
                assert answer.status_code == 303, answer.text[:300]
            for _ in range(10):
                answer = await client.get(path)
                assert answer.status_code == 200, f"{path} answered {answer.status_code}"
            subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], capture_output=True, check=True)
            for _ in range(args.requests):
                answer = await client.get(path)
            subprocess.run(["callgrind_control", "--instr=off", str(os.getpid())], capture_output=True, check=True)
            return len(answer.content)

    try:
        report.write_text(json.dumps({"size": asyncio.run(run())}))
    finally:  # the next count must see the same deployment (a queue page lists its users)
        with platform.session() as db:
            db.execute(delete(User).where(User.login == login))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a deployment kept by bench/run.py or contacts_bench.py (--keep)")
    parser.add_argument("urls", nargs="*", default=["/", "/contacts/"])
    parser.add_argument("--database", default="home/kehu.sqlite3", help="the SQLite file, relative to the folder")
    parser.add_argument("--requests", type=int, default=30, help="counted requests of each page")
    parser.add_argument("--roles", default="service,sales", help="roles of the user who asks")
    parser.add_argument("--team", default="", help="the user's team (the ticket queue's 'team' view needs one)")
    parser.add_argument("--page-size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_intermixed_args()
    if args.child:
        child(args.child, args.folder, args.urls[0], args)
        return
    if not (args.folder / args.database).exists():
        raise SystemExit(f"no database at {args.folder / args.database}: see --database")
    counted = {url: count(args.folder, args.database, url, args) for url in args.urls}
    list_size = counted.get("/contacts/", (0, 25_000))[1]
    floor, _size = count(args.folder, args.database, FLOOR, args, page_size=list_size)
    print(f"\n{'page':40s} {'instructions/request':>22s} {'bytes':>8s} {'floor ÷ page':>13s}")
    print(f"{'floor (bare route, ' + str(list_size) + ' bytes)':40s} {floor / 1e6:20.2f} M {list_size:8d} {1:13.3f}")
    for url, (instructions, size) in counted.items():
        print(f"{url:40s} {instructions / 1e6:20.2f} M {size:8d} {floor / instructions:13.3f}")


if __name__ == "__main__":
    main()
