"""Finding plugins, and the enabled / disabled / broken / available life of a module.

A module is *installed* when its distribution declares an entry point in the ``kehu.plugins``
group (built-in plugins are declared in Kehu's own pyproject.toml, exactly like third-party
ones). It is *enabled* when this deployment's ``kehu_module`` table says so. It is *broken*
when it cannot be imported, its manifest is invalid, or it failed to start; a broken module is
reported, never fatal.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from packaging.specifiers import SpecifierSet
from packaging.version import Version
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from kehu import CORE_API_VERSION
from kehu.manifest import Manifest
from kehu.models import ModuleState

ENTRY_POINT_GROUP = "kehu.plugins"


class ModuleError(Exception):
    """A module operation that cannot be done; the message names the modules involved."""


@dataclass
class ModuleInfo:
    name: str
    target: str
    plugin: ModuleType | None = None
    manifest: Manifest | None = None
    error: str | None = None

    @property
    def path(self) -> Path | None:
        if self.plugin is None or not getattr(self.plugin, "__file__", None):
            return None
        return Path(self.plugin.__file__).parent  # type: ignore[arg-type]

    @property
    def depends(self) -> dict[str, str]:
        return dict(self.manifest.depends) if self.manifest else {}


def _short_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def load_module(name: str, target: str, loader) -> ModuleInfo:  # type: ignore[no-untyped-def]
    info = ModuleInfo(name=name, target=target)
    try:
        plugin = loader()
    except BaseException as exc:  # noqa: BLE001  (a plugin must never take the platform down)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        info.error = f"import failed: {_short_error(exc)}"
        return info
    info.plugin = plugin
    manifest = getattr(plugin, "MANIFEST", None)
    if not isinstance(manifest, Manifest):
        info.error = f"{target} has no MANIFEST (a kehu.Manifest)"
    elif manifest.name != name:
        info.error = f"entry point {name!r} points at a plugin whose manifest is named {manifest.name!r}"
    else:
        info.manifest = manifest
        if Version(CORE_API_VERSION) not in SpecifierSet(manifest.core_api):
            info.error = f"supports core API {manifest.core_api}, this core offers {CORE_API_VERSION}"
    return info


def discover(extra: tuple[str, ...] = ()) -> dict[str, ModuleInfo]:
    """Import every installed plugin; failures are recorded on the module, not raised.

    ``extra`` holds ``name=dotted.module`` pairs (``KEHU_EXTRA_PLUGINS``) for plugins under
    development that are importable but not installed; they are treated exactly alike.
    """
    candidates = [(ep.name, ep.value, ep.load) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    for pair in extra:
        name, _, target = pair.partition("=")
        candidates.append((name.strip(), target.strip(), lambda target=target: import_module(target.strip())))
    found: dict[str, ModuleInfo] = {}
    for name, target, loader in sorted(candidates, key=lambda c: c[0]):
        if name in found:
            found[name].error = f"installed twice ({found[name].target} and {target})"
            continue
        found[name] = load_module(name, target, loader)
    return found


# --- Dependency arithmetic ------------------------------------------------------------


def resolve(wanted: list[str], modules: dict[str, ModuleInfo]) -> list[str]:
    """Return ``wanted`` plus everything they depend on, dependencies first.

    Raises :class:`ModuleError` with one message naming the plugin and what it needs when a
    dependency is missing, broken, of the wrong version, or part of a cycle.
    """
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str, needed_by: str | None) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " → ".join([*visiting[visiting.index(name):], name])
            raise ModuleError(f"dependency cycle: {cycle}")
        info = modules.get(name)
        if info is None:
            if needed_by:
                raise ModuleError(f"{needed_by} needs {name}, which is not installed")
            raise ModuleError(f"no module named {name!r} is installed (see 'kehu modules list')")
        if info.error or info.manifest is None:
            prefix = f"{needed_by} needs {name}, which is broken" if needed_by else f"{name} is broken"
            raise ModuleError(f"{prefix}: {info.error}")
        visiting.append(name)
        for dep, spec in sorted(info.manifest.depends.items()):
            dep_info = modules.get(dep)
            if dep_info is not None and dep_info.manifest is not None:
                if dep_info.manifest.parsed_version not in SpecifierSet(spec):
                    raise ModuleError(
                        f"{name} needs {dep} {spec}, but {dep} {dep_info.manifest.version} is installed"
                    )
            visit(dep, name)
        visiting.pop()
        order.append(name)

    for name in wanted:
        visit(name, None)
    return order


def dependents(name: str, among: set[str], modules: dict[str, ModuleInfo]) -> list[str]:
    """Modules in ``among`` that depend on ``name``, directly or not."""
    result: list[str] = []
    frontier = [name]
    while frontier:
        current = frontier.pop()
        for other in sorted(among):
            info = modules.get(other)
            if info and current in info.depends and other not in result:
                result.append(other)
                frontier.append(other)
    return result


# --- State in the deployment's database --------------------------------------------------


def module_rows(session: Session) -> dict[str, bool]:
    """Every module this deployment has ever enabled, with whether it is enabled now."""
    if not inspect(session.connection()).has_table(ModuleState.__tablename__):
        return {}
    return {name: enabled for name, enabled in session.execute(select(ModuleState.name, ModuleState.enabled))}


def enabled_names(session: Session) -> set[str]:
    return {name for name, enabled in module_rows(session).items() if enabled}


def _set_enabled(session: Session, name: str, enabled: bool, version: str = "") -> None:
    state = session.get(ModuleState, name) or ModuleState(name=name)
    state.enabled = enabled
    if version:
        state.version = version
    session.add(state)


def enable(session: Session, name: str, modules: dict[str, ModuleInfo]) -> list[str]:
    """Enable ``name`` and what it depends on; returns the modules newly enabled, in order."""
    already = enabled_names(session)
    newly = [m for m in resolve([name], modules) if m not in already]
    for module in newly:
        _set_enabled(session, module, True, modules[module].manifest.version)  # type: ignore[union-attr]
    return newly


def disable(session: Session, name: str, modules: dict[str, ModuleInfo], cascade: bool = False) -> list[str]:
    """Disable ``name`` (and, with ``cascade``, the enabled modules that depend on it).

    Data is kept: enabling the module again brings it all back.
    """
    active = enabled_names(session)
    if name not in active:
        raise ModuleError(f"{name} is not enabled")
    blocking = dependents(name, active, modules)
    if blocking and not cascade:
        raise ModuleError(
            f"cannot disable {name}: {', '.join(blocking)} depend{'s' if len(blocking) == 1 else ''} on it "
            f"(disable {'it' if len(blocking) == 1 else 'them'} first, or use --cascade)"
        )
    for module in [*reversed(blocking), name]:
        _set_enabled(session, module, False)
    return [*reversed(blocking), name]
