"""Module life cycle through the ``kehu`` command line and the admin modules page.

The test plugins live in ``tests/plugins_for_tests`` and are loaded with
``KEHU_EXTRA_PLUGINS``: ``mod_top`` depends on ``mod_child`` which depends on
``mod_base>=1.0,<2`` (1.2.0 is installed); the others cannot be enabled, each for one reason.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, table, text

from kehu.config import Settings
from kehu.db import make_engine
from tests.conftest import boot_with, create_user, web_client

REPO = Path(__file__).resolve().parent.parent
KEHU = [str(Path(sys.executable).with_name("kehu"))] if Path(sys.executable).with_name("kehu").exists() \
    else [sys.executable, "-m", "kehu.cli"]
TEST_PLUGINS = ["mod_base", "mod_child", "mod_top", "mod_needs_missing", "mod_cycle_a", "mod_cycle_b",
                "mod_wants_base_2", "mod_future_core", "mod_raises"]
EXTRA = ",".join(f"{name}=tests.plugins_for_tests.{name}" for name in TEST_PLUGINS)

REFUSALS = {
    "mod_needs_missing": "mod_needs_missing needs mod_absent, which is not installed",
    "mod_cycle_a": "dependency cycle: mod_cycle_a → mod_cycle_b → mod_cycle_a",
    "mod_wants_base_2": "mod_wants_base_2 needs mod_base >=2, but mod_base 1.2.0 is installed",
    "mod_future_core": "mod_future_core is broken: supports core API >=2,<3, this core offers 1.0",
    "mod_raises": "mod_raises is broken: import failed: RuntimeError: mod_raises cannot be imported (on purpose) "
                  "(mod_raises.py:3)",
}

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kehu(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``kehu(*args)`` runs the command line against the test's deployment (migrated core)."""
    monkeypatch.setenv("KEHU_EXTRA_PLUGINS", EXTRA)
    monkeypatch.setenv("KEHU_EMBEDDED_WORKER", "0")
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*KEHU, *args], capture_output=True, text=True, encoding="utf-8",
                                stdin=subprocess.DEVNULL, timeout=120, cwd=REPO)
        if ok:
            assert result.returncode == 0, f"kehu {' '.join(args)} failed: {result.stderr}{result.stdout}"
        else:
            assert result.returncode != 0, f"kehu {' '.join(args)} should have failed: {result.stdout}"
            assert len(result.stderr.strip().splitlines()) == 1, f"not one line: {result.stderr!r}"
        return result

    run("db", "upgrade")
    return run


def states(kehu: Run) -> dict[str, str]:
    listing = kehu("modules", "list").stdout.splitlines()
    return {line.split()[0]: line.split()[2] for line in listing[1:] if line[:1].strip()}


def tables(settings: Settings) -> set[str]:
    engine = make_engine(settings.database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def rows(settings: Settings, name: str) -> int:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table(name))).scalar_one()
    finally:
        engine.dispose()


def execute(settings: Settings, *statements: str) -> None:
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


# --- command line -----------------------------------------------------------------------


def test_enable_with_dependencies_disable_with_dependants_data_kept(kehu: Run, settings: Settings) -> None:
    assert states(kehu)["mod_top"] == "available"
    result = kehu("modules", "enable", "mod_top")
    assert result.stdout.strip().splitlines()[-1] == "enabled mod_top (and its dependencies: mod_base, mod_child)"
    assert {"mod_base_thing", "mod_child_item", "mod_top_entry"} <= tables(settings)
    assert kehu("modules", "enable", "mod_base").stdout.strip() == "mod_base is already enabled"
    execute(settings, "INSERT INTO mod_base_thing (id, label) VALUES (1, 'kept')",
            "INSERT INTO mod_child_item (id, thing_id, note) VALUES (1, 1, 'also kept')")

    # Refused while a dependant is enabled; the message names every one of them.
    refused = kehu("modules", "disable", "mod_base", ok=False)
    assert refused.stderr.strip() == (
        "Error: cannot disable mod_base: mod_child, mod_top depend on it (disable them first, or use --cascade)")
    refused = kehu("modules", "disable", "mod_child", ok=False)
    assert refused.stderr.strip() == (
        "Error: cannot disable mod_child: mod_top depends on it (disable it first, or use --cascade)")
    assert list(map(states(kehu).get, ("mod_base", "mod_child", "mod_top"))) == ["enabled"] * 3

    # --cascade disables the dependants too; the data stays.
    result = kehu("modules", "disable", "mod_base", "--cascade")
    assert result.stdout.strip() == "disabled mod_top, mod_child, mod_base (data kept)"
    assert list(map(states(kehu).get, ("mod_base", "mod_child", "mod_top"))) == ["disabled"] * 3
    assert (rows(settings, "mod_base_thing"), rows(settings, "mod_child_item")) == (1, 1)

    # Enabled again: everything is back.
    assert kehu("modules", "enable", "mod_child").stdout.strip().splitlines()[-1] == \
        "enabled mod_child (and its dependencies: mod_base)"
    assert list(map(states(kehu).get, ("mod_base", "mod_child", "mod_top"))) == ["enabled", "enabled", "disabled"]
    assert (rows(settings, "mod_base_thing"), rows(settings, "mod_child_item")) == (1, 1)
    assert "up to date" in kehu("db", "status").stdout


def test_impossible_enables_are_refused_with_one_message(kehu: Run, settings: Settings) -> None:
    for name, message in REFUSALS.items():
        refused = kehu("modules", "enable", name, ok=False)
        assert refused.stderr.strip() == f"Error: {message}", name
    listing = kehu("modules", "list").stdout
    assert re.search(r"^mod_raises\s+\?\s+broken", listing, re.M)
    assert "error: import failed: RuntimeError: mod_raises cannot be imported (on purpose)" in listing
    assert re.search(r"^mod_future_core\s+0\.1\.0\s+broken", listing, re.M)
    # Nothing was enabled on the way (mod_wants_base_2 did not drag mod_base in).
    current = states(kehu)
    assert not {name for name, state in current.items() if state == "enabled"} - {"core"}
    assert "mod_base_thing" not in tables(settings)


def test_remove_shows_the_bill_then_drops_exactly_that(kehu: Run, settings: Settings) -> None:
    kehu("modules", "enable", "mod_top")
    execute(settings,
            "INSERT INTO mod_base_thing (id, label) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            "INSERT INTO mod_child_item (id, thing_id, note) VALUES (1, 1, 'x'), (2, 2, 'y')",
            "INSERT INTO mod_top_entry (id, item_id, note) VALUES (1, 1, 'z')")

    refused = kehu("modules", "remove", "mod_base", "--dry-run", ok=False)
    assert refused.stderr.strip() == (
        "Error: cannot remove mod_base: mod_child, mod_top depend on it (remove them first, or use --cascade)")

    bill = kehu("modules", "remove", "mod_top", "--dry-run").stdout.splitlines()
    assert bill == [
        "module mod_top:",
        "  drop table mod_top_entry (1 rows)",
        "  drop table alembic_version_mod_top (migration state)",
        "dry run: nothing was dropped",
    ]
    bill = kehu("modules", "remove", "mod_base", "--cascade", "--dry-run").stdout.splitlines()
    assert bill == [
        "module mod_top:",
        "  drop table mod_top_entry (1 rows)",
        "  drop table alembic_version_mod_top (migration state)",
        "module mod_child:",
        "  drop table mod_child_item (2 rows)",
        "  drop table alembic_version_mod_child (migration state)",
        "module mod_base:",
        "  drop table mod_base_thing (3 rows)",
        "  drop table alembic_version_mod_base (migration state)",
        "  delete role mod_base_reader",
        "dry run: nothing was dropped",
    ]
    module_tables = {"mod_base_thing", "mod_child_item", "mod_top_entry",
                     "alembic_version_mod_base", "alembic_version_mod_child", "alembic_version_mod_top"}
    assert module_tables <= tables(settings)
    assert (rows(settings, "mod_base_thing"), rows(settings, "mod_top_entry")) == (3, 1)

    # Standard input is not a terminal: without --yes nothing is dropped.
    refused = kehu("modules", "remove", "mod_top", ok=False)
    assert refused.stderr.strip() == \
        "Error: refusing to drop data without confirmation: run in a terminal or pass --yes"
    assert module_tables <= tables(settings)
    assert states(kehu)["mod_top"] == "enabled"

    removed = kehu("modules", "remove", "mod_base", "--cascade", "--yes")
    assert removed.stdout.strip().splitlines()[-1] == "removed mod_top, mod_child, mod_base"
    assert not module_tables & tables(settings)
    current = states(kehu)
    assert [current[m] for m in ("mod_base", "mod_child", "mod_top")] == ["available"] * 3
    assert "mod_base_reader" not in kehu("roles", "list").stdout
    assert rows(settings, "kehu_module") == 0

    kehu("modules", "enable", "mod_base")  # a removed module starts again from nothing
    assert rows(settings, "mod_base_thing") == 0


# --- admin page -----------------------------------------------------------------------------


def flash(page: str, kind: str) -> str:
    found = re.search(rf'<p class="flash flash-{kind}"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


def state_on_page(page: str, name: str) -> str:
    row = re.search(rf'<tr data-module="{name}">(.*?)</tr>', page, re.S)
    assert row, f"{name} is not on the modules page"
    return re.search(r'class="badge badge-(\w+)"', row.group(1)).group(1)  # type: ignore[union-attr]


def test_admin_modules_page(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEHU_EXTRA_PLUGINS", EXTRA)
    settings = replace(settings, extra_plugins=tuple(EXTRA.split(",")))
    platform = boot_with(settings)
    _, password = create_user(platform, "root", ("admin",))
    client = web_client(settings, "root", password)

    page = client.get("/admin/modules").text
    assert state_on_page(page, "mod_top") == "available"
    assert state_on_page(page, "mod_raises") == "broken"
    assert "mod_raises cannot be imported (on purpose)" in html.unescape(page)
    assert 'action="/admin/modules/mod_raises/' not in page  # a broken module offers no button

    page = client.post("/admin/modules/mod_top/enable").text
    assert "mod_base, mod_child, mod_top" in flash(page, "ok")
    assert [state_on_page(page, m) for m in ("mod_base", "mod_child", "mod_top")] == ["enabled"] * 3
    assert {"mod_base_thing", "mod_child_item", "mod_top_entry"} <= tables(settings)
    execute(settings, "INSERT INTO mod_base_thing (id, label) VALUES (7, 'kept')")

    page = client.post("/admin/modules/mod_base/disable").text
    assert flash(page, "error") == \
        "cannot disable mod_base: mod_child, mod_top depend on it (disable them first, or use --cascade)"
    assert state_on_page(page, "mod_base") == "enabled"

    for name, message in REFUSALS.items():
        page = client.post(f"/admin/modules/{name}/enable").text
        assert flash(page, "error") == message, name

    for name in ("mod_top", "mod_child", "mod_base"):
        page = client.post(f"/admin/modules/{name}/disable").text
        assert name in flash(page, "ok")
        assert state_on_page(page, name) == "disabled"
    assert rows(settings, "mod_base_thing") == 1
    page = client.post("/admin/modules/mod_base/enable").text
    assert state_on_page(page, "mod_base") == "enabled"
    assert rows(settings, "mod_base_thing") == 1


def test_enabling_on_a_database_never_migrated_says_to_migrate_first(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kehu.cli import cli

    env = {"KEHU_HOME": str(tmp_path / "home"), "KEHU_DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}",
           "KEHU_MASTER_KEY_FILE": str(tmp_path / "master.key")}
    result = CliRunner(env=env).invoke(cli, ["modules", "enable", "contacts"])
    assert result.exit_code == 1
    assert "run `kehu db upgrade` first" in result.output and "Traceback" not in result.output
