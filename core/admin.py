"""The core's own pages: log in and out, language, home, and module administration."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from kehu import auth, modules
from kehu.i18n import LANGUAGES
from kehu.i18n import gettext as _
from kehu.models import User
from kehu.web import current_user, platform_of, redirect, render, requires


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


def login_page(request: Request) -> Response:
    if current_user(request):
        return redirect(_safe_next(request.query_params.get("next")))
    return render(request, "login.html", {"next": request.query_params.get("next", "/"), "error": ""})


async def login_submit(request: Request) -> Response:
    form = await request.form()
    login = str(form.get("login", "")).strip()
    password = str(form.get("password", ""))
    next_url = _safe_next(str(form.get("next", "/")))
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return render(request, "login.html", {"next": next_url, "error": _("Cross-site login refused.")}, 403)
    import anyio

    cookie = await anyio.to_thread.run_sync(_check_login, request, login, password)
    if cookie is None:
        error = _("Wrong login or password.")
        return render(request, "login.html", {"next": next_url, "error": error, "login": login}, 401)
    response = redirect(next_url)
    response.set_cookie(auth.SESSION_COOKIE, cookie, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")
    return response


def _check_login(request: Request, login: str, password: str) -> str | None:
    platform = platform_of(request)
    with platform.session() as db:
        user = db.scalar(select(User).where(User.login == login))
        if user is None:
            auth.burn_password_check()
            return None
        if not user.active or not auth.verify_password(user, password):
            return None
        return auth.start_session(db, user)


def logout(request: Request) -> Response:
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    if cookie:
        with platform_of(request).session() as db:
            auth.end_session(db, cookie)
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
        Route("/logout", logout, methods=["POST"]),
        Route("/lang/{code}", set_language),
        Route("/admin/modules", modules_page),
        Route("/admin/modules/{name}/{action}", module_action, methods=["POST"]),
        *admin_users.routes(),
    ]
