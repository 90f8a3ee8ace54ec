"""Shared set-up of the contacts tests: a deployment with contacts (and the contacts_probe test
plugin, which uses every contacts extension point), and four users:

- ``boss``: administrator (``*``)
- ``alice``, ``bob``: salespeople (role ``sales``)
- ``vera``: read-only (role ``viewer``)

Import the fixtures into a test module: ``from tests.contacts_support import crm  # noqa: F401``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from sqlalchemy import select

from kehu import auth
from kehu.config import Settings
from kehu.models import Role, RolePermission, User
from kehu.platform import Platform
from tests.conftest import boot_with, create_user, web_client

PROBE = "contacts_probe=tests.plugins_for_tests.contacts_probe"
USERS = {"boss": ("admin",), "alice": ("sales",), "bob": ("sales",), "vera": ("viewer",)}


@dataclass
class Crm:
    settings: Settings
    platform: Platform
    ids: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, login: str) -> Any:
        """A logged-in test client of the composed web application (one per user)."""
        if login not in self._clients:
            self._clients[login] = web_client(self.settings, login, self.passwords[login])
        return self._clients[login]

    def user(self, login: str) -> auth.CurrentUser:
        """``login`` as the service layer sees a user."""
        with self.platform.sessions() as db:
            row = db.scalar(select(User).where(User.login == login))
            assert row is not None
            return auth.current_user_of(row)

    def add_user(self, login: str, roles: tuple[str, ...] = (), permissions: tuple[str, ...] = ()) -> None:
        """Add a user; ``permissions`` go into a role of their own, named after them."""
        if permissions:
            with self.platform.session() as db:
                role = Role(name=f"role_{login}", label={}, module="tests")
                role.permissions = [RolePermission(permission=p) for p in permissions]
                db.add(role)
            roles = (*roles, f"role_{login}")
        self.ids[login], self.passwords[login] = create_user(self.platform, login, roles)

    def create(self, login: str, **data: Any) -> dict[str, Any]:
        """Create a contact through the API as ``login``; returns its JSON."""
        response = self.client(login).post("/api/contacts/", json=data)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def english() -> Any:
    """Messages produced in the test's own thread (importer reports, CLI output) in English."""
    from kehu import i18n

    token = i18n.current_language.set("en")
    yield
    i18n.current_language.reset(token)


@pytest.fixture
def crm(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Crm:
    monkeypatch.setenv("KEHU_EXTRA_PLUGINS", PROBE)
    settings = replace(settings, extra_plugins=(PROBE,))
    platform = boot_with(settings, ["contacts", "contacts_probe"])
    assert {"contacts", "contacts_probe"} <= set(platform.active), {n: i.error for n, i in platform.modules.items()}
    from tests.plugins_for_tests import contacts_probe

    contacts_probe.CALLS.clear()
    deployment = Crm(settings=settings, platform=platform)
    for login, roles in USERS.items():
        deployment.add_user(login, roles)
    return deployment
