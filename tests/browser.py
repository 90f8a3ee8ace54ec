"""Browser fixtures: the real application served by uvicorn, driven in Debian's Chromium.

- ``live_server(settings, enable=())`` boots the deployment like ``tests.conftest.boot_with``,
  serves ``kehu.web.create_app(settings)`` with uvicorn in a background thread on a free port
  of 127.0.0.1 and returns a :class:`LiveServer` (``.url``, ``.platform``); every server is
  stopped when the test ends.
- ``browser``: one headless Chromium per session, ``/usr/bin/chromium`` through Playwright
  (never a browser Playwright downloads). ``page`` is a phone (375×740, touch, mobile
  viewport), ``desktop_page`` a 1280×800 screen; both speak Chinese (``Accept-Language: zh-CN``)
  and record console errors and uncaught exceptions.
- ``login(page, base_url, login, password)`` and ``assert_fits_phone(page)`` /
  ``assert_no_console_errors(page)``.

Without /usr/bin/chromium or the playwright package the browser tests are skipped with the
reason, except when ``CI`` is set: then they fail, so CI never passes without running them.
Mark browser tests ``@pytest.mark.browser``.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote, urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

    from kehu.config import Settings
    from kehu.platform import Platform

CHROMIUM = Path("/usr/bin/chromium")
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
# Chromium's own background traffic is refused on closed networks; keep it quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000

_page_errors: "weakref.WeakKeyDictionary[Page, list[str]]" = weakref.WeakKeyDictionary()


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when running in CI (where a missing browser must not go unnoticed)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: browser tests must run there)", pytrace=False)
    pytest.skip(reason)


# --- The application, served for real --------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    platform: "Platform"
    settings: "Settings"
    server: Any = field(repr=False)
    thread: threading.Thread = field(repr=False)

    def __str__(self) -> str:
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        if self.thread.is_alive():  # a keep-alive connection held it: stop waiting for it
            self.server.force_exit = True
            self.thread.join(timeout=5)


def serve(settings: "Settings", enable: list[str] | tuple[str, ...] = ()) -> LiveServer:
    """Boot ``settings``'s deployment with ``enable`` (as ``boot_with``) and serve it."""
    import uvicorn

    from kehu.web import create_app
    from tests.conftest import boot_with

    platform = boot_with(settings, list(enable))
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio", http="h11",
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)  # not in the main thread: uvicorn leaves signals alone
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the live server on port {port} did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", platform, settings, server, thread)


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """``live_server(settings, enable=())`` → a running :class:`LiveServer`, stopped at teardown."""
    servers: list[LiveServer] = []

    def start(settings: "Settings", enable: list[str] | tuple[str, ...] = ()) -> LiveServer:
        server = serve(settings, enable)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --- Chromium ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator["Browser"]:
    if not CHROMIUM.exists():
        unavailable(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("browser tests need the playwright package (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _watch(page: "Page") -> "Page":
    errors: list[str] = []
    _page_errors[page] = errors
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text} ({msg.location.get('url', '')})")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.set_default_timeout(TIMEOUT_MS)
    return page


def _context(browser: "Browser", **options: Any) -> "BrowserContext":
    return browser.new_context(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"},
                               **options)


@pytest.fixture
def page(browser: "Browser") -> Iterator["Page"]:
    """A phone: 375×740, mobile viewport, touch."""
    context = _context(browser, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    yield _watch(context.new_page())
    context.close()


@pytest.fixture
def desktop_page(browser: "Browser") -> Iterator["Page"]:
    context = _context(browser, viewport=DESKTOP)
    yield _watch(context.new_page())
    context.close()


# --- Helpers --------------------------------------------------------------------------------


def path_of(page: "Page") -> str:
    """The current path and query, percent-decoded, e.g. ``/login?next=/``."""
    parts = urlsplit(page.url)
    return unquote(parts.path + (f"?{parts.query}" if parts.query else ""))


def login(page: "Page", base_url: str, login: str, password: str) -> None:
    """Log in through the login form; fails when the login page is shown again."""
    if not urlsplit(page.url).path.startswith("/login"):
        page.goto(f"{base_url}/login")
    page.locator("form[action='/login'] input[name='login']").fill(login)
    page.locator("form[action='/login'] input[name='password']").fill(password)
    with page.expect_navigation():
        page.locator("form[action='/login'] [type='submit']").click()
    page.wait_for_load_state("load")
    if urlsplit(page.url).path == "/login":
        error = page.locator(".flash-error")
        raise AssertionError(f"login as {login!r} failed: {error.inner_text() if error.count() else page.url}")


def console_errors(page: "Page") -> list[str]:
    return list(_page_errors.get(page, []))


def assert_no_console_errors(page: "Page", expected_errors: str | None = None) -> None:
    """No console error nor uncaught exception so far, except those matching ``expected_errors``
    (a regular expression, e.g. for a page that answers 401 on purpose), which are then
    forgotten. Errors are recorded from the page's creation on, across navigations."""
    recorded = _page_errors.get(page, [])
    errors = [e for e in recorded if not (expected_errors and re.search(expected_errors, e))]
    recorded[:] = errors  # the expected ones are accounted for
    assert not errors, f"console errors on {page.url}:\n" + "\n".join(errors)


_OVERFLOW_JS = """() => {
  const width = window.innerWidth;
  const culprits = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 0.5) {
      // inside a horizontally scrolling container it is fine: that is the container's job
      let p = el.parentElement, clipped = false;
      while (p && p !== document.body) {
        const ox = getComputedStyle(p).overflowX;
        if (ox === 'auto' || ox === 'scroll' || ox === 'hidden' || ox === 'clip') { clipped = true; break; }
        p = p.parentElement;
      }
      if (!clipped) culprits.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
        (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') +
        ' right=' + Math.round(box.right));
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, culprits: culprits.slice(0, 8)};
}"""


def overflow(page: "Page") -> dict[str, Any]:
    return page.evaluate(_OVERFLOW_JS)


def assert_fits_phone(page: "Page", expected_errors: str | None = None) -> None:
    """No horizontal scrolling of the page at phone width, and no console errors."""
    page.wait_for_load_state("load")
    found = overflow(page)
    assert found["innerWidth"] <= PHONE["width"], f"not a phone-width page: {found['innerWidth']}px"
    assert found["scrollWidth"] <= found["innerWidth"], (
        f"{page.url} overflows horizontally: scrollWidth {found['scrollWidth']} > {found['innerWidth']}; "
        f"widest elements: {found['culprits']}")
    assert_no_console_errors(page, expected_errors)
