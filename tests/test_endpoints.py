"""kehu.endpoints: the api/page decorators, request bodies, and DomainError answers.

The endpoints run in a bare Starlette application with the core's exception handlers and a
middleware that sets the request's user, as the core's middleware does after a log-in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from kehu import errors
from kehu.auth import CurrentUser
from kehu.endpoints import MAX_JSON_BYTES, Form, Upload, api, page, uploads
from kehu.i18n import gettext
from kehu.web import domain_error, http_error


class Duplicate(errors.Conflict):
    code = "duplicate"


class Candidate:
    def as_dict(self) -> dict[str, Any]:
        return {"id": 7, "name": "张伟"}


@api("things.write")
def echo(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("fail") == "duplicate":
        raise Duplicate("It may exist already.", {"name": "Taken."}, duplicates=[Candidate()])
    return {"body": {k: v for k, v in body.items() if not isinstance(v, Upload)},
            "files": [[f.filename, f.content.decode()] for f in uploads(body)]}


@page("things.write")
def form_page(request: Request, form: Form) -> Response:
    return JSONResponse({"fields": dict(form), "tags": form.getlist("tag"),
                         "files": [f.filename for f in form.uploads()], "is_form": isinstance(form, Form)})


def app_for(user: CurrentUser | None) -> Starlette:
    class AsUser:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            scope["kehu.user"] = user
            await self.app(scope, receive, send)

    return Starlette(routes=[Route("/api/things", echo, methods=["GET", "POST"]),
                             Route("/things", form_page, methods=["GET", "POST"])],
                     middleware=[Middleware(AsUser)],
                     exception_handlers={HTTPException: http_error, errors.DomainError: domain_error})


WRITER = CurrentUser(id=1, login="w", name="w", permissions=frozenset({"things.write"}))


@pytest.fixture
def client() -> TestClient:
    return TestClient(app_for(WRITER))


def test_json_body_is_passed_and_dict_answered_as_json(client: TestClient) -> None:
    response = client.post("/api/things", json={"name": "李娜", "tags": ["a", "b"]})
    assert response.status_code == 200
    assert response.json() == {"body": {"name": "李娜", "tags": ["a", "b"]}, "files": []}
    assert client.get("/api/things").json() == {"body": {}, "files": []}


@pytest.mark.parametrize("raw, message", [
    (b"{not json", "The request body is not valid JSON."), (b"[1, 2]", "The request body must be a JSON object."),
    (b'"text"', "The request body must be a JSON object."), (b"[" * 100_000, "The request body is not valid JSON."),
])
def test_bad_json_is_a_400_saying_why(client: TestClient, raw: bytes, message: str) -> None:
    response = client.post("/api/things", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_json"
    assert response.json()["error"]["message"] == gettext(message)  # in the language of the run


def test_too_large_json_is_a_413(client: TestClient) -> None:
    response = client.post("/api/things", content=json.dumps({"x": "a" * MAX_JSON_BYTES}),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_control_characters_are_refused_by_field(client: TestClient) -> None:
    response = client.post("/api/things", json={"name": "ok\tfine\n", "note": "bad\x00"})
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["note"]
    response = client.get("/api/things?q=%07bell")
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["q"]


def test_domain_error_is_answered_with_its_status_code_fields_and_extra(client: TestClient) -> None:
    response = client.post("/api/things", json={"fail": "duplicate"})
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "duplicate", "message": "It may exist already.",
                                         "fields": {"name": "Taken."}, "duplicates": [{"id": 7, "name": "张伟"}]}}


def test_multipart_gives_a_form_with_uploads_and_no_file_for_an_empty_file_input(client: TestClient) -> None:
    response = client.post("/api/things", data={"name": "王芳"},
                           files=[("file", ("a.csv", b"x,y", "text/csv")), ("more", ("", b"", "text/plain"))])
    assert response.status_code == 200
    assert response.json() == {"body": {"name": "王芳", "more": ""}, "files": [["a.csv", "x,y"]]}


def test_page_gets_a_form_with_every_value_of_repeated_fields(client: TestClient) -> None:
    response = client.post("/things", data={"name": "n", "tag": ["VIP", "老客户"]})
    assert response.status_code == 200
    assert response.json() == {"fields": {"name": "n", "tag": "老客户"}, "tags": ["VIP", "老客户"], "files": [],
                               "is_form": True}
    assert client.get("/things").json()["fields"] == {}
    assert client.post("/things", json={"name": "from json"}).json()["fields"] == {"name": "from json"}


def test_login_is_required() -> None:
    # (A missing permission's 403 is recorded in the audit log: tests/test_route_walk.py.)
    anonymous = TestClient(app_for(None))
    assert anonymous.post("/api/things", json={}).status_code == 401
    response = anonymous.get("/things?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/things%3Fx%3D1"
