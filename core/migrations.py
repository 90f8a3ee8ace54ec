"""Per-module Alembic migrations, each module with its own version table.

Every module keeps its revisions in its own folder (the core's in the repository's
``alembic/versions``, a plugin's in ``<plugin>/migrations/versions``) and its current revision
in its own table ``alembic_version_<module>`` — as CKAN does — so a missing or disabled
plugin can never break migrating the others. No ``env.py`` is needed: the core drives Alembic's
``EnvironmentContext`` itself.

Modules upgrade in dependency order, each in its own transaction: a failed migration names the
module and revision and leaves the database as it was before that module's step.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import rev_id
from sqlalchemy import Connection, Engine

from kehu.db import Model, refresh_statistics
from kehu.platform import Platform, declared_tables

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).parent / "migration_template" / "script.py.mako"
CORE_MIGRATIONS = Path(__file__).resolve().parent.parent / "alembic"


class MigrationError(Exception):
    """A module's migration failed; its step was rolled back."""


@dataclass(frozen=True)
class ModuleMigrations:
    module: str
    folder: Path
    tables: frozenset[str]

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.module}"

    @property
    def has_scripts(self) -> bool:
        """Whether the module ships a migrations folder (a module without tables needs none)."""
        return (self.folder / "versions").is_dir()

    def script(self, create: bool = False) -> ScriptDirectory:
        # Only writing a revision creates the folder: reading never writes into a plugin's
        # package (which may be installed read-only, or have lost its folder).
        if create:
            (self.folder / "versions").mkdir(parents=True, exist_ok=True)
            if not (self.folder / "script.py.mako").exists():
                shutil.copy(TEMPLATE, self.folder / "script.py.mako")
        config = Config()
        config.set_main_option("script_location", str(self.folder))
        config.set_main_option("path_separator", "os")
        return ScriptDirectory.from_config(config)

    def include_object(self, obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in self.tables

    def configure(self, context: EnvironmentContext | MigrationContext, connection: Connection) -> dict:
        return dict(
            connection=connection,
            target_metadata=Model.metadata,
            version_table=self.version_table,
            include_object=self.include_object,
            render_as_batch=connection.dialect.name == "sqlite",
            transactional_ddl=True,
            compare_type=True,
        )


def for_module(platform: Platform, name: str) -> ModuleMigrations:
    info = platform.modules[name]
    folder = CORE_MIGRATIONS if name == "core" else (info.path / "migrations")  # type: ignore[operator]
    return ModuleMigrations(module=name, folder=folder, tables=frozenset(declared_tables(info)))


def active_modules(platform: Platform) -> list[ModuleMigrations]:
    return [for_module(platform, name) for name in platform.active]


def current_revision(engine: Engine, mm: ModuleMigrations) -> str | None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": mm.version_table})
        return context.get_current_revision()


def pending(engine: Engine, mm: ModuleMigrations) -> list[str]:
    """Revisions of ``mm`` not applied yet, oldest first."""
    if not mm.has_scripts:
        return []
    script = mm.script()
    current = current_revision(engine, mm)
    heads = script.get_heads()
    if not heads:
        return []
    revisions = list(script.iterate_revisions(heads[0], current))
    return [f"{rev.revision} {rev.doc}" for rev in reversed(revisions)]


def upgrade_module(engine: Engine, mm: ModuleMigrations, target: str = "heads") -> tuple[str | None, str | None]:
    before = current_revision(engine, mm)
    if not mm.has_scripts:
        if before is None:
            return None, None  # a module without migrations (and without tables)
        raise MigrationError(
            f"migrations of module {mm.module} are missing ({mm.folder / 'versions'} does not exist) but the "
            f"database is at its revision {before}; {mm.module} is left as it is (reinstall its package)"
        )
    script = mm.script()
    planned: list[str] = []
    applied: list[str] = []

    def do_upgrade(rev, context):  # type: ignore[no-untyped-def]
        steps = script._upgrade_revs(target, rev)
        planned.extend(step.revision.revision for step in steps)
        return steps

    def on_version_apply(ctx, step, heads, run_args):  # type: ignore[no-untyped-def]
        applied.append(step.up_revision_id)

    with engine.connect() as conn:
        env = EnvironmentContext(Config(), script, fn=do_upgrade, destination_rev=target)
        env.configure(**mm.configure(env, conn), on_version_apply=on_version_apply)
        try:
            with env.begin_transaction():
                env.run_migrations()
        except Exception as exc:
            failing = next((rev for rev in planned if rev not in applied), "?")
            reason = (str(exc).strip().splitlines() or [""])[0]  # one line (drivers add SQL and hints)
            raise MigrationError(
                f"migration of module {mm.module} failed at revision {failing}: {type(exc).__name__}: {reason}; "
                f"{mm.module} is left at revision {before or 'none'}"
            ) from exc
    return before, current_revision(engine, mm)


def downgrade_module_to_base(engine: Engine, mm: ModuleMigrations) -> None:
    if not mm.has_scripts:
        return
    script = mm.script()

    def do_downgrade(rev, context):  # type: ignore[no-untyped-def]
        return script._downgrade_revs("base", rev)

    with engine.connect() as conn:
        env = EnvironmentContext(Config(), script, fn=do_downgrade, destination_rev="base")
        env.configure(**mm.configure(env, conn))
        with env.begin_transaction():
            env.run_migrations()


def upgrade_all(platform: Platform) -> list[tuple[str, str | None, str | None]]:
    """Upgrade the core and every active module, dependencies first.

    A module whose migration fails does not stop the others: every module that does not
    depend on it is still upgraded, then one :class:`MigrationError` names every failure.
    """
    results = []
    failed: list[str] = []
    errors: list[str] = []
    for mm in active_modules(platform):
        blocked = [name for name in failed if name in platform.modules[mm.module].depends]
        if blocked:
            failed.append(mm.module)
            errors.append(f"module {mm.module} was not migrated: it needs {', '.join(blocked)}")
            continue
        try:
            before, after = upgrade_module(platform.engine, mm)
        except MigrationError as exc:
            if mm.module == "core":
                raise  # every module builds on the core's tables
            failed.append(mm.module)
            errors.append(str(exc))
            continue
        results.append((mm.module, before, after))
    try:
        refresh_statistics(platform.engine)  # new indexes have none; SQLite's planner needs them
    except Exception:  # noqa: BLE001  (an optimisation: the job worker refreshes them again)
        log.warning("refreshing the query planner's statistics failed", exc_info=True)
    if errors:
        raise MigrationError("; ".join(errors))
    return results


def drift(engine: Engine, mm: ModuleMigrations) -> list:
    """Differences between the module's models and the migrated database (empty = none)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": mm.include_object, "compare_type": True, "version_table": mm.version_table}
        )
        return compare_metadata(context, Model.metadata)


_CUSTOM_TYPE = re.compile(r"\b((?:[a-z_][a-z0-9_]*\.)+)[A-Z]\w*\(")


def new_revision(platform: Platform, module: str, message: str, autogenerate: bool = True) -> Path:
    """Write a new revision for ``module``, autogenerated from its models by default."""
    mm = for_module(platform, module)
    script = mm.script(create=True)
    upgrades = downgrades = "pass"
    imports: set[str] = set()
    if autogenerate:
        with platform.engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_object": mm.include_object,
                    "compare_type": True,
                    "version_table": mm.version_table,
                    "render_as_batch": conn.dialect.name == "sqlite",
                },
            )
            ops = produce_migrations(context, Model.metadata)
        batch = platform.engine.dialect.name == "sqlite"
        upgrades = render_python_code(ops.upgrade_ops, render_as_batch=batch).strip()
        downgrades = render_python_code(ops.downgrade_ops, render_as_batch=batch).strip()
        for code in (upgrades, downgrades):
            for prefix in _CUSTOM_TYPE.findall(code):
                prefix = prefix.rstrip(".")
                if prefix not in ("sa", "op", "batch_op"):
                    imports.add(f"import {prefix}")
    heads = script.get_heads()
    created = script.generate_revision(
        rev_id(),
        message,
        head=heads[0] if heads else "base",
        upgrades=upgrades,
        downgrades=downgrades,
        imports="\n".join(sorted(imports)),
    )
    assert created is not None
    return Path(created.path)
