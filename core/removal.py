"""``kehu modules remove``: show the bill (tables and rows) before dropping a module's data."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, func, inspect, select, table
from sqlalchemy.orm import Session

from kehu.db import Model
from kehu.models import ModuleState, Role, SeededRole
from kehu.modules import ModuleError, dependents, module_rows
from kehu.platform import Platform, declared_tables


@dataclass
class ModuleBill:
    module: str
    tables: list[tuple[str, int]] = field(default_factory=list)  # (table, rows) that exist
    version_table: str | None = None
    roles: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.tables)


def _dependants_first(names: list[str], platform: Platform) -> list[str]:
    """``names`` ordered so that a module comes before every module it depends on (its tables
    may point at theirs, so they must be dropped first)."""
    remaining = list(names)
    ordered: list[str] = []
    while remaining:
        free = [m for m in remaining
                if not any(m in platform.modules[other].depends for other in remaining if other != m)]
        chosen = free[0] if free else remaining[0]  # a cycle: any order
        ordered.append(chosen)
        remaining.remove(chosen)
    return ordered


def plan(platform: Platform, name: str, cascade: bool = False) -> list[ModuleBill]:
    """What removing ``name`` would drop, module by module (dependants first)."""
    if name == "core":
        raise ModuleError("the core cannot be removed")
    if name not in platform.modules:
        raise ModuleError(f"no module named {name!r} is installed")
    with platform.sessions() as db:
        present = set(module_rows(db))
        roles_by_module: dict[str, list[str]] = {}
        for module, role in db.execute(select(Role.module, Role.name).order_by(Role.name)):
            roles_by_module.setdefault(module, []).append(role)
    users_of = dependents(name, present - {name}, platform.modules)
    if users_of and not cascade:
        raise ModuleError(f"cannot remove {name}: {', '.join(users_of)} depend{'s' if len(users_of) == 1 else ''} on it "
                          f"(remove {'it' if len(users_of) == 1 else 'them'} first, or use --cascade)")
    inspector = inspect(platform.engine)
    existing = set(inspector.get_table_names())
    bills = []
    for module in _dependants_first([*users_of, name], platform):
        bill = ModuleBill(module=module)
        with platform.engine.connect() as conn:
            for table_name in declared_tables(platform.modules[module]):
                if table_name in existing:
                    rows = conn.execute(select(func.count()).select_from(table(table_name))).scalar_one()
                    bill.tables.append((table_name, rows))
        version_table = f"alembic_version_{module}"
        bill.version_table = version_table if version_table in existing else None
        bill.roles = roles_by_module.get(module, [])
        bills.append(bill)
    return bills


def execute(platform: Platform, bills: list[ModuleBill]) -> None:
    """Drop what :func:`plan` listed, in one transaction per module."""
    for bill in bills:
        tables = [Model.metadata.tables[t] for t, _ in bill.tables if t in Model.metadata.tables]
        with platform.engine.begin() as conn:
            Model.metadata.drop_all(conn, tables=tables)
            if bill.version_table:
                conn.exec_driver_sql(f'DROP TABLE "{bill.version_table}"')
            with Session(bind=conn) as db:
                db.execute(delete(Role).where(Role.module == bill.module))
                db.execute(delete(SeededRole).where(SeededRole.module == bill.module))
                db.execute(delete(ModuleState).where(ModuleState.name == bill.module))
                db.flush()
