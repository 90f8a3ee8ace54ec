"""Every route of the composed application, with every plugin installed through the
``kehu.plugins`` entry points enabled, refuses those who may not use it:

- anonymous: 401 with the API's error body (``/api/...`` and JSON requests) or a redirect to the
  login page (pages);
- logged in without any role: 403, or 404 for a route that addresses a record (path parameters).

Public routes are exempt by rule: everything under ``/public/`` and ``/static/``, logging in
and out, ``/lang/...``, ``/healthz`` and the API description ``/api/openapi.json``. A core route
that only needs a login (``requires()`` without a permission: the home page, the user's own
account) is allowed by rule too; under a plugin's prefix every route must declare a permission.

Nothing here lists a plugin's routes: they are read from the application, so the test grows as
plugins add routes or new plugins are installed.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from kehu import modules
from kehu.config import Settings
from kehu.declarations import Permission
from kehu.platform import plugin_hook_results
from tests.conftest import boot_with, create_user, web_client

PUBLIC = re.compile(r"^/(public|static)/|^/log(in|out)(/|$)|^/lang/|^/healthz$|^/api/openapi\.json$")
PARAM = re.compile(r"{([^}:]+)(?::([^}]+))?}")
MISSING_ID = "999999"


@dataclass(frozen=True)
class Walked:
    path: str  # the template, e.g. /contacts/{contact_id:int}
    methods: tuple[str, ...]
    endpoint: Any
    plugin: str | None  # the plugin whose prefix the route is under, None for the core's

    @property
    def permission(self) -> Any:
        return getattr(self.endpoint, "__kehu_permission__", "undeclared")

    def urls(self, existing_id: str) -> list[str]:
        if not PARAM.search(self.path):
            return [self.path]

        def fill(value: str) -> str:
            return PARAM.sub(lambda m: value if (m.group(2) or "str") in ("int", "str", "uuid") else "x", self.path)

        return [fill(existing_id), fill(MISSING_ID)]


def _inner_routes(app: Any) -> list[Any] | None:
    """The routes behind a Mount's app, looking through wrappers such as ``LoginRequired``."""
    seen = 0
    while app is not None and seen < 10:
        if isinstance(getattr(app, "routes", None), list):
            return app.routes  # type: ignore[no-any-return]
        app = getattr(app, "app", None)
        seen += 1
    return None


def walk(routes: list[Any], prefix: str = "", plugins: frozenset[str] = frozenset(),
         plugin: str | None = None) -> Iterator[Walked]:
    for route in routes:
        if isinstance(route, Mount):
            path = prefix + route.path
            inner = _inner_routes(route.app)
            if inner is None:  # an ASGI app such as StaticFiles: only public ones are allowed
                yield Walked(path + "/{path:path}", ("GET",), route.app, plugin)
                continue
            first = path.strip("/").split("/")
            owner = plugin or next((part for part in first[:2] if part in plugins), None)
            yield from walk(inner, path, plugins, owner)
        elif isinstance(route, Route):
            methods = tuple(sorted((route.methods or {"GET"}) - {"HEAD"}))
            yield Walked(prefix + route.path, methods, route.endpoint, plugin)


def _enable_every_installed_plugin(settings: Settings) -> list[str]:
    found = modules.discover(())  # entry points only: what is installed, not test plugins
    return sorted(name for name, info in found.items() if not info.error)


def _send(client: Any, method: str, url: str) -> Any:
    if method in ("GET", "DELETE"):
        return client.request(method, url, follow_redirects=False)
    if url.startswith("/api/"):
        return client.request(method, url, json={}, follow_redirects=False)
    return client.request(method, url, data={"x": "1"}, follow_redirects=False)


def check_routes(settings: Settings, platform: Any, nobody_password: str) -> tuple[list[Walked], list[str], int]:
    """Walk the composed application as an anonymous visitor and as ``nobody`` (logged in,
    no role); returns (the routes, what is wrong, how many requests were checked)."""
    anonymous = web_client(settings)
    nobody = web_client(settings, "nobody", nobody_password)
    app = anonymous.app.inner  # the Starlette application KehuApp built
    routes = list(walk(app.routes, plugins=frozenset(platform.active)))
    problems: list[str] = []
    checked = 0
    for route in routes:
        if PUBLIC.search(route.path):
            if route.plugin is not None and not route.path.startswith(("/public/", "/static/")):
                problems.append(f"{route.path}: a plugin route cannot be public outside /public/")
            continue
        login_only = route.permission is None
        if login_only and route.plugin is not None:
            problems.append(f"{route.path}: a plugin route must require a permission, not only a login")
        for method in route.methods:
            for url in route.urls("1"):
                checked += 1
                response = _send(anonymous, method, url)
                api = url.startswith("/api/")
                if api:
                    if response.status_code != 401 or response.json()["error"]["code"] != "unauthenticated":
                        problems.append(f"anonymous {method} {url}: {response.status_code}, expected 401")
                elif response.status_code not in (302, 303, 307) or \
                        not response.headers.get("location", "").startswith("/login"):
                    problems.append(f"anonymous {method} {url}: {response.status_code}, expected a redirect to /login")
                if login_only and route.plugin is None:
                    # The user's own pages: reachable by anyone logged in, never changed by this walk.
                    if method == "GET" and _send(nobody, method, url).status_code >= 400:
                        problems.append(f"logged-in GET {url}: refused, but it only requires a login")
                    continue
                response = _send(nobody, method, url)
                allowed = {403, 404} if PARAM.search(route.path) else {403}
                if response.status_code not in allowed:
                    problems.append(f"role-less {method} {url}: {response.status_code}, expected "
                                    f"{' or '.join(map(str, sorted(allowed)))}")
                elif api and response.json()["error"]["code"] not in ("forbidden", "not_found"):
                    problems.append(f"role-less {method} {url}: error code {response.json()['error']['code']}")
    # The role-less user is still logged in afterwards: the walk did not log them out.
    assert nobody.get("/", follow_redirects=False).status_code == 200
    return routes, problems, checked


def test_every_route_refuses_anonymous_and_roleless_users(settings: Settings) -> None:
    plugins = _enable_every_installed_plugin(settings)
    assert "contacts" in plugins
    platform = boot_with(settings, plugins)
    assert set(plugins) <= set(platform.active), {n: platform.modules[n].error for n in plugins}
    create_user(platform, "boss", ("admin",))
    with platform.session() as db:  # records exist, so "an existing id" means something
        for name in platform.active:
            plugin_hook_results(platform.pm, "kehu_demo_data", name, session=db)
    _id, password = create_user(platform, "nobody", ())

    routes, problems, checked = check_routes(settings, platform, password)

    # The walk reaches every plugin that has routes (so a mounting mistake cannot hide one).
    for name in plugins:
        for hook, prefix in (("kehu_routes", f"/{name}"), ("kehu_api_routes", f"/api/{name}")):
            if plugin_hook_results(platform.pm, hook, name):
                assert any(r.path.startswith(prefix + "/") for r in routes), (name, prefix)
    assert any(r.path.startswith("/admin/users") for r in routes) and checked > 30, checked
    assert not problems, "\n".join(problems)


# --- the walker finds what it is meant to find --------------------------------------------------


def _leaky_plugin(folder: Path) -> str:
    """A plugin (built in memory) with one mistake of each kind next to correct routes."""
    import kehu
    from kehu.web import requires

    module = types.ModuleType("kehu_test_leaky_plugin")
    folder.mkdir(parents=True, exist_ok=True)
    module.__file__ = str(folder / "__init__.py")  # its (empty) folder: no templates, no migrations
    module.MANIFEST = kehu.Manifest(name="leaky", version="1.0.0", summary="routes with mistakes")  # type: ignore[attr-defined]

    def unguarded(request: Any) -> Any:  # forgot @requires: every logged-in user gets in
        return PlainTextResponse("secret")

    @requires()
    def login_only(request: Any) -> Any:  # a login is not a permission
        return JSONResponse({"ok": True})

    @requires("leaky.read")
    def guarded(request: Any) -> Any:
        return PlainTextResponse("fine")

    def public(request: Any) -> Any:
        return PlainTextResponse("public")

    module.kehu_routes = kehu.hookimpl(lambda: [Route("/unguarded", unguarded), Route("/ok/{item_id:int}", guarded)])  # type: ignore[attr-defined]
    module.kehu_api_routes = kehu.hookimpl(lambda: [Route("/login-only", login_only)])  # type: ignore[attr-defined]
    module.kehu_public_routes = kehu.hookimpl(lambda: [Route("/form", public)])  # type: ignore[attr-defined]
    module.kehu_permissions = kehu.hookimpl(lambda: [Permission("leaky.read", {"en": "Read"})])  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return module.__name__


def test_the_walker_reports_unguarded_routes(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("KEHU_EXTRA_PLUGINS", f"leaky={_leaky_plugin(tmp_path / 'leaky')}")
    settings = Settings.from_env()
    platform = boot_with(settings, ["leaky"])
    assert "leaky" in platform.active, platform.modules["leaky"].error
    _id, password = create_user(platform, "nobody", ())
    routes, problems, _checked = check_routes(settings, platform, password)
    assert any(r.path == "/public/leaky/form" for r in routes)
    assert sorted(problems) == [
        "/api/leaky/login-only: a plugin route must require a permission, not only a login",
        "role-less GET /api/leaky/login-only: 200, expected 403",
        "role-less GET /leaky/unguarded: 200, expected 403",
    ], problems
