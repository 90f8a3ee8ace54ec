"""``kehu users``, ``kehu roles`` and ``kehu audit`` commands.

Every failure prints one line saying why (``Error: ...``) and exits with code 1. What these
commands change is written to the audit log with the actor ``cli``.
"""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from kehu import audit, auth
from kehu.models import Role, User

if TYPE_CHECKING:  # pragma: no cover
    from kehu.platform import Platform

LOGIN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,79}$")


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def _actor() -> audit.Actor:
    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001
        who = ""
    return audit.Actor(login=f"cli:{who}"[:80] if who else "cli")


@contextmanager
def _platform(keys: bool = True) -> Iterator[Platform]:
    """The booted platform, with its encryption keys loaded (the audit chain needs them);
    database and key problems become one-line failures."""
    from kehu import crypto
    from kehu.cli import boot

    try:
        platform = boot()
        if keys:
            crypto.ensure_keys(platform)
        yield platform
    except crypto.KeyProblem as exc:
        raise _fail(str(exc)) from exc
    except (OperationalError, ProgrammingError) as exc:
        raise _fail(f"the database is not ready ({type(exc.orig).__name__}): run 'kehu db upgrade' first") from exc


@click.group()
def users() -> None:
    """Staff accounts."""


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise _fail("no password on standard input")
        return line.rstrip("\r\n")
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)  # type: ignore[no-any-return]
    raise _fail("no terminal to ask for the password: pass --password-stdin and pipe it in")


@users.command(name="create")
@click.argument("login")
@click.option("--role", "roles", multiple=True, help="A role to give (repeatable; see 'kehu roles list').")
@click.option("--name", default="", help="Display name.")
@click.option("--team", default="", help="Team, for record rules such as 'tickets of my team'.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(login: str, roles: tuple[str, ...], name: str, team: str, password_stdin: bool) -> None:
    """Create a staff user (password from a prompt or --password-stdin)."""
    if not LOGIN_PATTERN.match(login):
        raise _fail(f"invalid login {login!r}: use letters, digits and . _ @ - (at most 80, starting with a letter or digit)")
    password = _read_password(password_stdin)
    from kehu import i18n

    language = i18n.current_language.set("en")  # the command line speaks English
    try:
        problems = auth.password_problems(password, login)
    finally:
        i18n.current_language.reset(language)
    if problems:
        raise _fail("password refused: " + " ".join(problems))
    password_hash = auth.hash_password(password)
    with _platform() as platform, platform.session() as db:
        if db.scalar(select(User.id).where(func.lower(User.login) == login.lower())):
            raise _fail(f"a user with login {login!r} already exists")
        found = {r.name: r for r in db.scalars(select(Role).where(Role.name.in_(roles)))}
        unknown = [r for r in roles if r not in found]
        if unknown:
            raise _fail(f"unknown role(s): {', '.join(unknown)} (see 'kehu roles list')")
        user = User(login=login, name=name or login, team=team, password_hash=password_hash,
                    password_changed_at=auth.utcnow())
        user.roles = [found[r] for r in dict.fromkeys(roles)]
        db.add(user)
        db.flush()
        audit.record(db, "users.create", actor=_actor(), target=f"user:{user.id}",
                     detail={"login": login, "roles": sorted(found)})
    click.echo(f"created user {login}" + (f" with roles {', '.join(dict.fromkeys(roles))}" if roles else ""))


@users.command(name="token")
@click.argument("login")
@click.option("--name", default="cli", help="What the token is for.")
def users_token(login: str, name: str) -> None:
    """Print a new API token for LOGIN (only the token, on standard output)."""
    with _platform() as platform, platform.session() as db:
        user = db.scalar(select(User).where(User.login == login))
        if user is None or not user.active:
            raise _fail(f"no active user with login {login!r}")
        raw = auth.issue_token(db, user, name)
        audit.record(db, "auth.token", actor=_actor(), target=f"user:{user.id}",
                     detail={"created": True, "user": login, "name": name[:80]})
    click.echo(raw)


@users.command(name="disable")
@click.argument("login")
def users_disable(login: str) -> None:
    """Disable LOGIN: their sessions end at once and their API tokens stop working."""
    with _platform() as platform, platform.session() as db:
        user = db.scalar(select(User).where(User.login == login))
        if user is None:
            raise _fail(f"no user with login {login!r}")
        if not user.active:
            click.echo(f"{login} is already disabled")
            return
        user.active = False
        ended = auth.end_all_sessions(db, user.id)
        audit.record(db, "users.disable", actor=_actor(), target=f"user:{user.id}",
                     detail={"login": login, "sessions_ended": ended})
    click.echo(f"disabled {login}")


@click.group()
def roles() -> None:
    """Roles and their permissions."""


@roles.command(name="list")
def roles_list() -> None:
    """Every role with its module, number of users and permissions."""
    from kehu.models import UserRole

    with _platform(keys=False) as platform, platform.sessions() as db:
        counts = dict(db.execute(select(UserRole.role_id, func.count()).group_by(UserRole.role_id)).all())
        rows = list(db.scalars(select(Role).order_by(Role.name)))
        if not rows:
            click.echo("no roles (run 'kehu db upgrade')")
            return
        click.echo(f"{'ROLE':<16} {'MODULE':<12} {'USERS':>5}  PERMISSIONS")
        for role in rows:
            perms = ", ".join(sorted(p.permission for p in role.permissions)) or "-"
            click.echo(f"{role.name:<16} {role.module:<12} {counts.get(role.id, 0):>5}  {perms}")


@click.group(name="audit")
def audit_group() -> None:
    """The audit log."""


@audit_group.command(name="verify")
def audit_verify() -> None:
    """Check the hash chain of the audit log; names every entry that was edited or deleted."""
    from kehu.models import AuditEntry

    with _platform() as platform, platform.sessions() as db:
        problems = audit.verify(db)
        count = db.scalar(select(func.count()).select_from(AuditEntry)) or 0
    if problems:
        raise _fail("audit log tampered with: " + "; ".join(problems))
    click.echo(f"audit log intact: {count} entries")


def register(cli: click.Group) -> None:
    cli.add_command(users)
    cli.add_command(roles)
    cli.add_command(audit_group)
