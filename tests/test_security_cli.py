"""``kehu users``, ``kehu roles`` and ``kehu audit``: what they do, and one line saying why with a
non-zero exit code when they cannot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from kehu import auth, security_cli
from kehu.cli import cli
from kehu.config import Settings
from kehu.models import ApiToken, AuditEntry, User
from kehu.platform import Platform
from tests.conftest import boot_with, web_client

security_cli.register(cli)


@pytest.fixture
def platform(settings: Settings) -> Platform:
    return boot_with(settings, ["contacts"])


def kehu(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def one_line_error(result: Any) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_users_create_with_roles_and_password_from_stdin(platform: Platform, settings: Settings) -> None:
    result = kehu("users", "create", "wang", "--role", "sales", "--role", "viewer", "--name", "王芳",
                  "--password-stdin", stdin="a long enough password\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "created user wang with roles sales, viewer\n"
    with platform.sessions() as db:
        user = db.scalar(select(User).where(User.login == "wang"))
        assert user is not None and user.name == "王芳" and sorted(r.name for r in user.roles) == ["sales", "viewer"]
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "users.create"))
        assert entry is not None and entry.actor_login.startswith("cli") and entry.detail["roles"] == ["sales", "viewer"]
    client = web_client(settings)
    assert client.post("/login", data={"login": "wang", "password": "a long enough password"},
                       follow_redirects=False).status_code == 303


@pytest.mark.parametrize("args, stdin, says", [
    (("users", "create", "li", "--role", "nope", "--password-stdin"), "a long enough password\n", "unknown role(s): nope"),
    (("users", "create", "li", "--password-stdin"), "password1\n", "too common"),
    (("users", "create", "li", "--password-stdin"), "short\n", "at least 8"),
    (("users", "create", "li", "--password-stdin"), "", "no password on standard input"),
    (("users", "create", "li"), "", "pass --password-stdin"),
    (("users", "create", "bad login", "--password-stdin"), "a long enough password\n", "invalid login"),
    (("users", "create", "ADMIN", "--password-stdin"), "a long enough password\n", "already exists"),
    (("users", "token", "ghost"), None, "no active user with login 'ghost'"),
    (("users", "disable", "ghost"), None, "no user with login 'ghost'"),
])
def test_bad_input_fails_with_one_line(platform: Platform, args: tuple[str, ...], stdin: str | None,
                                       says: str) -> None:
    kehu("users", "create", "admin", "--password-stdin", stdin="the first admin's password\n")
    assert says in one_line_error(kehu(*args, stdin=stdin))
    with platform.sessions() as db:
        assert db.scalar(select(User).where(User.login == "li")) is None


def test_token_and_disable(platform: Platform, settings: Settings) -> None:
    kehu("users", "create", "bot", "--role", "viewer", "--password-stdin", stdin="a long enough password\n")
    result = kehu("users", "token", "bot", "--name", "ERP")
    assert result.exit_code == 0 and result.stderr == ""
    raw = result.stdout.strip()
    assert result.stdout == raw + "\n" and raw.startswith(auth.TOKEN_PREFIX)
    with platform.sessions() as db:
        token = db.scalar(select(ApiToken))
        assert token is not None and token.name == "ERP" and raw not in token.token_hash
    client = web_client(settings)
    assert client.get("/api/contacts/", headers={"authorization": f"Bearer {raw}"}).status_code == 200
    session = web_client(settings, "bot", "a long enough password")
    disabled = kehu("users", "disable", "bot")
    assert disabled.exit_code == 0 and disabled.stdout == "disabled bot\n"
    assert client.get("/api/contacts/", headers={"authorization": f"Bearer {raw}"}).status_code == 401
    assert session.get("/api/contacts/").status_code == 401  # the session ended on the server
    assert kehu("users", "disable", "bot").stdout == "bot is already disabled\n"
    assert "no active user" in one_line_error(kehu("users", "token", "bot"))


def test_roles_list(platform: Platform) -> None:
    kehu("users", "create", "w", "--role", "sales", "--password-stdin", stdin="a long enough password\n")
    result = kehu("roles", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ROLE", "MODULE", "USERS", "PERMISSIONS"]
    rows = {line.split()[0]: line.split(None, 3) for line in lines[1:]}
    assert rows["admin"][1:] == ["core", "0", "*"]
    assert rows["sales"][1:3] == ["contacts", "1"] and "contacts.read" in rows["sales"][3]


def test_audit_verify_passes_then_names_the_edited_and_the_deleted_row(platform: Platform) -> None:
    for login in ("a1", "a2", "a3"):
        kehu("users", "create", login, "--password-stdin", stdin="a long enough password\n")
    intact = kehu("audit", "verify")
    assert intact.exit_code == 0 and intact.stdout == "audit log intact: 3 entries\n"
    with platform.engine.begin() as conn:
        conn.execute(text("UPDATE kehu_audit SET target = 'user:999' WHERE id = 2"))
    edited = one_line_error(kehu("audit", "verify"))
    assert "entry 2 (users.create at " in edited and "edited" in edited
    with platform.engine.begin() as conn:
        conn.execute(text("DELETE FROM kehu_audit WHERE id = 2"))
    assert "entry 2 is missing (deleted)" in one_line_error(kehu("audit", "verify"))


def test_the_installed_command_prints_only_the_token(platform: Platform, tmp_path: Path) -> None:
    """The real ``kehu`` program: stdout holds the token and nothing else; errors exit non-zero."""
    program = [sys.executable, "-m", "kehu.cli"]
    env = dict(os.environ)
    assert kehu("users", "create", "robot", "--password-stdin", stdin="a long enough password\n").exit_code == 0
    token = subprocess.run([*program, "users", "token", "robot"], capture_output=True, text=True, env=env, timeout=120)
    assert token.returncode == 0 and token.stdout.count("\n") == 1 and token.stdout.startswith(auth.TOKEN_PREFIX)
    failed = subprocess.run([*program, "users", "token", "nobody"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.strip().splitlines() == ["Error: no active user with login 'nobody'"]
