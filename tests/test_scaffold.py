"""``kehu plugin new NAME``: what it writes, and the names it refuses.

That the generated package really works (installed outside this repository, discovered,
enabled, migrated, serving its page, passing its own tests) is proven end to end in
``tests/test_external_plugin.py``; that its migration creates exactly its model's table, on
SQLite and PostgreSQL, in ``tests/test_migrations.py``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kehu import scaffold

REPO = Path(__file__).resolve().parent.parent
KEHU = [str(Path(sys.executable).with_name("kehu"))] if Path(sys.executable).with_name("kehu").exists() \
    else [sys.executable, "-m", "kehu.cli"]


def kehu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KEHU, *args], capture_output=True, text=True, encoding="utf-8", timeout=120,
                          env=env, stdin=subprocess.DEVNULL)


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEHU_")}
    env["KEHU_HOME"] = str(tmp_path / "home")
    return env


def files_of(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_plugin_new_writes_a_complete_package(tmp_path: Path, environment: dict[str, str]) -> None:
    result = kehu("plugin", "new", "visits", "--directory", str(tmp_path / "src"), env=environment)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "src" / "kehu-visits"
    assert result.stdout.splitlines()[0] == f"created {root}"
    revision = scaffold.revision_id("visits")
    assert files_of(root) == {
        ".gitignore",
        "README.md",
        "pyproject.toml",
        "kehu_visits/__init__.py",
        "kehu_visits/models.py",
        "kehu_visits/views.py",
        "kehu_visits/templates/visits/index.html",
        "kehu_visits/static/style.css",
        "kehu_visits/locale/zh_Hans/LC_MESSAGES/messages.po",
        "kehu_visits/migrations/script.py.mako",
        f"kehu_visits/migrations/versions/{revision}_create_visits_item.py",
        "tests/conftest.py",
        "tests/test_visits.py",
    }
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert "@@" not in text, f"{path}: a placeholder was left"
            if path.suffix == ".py":
                ast.parse(text, filename=str(path))

    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points."kehu.plugins"]\nvisits = "kehu_visits"' in pyproject
    assert 'name = "kehu-visits"' in pyproject
    init = (root / "kehu_visits" / "__init__.py").read_text()
    assert 'name="visits"' in init and 'core_api=">=1.0,<2"' in init
    assert "def kehu_menu_items" in init and "def kehu_slot" in init and "def kehu_routes" in init
    migration = (root / "kehu_visits" / "migrations" / "versions" / f"{revision}_create_visits_item.py").read_text()
    assert f"revision = '{revision}'" in migration and "down_revision = None" in migration
    assert "op.create_table('visits_item'" in migration
    assert '__tablename__ = "visits_item"' in (root / "kehu_visits" / "models.py").read_text()
    assert '{% extends "base.html" %}' in (root / "kehu_visits" / "templates" / "visits" / "index.html").read_text()
    assert 'msgstr "这里还没有内容。"' in (root / "kehu_visits" / "locale" / "zh_Hans" / "LC_MESSAGES"
                                         / "messages.po").read_text()


def test_the_same_name_gives_the_same_package(tmp_path: Path) -> None:
    first = scaffold.create("store_visits", tmp_path / "one")
    second = scaffold.create("store_visits", tmp_path / "two")
    assert files_of(first) == files_of(second)
    for relative in files_of(first):
        a = (first / relative).read_text().splitlines()
        b = (second / relative).read_text().splitlines()
        assert [line for line in a if not line.startswith("Create Date:")] == \
            [line for line in b if not line.startswith("Create Date:")], relative
    assert "class StoreVisitsItem(Model):" in (first / "kehu_store_visits" / "models.py").read_text()
    assert 'label={"zh": "Store visits", "en": "Store visits"}' in \
        (first / "kehu_store_visits" / "__init__.py").read_text()
    assert scaffold.revision_id("store_visits") == scaffold.revision_id("store_visits") != scaffold.revision_id("x1")


@pytest.mark.parametrize(("name", "message"), [
    ("Visits", "plugin name 'Visits' is not valid: use 2-40 lower-case letters, digits or '_', starting with a "
               "letter (for example: visits)"),
    ("v", "plugin name 'v' is not valid"),
    ("1visits", "plugin name '1visits' is not valid"),
    ("my-visits", "plugin name 'my-visits' is not valid"),
    ("a" * 41, f"plugin name {'a' * 41!r} is not valid"),
    ("admin", "plugin name 'admin' is reserved by the core; choose another"),
    ("core", "plugin name 'core' is reserved by the core"),
    ("mod_base", "a module named 'mod_base' is already installed (tests.plugins_for_tests.mod_base); "
                 "choose another name"),
    ("taken", "a Python package kehu_taken is already importable"),
])
def test_bad_names_are_refused_in_one_line(name: str, message: str, tmp_path: Path,
                                           environment: dict[str, str]) -> None:
    (tmp_path / "path" / "kehu_taken").mkdir(parents=True)
    (tmp_path / "path" / "kehu_taken" / "__init__.py").write_text("")
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO), str(tmp_path / "path"), environment.get("PYTHONPATH", "")])
    environment["KEHU_EXTRA_PLUGINS"] = "mod_base=tests.plugins_for_tests.mod_base"
    result = kehu("plugin", "new", name, "--directory", str(tmp_path / "src"), env=environment)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"Error: {message}"), result.stderr
    assert not (tmp_path / "src").exists() or not any((tmp_path / "src").iterdir())


def test_an_existing_folder_is_not_touched(tmp_path: Path) -> None:
    (tmp_path / "kehu-notes").mkdir()
    (tmp_path / "kehu-notes" / "mine.txt").write_text("keep me")
    with pytest.raises(scaffold.ScaffoldError, match=r"kehu-notes already exists$"):
        scaffold.create("notes", tmp_path)
    assert files_of(tmp_path / "kehu-notes") == {"mine.txt"}
    assert [p.name for p in tmp_path.iterdir()] == ["kehu-notes"]  # no scratch folder left behind
