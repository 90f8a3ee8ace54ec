"""The composed web application: plugin mounts, the error body, the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable

from kehu.config import Settings
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
