"""The core's own pages: log in and out, language, home, and module administration."""

from __future__ import annotations

import hmac
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from kehu import audit, auth, modules
from kehu.i18n import LANGUAGES
from kehu.i18n import gettext as _
from kehu.models import AuthSession
from kehu.web import current_user, platform_of, redirect, render, requires


def _safe_next(target: str | None) -> str:
    """A local path to go to after logging in; anything else (another site, ``//host``,
    ``/\\host`` which browsers read as ``//host``, control characters) becomes ``/``."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 for c in target) or urlsplit(target).netloc):
        return "/"
    return target


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def _same_origin(request: Request) -> bool:
    """A form post from one of our pages: ``Origin`` (else ``Referer``) names this host."""
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    return not origin or urlsplit(origin).netloc == request.headers.get("host")


def _set_session_cookie(request: Request, response: Response, cookie: str) -> None:
    response.set_cookie(auth.SESSION_COOKIE, cookie, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")


def _wait_message(result: auth.LoginResult) -> str:
    minutes = max(1, (result.retry_after + 59) // 60)
    if result.status == "locked":
        return _("Too many failed attempts for this login. Try again in %(minutes)s minutes.", minutes=minutes)
    if result.retry_after < 120:
        return _("Too many failed attempts from your network. Try again in %(seconds)s seconds.",
                 seconds=result.retry_after)
    return _("Too many failed attempts from your network. Try again in %(minutes)s minutes.", minutes=minutes)


def login_page(request: Request) -> Response:
    if current_user(request):
        return redirect(_safe_next(request.query_params.get("next")))
    return render(request, "login.html", {"next": _safe_next(request.query_params.get("next")), "error": ""})


async def login_submit(request: Request) -> Response:
    async with request.form() as form:
        login = str(form.get("login", "")).strip()
        password = str(form.get("password", ""))
        next_url = _safe_next(str(form.get("next", "/")))
    if not _same_origin(request):
        return render(request, "login.html", {"next": next_url, "error": _("Cross-site login refused.")}, 403)
    if not login or not password or len(password) > 1024:
        return render(request, "login.html", {"next": next_url, "error": _("Wrong login or password."),
                                              "login": login}, 401)
    # Argon2 is CPU work: off the event loop.
    result = await run_in_threadpool(auth.authenticate, platform_of(request), login, password,
                                     client_address(request), request.cookies.get(auth.SESSION_COOKIE))
    if result.status in ("locked", "throttled"):
        return render(request, "login.html", {"next": next_url, "error": _wait_message(result), "login": login},
                      429, headers={"Retry-After": str(result.retry_after)})
    if result.status == "failed":
        return render(request, "login.html", {"next": next_url, "error": _("Wrong login or password."),
                                              "login": login}, 401)
    if result.status == "second_factor":
        response = redirect(f"/login/totp?next={quote(next_url)}")
    else:
        response = redirect(next_url)
    _set_session_cookie(request, response, result.cookie)
    return response


def _pending(request: Request) -> tuple[str, str] | None:
    """(cookie, csrf token) of the session waiting for its TOTP code, or None."""
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    if not cookie:
        return None
    with platform_of(request).session() as db:
        user = auth.pending_user(db, cookie)
        if user is None:
            return None
        row = db.get(AuthSession, auth._digest(cookie))
        return (cookie, row.csrf_token) if row else None


def totp_page(request: Request) -> Response:
    next_url = _safe_next(request.query_params.get("next"))
    if current_user(request):
        return redirect(next_url)
    pending = _pending(request)
    if pending is None:
        return redirect(f"/login?next={quote(next_url)}")
    return render(request, "totp.html", {"next": next_url, "error": "", "csrf_token": pending[1]})


async def totp_submit(request: Request) -> Response:
    async with request.form() as form:
        code = str(form.get("code", ""))[:20]
        token = str(form.get("csrf_token", ""))
        next_url = _safe_next(str(form.get("next", "/")))
    pending = await run_in_threadpool(_pending, request)
    if pending is None:
        return redirect(f"/login?next={quote(next_url)}")
    if not _same_origin(request) or not hmac.compare_digest(token, pending[1]):
        return render(request, "totp.html", {"next": next_url, "csrf_token": pending[1],
                                             "error": _("The form has expired; reload the page and try again.")}, 403)
    result = await run_in_threadpool(auth.second_factor, platform_of(request), pending[0], code,
                                     client_address(request))
    if result.status == "ok":
        response = redirect(next_url)
        _set_session_cookie(request, response, result.cookie)
        return response
    if result.status in ("locked", "throttled"):
        if result.status == "locked":
            response = render(request, "login.html", {"next": next_url, "error": _wait_message(result)}, 429,
                              headers={"Retry-After": str(result.retry_after)})
            response.delete_cookie(auth.SESSION_COOKIE, path="/")
            return response
        return render(request, "totp.html", {"next": next_url, "csrf_token": pending[1],
                                             "error": _wait_message(result)}, 429,
                      headers={"Retry-After": str(result.retry_after)})
    return render(request, "totp.html", {"next": next_url, "csrf_token": pending[1],
                                         "error": _("Wrong or already used code.")}, 401)


def logout(request: Request) -> Response:
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    user = current_user(request)
    if cookie:
        with platform_of(request).session() as db:
            auth.end_session(db, cookie)
            if user is not None:
                audit.record(db, "auth.logout", actor=user, ip=client_address(request))
    response = redirect("/login")
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


def set_language(request: Request) -> Response:
    code = request.path_params["code"]
    if code not in LANGUAGES:
        return render(request, "error.html", {"status": 404, "message": _("Unknown language.")}, 404)
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    response.set_cookie("kehu_lang", code, max_age=365 * 86400, samesite="lax", path="/")
    return response


@requires()
def home(request: Request) -> Response:
    return render(request, "home.html")


@requires("core.admin_modules")
def modules_page(request: Request) -> Response:
    platform = platform_of(request)
    states = platform.module_states()
    rows = [
        {
            "name": name,
            "info": info,
            "state": states[name],
            "label": info.manifest.display_label(request.scope.get("kehu.language", "zh")) if info.manifest else name,
        }
        for name, info in sorted(platform.modules.items())
    ]
    message = request.query_params.get("message", "")
    error = request.query_params.get("error", "")
    return render(request, "admin/modules.html", {"rows": rows, "message": message, "error": error})


@requires("core.admin_modules")
def module_action(request: Request) -> Response:
    from urllib.parse import quote

    from kehu import migrations, rbac

    name = request.path_params["name"]
    action = request.path_params["action"]
    app = request.scope["kehu.app"]
    platform = platform_of(request)
    try:
        with platform.session() as db:
            if action == "enable":
                changed = modules.enable(db, name, platform.modules)
                message = _("Enabled: %(names)s", names=", ".join(changed) or name)
            elif action == "disable":
                changed = modules.disable(db, name, platform.modules, cascade=False)
                message = _("Disabled: %(names)s", names=", ".join(changed))
            else:
                return render(request, "error.html", {"status": 404, "message": _("Unknown action.")}, 404)
            audit.record(db, f"module.{action}", actor=current_user(request), target=f"module:{name}",
                         detail={"modules": list(changed)})
        app.rebuild()
        if action == "enable":
            migrations.upgrade_all(app.platform)
            with app.platform.session() as db:
                rbac.sync_roles(app.platform, db)
            app.rebuild()
    except (modules.ModuleError, migrations.MigrationError) as exc:
        return redirect(f"/admin/modules?error={quote(str(exc))}")
    return redirect(f"/admin/modules?message={quote(message)}")


def routes() -> list[Route]:
    from kehu import admin_users

    return [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/login/totp", totp_page, methods=["GET"]),
        Route("/login/totp", totp_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/lang/{code}", set_language),
        Route("/admin/modules", modules_page),
        Route("/admin/modules/{name}/{action}", module_action, methods=["POST"]),
        *admin_users.routes(),
    ]
