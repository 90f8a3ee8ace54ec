"""Shared set-up of the tickets tests: a deployment with contacts and tickets enabled, and

- ``boss``: administrator (``*``)
- ``amy``, ``ben``: role ``service``, team 售后一组 (``TEAM_A``)
- ``carl``: role ``service``, team 售后二组 (``TEAM_B``)
- ``sam``: role ``sales`` (contacts only, no tickets)

Import the fixture into a test module: ``from tests.tickets_support import desk  # noqa: F401``.
Automatic assignment is off unless a test turns it on (``desk_with(...)``), and the public
form's minimum fill time is 0 s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from kehu import auth
from kehu.config import Settings
from kehu.models import User
from kehu.platform import Platform
from tests.conftest import boot_with, create_user, web_client

TEAM_A, TEAM_B = "售后一组", "售后二组"
USERS = {"boss": (("admin",), ""), "amy": (("service",), TEAM_A), "ben": (("service",), TEAM_A),
         "carl": (("service",), TEAM_B), "sam": (("sales",), "")}
DEFAULT_ENV = {"KEHU_TICKETS_AUTO_ASSIGN": "0", "KEHU_TICKETS_MIN_FILL_SECONDS": "0"}


def at(text: str) -> datetime:
    """``"2026-03-02 10:00"`` in Beijing time → an aware UTC datetime."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


@dataclass
class Desk:
    settings: Settings
    platform: Platform
    ids: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, login: str) -> Any:
        if login not in self._clients:
            self._clients[login] = web_client(self.settings, login, self.passwords[login])
        return self._clients[login]

    def anonymous(self) -> Any:
        return web_client(self.settings)

    def user(self, login: str) -> auth.CurrentUser:
        with self.platform.sessions() as db:
            row = db.scalar(select(User).where(User.login == login))
            assert row is not None
            return auth.current_user_of(row)

    def add_user(self, login: str, roles: tuple[str, ...], team: str = "") -> int:
        self.ids[login], self.passwords[login] = create_user(self.platform, login, roles, team=team)
        return self.ids[login]

    def contact(self, name: str = "王小明", **data: Any) -> int:
        response = self.client("boss").post("/api/contacts/", json={"name": name, **data})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def ticket(self, login: str = "amy", contact_id: int | None = None, **data: Any) -> dict[str, Any]:
        body = {"contact_id": contact_id or self.contact(), "subject": "打印机卡纸", "description": "第三页开始卡纸",
                "priority": "normal", **data}
        response = self.client(login).post("/api/tickets/", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, ticket_id: int, login: str = "boss") -> dict[str, Any]:
        response = self.client(login).get(f"/api/tickets/{ticket_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def move(self, ticket_id: int, to: str, login: str = "boss") -> Any:
        return self.client(login).post(f"/api/tickets/{ticket_id}/transitions", json={"to": to})


def make_desk(settings: Settings, monkeypatch: pytest.MonkeyPatch, broker_url: str = "", **env: str) -> Desk:
    values = {**DEFAULT_ENV, **env}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    if broker_url:
        monkeypatch.setenv("KEHU_BROKER_URL", broker_url)
    settings = replace(settings, extra={**settings.extra, **values}, broker_url=broker_url or settings.broker_url)
    platform = boot_with(settings, ["contacts", "tickets"])
    assert {"contacts", "tickets"} <= set(platform.active), {n: i.error for n, i in platform.modules.items()}
    desk = Desk(settings=settings, platform=platform)
    for login, (roles, team) in USERS.items():
        desk.add_user(login, roles, team)
    return desk


@pytest.fixture
def desk(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Desk:
    return make_desk(settings, monkeypatch)


@pytest.fixture
def desk_with(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Desk]:
    """``desk_with(KEHU_TICKETS_AUTO_ASSIGN="1")``: a desk with other settings (``broker_url=``
    another broker)."""
    return lambda **env: make_desk(settings, monkeypatch, **env)


# --- A real SMTP server on 127.0.0.1 (aiosmtpd) ------------------------------------------------


class Inbox:
    """Messages the test SMTP server received (``email.message.EmailMessage``)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        import email
        import email.policy

        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def to(self, address: str) -> list[Any]:
        return [m for m in self.messages if address in str(m["To"])]

    def env(self) -> dict[str, str]:
        return {"KEHU_TICKETS_SMTP_HOST": "127.0.0.1", "KEHU_TICKETS_SMTP_PORT": str(self.port)}


@pytest.fixture
def inbox() -> Any:
    import socket

    from aiosmtpd.controller import Controller

    found = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        found.port = probe.getsockname()[1]
    controller = Controller(found, hostname="127.0.0.1", port=found.port)
    controller.start()
    yield found
    controller.stop()


def body_of(message: Any) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()
