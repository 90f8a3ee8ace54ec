"""Shared set-up of the contacts tests: a deployment with contacts (and the contacts_probe test
plugin, which uses every contacts extension point), and four users:

- ``boss``: administrator (``*``)
- ``alice``, ``bob``: salespeople (role ``sales``)
- ``vera``: read-only (role ``viewer``)

Import the fixtures into a test module: ``from tests.contacts_support import crm, sqlite_template  # noqa: F401``
(on SQLite each test starts from a copy of a deployment made once per session).
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from sqlalchemy import select

from kehu import auth, crypto
from kehu.config import Settings
from kehu.models import Role, RolePermission, User
from kehu.platform import Platform
from tests.conftest import boot_with, create_user, web_client

PROBE = "contacts_probe=tests.plugins_for_tests.contacts_probe"
#: For tests whose subject does not depend on the database (rendering, the command line, the
#: HTTP layer): they run on SQLite only, keeping the PostgreSQL run for what SQL decides.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite deployment with contacts and the four users, made once per test session: each
    SQLite test starts from a copy of its file (migrating a new database takes longer than
    most tests)."""
    folder = tmp_path_factory.mktemp("contacts-template")
    settings = Settings.from_env({
        "KEHU_HOME": str(folder / "home"), "KEHU_DATABASE_URL": f"sqlite:///{folder / 'kehu.sqlite3'}",
        "KEHU_BROKER_URL": f"sqla+sqlite:///{folder / 'broker.sqlite3'}",
        "KEHU_MASTER_KEY_FILE": str(folder / "master.key"), "KEHU_EXTRA_PLUGINS": PROBE})
    settings.ensure_home()
    platform = boot_with(settings, ["contacts", "contacts_probe"])
    users = {login: create_user(platform, login, roles) for login, roles in USERS.items()}
    platform.engine.dispose()
    connection = sqlite3.connect(folder / "kehu.sqlite3")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return {"database": folder / "kehu.sqlite3", "master_key": folder / "master.key", "users": users}


@pytest.fixture
def crm(settings: Settings, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Crm:
    monkeypatch.setenv("KEHU_EXTRA_PLUGINS", PROBE)
    settings = replace(settings, extra_plugins=(PROBE,))
    users: dict[str, tuple[int, str]] = {}
    if settings.is_sqlite:
        template = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template["database"], settings.database_url.removeprefix("sqlite:///"))
        shutil.copyfile(template["master_key"], settings.master_key_file)
        platform = Platform.boot(settings)
        crypto.ensure_keys(platform)
        users = template["users"]
    else:
        platform = boot_with(settings, ["contacts", "contacts_probe"])
    assert {"contacts", "contacts_probe"} <= set(platform.active), {n: i.error for n, i in platform.modules.items()}
    from tests.plugins_for_tests import contacts_probe

    contacts_probe.CALLS.clear()
    deployment = Crm(settings=settings, platform=platform)
    for login, roles in USERS.items():
        if login in users:
            deployment.ids[login], deployment.passwords[login] = users[login]
        else:
            deployment.add_user(login, roles)
    return deployment
