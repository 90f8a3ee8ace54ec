"""``kehu plugin new NAME``: write a working plugin package ``kehu-NAME/``.

The package is rendered from the files in ``scaffold_template/``: in their paths ``{name}``
and ``{revision}`` are replaced, a ``.tmpl`` suffix is dropped and a ``dot-`` prefix becomes
``.``; in their contents ``@@name@@`` (the module name), ``@@Name@@`` (its CamelCase form, for
class names), ``@@Label@@`` (a human title), ``@@revision@@`` and ``@@date@@`` are replaced.

The result is a plugin with a manifest, a model, its initial migration (written here, with a
revision id derived from the name, so the same name always gives the same files), a staff
page with a template, a menu entry, a panel on the home page, a Chinese catalog and a test
suite that passes once the package is installed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from datetime import UTC, datetime
from importlib.metadata import entry_points
from importlib.util import find_spec
from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent / "scaffold_template"
MIGRATION_MAKO = Path(__file__).parent / "migration_template" / "script.py.mako"

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

#: Names a plugin cannot take: its pages are mounted at ``/<name>``, next to the core's own.
RESERVED = frozenset({"core", "kehu", "admin", "api", "public", "static", "login", "logout", "lang", "healthz"})


class ScaffoldError(Exception):
    """The plugin cannot be created; the message says why, in one line."""


def revision_id(name: str) -> str:
    """The initial migration's revision id: 12 hex digits derived from the plugin name."""
    return hashlib.sha1(f"kehu-plugin-{name}-initial".encode()).hexdigest()[:12]


def _installed_modules() -> dict[str, str]:
    """Module name → entry-point target, for installed and ``KEHU_EXTRA_PLUGINS`` modules,
    without importing any of them."""
    from kehu.config import Settings

    found = {ep.name: ep.value for ep in entry_points(group="kehu.plugins")}
    for pair in Settings.from_env().extra_plugins:
        module, _, target = pair.partition("=")
        found.setdefault(module.strip(), target.strip())
    return found


def validate(name: str, directory: Path) -> Path:
    """Check ``name`` and return the folder the package will be written to."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"plugin name {name!r} is not valid: use 2-40 lower-case letters, digits or '_', starting with a letter"
            " (for example: visits)"
        )
    if name in RESERVED:
        raise ScaffoldError(f"plugin name {name!r} is reserved by the core; choose another")
    installed = _installed_modules()
    if name in installed:
        raise ScaffoldError(f"a module named {name!r} is already installed ({installed[name]}); choose another name")
    spec = find_spec(f"kehu_{name}")
    if spec is not None:
        where = spec.origin or ", ".join(spec.submodule_search_locations or [])
        raise ScaffoldError(f"a Python package kehu_{name} is already importable ({where}); choose another name")
    target = directory / f"kehu-{name}"
    if target.exists():
        raise ScaffoldError(f"{target} already exists")
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"{directory} is not a directory")
    return target


def _replacements(name: str) -> dict[str, str]:
    return {
        "@@name@@": name,
        "@@Name@@": "".join(part.capitalize() for part in name.split("_") if part),
        "@@Label@@": " ".join(part for part in name.split("_") if part).capitalize(),
        "@@revision@@": revision_id(name),
        "@@date@@": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def _render_path(relative: Path, name: str) -> Path:
    parts = []
    for part in relative.parts:
        part = part.replace("{name}", name).replace("{revision}", revision_id(name))
        if part.endswith(".tmpl"):
            part = part[: -len(".tmpl")]
        if part.startswith("dot-"):
            part = "." + part[len("dot-"):]
        parts.append(part)
    return Path(*parts)


def render(name: str, into: Path) -> None:
    """Write the rendered template files of plugin ``name`` into the empty folder ``into``."""
    replacements = _replacements(name)
    for source in sorted(TEMPLATE_DIR.rglob("*")):
        if not source.is_file() or "__pycache__" in source.parts:
            continue
        destination = into / _render_path(source.relative_to(TEMPLATE_DIR), name)
        destination.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        for token, value in replacements.items():
            text = text.replace(token, value)
        destination.write_text(text, encoding="utf-8")
    # Alembic renders new revisions (kehu db revision) from this template.
    shutil.copy(MIGRATION_MAKO, into / f"kehu_{name}" / "migrations" / "script.py.mako")


def create(name: str, directory: str | Path = ".") -> Path:
    """Write the plugin package ``kehu-<name>/`` into ``directory``; returns its path.

    Raises :class:`ScaffoldError` when the name is not valid, is taken by an installed module
    or an importable package, or the folder already exists. Nothing is written then.
    """
    folder = Path(directory).expanduser().resolve()
    target = validate(name, folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".kehu-{name}-", dir=folder) as scratch:
        staging = Path(scratch) / target.name
        staging.mkdir()
        render(name, staging)
        staging.rename(target)
    return target
