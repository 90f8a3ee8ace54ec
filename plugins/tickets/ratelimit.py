"""Rate limits of the public pages, with the ``limits`` library (moving window).

Counters live where ``KEHU_TICKETS_RATE_LIMIT_STORAGE`` says: ``memory://`` (the default: per
process, enough for one ``kehu serve``) or ``redis://host:6379/1`` to share them between web
processes and servers. Limits are strings like ``5/hour`` or ``20 per 10 minutes``.

Without the ``limits`` package installed, a small in-process moving window of the same
behaviour stands in (``memory://`` only), so the plugin never breaks for want of it.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Any

from kehu.platform import Platform

try:  # pragma: no branch
    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter
except ImportError:  # pragma: no cover - exercised only where limits is missing
    parse = None  # type: ignore[assignment]

_limiters: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class Limiter:
    """The ``limits`` library's moving window over the configured storage."""

    def __init__(self, storage_uri: str) -> None:
        self.storage = storage_from_string(storage_uri)
        self.strategy = MovingWindowRateLimiter(self.storage)

    def hit(self, rate: str, *keys: str) -> bool:
        """Count one request under ``keys``; False when it is over ``rate``."""
        return self.strategy.hit(parse(rate), "kehu-tickets", *keys)


_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*(second|minute|hour|day)s?\s*$")


class MemoryLimiter:
    """A moving window in this process, for deployments without the ``limits`` package."""

    def __init__(self) -> None:
        self.hits: dict[tuple[str, ...], deque[float]] = {}
        self.lock = threading.Lock()

    def hit(self, rate: str, *keys: str) -> bool:
        found = _RATE.match(rate)
        if not found:
            raise ValueError(f"rate limit {rate!r} is not like 5/hour")
        amount, multiple, unit = int(found.group(1)), int(found.group(2) or 1), found.group(3)
        window = multiple * _UNITS[unit]
        now = time.monotonic()
        with self.lock:
            recent = self.hits.setdefault((rate, *keys), deque())
            while recent and recent[0] <= now - window:
                recent.popleft()
            if len(recent) >= amount:
                return False
            recent.append(now)
            return True


def limiter(platform: Platform) -> Any:
    """The deployment's limiter (one per storage and instance folder in this process)."""
    uri = platform.setting("tickets", "rate_limit_storage")
    key = (uri, str(platform.settings.home))
    with _lock:
        found = _limiters.get(key)
        if found is None:
            found = _limiters[key] = Limiter(uri) if parse is not None else MemoryLimiter()
        return found
