"""Per-module migrations, on SQLite and PostgreSQL (the ``settings`` fixture).

- Each active module's migrations produce exactly the schema of its models, for every
  installed module that is not broken (and for the test plugins and a freshly scaffolded one).
- A failing migration names the module and the revision, and leaves the database as it was
  before that module's step; the other modules are migrated all the same.
- Disabling a plugin, uninstalling it, or losing its migrations folder never breaks migrating
  the others.
"""

from __future__ import annotations

import shutil
import textwrap
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from kehu import migrations, modules, scaffold
from kehu.config import Settings
from kehu.platform import Platform

TEST_PLUGINS = "tests.plugins_for_tests"


def extra(*names: str) -> tuple[str, ...]:
    return tuple(f"{name}={TEST_PLUGINS}.{name}" for name in names)


def boot(settings: Settings, plugins: tuple[str, ...] = ()) -> Platform:
    return Platform.boot(replace(settings, extra_plugins=plugins))


def enable(settings: Settings, plugins: tuple[str, ...], *names: str) -> Platform:
    """Enable ``names`` (with the core migrated first) and return a platform booted with them."""
    platform = boot(settings, plugins)
    migrations.upgrade_module(platform.engine, migrations.for_module(platform, "core"))
    with platform.session() as db:
        for name in names:
            modules.enable(db, name, platform.modules)
    return boot(settings, plugins)


def tables(platform: Platform) -> set[str]:
    return set(inspect(platform.engine).get_table_names())


def version_rows(platform: Platform, module: str) -> list[str]:
    if f"alembic_version_{module}" not in tables(platform):
        return []
    with platform.engine.connect() as conn:
        return [row[0] for row in conn.execute(text(f'SELECT version_num FROM "alembic_version_{module}"'))]


def test_every_module_migrates_to_exactly_its_models(settings: Settings, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A plugin fresh from `kehu plugin new`, importable from tmp_path, joins the installed ones.
    scaffolded = f"scaf_{uuid.uuid4().hex[:8]}"
    scaffold.create(scaffolded, tmp_path / "src")
    monkeypatch.syspath_prepend(str(tmp_path / "src" / f"kehu-{scaffolded}"))
    plugins = (*extra("mod_base", "mod_child", "mod_top"), f"{scaffolded}=kehu_{scaffolded}")

    discovered = boot(settings, plugins).modules
    installed = sorted(name for name, info in discovered.items() if name != "core" and not info.error)
    assert {"mod_base", "mod_child", "mod_top", scaffolded} <= set(installed)
    platform = enable(settings, plugins, *installed)
    results = migrations.upgrade_all(platform)

    assert platform.active[0] == "core"
    assert set(installed) <= set(platform.active), {n: discovered[n].error for n in installed}
    assert {module for module, _, _ in results} == set(platform.active)
    for mm in migrations.active_modules(platform):
        assert migrations.drift(platform.engine, mm) == [], f"{mm.module}: migrations differ from models"
        assert migrations.pending(platform.engine, mm) == [], mm.module
        owned = set(platform.declarations.tables_of(mm.module))
        assert owned <= tables(platform), f"{mm.module}: tables missing after upgrade"
    assert migrations.current_revision(platform.engine, migrations.for_module(platform, scaffolded)) \
        == scaffold.revision_id(scaffolded)
    # Upgrading again is a no-op.
    assert all(before == after for _, before, after in migrations.upgrade_all(platform))


def test_failing_migration_names_module_and_revision_and_rolls_back_its_step(settings: Settings) -> None:
    plugins = extra("mod_base", "mod_child", "mod_top", "mod_failing")
    platform = enable(settings, plugins, "mod_base", "mod_failing")
    failing = migrations.for_module(platform, "mod_failing")
    migrations.upgrade_module(platform.engine, failing, "fa11ed000001")  # the first step works
    assert "mod_failing_a" in tables(platform)

    with platform.session() as db:  # mod_top (and mod_child) come after mod_failing
        modules.enable(db, "mod_top", platform.modules)
    platform = boot(settings, plugins)
    with pytest.raises(migrations.MigrationError) as caught:
        migrations.upgrade_all(platform)

    message = str(caught.value)
    assert "module mod_failing failed at revision fa11ed000002" in message
    assert "mod_failing is left at revision fa11ed000001" in message
    assert "\n" not in message
    # mod_failing is as it was before its step: revision 1, its second table not there.
    assert version_rows(platform, "mod_failing") == ["fa11ed000001"]
    assert "mod_failing_a" in tables(platform)
    assert "mod_failing_b" not in tables(platform)
    # The other modules were migrated all the same.
    for module in ("mod_base", "mod_child", "mod_top"):
        mm = migrations.for_module(platform, module)
        assert migrations.pending(platform.engine, mm) == [], module
    assert {"mod_base_thing", "mod_child_item", "mod_top_entry"} <= tables(platform)


def test_failing_first_migration_leaves_no_trace(settings: Settings) -> None:
    platform = enable(settings, extra("mod_failing"), "mod_failing")
    with pytest.raises(migrations.MigrationError, match=r"module mod_failing failed at revision fa11ed000002.*"
                                                       r"left at revision none"):
        migrations.upgrade_all(platform)
    assert not {"mod_failing_a", "mod_failing_b"} & tables(platform)
    assert version_rows(platform, "mod_failing") == []


VANISHING = '''
"""A plugin written by the test, whose migrations folder the test deletes."""
from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, mapped_column

import kehu
from kehu.db import Model

MANIFEST = kehu.Manifest(name="{name}", version="0.1.0", summary="vanishing")


class Row(Model):
    __tablename__ = "{name}_row"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


@kehu.hookimpl
def kehu_models():
    return [Row]
'''

VANISHING_REVISION = '''
from alembic import op
import sqlalchemy as sa

revision = "0a0a0a0a0a01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("{name}_row", sa.Column("id", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_{name}_row")))


def downgrade():
    op.drop_table("{name}_row")
'''


def test_disabled_removed_or_folderless_plugin_never_breaks_the_others(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"gone_{uuid.uuid4().hex[:8]}"
    package = tmp_path / "src" / name
    (package / "migrations" / "versions").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(VANISHING.format(name=name)))
    (package / "migrations" / "versions" / "0a0a0a0a0a01_row.py").write_text(VANISHING_REVISION.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    with_plugin = (f"{name}={name}", *extra("mod_base", "mod_child", "mod_top"))
    without_plugin = extra("mod_base", "mod_child", "mod_top")

    platform = enable(settings, with_plugin, name, "mod_base")
    migrations.upgrade_all(platform)
    assert f"{name}_row" in tables(platform)

    # 1. Disabled: the others migrate (mod_child is new), the plugin's table stays.
    with platform.session() as db:
        modules.disable(db, name, platform.modules)
        modules.enable(db, "mod_child", platform.modules)
    platform = boot(settings, with_plugin)
    migrations.upgrade_all(platform)
    assert "mod_child_item" in tables(platform)
    assert f"{name}_row" in tables(platform)

    # 2. Uninstalled while still enabled: it is skipped, the others migrate.
    with platform.session() as db:
        modules.enable(db, name, platform.modules)
        modules.enable(db, "mod_top", platform.modules)
    platform = boot(settings, without_plugin)
    assert name not in platform.active
    migrations.upgrade_all(platform)
    assert "mod_top_entry" in tables(platform)

    # 3. Installed and enabled, but its migrations folder is gone: that module is reported,
    #    the others are migrated, and nothing is written into the plugin's package.
    shutil.rmtree(package / "migrations")
    with platform.session() as db:
        modules.disable(db, "mod_top", platform.modules)
    migrations.downgrade_module_to_base(platform.engine, migrations.for_module(platform, "mod_top"))
    assert "mod_top_entry" not in tables(platform)
    with platform.session() as db:
        modules.enable(db, "mod_top", platform.modules)
    platform = boot(settings, with_plugin)
    assert name in platform.active
    with pytest.raises(migrations.MigrationError) as caught:
        migrations.upgrade_all(platform)
    assert f"migrations of module {name} are missing" in str(caught.value)
    assert "0a0a0a0a0a01" in str(caught.value)
    assert "mod_top_entry" in tables(platform)
    assert f"{name}_row" in tables(platform)
    assert not (package / "migrations").exists()

    # 4. Disabled again: migrating everything succeeds.
    with platform.session() as db:
        modules.disable(db, name, platform.modules)
    migrations.upgrade_all(boot(settings, with_plugin))
