"""The booted platform: settings, database, the plugin manager and what plugins declared.

``Platform.boot()`` discovers installed modules, registers the core and every enabled plugin
with one pluggy ``PluginManager`` (dependencies first), verifies their hook implementations
(``check_pending``) and collects their declarations. A plugin that fails anywhere on that way
is unregistered and reported as broken; the rest of the platform starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pluggy
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, sessionmaker

from kehu import CORE_API_VERSION, hookspecs
from kehu.config import Settings
from kehu.db import make_engine, make_session_factory, reading_connection
from kehu.declarations import MenuItem, PersonalField, Permission, RecordRule, RoleTemplate, Setting
from kehu.manifest import Manifest
from kehu.modules import ModuleError, ModuleInfo, _short_error, discover, enabled_names, module_rows, resolve

CORE_MANIFEST = Manifest(
    name="core",
    version=CORE_API_VERSION,
    summary="Authentication, permissions, encryption, audit, modules, jobs and the web shell",
    label={"zh": "核心", "en": "Core"},
)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("kehu")
    pm.add_hookspecs(hookspecs)
    return pm


@dataclass
class Declarations:
    """What the registered plugins declared at start-up, keyed for quick lookup."""

    models: dict[str, list[type]] = field(default_factory=dict)
    permissions: dict[str, Permission] = field(default_factory=dict)
    roles: list[tuple[str, RoleTemplate]] = field(default_factory=list)
    record_rules: list[RecordRule] = field(default_factory=list)
    personal_fields: list[PersonalField] = field(default_factory=list)
    settings: dict[str, list[Setting]] = field(default_factory=dict)
    menu: list[MenuItem] = field(default_factory=list)

    def tables_of(self, module: str) -> list[str]:
        return [model.__table__.name for model in self.models.get(module, [])]  # type: ignore[attr-defined]


def plugin_hook_results(pm: pluggy.PluginManager, hook_name: str, plugin_name: str, **kwargs: Any) -> list[Any]:
    """Call one hook on one registered plugin only; returns its flattened result list."""
    results: list[Any] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.plugin_name != plugin_name:
            continue
        value = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        if value is None:
            continue
        results.extend(value if isinstance(value, (list, tuple)) else [value])
    return results


def declared_tables(info: ModuleInfo) -> list[str]:
    """The tables a module owns, also for a module that is not enabled (for removal)."""
    if info.name == "core":
        from kehu.models import CORE_MODELS

        return [m.__table__.name for m in CORE_MODELS]
    if info.plugin is None:
        return []
    pm = new_plugin_manager()
    pm.register(info.plugin, name=info.name)
    return [m.__table__.name for m in plugin_hook_results(pm, "kehu_models", info.name)]


#: Pooled connections kept per thread on a database server: a page reads on one, and a plugin's
#: panel rendered into it on a second. With SQLAlchemy's default (5), eight threads overflowed
#: the pool, and every overflowing connection was opened and closed again: a new PostgreSQL
#: backend process per request.
CONNECTIONS_PER_THREAD = 2


def pool_settings(settings: Settings) -> dict[str, int]:
    """The connection pool's size for this deployment's threads (SQLite: SQLAlchemy's default)."""
    return {} if settings.is_sqlite else {"pool_size": CONNECTIONS_PER_THREAD * settings.web_threads}


class Platform:
    """One deployment's running platform. Build it with :meth:`boot`."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url, **pool_settings(settings))
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.pm = new_plugin_manager()
        self.modules: dict[str, ModuleInfo] = {}
        self.active: list[str] = []  # registered modules, dependencies first, "core" first
        self.declarations = Declarations()
        self.celery: Any = None

    # -- boot ---------------------------------------------------------------------------

    @classmethod
    def boot(cls, settings: Settings | None = None, engine: Engine | None = None) -> "Platform":
        platform = cls(settings or Settings.from_env(), engine)
        platform._boot()
        set_current(platform)
        return platform

    def _boot(self) -> None:
        from kehu import core_plugin

        self.modules = {"core": ModuleInfo(name="core", target="kehu.core_plugin", plugin=core_plugin, manifest=CORE_MANIFEST)}
        self.modules.update(discover(self.settings.extra_plugins))
        with self.sessions() as session:
            wanted = sorted(enabled_names(session) - {"core"})
        order = ["core"]
        for name in wanted:
            try:
                order.extend(m for m in resolve([name], self.modules) if m not in order)
            except ModuleError as exc:
                if name in self.modules and not self.modules[name].error:
                    self.modules[name].error = str(exc)
        for name in order:
            self._register(name)
        for name in list(self.active):
            self._start(name)

    def _register(self, name: str) -> None:
        info = self.modules[name]
        missing = [dep for dep in info.depends if dep not in self.active]
        if missing:
            info.error = info.error or f"needs {', '.join(missing)}, which did not start"
            return
        try:
            self.pm.register(info.plugin, name=name)
            for impl in self.pm.hook.kehu_add_hookspecs.get_hookimpls():
                if impl.plugin_name == name:
                    impl.function(pluginmanager=self.pm)
            self.pm.check_pending()
            self._declare(name)
        except Exception as exc:  # noqa: BLE001
            self._mark_broken(name, exc)
            return
        self.active.append(name)

    def _declare(self, name: str) -> None:
        d = self.declarations
        d.models[name] = plugin_hook_results(self.pm, "kehu_models", name)
        for permission in plugin_hook_results(self.pm, "kehu_permissions", name):
            d.permissions[permission.name] = permission
        d.roles.extend((name, role) for role in plugin_hook_results(self.pm, "kehu_roles", name))
        d.record_rules.extend(plugin_hook_results(self.pm, "kehu_record_rules", name))
        d.personal_fields.extend(plugin_hook_results(self.pm, "kehu_personal_fields", name))
        d.settings[name] = plugin_hook_results(self.pm, "kehu_settings", name)
        d.menu.extend(plugin_hook_results(self.pm, "kehu_menu_items", name))

    def _start(self, name: str) -> None:
        try:
            plugin_hook_results(self.pm, "kehu_startup", name, platform=self)
        except Exception as exc:  # noqa: BLE001
            self._mark_broken(name, exc)

    def _mark_broken(self, name: str, exc: BaseException) -> None:
        info = self.modules[name]
        info.error = f"start failed: {_short_error(exc)}"
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        if name in self.active:
            self.active.remove(name)
        d = self.declarations
        d.models.pop(name, None)
        d.permissions = {k: v for k, v in d.permissions.items() if not k.startswith(f"{name}.")}
        d.roles = [(m, r) for m, r in d.roles if m != name]
        d.settings.pop(name, None)
        # Dependants of a broken module cannot run either.
        for other in list(self.active):
            if name in self.modules[other].depends:
                self._mark_broken(other, ModuleError(f"needs {name}, which is broken"))

    # -- helpers for everyone -------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session that never waits for a writer; it is rolled back at the end.

        Use it for everything that only reads: pages, API reads, panels a plugin renders into
        another plugin's page. On SQLite it begins with a deferred ``BEGIN`` and so runs beside
        the single writer (WAL), where :meth:`session` queues for the write lock. Changing an
        object in it and flushing raises :class:`ReadOnlySession`: write through :meth:`session`.
        """
        with reading_connection(self.engine) as connection, ReadingSession(bind=connection) as session:
            yield session

    def reading_connection(self) -> AbstractContextManager[Connection]:
        """A read-only connection, without an ORM session: for a look-up of plain rows
        (:func:`kehu.db.read_rows`) that runs on every request. Rolled back at the end."""
        return reading_connection(self.engine)

    def close(self) -> None:
        """Close the database connections this platform keeps in its pool (connections still
        in use close when they are given back)."""
        self.engine.dispose()

    def setting(self, plugin: str, name: str) -> str:
        for declared in self.declarations.settings.get(plugin, []):
            if declared.name == name:
                return self.settings.plugin_value(plugin, name, declared.default)
        raise KeyError(f"{plugin} declares no setting {name!r}")

    def module_states(self) -> dict[str, str]:
        """Each module's state: enabled, disabled (was enabled once), broken or available."""
        with self.sessions() as session:
            recorded = module_rows(session)
        states = {}
        for name, info in sorted(self.modules.items()):
            if info.error:
                states[name] = "broken"
            elif name == "core" or recorded.get(name):
                states[name] = "enabled"
            else:
                states[name] = "disabled" if name in recorded else "available"
        return states


class ReadOnlySession(RuntimeError):
    """Something tried to write through :meth:`Platform.reading`."""


class ReadingSession(Session):
    """The session :meth:`Platform.reading` gives: flushing a change raises :class:`ReadOnlySession`."""


@event.listens_for(ReadingSession, "before_flush")
def _refuse_writes(session: Session, _context: Any, _instances: Any) -> None:
    # Listened for on the class once: listening on each session cost as much as a query.
    if session.new or session.dirty or session.deleted:
        changed = next(iter([*session.new, *session.dirty, *session.deleted]))
        raise ReadOnlySession(f"platform.reading() is read-only, but {type(changed).__name__} was changed in it: "
                              "write through platform.session()")


_current: Platform | None = None


def set_current(platform: Platform) -> None:
    global _current
    _current = platform


def current() -> Platform:
    """The platform of this process (booted by the web app, the worker or the CLI)."""
    if _current is None:
        raise RuntimeError("the Kehu platform is not booted in this process")
    return _current
