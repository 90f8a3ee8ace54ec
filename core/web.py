"""The web application, composed from the core and the enabled plugins.

``create_app()`` is uvicorn's factory. It returns a :class:`KehuApp`: a thin ASGI wrapper that
holds the Starlette application built from the currently enabled modules and rebuilds it when
the set of enabled modules changes (in this process at once, in other processes within a few
seconds), so enabling a module from the admin page needs no restart.

Layout of the URL space:

- ``/<plugin>/...``         staff pages of a plugin (``kehu_routes``), login required
- ``/api/<plugin>/...``     JSON API of a plugin (``kehu_api_routes``), login or token required
- ``/public/<plugin>/...``  pages for customers (``kehu_public_routes``), no login
- ``/static/<module>/...``  each module's ``static/`` folder
- ``/login``, ``/logout``, ``/admin/...``, ``/healthz``, ``/api/openapi.json``: the core's own
"""

from __future__ import annotations

import functools
import gc
import hmac
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route, Router, get_route_path
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from kehu import auth, crypto, i18n
from kehu.config import Settings
from kehu.declarations import Panel
from kehu.errors import DomainError
from kehu.i18n import gettext as _
from kehu.jinja import KehuEnvironment, install_translations
from kehu.keepalive import KeepAliveRecycling
from kehu.models import ModuleState
from kehu.platform import Platform, plugin_hook_results

CORE_DIR = Path(__file__).parent
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


# --- Errors ---------------------------------------------------------------------------


class ApiError(HTTPException):
    """An error with the one body every API answer uses:
    ``{"error": {"code": ..., "message": ..., "fields": {...}}}``."""

    def __init__(self, status_code: int, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.code = code
        self.fields = fields or {}


_DEFAULT_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid", 429: "rate_limited"}


def error_body(status: int, message: str, code: str | None = None, fields: dict[str, str] | None = None) -> dict:
    return {"error": {"code": code or _DEFAULT_CODES.get(status, "error"), "message": message, "fields": fields or {}}}


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if 300 <= exc.status_code < 400 and exc.headers and "Location" in exc.headers:
        return RedirectResponse(exc.headers["Location"], status_code=exc.status_code)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if await _user_and_language(request) is not None and exc.status_code == 403:
        from kehu import audit

        await anyio.to_thread.run_sync(audit.record_denial, request, message)
    if wants_json(request):
        code = getattr(exc, "code", None)
        fields = getattr(exc, "fields", None)
        return JSONResponse(error_body(exc.status_code, message, code, fields), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
    return render(request, "error.html", {"status": exc.status_code, "message": message}, status_code=exc.status_code)


async def domain_error(request: Request, exc: Exception) -> Response:
    """A :class:`kehu.errors.DomainError` a plugin let through: the JSON error body with what
    the error carries in ``extra``, or the error page."""
    assert isinstance(exc, DomainError)
    await _user_and_language(request)
    if wants_json(request):
        body = error_body(exc.status, exc.message, exc.code, exc.fields)
        body["error"].update(_jsonable(exc.extra))
        return JSONResponse(body, status_code=exc.status)
    return render(request, "error.html", {"status": exc.status, "message": exc.message, "fields": exc.fields},
                  status_code=exc.status)


async def _user_and_language(request: Request) -> auth.CurrentUser | None:
    """The user, looked up if still pending, with the language their request was answered in
    (set in the endpoint's thread, if it looked the user up): for an error answered here."""
    user = await user_of(request)
    if "kehu.language" in request.scope:
        i18n.current_language.set(request.scope["kehu.language"])
    return user


def _jsonable(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


async def server_error(request: Request, exc: Exception) -> Response:
    message = _("Something went wrong on our side. The error was logged.")
    if wants_json(request):
        return JSONResponse(error_body(500, message, "server_error"), status_code=500)
    return HTMLResponse(f"<h1>500</h1><p>{message}</p>", status_code=500)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection while its request's body was being read (a load
    balancer's time-out, a closed tab): nobody is left to answer, and it is not the server's
    error, which the catch-all handler would log with a traceback."""
    return Response(status_code=400)


# --- Access control for endpoints ---------------------------------------------------------


#: Where a request's credentials wait to be looked up, when the middleware left that to the
#: endpoint's thread (see :class:`RequestContextMiddleware`): ``("session", cookie)`` or
#: ``("token", raw token)``.
PENDING_CREDENTIALS = "kehu.pending_credentials"


def current_user(request: Request) -> auth.CurrentUser | None:
    """The request's user, None for nobody. If it was not looked up yet, it is now: call this
    in the thread an endpoint runs in; on the event loop, ``await user_of(request)``."""
    if PENDING_CREDENTIALS in request.scope:
        return resolve_user(request.scope)
    return request.scope.get("kehu.user")


async def user_of(request: Request) -> auth.CurrentUser | None:
    """:func:`current_user` for code on the event loop: a look-up still to do runs in a thread."""
    if PENDING_CREDENTIALS in request.scope:
        return await anyio.to_thread.run_sync(resolve_user, request.scope)
    return request.scope.get("kehu.user")


def resolve_user(scope: Scope) -> auth.CurrentUser | None:
    """Look up the request's pending credentials (blocking: the database is read) and record
    the user and their language in ``scope``. An API token that is not valid raises a 401."""
    pending = scope.pop(PENDING_CREDENTIALS, None)
    if pending is None:
        return scope.get("kehu.user")
    kind, secret = pending
    platform: Platform = scope["app"].state.platform
    user = look_up_token(platform, secret) if kind == "token" else look_up_session(platform, secret)
    scope["kehu.user"] = user
    if user is not None:
        _settle_language(scope, user)
    if user is None and kind == "token":
        raise ApiError(401, "unauthenticated", _("The API token is not valid."))
    return user


def _settle_language(scope: Scope, user: auth.CurrentUser | None) -> None:
    """The request's language (its cookie, the user's choice, the browser's), for ``_()`` in
    this context and in ``scope["kehu.language"]``."""
    language = i18n.negotiate(scope["kehu.language_cookie"], user.language if user else None,
                              scope["kehu.accept_language"])
    i18n.current_language.set(language)
    scope["kehu.language"] = language


def look_up_session(platform: Platform, cookie: str) -> auth.CurrentUser | None:
    """The user of a session cookie (None: no valid session)."""
    return _look_up(platform, auth.find_session, auth.user_from_session, cookie)


def look_up_token(platform: Platform, raw: str) -> auth.CurrentUser | None:
    """The user of an API token (None: no valid token)."""
    return _look_up(platform, auth.find_token, auth.user_from_token, raw)


def _look_up(platform: Platform, find: Callable[[Any, str], auth.Found],
             find_and_write: Callable[[Any, str], auth.CurrentUser | None], secret: str) -> auth.CurrentUser | None:
    # Every request looks its user up; only a few must write (a session's last-seen time,
    # every few minutes; an expired session's removal). Reading first keeps the others off
    # SQLite's single write lock, so requests do not queue behind each other there.
    with platform.reading_connection() as connection:  # plain rows: no ORM session needed
        found = find(connection, secret)
    if not found.must_write:
        return found.user
    with platform.session() as db:
        return find_and_write(db, secret)


def platform_of(request: Request) -> Platform:
    return request.app.state.platform


def requires(permission: str | None = None) -> Callable:
    """Endpoint decorator: a logged-in user (and ``permission``, when given) is required.

    Anonymous: 401 for the API, a redirect to the login page for pages. Missing permission:
    403. Works on sync endpoints (run in the thread pool) and async ones alike.
    """

    def check(request: Request) -> None:
        check_access(request, current_user(request), permission)

    def decorate(endpoint: Callable) -> Callable:
        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def async_wrapper(request: Request) -> Any:
                await user_of(request)
                check(request)
                return await endpoint(request)

            async_wrapper.__kehu_permission__ = permission  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(endpoint)
        def wrapper(request: Request) -> Any:
            check(request)
            return endpoint(request)

        wrapper.__kehu_permission__ = permission  # type: ignore[attr-defined]
        return wrapper

    return decorate


def check_access(request: Request, user: auth.CurrentUser | None, permission: str | None) -> None:
    """Raise what a request gets without a user (401 for the API, the login page otherwise) or
    without ``permission`` (403)."""
    if user is None:
        if wants_json(request):
            raise ApiError(401, "unauthenticated", _("Log in, or send an API token."))
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, headers={"Location": f"/login?next={quote(target)}"})
    if permission and not user.can(permission):
        raise ApiError(403, "forbidden", _("You do not have the permission %(p)s.", p=permission))


class LoginRequired:
    """Wraps a plugin's staff or API router: nobody anonymous gets past it.

    A request whose look-up the middleware left pending goes on as it is to an endpoint that
    looks its user up in its own thread (:func:`kehu.endpoints.page` and :func:`~kehu.endpoints.api`
    mark theirs ``__kehu_looks_up_user__``) and refuses nobody there; for any other endpoint
    the user is looked up here first.
    """

    def __init__(self, app: Router) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Refusals are raised (a token that is not valid, nobody logged in) and answered by
        # the core's error handlers, as those of endpoints are.
        if scope["type"] == "http":
            if PENDING_CREDENTIALS in scope and not self._looks_up_user(scope):
                await anyio.to_thread.run_sync(resolve_user, scope)
            if PENDING_CREDENTIALS not in scope and scope.get("kehu.user") is None:
                check_access(Request(scope, receive), None, None)
        await self.app(scope, receive, send)

    def _looks_up_user(self, scope: Scope) -> bool:
        """Whether the endpoint the request goes to looks its user up itself."""
        for route in self.app.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return getattr(child_scope.get("endpoint"), "__kehu_looks_up_user__", False)
            if match is Match.PARTIAL:
                return False
        return False


# --- Request context: language, user, CSRF ---------------------------------------------------


class RequestContextMiddleware:
    """Resolves the user (session cookie or bearer token) and the language of every request,
    and enforces CSRF protection for state-changing requests authenticated by cookie.

    A request to a plugin's pages or API (``plugin_prefixes``) that needs no CSRF check (a safe
    method, or a bearer token) has its look-up left to where it is first needed: the thread its
    endpoint runs in, for :func:`kehu.endpoints.page` and :func:`~kehu.endpoints.api` (see
    :class:`LoginRequired`). A thread round trip costs about 0.1 ms of a list page's 4 ms here;
    two of them (look-up, then page) were one too many.

    CSRF: the request must come from our own origin (``Origin``, else ``Referer``) and carry the
    session's token in the ``X-CSRF-Token`` header or, for HTML forms, the ``csrf_token`` field
    (url-encoded forms) or query parameter (multipart forms).
    """

    def __init__(self, app: ASGIApp, platform: Platform, plugin_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.platform = platform
        self.plugin_prefixes = plugin_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cookie = request.cookies.get(auth.SESSION_COOKIE)
        bearer = request.headers.get("authorization", "")
        path = request.url.path
        user: auth.CurrentUser | None = None
        if path.startswith("/public/"):
            # Customers' pages act for no staff member: a staff cookie in the same browser is
            # neither used there nor asked for its CSRF token.
            cookie = bearer = ""
        token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""
        scope["kehu.language_cookie"] = request.cookies.get("kehu_lang")
        scope["kehu.accept_language"] = request.headers.get("accept-language")
        if (token or (cookie and request.method not in UNSAFE_METHODS)) and self._in_a_plugin(path):
            scope[PENDING_CREDENTIALS] = ("token", token) if token else ("session", cookie)
        elif token:
            user = await anyio.to_thread.run_sync(look_up_token, self.platform, token)
            if user is None:
                await JSONResponse(error_body(401, _("The API token is not valid.")), status_code=401)(scope, receive, send)
                return
        elif cookie:
            user = await anyio.to_thread.run_sync(look_up_session, self.platform, cookie)
        scope["kehu.user"] = user
        _settle_language(scope, user)  # settled again once a pending look-up is done

        if user is not None and cookie and not token and request.method in UNSAFE_METHODS:
            receive, problem = await self._check_csrf(request, receive, user)
            if problem:
                body = error_body(403, problem, "csrf")
                response = JSONResponse(body, status_code=403) if wants_json(request) else HTMLResponse(
                    f"<h1>403</h1><p>{problem}</p>", status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _in_a_plugin(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.plugin_prefixes)

    async def _check_csrf(self, request: Request, receive: Receive, user: auth.CurrentUser) -> tuple[Receive, str]:
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin or urlsplit(origin).netloc != request.headers.get("host"):
            return receive, _("This request did not come from a Kehu page (cross-site request refused).")
        token = request.headers.get("x-csrf-token") or request.query_params.get("csrf_token")
        if token is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            from urllib.parse import parse_qs

            token = (parse_qs(body.decode("latin-1")).get("csrf_token") or [None])[0]
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            receive = replay
        if not token or not hmac.compare_digest(token, user.csrf_token):
            return receive, _("The form has expired; reload the page and try again.")
        return receive, ""


# --- Templates ------------------------------------------------------------------------


def build_templates(platform: Platform) -> Environment:
    """One Jinja environment: each module's ``templates/`` folder, the core's last."""
    folders = [str(platform.modules[name].path / "templates") for name in reversed(platform.active)
               if name != "core" and platform.modules[name].path]
    env = KehuEnvironment(
        loader=ChoiceLoader([FileSystemLoader(folders), FileSystemLoader(str(CORE_DIR / "templates"))]),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        auto_reload=False,
    )
    install_translations(env, i18n.gettext, i18n.ngettext)
    env.globals.update(pick=i18n.pick, languages=i18n.LANGUAGES)
    for extra in platform.pm.hook.kehu_template_globals():
        env.globals.update(extra or {})
    return env


def render(request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render ``template`` inside the layout, with the user, menu, slots and CSRF token."""
    platform = platform_of(request)
    user = current_user(request)
    env: Environment = request.app.state.templates

    def slot(name: str, **slot_context: Any) -> Markup:
        panels: list[Panel] = []
        for result in platform.pm.hook.kehu_slot(name=name, request=request, context=slot_context):
            panels.extend(result if isinstance(result, list) else [result])
        panels.sort(key=lambda p: p.order)
        # A panel without a title is inserted as it is (a <link> or <script> for "base.head").
        return Markup("".join(
            f'<section class="panel" data-slot="{Markup.escape(name)}"><h2>{Markup.escape(p.title)}</h2>{p.html}</section>'
            if p.title else p.html
            for p in panels))

    menu = sorted((item for item in platform.declarations.menu if user and (not item.permission or user.can(item.permission))),
                  key=lambda item: item.order)
    full = {
        "request": request,
        "user": user,
        "menu": menu,
        "slot": slot,
        "csrf_token": user.csrf_token if user else "",
        "language": i18n.current_language.get(),
        "static": lambda module, path: f"/static/{module}/{path}",
        **(context or {}),
    }
    html = env.get_template(template).render(full)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def render_fragment(request: Request, template: str, context: dict[str, Any]) -> str:
    """Render a template to a string, e.g. for a :class:`Panel` a plugin puts in a slot."""
    env: Environment = request.app.state.templates
    return env.get_template(template).render({"request": request, "user": current_user(request), **context})


# --- Assembly -------------------------------------------------------------------------


class PluginMount(Mount):
    """A plugin's mount, which also answers its bare prefix: ``POST /api/contacts`` reaches the
    plugin's ``Route("/")`` as ``/api/contacts/`` would, instead of a 307 redirect that API
    clients do not follow with a body."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and get_route_path(scope) == self.path:
            slashed = {**scope, "path": scope["path"] + "/"}
            match, child_scope = super().matches(slashed)
            if match is not Match.NONE:
                child_scope["path"] = slashed["path"]
            return match, child_scope
        return super().matches(scope)


def _routes_by_plugin(platform: Platform, hook: str) -> dict[str, list[BaseRoute]]:
    return {name: routes for name in platform.active
            if name != "core" and (routes := plugin_hook_results(platform.pm, hook, name))}


def api_routes(platform: Platform) -> list[BaseRoute]:
    return [PluginMount(f"/api/{name}", routes=routes)
            for name, routes in _routes_by_plugin(platform, "kehu_api_routes").items()]


def openapi(request: Request) -> JSONResponse:
    """The OpenAPI document of every enabled plugin's JSON API."""
    platform = platform_of(request)
    generator = SchemaGenerator({
        "openapi": "3.1.0",
        "info": {"title": "Kehu API", "version": platform.modules["core"].manifest.version},  # type: ignore[union-attr]
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
    schema = generator.get_schema(routes=api_routes(platform))
    # A plugin's Route("/") is served at its bare prefix too (PluginMount): document that one.
    schema["paths"] = {(path.rstrip("/") or "/"): item for path, item in schema.get("paths", {}).items()}
    return JSONResponse(schema)


def build_starlette(platform: Platform) -> Starlette:
    from kehu import admin, health

    routes: list[BaseRoute] = [*admin.routes(), *health.routes(), Route("/api/openapi.json", openapi)]
    plugin_prefixes: list[str] = []  # behind LoginRequired
    for name, plugin_routes in _routes_by_plugin(platform, "kehu_api_routes").items():
        routes.append(PluginMount(f"/api/{name}", app=LoginRequired(Router(plugin_routes))))
        plugin_prefixes.append(f"/api/{name}")
    for name, plugin_routes in _routes_by_plugin(platform, "kehu_public_routes").items():
        routes.append(PluginMount(f"/public/{name}", routes=plugin_routes))
    for name, plugin_routes in _routes_by_plugin(platform, "kehu_routes").items():
        routes.append(PluginMount(f"/{name}", app=LoginRequired(Router(plugin_routes))))
        plugin_prefixes.append(f"/{name}")
    for name in platform.active:
        folder = (CORE_DIR if name == "core" else platform.modules[name].path) / "static"  # type: ignore[operator]
        if folder.is_dir():
            routes.append(Mount(f"/static/{name}", app=StaticFiles(directory=str(folder)), name=f"static-{name}"))

    middleware = [Middleware(RequestContextMiddleware, platform=platform, plugin_prefixes=tuple(plugin_prefixes))]
    if platform.settings.keepalive_requests:  # off: not even a layer to pass through
        middleware.insert(0, Middleware(KeepAliveRecycling, requests=platform.settings.keepalive_requests))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, DomainError: domain_error, ClientDisconnect: client_gone,
                            Exception: server_error},
    )
    app.state.platform = platform
    i18n.load_catalogs([CORE_DIR] + [platform.modules[n].path for n in platform.active if n != "core"])  # type: ignore[misc]
    app.state.templates = build_templates(platform)
    return app


def modules_generation(platform: Platform) -> str:
    with platform.reading() as db:
        try:
            row = db.execute(select(func.count(), func.max(ModuleState.changed_at))).one()
        except Exception:  # noqa: BLE001  (not migrated yet)
            return ""
    return f"{row[0]}:{row[1]}"


class KehuApp:
    """The ASGI application uvicorn serves; rebuilds itself when modules are (dis)enabled."""

    CHECK_EVERY = 3.0

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.settings.ensure_home()
        self._checked = 0.0
        self.rebuild()
        # Personal data is sealed and searched with keys the master key opens: without them
        # the application must not start (a wrong key raises crypto.KeyProblem, saying so).
        crypto.ensure_keys(self.platform)

    def rebuild(self) -> None:
        previous: Platform | None = getattr(self, "platform", None)
        platform = Platform.boot(self.settings)
        self.platform = platform
        self.inner = build_starlette(platform)
        self.generation = modules_generation(platform)
        self._checked = time.monotonic()
        if previous is not None:
            previous.close()  # its pool would otherwise hold its connections until garbage collection
            gc.unfreeze()  # the replaced application must be collectable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Requests are mostly CPU work under one GIL: a few threads serve more than anyio's
            # default 40, which only adds switching and lock convoys (see docs/performance.md).
            anyio.to_thread.current_default_thread_limiter().total_tokens = self.settings.web_threads
            _freeze_start_up_objects()
        if scope["type"] == "http" and time.monotonic() - self._checked > self.CHECK_EVERY:
            self._checked = time.monotonic()
            if await anyio.to_thread.run_sync(modules_generation, self.platform) != self.generation:
                await anyio.to_thread.run_sync(self.rebuild)
        scope["kehu.app"] = self
        await self.inner(scope, receive, send)


_frozen = False


def _freeze_start_up_objects() -> None:
    """Keep what was built at start-up (modules, routes, templates, mappers) out of the garbage
    collector's full passes, which otherwise walked it all again each time (75-95 ms every 150
    or so contact list pages). Once per process; a rebuild unfreezes (see :meth:`KehuApp.rebuild`)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None) -> KehuApp:
    return KehuApp(settings)


def redirect(url: str | URL) -> RedirectResponse:
    return RedirectResponse(str(url), status_code=303)
