"""Two settings of ``kehu serve`` compared in alternating paced runs on a kept bench deployment.

A full ``make bench`` measures one setting; the host's speed drifts by a third within an hour
here, so two full runs of different settings compare the host as much as the settings. This
script restarts the server between settings and alternates them run by run (A B, B A, A B, ...),
so that each pair ran within a minute of itself:

    .venv/bin/python bench/run.py --skip search,hooks,import,startup --keep      # prints the folder
    .venv/bin/python bench/ab_serve.py /tmp/kehu-bench-XXXX \\
        --a KEHU_REUSE_PORT=1 --b KEHU_REUSE_PORT=0 --pairs 8

Each setting is a list of environment variables for ``kehu serve`` (every serve option has
one). The paced Lua script is the one the kept run wrote (``mix-paced.lua``: the staff's session
cookies and tokens are kept in the database, so it still logs in). Prints each pair and, at the
end, the median p95 of each setting and in how many pairs A's p95 was lower; writes the runs to
``bench/results/<time>-ab.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import http_mix
from run import RESULTS_DIR, deployment_env


def parse_setting(assignments: list[str]) -> dict[str, str]:
    setting = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name:
            sys.exit(f"ab_serve.py: a setting is NAME=VALUE, not {assignment!r}")
        setting[name] = value
    return setting


def paced_run(wrk: str, env: dict[str, str], args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """A fresh ``kehu serve`` with ``env``, a short warm-up, one measured paced run, stopped."""
    port = http_mix.free_port()
    base = f"http://127.0.0.1:{port}"
    server = http_mix.start_kehu(env, port, args.workers, log, job_worker=not args.no_job_worker)
    try:
        http_mix.wait_ready(base, server)
        http_mix.run_wrk(wrk, base, args.folder / "mix-paced.lua", args.warmup, args.connections)
        return http_mix.run_wrk_sampled(wrk, base, args.folder / "mix-paced.lua", args.seconds, args.connections,
                                        server)
    finally:
        http_mix.stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a deployment kept by bench/run.py --keep")
    parser.add_argument("--a", nargs="+", required=True, metavar="NAME=VALUE", help="setting A's environment")
    parser.add_argument("--b", nargs="+", required=True, metavar="NAME=VALUE", help="setting B's environment")
    parser.add_argument("--database-url", default="", help="the KEHU_DATABASE_URL that run.py --keep printed "
                                                           "(PostgreSQL); default: the folder's SQLite file")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="paced warm-up after each start")
    parser.add_argument("--connections", type=int, default=50, help="as the kept run's (its Lua paces per connection)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-job-worker", action="store_true")
    args = parser.parse_args()
    if not (args.folder / "mix-paced.lua").is_file():
        sys.exit(f"ab_serve.py: {args.folder} has no mix-paced.lua: keep a deployment with bench/run.py --keep")
    wrk = http_mix.ensure_wrk()
    if wrk is None:
        sys.exit("ab_serve.py: wrk is not installed (apt-get install wrk)")
    base_env = deployment_env(args.folder, args.database_url)
    settings = {"A": parse_setting(args.a), "B": parse_setting(args.b)}
    log = args.folder / "logs" / "ab-serve.log"
    log.parent.mkdir(exist_ok=True)
    print(f"A: {' '.join(args.a)}\nB: {' '.join(args.b)}\n{args.pairs} pairs of {args.seconds:g} s paced runs "
          f"(the kept run's rate, {args.connections} connections), the order alternating")
    pairs: list[dict[str, dict[str, Any]]] = []
    for number in range(1, args.pairs + 1):
        pair = {}
        for name in ("A", "B") if number % 2 else ("B", "A"):
            pair[name] = paced_run(wrk, {**base_env, **settings[name]}, args, log)
        pairs.append(pair)
        print(f"  pair {number}: " + "; ".join(
            f"{name} p95 {run['p95_ms']:.1f} ms, {run['rps']:.1f} req/s served, split "
            f"{'/'.join(map(str, run.get('connections_per_process', [])))}"
            for name, run in sorted(pair.items()) if run["p95_ms"] is not None))
    complete = [pair for pair in pairs if pair["A"]["p95_ms"] is not None and pair["B"]["p95_ms"] is not None]
    if complete:
        medians = {name: statistics.median(pair[name]["p95_ms"] for pair in complete) for name in ("A", "B")}
        lower = sum(pair["A"]["p95_ms"] < pair["B"]["p95_ms"] for pair in complete)
        print(f"median p95: A {medians['A']:.1f} ms, B {medians['B']:.1f} ms; A lower in {lower} of {len(complete)} pairs")
    RESULTS_DIR.mkdir(exist_ok=True)
    output = RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-ab.json"
    output.write_text(json.dumps({"a": args.a, "b": args.b, "folder": str(args.folder), "pairs": pairs}, indent=1))
    print(f"written {output}")


if __name__ == "__main__":
    main()
