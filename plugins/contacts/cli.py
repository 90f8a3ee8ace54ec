"""``kehu contacts ...``: the plugin's commands (added to ``kehu`` through ``kehu_cli_commands``)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group(name="contacts")
def contacts() -> None:
    """Contacts: import people and companies from CSV or XLSX."""


@contacts.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and show what would happen; change nothing.")
@click.option("--mapping", "-m", "mappings", multiple=True, metavar="COLUMN=FIELD",
              help="Correct the guessed mapping: a column (its header, number or letter) to a field "
                   "(name, phones, emails, company, city, custom.<key>...; empty: ignore it). Repeatable.")
@click.option("--user", "login", default="",
              help="Import as this user: their permissions apply and new contacts are theirs.")
def import_command(file: Path, dry_run: bool, mappings: tuple[str, ...], login: str) -> None:
    """Import contacts from FILE (CSV in any common encoding, or XLSX).

    Contacts that exist already (same phone number or e-mail address, or same name at the same
    company) are updated rather than duplicated. Rejected rows are listed with their line number.
    """
    from kehu import i18n

    language = i18n.current_language.set("en")  # the command line speaks English, like the core's
    try:
        _import(file, dry_run, mappings, login)
    finally:
        i18n.current_language.reset(language)


def _import(file: Path, dry_run: bool, mappings: tuple[str, ...], login: str) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table
    from sqlalchemy import select

    from kehu import auth
    from kehu.cli import Failure, boot
    from kehu.models import User

    from . import importer, security, service

    platform = boot()
    if "contacts" not in platform.active:
        raise Failure("the contacts module is not enabled (kehu modules enable contacts)")
    console = Console()
    user = None
    if login:
        with platform.sessions() as db:
            row = db.scalar(select(User).where(User.login == login, User.active.is_(True)))
            if row is None:
                raise Failure(f"no active user with login {login!r}")
            user = auth.current_user_of(row)
        if not user.can(security.IMPORT):
            raise Failure(f"{login} may not import contacts (needs {security.IMPORT})")
    try:
        table = importer.read_table(file)
        with platform.sessions() as db:
            fields = service.custom_fields(db)
        mapping = importer.mapping_from_options(table.headers, list(mappings), fields)
    except (importer.UnreadableFile, ValueError) as exc:
        raise Failure(str(exc)) from None

    shown = Table(title=f"{file.name}: {len(table.rows)} rows", show_lines=False)
    shown.add_column("#", justify="right")
    shown.add_column("column")
    shown.add_column("field")
    for index, header in enumerate(table.headers):
        name = mapping.get(str(index), "")
        shown.add_row(str(index + 1), header, importer.field_label(name) + f" ({name})" if name else "[dim]ignored[/]")
    console.print(shown)

    runner = importer.Importer(platform, user, mapping, dry_run=dry_run)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("dry run" if dry_run else "importing", total=len(table.rows))
        try:
            report = runner.run(table, progress=lambda r: progress.update(task, completed=r.processed),
                                file_name=file.name)
        except ValueError as exc:
            raise Failure(str(exc)) from None
    verb = "would be " if dry_run else ""
    console.print(f"{report.created} {verb}created, {report.updated} {verb}updated, {report.unchanged} unchanged, "
                  f"[{'red' if report.rejected else 'green'}]{report.rejected} rejected[/]")
    for problem in report.problems[:50]:
        console.print(f"  line {problem.line}: {problem.reason}", highlight=False)
    if len(report.problems) > 50:
        console.print(f"  ... and {len(report.problems) - 50} more")
    if dry_run:
        console.print("dry run: nothing was changed")


COMMANDS = [contacts]
