"""The ``kehu`` command line.

Every command that fails prints one line saying why and exits with a non-zero code. Plugins
add their own commands through the ``kehu_cli_commands`` hook.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import DBAPIError

from kehu.config import SEVERAL_WORKERS_KEEPALIVE_REQUESTS, Settings, SettingsError
from kehu.platform import Platform


class Failure(click.ClickException):
    """One line on standard error, exit code 1."""


def boot() -> Platform:
    settings = Settings.from_env()
    settings.ensure_home()
    return Platform.boot(settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Kehu CRM: serve, migrate, manage modules, users and keys."""


# --- serve / worker / beat ----------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", type=click.IntRange(1, 512), envvar="KEHU_WEB_THREADS", default=None,
              help="Threads per web process for blocking work (env KEHU_WEB_THREADS; default 2 on SQLite, "
                   "8 on a database server).")
@click.option("--keepalive-requests", type=click.IntRange(0, 1_000_000), envvar="KEHU_KEEPALIVE_REQUESTS",
              default=None,
              help="About one response in N closes its keep-alive connection, so that connections spread "
                   "over the web processes again (env KEHU_KEEPALIVE_REQUESTS; 0: never; default "
                   f"{SEVERAL_WORKERS_KEEPALIVE_REQUESTS} when several web processes share one socket, else 0).")
@click.option("--reuse-port/--shared-socket", default=True, show_default=True, envvar="KEHU_REUSE_PORT",
              help="With --workers above 1: one listening socket per web process (SO_REUSEPORT), so that "
                   "the kernel spreads connections evenly; --shared-socket is uvicorn's single socket "
                   "(env KEHU_REUSE_PORT=0). Elsewhere than on Linux the socket is shared.")
@click.option("--no-worker", is_flag=True, help="Do not start the embedded job worker.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log every request (the reverse proxy usually does; it costs about a tenth of a request's CPU).")
def serve(host: str, port: int, workers: int, threads: int | None, keepalive_requests: int | None,
          reuse_port: bool, no_worker: bool, access_log: bool) -> None:
    """Serve the web application with uvicorn."""
    import uvicorn

    from kehu import jobs, reuseport

    socket_each = workers > 1 and reuse_port and reuseport.available()
    # The web processes read these in create_app.
    if threads is not None:
        os.environ["KEHU_WEB_THREADS"] = str(threads)
    if keepalive_requests is None:
        keepalive_requests = SEVERAL_WORKERS_KEEPALIVE_REQUESTS if workers > 1 and not socket_each else 0
    os.environ["KEHU_KEEPALIVE_REQUESTS"] = str(keepalive_requests)
    settings = Settings.from_env()
    settings.ensure_home()
    _check_keys(Platform.boot(settings))
    child = None
    if settings.broker_is_embedded and settings.embedded_worker and not no_worker:
        child = jobs.start_embedded_worker(settings)
    options: dict[str, Any] = dict(factory=True, host=host, port=port, workers=workers, loop="uvloop",
                                   http="httptools", proxy_headers=True, log_level="info", access_log=access_log)
    try:
        if socket_each:
            config = uvicorn.Config("kehu.web:create_app", **options)
            try:
                sockets = reuseport.bind_per_process(host, port, workers, config.backlog)
            except reuseport.PortTaken as exc:
                raise Failure(f"cannot listen on {exc.strerror}") from exc
            shown_host = f"[{host}]" if ":" in host else host
            click.echo(f"Kehu serving on http://{shown_host}:{sockets[0].getsockname()[1]} with {workers} web "
                       "processes, one listening socket each (SO_REUSEPORT)", err=True)
            try:
                reuseport.ReusePortMultiprocess(config, sockets).run()
            except KeyboardInterrupt:
                pass
        else:
            uvicorn.run("kehu.web:create_app", **options)
    finally:
        if child is not None:
            jobs.stop_embedded_worker(child)


def _check_keys(platform: Platform) -> None:
    """Refuse to start, in one line, without the master key that opens this database's keys."""
    from kehu import crypto

    try:
        crypto.ensure_keys(platform)
    except crypto.KeyProblem as exc:
        raise Failure(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001  (no key table: a database never migrated)
        raise Failure(f"the database is not ready ({type(exc).__name__}): run `kehu db upgrade` first") from exc


@cli.command()
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--beat", is_flag=True, help="Also run the periodic scheduler in this worker.")
@click.option("--loglevel", default="info", show_default=True)
@click.option("--pool", default="threads", show_default=True, type=click.Choice(["threads", "prefork", "solo"]))
def worker(concurrency: int, beat: bool, loglevel: str, pool: str) -> None:
    """Run a Celery worker for background jobs."""
    from kehu import jobs

    platform = boot()
    _check_keys(platform)
    sys.exit(jobs.worker_main(platform, concurrency=concurrency, beat=beat, loglevel=loglevel, pool=pool))


@cli.command(name="beat")
def beat_command() -> None:
    """Run the periodic scheduler (one per deployment)."""
    from kehu import jobs

    sys.exit(jobs.beat_main(boot()))


# --- db ---------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database migrations, per module."""


def upgrade_everything(platform: Platform) -> Platform:
    """Migrate the core and every enabled module, then create missing default roles."""
    from kehu import crypto, migrations, rbac

    for module, before, after in migrations.upgrade_all(platform):
        if before != after:
            click.echo(f"{module}: {before or 'empty'} → {after}")
    crypto.ensure_keys(platform)
    with platform.session() as session:
        for role in rbac.sync_roles(platform, session):
            click.echo(f"created role {role}")
    return platform


@db.command()
def upgrade() -> None:
    """Apply pending migrations of the core and every enabled module."""
    from kehu import crypto, migrations

    settings = Settings.from_env()
    settings.ensure_home()
    if crypto.ensure_master_key(settings.master_key_file):
        click.echo(f"created master key {settings.master_key_file} (keep it outside backups of the database)")
    try:
        upgrade_everything(Platform.boot(settings))
    except migrations.MigrationError as exc:
        raise Failure(str(exc)) from exc
    click.echo("database is up to date")


@db.command()
def status() -> None:
    """Show each module's revision and pending migrations."""
    from kehu import migrations

    platform = boot()
    waiting_total = 0
    for mm in migrations.active_modules(platform):
        current = migrations.current_revision(platform.engine, mm)
        waiting = migrations.pending(platform.engine, mm)
        waiting_total += len(waiting)
        click.echo(f"{mm.module:<16} at {current or 'empty':<14} {'up to date' if not waiting else f'{len(waiting)} pending'}")
        for revision in waiting:
            click.echo(f"    pending {revision}")
    sys.exit(1 if waiting_total else 0)


@db.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--module", "module", required=True, help="The module the revision belongs to.")
@click.option("--empty", is_flag=True, help="Write an empty revision instead of comparing models and database.")
def revision(message: str, module: str, empty: bool) -> None:
    """Write a new migration for one module (autogenerated from its models)."""
    from kehu import migrations

    platform = boot()
    if module not in platform.active:
        raise Failure(f"{module} is not an enabled module (enable it first: kehu modules enable {module})")
    path = migrations.new_revision(platform, module, message, autogenerate=not empty)
    click.echo(str(path))


# --- modules ----------------------------------------------------------------------------


@cli.group(name="modules")
def modules_group() -> None:
    """List, enable, disable and remove modules."""


@modules_group.command(name="list")
def modules_list() -> None:
    """Name, version, state and dependencies of every installed module."""
    platform = boot()
    states = platform.module_states()
    click.echo(f"{'NAME':<16} {'VERSION':<10} {'STATE':<10} DEPENDS ON")
    for name, info in sorted(platform.modules.items()):
        version = info.manifest.version if info.manifest else "?"
        depends = ", ".join(f"{d}{s}" for d, s in info.depends.items()) or "-"
        click.echo(f"{name:<16} {version:<10} {states[name]:<10} {depends}")
        if info.error:
            click.echo(f"{'':<16} error: {info.error}")


@modules_group.command()
@click.argument("name")
def enable(name: str) -> None:
    """Enable NAME and what it depends on, and migrate them."""
    from kehu import migrations, modules

    platform = boot()
    try:
        with platform.session() as session:
            newly = modules.enable(session, name, platform.modules)
        if not newly:
            click.echo(f"{name} is already enabled")
            return
        platform = upgrade_everything(boot())
    except (modules.ModuleError, migrations.MigrationError) as exc:
        raise Failure(str(exc)) from exc
    except DBAPIError as exc:  # e.g. no module table: a database never migrated
        reason = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
        raise Failure(f"cannot enable {name}: the database is not ready ({reason}); "
                      "run `kehu db upgrade` first") from exc
    for module in newly:
        if module not in platform.active:  # enabled, but it failed to start: say so
            raise Failure(f"{module} is enabled but broken: {platform.modules[module].error}")
    extra = [m for m in newly if m != name]
    click.echo(f"enabled {name}" + (f" (and its dependencies: {', '.join(extra)})" if extra else ""))


@modules_group.command()
@click.argument("name")
@click.option("--cascade", is_flag=True, help="Also disable the enabled modules that depend on NAME.")
def disable(name: str, cascade: bool) -> None:
    """Disable NAME; its data is kept and comes back when it is enabled again."""
    from kehu import modules

    platform = boot()
    try:
        with platform.session() as session:
            changed = modules.disable(session, name, platform.modules, cascade=cascade)
    except modules.ModuleError as exc:
        raise Failure(str(exc)) from exc
    click.echo(f"disabled {', '.join(changed)} (data kept)")


@modules_group.command()
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Only list what would be dropped.")
@click.option("--cascade", is_flag=True, help="Also remove the modules that depend on NAME.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove(name: str, dry_run: bool, cascade: bool, yes: bool) -> None:
    """Drop a module's tables and data, after showing exactly what goes."""
    from kehu import modules, removal

    platform = boot()
    try:
        bills = removal.plan(platform, name, cascade=cascade)
    except modules.ModuleError as exc:
        raise Failure(str(exc)) from exc
    for bill in bills:
        click.echo(f"module {bill.module}:")
        for table_name, rows in bill.tables:
            click.echo(f"  drop table {table_name} ({rows} rows)")
        if bill.version_table:
            click.echo(f"  drop table {bill.version_table} (migration state)")
        for role in bill.roles:
            click.echo(f"  delete role {role}")
        if not bill.tables and not bill.version_table:
            click.echo("  nothing stored")
    if dry_run:
        click.echo("dry run: nothing was dropped")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise Failure("refusing to drop data without confirmation: run in a terminal or pass --yes")
        click.confirm(f"Drop {sum(b.rows for b in bills)} rows in {sum(len(b.tables) for b in bills)} tables?", abort=True)
    with platform.session() as session:
        for bill in bills:
            if bill.module in modules.enabled_names(session):
                modules.disable(session, bill.module, platform.modules, cascade=True)
    removal.execute(platform, bills)
    click.echo(f"removed {', '.join(b.module for b in bills)}")


# --- backup / restore ------------------------------------------------------------------------


@cli.command(name="backup")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def backup_command(path: str) -> None:
    """Write a portable backup (database rows and attachments, not the master key) to PATH."""
    from kehu import backup

    report = backup.backup(boot(), Path(path), progress=lambda table, rows: click.echo(f"  {table}: {rows} rows"))
    click.echo(f"backup written to {report.path}: {sum(report.tables.values())} rows in {len(report.tables)} tables, "
               f"{report.attachments} attachments")


@cli.command(name="restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def restore_command(path: str) -> None:
    """Restore a backup from PATH into this deployment's empty database."""
    from kehu import backup

    try:
        counts = backup.restore(boot, Path(path), progress=lambda table, rows: click.echo(f"  {table}: {rows} rows"))
    except backup.BackupError as exc:
        raise Failure(str(exc)) from exc
    click.echo(f"restored {sum(counts.values())} rows in {len(counts)} tables")


# --- plugin scaffolding -------------------------------------------------------------------


@cli.group()
def plugin() -> None:
    """Tools for plugin developers."""


@plugin.command(name="new")
@click.argument("name")
@click.option("--directory", "directory", default=".", show_default=True, type=click.Path(file_okay=False))
def plugin_new(name: str, directory: str) -> None:
    """Write a working plugin package kehu-NAME in DIRECTORY."""
    from kehu import scaffold

    try:
        path = scaffold.create(name, directory)
    except scaffold.ScaffoldError as exc:
        raise Failure(str(exc)) from exc
    click.echo(f"created {path}")
    click.echo(f"next: pip install -e {path} && kehu modules enable {name}")


# --- demo -------------------------------------------------------------------------------


@cli.group()
def demo() -> None:
    """Demo data."""


@demo.command(name="load")
@click.option("--modules", "names", default="", help="Comma-separated modules to enable (default: every built-in one).")
def demo_load(names: str) -> None:
    """Enable modules, create a demo administrator (printed once) and sample data."""
    from kehu import demo_data

    try:
        for line in demo_data.load(boot(), [n for n in names.split(",") if n]):
            click.echo(line)
    except Exception as exc:  # noqa: BLE001
        raise Failure(f"demo data could not be loaded: {exc}") from exc


def _plugin_commands(group: click.Group) -> None:
    try:
        platform = boot()
    except Exception:  # noqa: BLE001  (a broken database must not hide the core commands)
        return
    for commands in platform.pm.hook.kehu_cli_commands():
        for command in commands or []:
            if command.name not in group.commands:
                group.add_command(command)


def main(argv: list[str] | None = None) -> Any:
    from kehu import keys_cli, security_cli

    security_cli.register(cli)
    cli.add_command(keys_cli.keys)
    try:
        if not (argv or sys.argv[1:])[:1] or (argv or sys.argv[1:])[0] not in cli.commands:
            _plugin_commands(cli)
        return cli.main(args=argv, prog_name="kehu")
    except SettingsError as exc:  # whichever command read the settings first: one line, not a traceback
        click.echo(f"kehu: configuration error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
