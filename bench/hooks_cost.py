"""The cost of the hook layer per request.

The composed application runs in this process and serves the requests of the staff mix one
at a time, each timed at the ASGI boundary (what uvicorn would wait for). Meanwhile:

- pluggy's ``add_hookcall_monitoring`` times every hook call (``pm.hook.<name>(...)``);
- every hook implementation's function is wrapped with a timer, which also catches the
  implementations that code calls directly through ``get_hookimpls()``.

Two figures per request, as a share of the request's time:

- *time in hooks*: the outermost hook calls and directly called implementations, the work of
  the implementations included (a slot's panel, a person's summary): an upper bound;
- *pluggy dispatch*: the time of each hook call minus the time of its implementations: what
  the plugin machinery itself costs.
"""

from __future__ import annotations

import asyncio
import functools
import random
import statistics
import threading
import time
from collections import Counter
from typing import Any

import httpx
from pluggy import HookCaller
from sqlalchemy import Engine, event

from http_mix import Kind, MixData, Staff, request_for


class HookTimer:
    def __init__(self) -> None:
        self.local = threading.local()
        self.inclusive = 0.0  # seconds in outermost hook calls and directly called implementations
        self.dispatch = 0.0  # seconds in pluggy's own code
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _stack(self) -> list[list[Any]]:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        return self.local.stack  # type: ignore[no-any-return]

    def before(self, hook_name: str, hook_impls: Any, kwargs: Any) -> None:
        self._stack().append(["call", time.perf_counter(), 0.0])

    def after(self, outcome: Any, hook_name: str, hook_impls: Any, kwargs: Any) -> None:
        stack = self._stack()
        _kind, started, in_impls = stack.pop()
        spent = time.perf_counter() - started
        with self.lock:
            self.dispatch += spent - in_impls
            self.calls[hook_name] += 1
            if not stack:
                self.inclusive += spent

    def wrap(self, hook_name: str, function: Any) -> Any:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._stack()
            stack.append(["impl", time.perf_counter(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                _kind, started, _inner = stack.pop()
                spent = time.perf_counter() - started
                if stack and stack[-1][0] == "call":
                    stack[-1][2] += spent
                elif not stack:  # called directly through get_hookimpls()
                    with self.lock:
                        self.inclusive += spent
                        self.calls[hook_name + " (direct)"] += 1

        return timed

    def install(self, pm: Any) -> None:
        pm.add_hookcall_monitoring(self.before, self.after)
        for name in dir(pm.hook):
            caller = getattr(pm.hook, name)
            if isinstance(caller, HookCaller):
                for impl in caller.get_hookimpls():
                    if not (impl.hookwrapper or impl.wrapper):  # generators: their time stays "dispatch"
                        impl.function = self.wrap(name, impl.function)

    def reset(self) -> None:
        self.inclusive = self.dispatch = 0.0
        self.calls.clear()


class TimedApp:
    """ASGI wrapper: the total time requests spent inside the application."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.total = 0.0
        self.last = 0.0
        self.statements = 0  # SQL statements sent by any engine of this process, so far
        self.last_statements = 0

    def _counted(self, *_args: Any) -> None:
        self.statements += 1

    def count_statements(self, counting: bool = True) -> None:
        """Count every SQL statement the process sends (each one a round trip to a database
        server: what a page costs on PostgreSQL beyond its work on SQLite), or stop counting."""
        if counting:
            event.listen(Engine, "before_cursor_execute", self._counted)
        elif event.contains(Engine, "before_cursor_execute", self._counted):
            event.remove(Engine, "before_cursor_execute", self._counted)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started, statements = time.perf_counter(), self.statements
        try:
            await self.app(scope, receive, send)
        finally:
            self.last = time.perf_counter() - started
            self.last_statements = self.statements - statements
            self.total += self.last


async def _serve_mix(app: TimedApp, kinds: list[Kind], data: MixData, staff: list[Staff], cookie_name: str,
                     per_kind: int, rng: random.Random
                     ) -> tuple[int, dict[str, list[float]], dict[str, list[int]], list[tuple[float, str]]]:
    """The mix's requests in random order; returns (failed, milliseconds per request by kind,
    SQL statements per request by kind, the slowest requests as (milliseconds, method and path))."""
    requests = [kind for kind in kinds for _ in range(per_kind)]
    rng.shuffle(requests)
    failed = 0
    by_kind: dict[str, list[float]] = {kind.name: [] for kind in kinds}
    statements: dict[str, list[int]] = {kind.name: [] for kind in kinds}
    slowest: list[tuple[float, str]] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for kind in requests:
            method, path, headers, body = request_for(kind, data, rng.choice(staff), rng, cookie_name)
            response = await client.request(method, path, headers=headers, content=body or None)
            failed += response.status_code >= 300
            by_kind[kind.name].append(app.last * 1000)
            statements[kind.name].append(app.last_statements)
            slowest = sorted([*slowest, (app.last * 1000, f"{method} {path}")], reverse=True)[:5]
    return failed, by_kind, statements, slowest


def measure(settings: Any, kinds: list[Kind], data: MixData, staff: list[Staff], cookie_name: str, runs: int,
            per_kind: int) -> list[dict[str, Any]]:
    """``runs`` passes over the mix (``per_kind`` requests of each kind), after one warm-up pass."""
    from kehu.web import create_app

    kehu_app = create_app(settings)
    timer = HookTimer()
    timer.install(kehu_app.platform.pm)
    app = TimedApp(kehu_app)
    app.count_statements()
    try:
        rng = random.Random(17)
        asyncio.run(_serve_mix(app, kinds, data, staff, cookie_name, per_kind, rng))  # warm-up
        results = []
        for number in range(1, runs + 1):
            timer.reset()
            app.total = 0.0
            failed, by_kind, statements, slowest = asyncio.run(
                _serve_mix(app, kinds, data, staff, cookie_name, per_kind, rng))
            count = per_kind * len(kinds)
            result = {"requests": count, "failed": failed, "request_ms": app.total / count * 1000,
                      "median_ms_by_kind": {name: statistics.median(times) for name, times in by_kind.items()},
                      "mean_ms_by_kind": {name: statistics.mean(times) for name, times in by_kind.items()},
                      "statements_by_kind": {name: statistics.mean(counts) for name, counts in statements.items()},
                      "slowest": slowest,
                      "hooks_ms": timer.inclusive / count * 1000, "dispatch_ms": timer.dispatch / count * 1000,
                      "hook_calls_per_request": sum(timer.calls.values()) / count, "calls": dict(timer.calls)}
            results.append(result)
            print(f"  run {number}/{runs}: {result['request_ms']:.2f} ms per request, "
                  f"{result['hooks_ms'] * 1000:.0f} µs in hooks ({result['hooks_ms'] / result['request_ms']:.2%}), "
                  f"{result['dispatch_ms'] * 1000:.0f} µs pluggy dispatch, "
                  f"{result['hook_calls_per_request']:.1f} hook calls per request, {failed} failed")
        last = results[-1]
        print("  time inside the application by kind, median/mean (last run): " + ", ".join(
            f"{name} {ms:.1f}/{last['mean_ms_by_kind'][name]:.1f} ms"
            for name, ms in last["median_ms_by_kind"].items()))
        print("  SQL statements per request by kind, mean (last run; the user's look-up included): " + ", ".join(
            f"{name} {count:.1f}" for name, count in last["statements_by_kind"].items()))
        print("  slowest requests (last run): "
              + "; ".join(f"{request} {ms:.0f} ms" for ms, request in last["slowest"]))
        return results
    finally:  # the later in-process parts count nothing
        app.count_statements(False)
