"""``kehu users``, ``kehu roles``, ``kehu keys`` and ``kehu audit`` commands."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from kehu import auth
from kehu.models import Role, User


def _boot():  # type: ignore[no-untyped-def]
    from kehu.cli import boot

    return boot()


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


@click.group()
def users() -> None:
    """Staff accounts."""


@users.command(name="create")
@click.argument("login")
@click.option("--role", "roles", multiple=True, help="A role to give (repeatable).")
@click.option("--name", default="", help="Display name.")
@click.option("--team", default="", help="Team, for record rules such as 'tickets of my team'.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(login: str, roles: tuple[str, ...], name: str, team: str, password_stdin: bool) -> None:
    """Create a staff user (password from a prompt or --password-stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise _fail("no terminal to ask for the password: pass --password-stdin and pipe it in")
    problems = auth.password_problems(password)
    if problems:
        raise _fail(" ".join(problems))
    platform = _boot()
    with platform.session() as db:
        if db.scalar(select(User).where(User.login == login)):
            raise _fail(f"a user with login {login!r} already exists")
        found = {r.name: r for r in db.scalars(select(Role).where(Role.name.in_(roles)))}
        unknown = [r for r in roles if r not in found]
        if unknown:
            raise _fail(f"unknown role(s): {', '.join(unknown)} (see 'kehu roles list')")
        user = User(login=login, name=name or login, team=team, password_hash=auth.hash_password(password))
        user.roles = [found[r] for r in roles]
        db.add(user)
    click.echo(f"created user {login}" + (f" with roles {', '.join(roles)}" if roles else ""))


@users.command(name="token")
@click.argument("login")
@click.option("--name", default="cli", help="What the token is for.")
def users_token(login: str, name: str) -> None:
    """Print a new API token for LOGIN (only the token, on standard output)."""
    platform = _boot()
    with platform.session() as db:
        user = db.scalar(select(User).where(User.login == login))
        if user is None or not user.active:
            raise _fail(f"no active user with login {login!r}")
        raw = auth.issue_token(db, user, name)
    click.echo(raw)


@users.command(name="disable")
@click.argument("login")
def users_disable(login: str) -> None:
    """Disable LOGIN: their sessions end at once."""
    platform = _boot()
    with platform.session() as db:
        user = db.scalar(select(User).where(User.login == login))
        if user is None:
            raise _fail(f"no user with login {login!r}")
        user.active = False
        auth.end_all_sessions(db, user.id)
    click.echo(f"disabled {login}")


@click.group()
def roles() -> None:
    """Roles and their permissions."""


@roles.command(name="list")
def roles_list() -> None:
    """Every role with its module and permissions."""
    platform = _boot()
    with platform.sessions() as db:
        for role in db.scalars(select(Role).order_by(Role.name)):
            perms = ", ".join(sorted(p.permission for p in role.permissions))
            click.echo(f"{role.name:<16} {role.module:<12} {perms}")


def register(cli: click.Group) -> None:
    cli.add_command(users)
    cli.add_command(roles)
