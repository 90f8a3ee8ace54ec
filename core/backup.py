"""``kehu backup`` / ``kehu restore``: a portable, logical backup of a deployment.

The archive (``.tar.gz``) holds ``manifest.json`` (modules, their migration revisions, row
counts), one JSON-lines file per table, and the instance folder's attachments. It is the same
for SQLite and PostgreSQL, so it also moves a deployment from the embedded SQLite database to
PostgreSQL. Values are dumped as the models read them and inserted back through the same
column types; encrypted values stay encrypted (their keys travel wrapped in ``kehu_data_key``).

The master key is *not* in the archive: keep it apart, or the restored personal data cannot be
read.

Restore requires an empty database. It migrates each module to the revision recorded in the
backup, inserts the rows, then upgrades to the current code's revisions, so an old backup
restores into newer code.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, inspect, select, text

from kehu import migrations
from kehu.db import Model
from kehu.models import ModuleState
from kehu.platform import Platform

FORMAT = 1
BATCH = 1000


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why."""


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, (bytes, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        (tag, raw), = value.items()
        if tag == "$dt":
            return datetime.fromisoformat(raw)
        if tag == "$d":
            return date.fromisoformat(raw)
        if tag == "$b64":
            return base64.b64decode(raw)
        if tag == "$dec":
            return Decimal(raw)
    return value


@dataclass
class BackupReport:
    path: Path
    tables: dict[str, int]
    attachments: int


def _module_tables(platform: Platform) -> list[str]:
    existing = set(inspect(platform.engine).get_table_names())
    return [t.name for t in Model.metadata.sorted_tables if t.name in existing]


def backup(platform: Platform, target: Path, progress: Callable[[str, int], None] | None = None) -> BackupReport:
    target = Path(target)
    tables = _module_tables(platform)
    revisions = {mm.module: migrations.current_revision(platform.engine, mm) for mm in migrations.active_modules(platform)}
    with platform.sessions() as db:
        states = {s.name: {"enabled": s.enabled, "version": s.version} for s in db.scalars(select(ModuleState))}
    counts: dict[str, int] = {}
    attachments = 0
    partial = target.with_suffix(target.suffix + ".partial")
    with tarfile.open(partial, "w:gz") as archive:
        with platform.engine.connect() as conn:
            for name in tables:
                table = Model.metadata.tables[name]
                buffer = io.BytesIO()
                rows = 0
                for row in conn.execute(select(table)).mappings():
                    buffer.write(json.dumps({k: _encode(v) for k, v in row.items()}, ensure_ascii=False).encode() + b"\n")
                    rows += 1
                counts[name] = rows
                _add_bytes(archive, f"tables/{name}.jsonl", buffer.getvalue())
                if progress:
                    progress(name, rows)
        files = platform.settings.home / "attachments"
        if files.is_dir():
            for path in sorted(p for p in files.rglob("*") if p.is_file()):
                archive.add(path, arcname=f"attachments/{path.relative_to(files)}")
                attachments += 1
        manifest = {"format": FORMAT, "created_at": datetime.now().astimezone().isoformat(), "dialect": platform.engine.dialect.name,
                    "modules": states, "revisions": revisions, "tables": counts, "attachments": attachments}
        _add_bytes(archive, "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    partial.replace(target)
    return BackupReport(target, counts, attachments)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _read_manifest(archive: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = archive.extractfile("manifest.json")
    except KeyError:
        raise BackupError("not a Kehu backup: manifest.json is missing") from None
    assert member is not None
    manifest = json.load(member)
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')} is not supported (expected {FORMAT})")
    return manifest


def _rows(archive: tarfile.TarFile, name: str) -> Iterator[dict[str, Any]]:
    member = archive.extractfile(f"tables/{name}.jsonl")
    assert member is not None
    for line in member:
        if line.strip():
            yield {k: _decode(v) for k, v in json.loads(line).items()}


def restore(settings_platform: Callable[[], Platform], source: Path,
            progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Restore ``source`` into the (empty) database of the deployment ``settings_platform`` boots."""
    platform = settings_platform()
    existing = [t for t in inspect(platform.engine).get_table_names() if t.startswith(("kehu_", "alembic_version_"))]
    if existing:
        raise BackupError(f"restore needs an empty database, but it already has {len(existing)} Kehu tables "
                          f"({', '.join(sorted(existing)[:3])}...)")
    try:
        archive = tarfile.open(source, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot read {source}: {exc}") from exc
    with archive:
        manifest = _read_manifest(archive)
        missing = [m for m in manifest["modules"] if m not in platform.modules]
        if missing:
            raise BackupError(f"the backup uses modules that are not installed here: {', '.join(missing)}")
        core = migrations.for_module(platform, "core")
        migrations.upgrade_module(platform.engine, core, manifest["revisions"].get("core") or "heads")
        with platform.session() as db:
            for name, state in manifest["modules"].items():
                db.add(ModuleState(name=name, enabled=state["enabled"], version=state["version"]))
        platform = settings_platform()
        for mm in migrations.active_modules(platform):
            if mm.module != "core":
                migrations.upgrade_module(platform.engine, mm, manifest["revisions"].get(mm.module) or "heads")
        counts: dict[str, int] = {}
        with platform.engine.begin() as conn:
            for table in Model.metadata.sorted_tables:
                if table.name not in manifest["tables"] or table.name == ModuleState.__tablename__:
                    continue
                batch: list[dict[str, Any]] = []
                rows = 0
                for row in _rows(archive, table.name):
                    batch.append(row)
                    if len(batch) >= BATCH:
                        conn.execute(insert(table), batch)
                        rows += len(batch)
                        batch.clear()
                if batch:
                    conn.execute(insert(table), batch)
                    rows += len(batch)
                counts[table.name] = rows
                if progress:
                    progress(table.name, rows)
            if conn.dialect.name == "postgresql":
                for table in Model.metadata.sorted_tables:
                    pk = list(table.primary_key.columns)
                    if table.name in counts and len(pk) == 1 and pk[0].autoincrement in (True, "auto") \
                            and pk[0].type.python_type is int:
                        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                                          f"COALESCE((SELECT MAX({pk[0].name}) FROM {table.name}), 0) + 1, false)"))
        files = platform.settings.home / "attachments"
        for member in archive.getmembers():
            if member.isfile() and member.name.startswith("attachments/"):
                relative = Path(member.name).relative_to("attachments")
                if ".." in relative.parts or relative.is_absolute():
                    raise BackupError(f"unsafe path in backup: {member.name}")
                destination = files / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                extracted = archive.extractfile(member)
                assert extracted is not None
                destination.write_bytes(extracted.read())
    migrations.upgrade_all(settings_platform())
    with settings_platform().engine.connect() as conn:
        for name, expected in manifest["tables"].items():
            if name == ModuleState.__tablename__ or name not in Model.metadata.tables:
                continue
            actual = conn.execute(select(func.count()).select_from(Model.metadata.tables[name])).scalar_one()
            if actual < expected:
                raise BackupError(f"restore incomplete: {name} has {actual} rows, the backup {expected}")
    return counts
