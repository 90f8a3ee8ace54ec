"""The composed web application: plugin mounts, the error body, the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable

from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, select, text, update

from kehu.config import Settings
from kehu.models import AuditEntry, AuthSession, User
from tests.conftest import create_user, web_client


def test_bare_plugin_prefix_is_served_without_a_redirect(settings: Settings, platform_factory: Callable) -> None:
    platform = platform_factory("contacts")
    create_user(platform, "boss", ("admin",))
    client = web_client(settings)
    anonymous = client.post("/api/contacts", json={"name": "x"}, follow_redirects=False)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"

    _, password = create_user(platform, "admin2", ("admin",))
    client = web_client(settings, "admin2", password)
    created = client.post("/api/contacts", json={"name": "王小明", "phone": "13800138000"}, follow_redirects=False)
    assert created.status_code == 201, created.text
    listed = client.get("/api/contacts", follow_redirects=False)
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert client.get("/api/contacts/", follow_redirects=False).json()["total"] == 1
    page = client.get("/contacts", follow_redirects=False)
    assert page.status_code == 200 and "王小明" in page.text


def test_unknown_api_path_answers_the_error_body(settings: Settings, platform_factory: Callable) -> None:
    platform = platform_factory("contacts")
    _, password = create_user(platform, "boss", ("admin",))
    client = web_client(settings, "boss", password)
    missing = client.get("/api/contacts/999999", headers={"accept": "application/json"})
    assert missing.status_code == 404
    body = missing.json()["error"]
    assert set(body) >= {"code", "message"} and body["message"]


def test_openapi_documents_bare_prefixes(settings: Settings, platform_factory: Callable) -> None:
    platform_factory("contacts")
    document = web_client(settings).get("/api/openapi.json").json()
    assert "/api/contacts" in document["paths"]
    assert {"get", "post"} <= set(document["paths"]["/api/contacts"])
    assert "/api/contacts/" not in document["paths"]
    assert "/api/contacts/{id}" in document["paths"]


def test_a_refused_page_request_shows_each_fields_message(settings: Settings, platform_factory: Callable) -> None:
    platform = platform_factory("contacts")
    _, password = create_user(platform, "boss", ("admin",))
    client = web_client(settings, "boss", password)
    refused = client.get("/contacts/?q=%00&city=ok")
    assert refused.status_code == 422
    assert '<ul class="field-errors">' in refused.text and "<strong>q</strong>" in refused.text
    assert "<strong>city</strong>" not in refused.text  # only the fields that were refused


def test_a_body_that_is_not_a_json_object_is_a_domain_error_answered_as_json(
        settings: Settings, platform_factory: Callable) -> None:
    platform = platform_factory("contacts")
    _, password = create_user(platform, "boss", ("admin",))
    client = web_client(settings, "boss", password)
    for body, status, code in ((b"[1, 2]", 400, "bad_json"), (b"{nope", 400, "bad_json"),
                               (b'{"name": "' + b"x" * (1 << 21) + b'"}', 413, "too_large")):
        answer = client.post("/api/contacts", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == status and answer.json()["error"]["code"] == code, answer.text[:200]


def test_a_plugin_page_looks_its_user_up_in_its_own_thread_and_refuses_whom_it_must(
        settings: Settings, platform_factory: Callable) -> None:
    import threading

    from kehu import web

    platform = platform_factory("contacts")
    user_id, password = create_user(platform, "vera", ("viewer",))
    with platform.session() as db:
        db.execute(update(User).where(User.id == user_id).values(language="en"))
    client = web_client(settings, "vera", password)
    looked_up_in: list[str] = []
    resolve = web.resolve_user

    def spy(scope: Any) -> Any:
        looked_up_in.append(threading.current_thread().name)
        return resolve(scope)

    web.resolve_user = spy  # type: ignore[assignment]
    try:
        page = client.get("/contacts/", headers={"accept-language": "zh-CN"})
        assert page.status_code == 200
        assert "Contacts" in page.text and "联系人" not in page.text  # her language, not the browser's
        assert len(looked_up_in) == 1 and looked_up_in[0] != threading.main_thread().name

        # A session that ended: the login page, as before, for pages; 401 for the API.
        with platform.session() as db:
            db.execute(delete(AuthSession))
        gone = client.get("/contacts/?q=王", follow_redirects=False)
        assert gone.status_code == 303
        assert gone.headers["location"] == "/login?next=" + quote("/contacts/?q=%E7%8E%8B")  # back to this very URL
        assert client.get("/api/contacts").status_code == 401
    finally:
        web.resolve_user = resolve  # type: ignore[assignment]

    # A token that is not valid: the same answer whether its look-up waited (a plugin's API)
    # or not (the core's own routes).
    anonymous = web_client(settings)
    bad_token = {"authorization": "Bearer kehu_not-a-real-token"}
    waited, at_once = anonymous.get("/api/contacts", headers=bad_token), anonymous.get("/api/openapi.json",
                                                                                        headers=bad_token)
    assert waited.status_code == at_once.status_code == 401
    assert waited.json() == at_once.json() and waited.json()["error"]["code"] == "unauthenticated"


def test_a_permission_checked_after_the_look_up_in_the_thread_is_refused_and_audited(
        settings: Settings, platform_factory: Callable) -> None:
    platform = platform_factory("contacts")
    _, password = create_user(platform, "vera", ("viewer",))
    client = web_client(settings, "vera", password)
    refused = client.get("/contacts/new", follow_redirects=False)
    assert refused.status_code == 403
    with platform.reading() as db:
        denials = db.scalars(select(AuditEntry.action).where(AuditEntry.action == "access.denied")).all()
    assert denials


def test_a_plain_route_behind_login_required_gets_its_user_looked_up_first(
        settings: Settings, platform_factory: Callable) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route, Router
    from starlette.testclient import TestClient

    from kehu import auth
    from kehu.web import LoginRequired, RequestContextMiddleware, current_user

    platform = platform_factory("contacts")
    user_id, _password = create_user(platform, "plain", ("viewer",))

    async def who(request: Request) -> PlainTextResponse:  # a third party's plain async endpoint
        user = current_user(request)
        return PlainTextResponse(user.login if user else "nobody")

    app = Starlette(routes=[Mount("/probe", app=LoginRequired(Router([Route("/", who)])))],
                    middleware=[Middleware(RequestContextMiddleware, platform=platform, plugin_prefixes=("/probe",))])
    app.state.platform = platform
    with platform.session() as db:
        cookie = auth.start_session(db, db.get(User, user_id))
    client = TestClient(app)
    assert client.get("/probe/", cookies={auth.SESSION_COOKIE: cookie}).text == "plain"
    assert client.get("/probe/", cookies={auth.SESSION_COOKIE: "nonsense"}, follow_redirects=False).status_code == 303
    assert client.get("/probe/", headers={"authorization": "Bearer kehu_nonsense"}).status_code == 401


def test_a_client_gone_while_its_body_is_read_is_not_a_server_error(
        settings: Settings, platform_factory: Callable, caplog: Any) -> None:
    import asyncio
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from kehu import auth
    from kehu.web import create_app

    platform = platform_factory("contacts")
    user_id, _password = create_user(platform, "gone", ("admin",))
    with platform.session() as db:
        token = auth.issue_token(db, db.get(User, user_id))
    app = create_app(settings)
    incoming = [{"type": "http.request", "body": b'{"name": "', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/contacts", "raw_path": b"/api/contacts", "query_string": b"", "root_path": "",
             "server": ("testserver", 80), "client": ("127.0.0.1", 5000),
             "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode()),
                         (b"content-type", b"application/json"), (b"content-length", b"100")]}
    with caplog.at_level(logging.ERROR), ThreadPoolExecutor(1) as thread:  # an event loop of its own:
        thread.submit(asyncio.run, app(scope, receive, send)).result()  # raised before: uvicorn logged it
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with platform.reading() as db:  # nothing was created from the half-sent body
        assert db.scalar(text("SELECT count(*) FROM contacts_contact")) == 0
