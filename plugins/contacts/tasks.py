"""Import jobs: an uploaded file, a mapping, and the background task that imports it.

The web UI and the API store the upload under ``$KEHU_HOME/attachments/imports/`` and create an
:class:`~kehu_plugins.contacts.models.ImportJob`; :func:`start` queues the ``contacts.run_import``
task, which a worker runs (:func:`run_import`), writing its progress to the job row as it goes
so the page can poll it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kehu import auth, i18n, jobs
from kehu.auth import CurrentUser
from kehu.db import utcnow
from kehu.errors import DomainError
from kehu.i18n import gettext as _
from kehu.models import User
from kehu.platform import Platform, current

from . import importer, security, service
from .models import ImportJob

log = logging.getLogger(__name__)

TASK = "contacts.run_import"
ALLOWED_SUFFIXES = (".csv", ".txt", ".xlsx")
MAX_UPLOAD_BYTES = 30 * 1024 * 1024
MAX_STORED_ERRORS = 5000
#: Uploaded files (personal data, unencrypted) and their jobs are deleted after this long.
KEEP_UPLOADS = timedelta(days=7)


def imports_folder(platform: Platform) -> Path:
    folder = platform.settings.home / "attachments" / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stored_path(platform: Platform, job: ImportJob) -> Path:
    return imports_folder(platform) / job.stored_name


def create_job(platform: Platform, db: Session, user: CurrentUser, filename: str, content: bytes,
               mapping: dict[str, str] | None = None) -> ImportJob:
    """Store an uploaded file, read its headers and map its columns (``mapping`` corrects the
    guessed mapping); raises :class:`service.Invalid` when the file or the mapping is unusable."""
    suffix = Path(filename).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise service.Invalid(_("Upload a CSV or XLSX file."), {"file": _("Upload a CSV or XLSX file.")})
    if not content:
        raise service.Invalid(_("The file is empty."), {"file": _("The file is empty.")})
    if len(content) > MAX_UPLOAD_BYTES:
        raise service.Invalid(_("The file is too large."), {"file": _("At most %(n)s MB.", n=MAX_UPLOAD_BYTES >> 20)})
    stored_name = f"{uuid.uuid4().hex}{'.xlsx' if suffix == '.xlsx' else '.csv'}"
    path = imports_folder(platform) / stored_name
    path.write_bytes(content)
    try:
        table = importer.read_table(path)
        job = ImportJob(user_id=user.id, filename=Path(filename).name[:255], stored_name=stored_name,
                        headers=table.headers, total=len(table.rows),
                        mapping=importer.guess_mapping(table.headers, service.custom_fields(db)))
        if mapping is not None:
            set_mapping(db, job, mapping)
    except importer.UnreadableFile as exc:
        path.unlink(missing_ok=True)
        raise service.Invalid(str(exc), {"file": str(exc)}) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    db.add(job)
    db.flush()
    return job


def visible_job(db: Session, user: CurrentUser, job_id: Any) -> ImportJob:
    """The job if ``user`` started it (or holds ``contacts.write_all``); :class:`NotFound` otherwise."""
    job_id = service.id_of(job_id)
    job = db.get(ImportJob, job_id) if job_id is not None else None
    if job is None or (job.user_id != user.id and not user.can(security.WRITE_ALL)):
        raise service.NotFound(_("There is no such import."))
    return job


def set_mapping(db: Session, job: ImportJob, mapping: dict[str, str]) -> None:
    allowed = set(importer.targets(service.custom_fields(db)))
    problems = {f"mapping.{column}": _("Unknown field %(name)s.", name=name)
                for column, name in mapping.items() if name and name not in allowed}
    problems.update({f"mapping.{column}": _("There is no such column.") for column in mapping
                     if not str(column).isdigit() or int(column) >= len(job.headers)})
    if "name" not in mapping.values():
        problems["mapping"] = _("Map a column to the name: every contact needs one.")
    if problems:
        raise service.Invalid(_("The mapping is not valid."), problems)
    job.mapping = {str(column): name for column, name in mapping.items() if name}


def start(platform: Platform, user: CurrentUser, job_id: int, dry_run: bool) -> None:
    """Queue the job's run (after committing its state, since the task may start at once)."""
    with platform.session() as db:
        job = visible_job(db, user, job_id)
        if job.status in ("queued", "running"):
            raise DomainError(_("This import is already running."))
        job.status, job.dry_run, job.message = "queued", dry_run, ""
        job.processed = job.created = job.updated = job.unchanged = job.rejected = 0
        job.errors, job.matches = [], []
        job.started_at = job.finished_at = None
    try:
        jobs.enqueue(TASK, job_id=job_id, acting_user_id=user.id)
    except Exception:  # noqa: BLE001  (broker down: say so on the job, do not lose the request silently)
        log.exception("could not queue import job %s", job_id)
        with platform.session() as db:
            db.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                status="failed", message=_("The job queue cannot be reached; try again later.")))


def run_import(job_id: int, acting_user_id: int) -> None:
    """The background task: import job ``job_id`` for user ``acting_user_id``.

    Safe to deliver twice: only a job in state ``queued`` is claimed (atomically) and run.
    The user must still be active and hold ``contacts.import`` when it runs.
    """
    platform = current()
    with platform.session() as db:
        claimed = db.execute(update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "queued")
                             .values(status="running", started_at=utcnow()))
        if not claimed.rowcount:
            return
        job = db.get(ImportJob, job_id)
        assert job is not None
        row = db.get(User, acting_user_id)
        user = auth.current_user_of(row) if row is not None and row.active else None
        path, mapping, dry_run, filename = stored_path(platform, job), dict(job.mapping), job.dry_run, job.filename
    if user is None or not user.can(security.IMPORT):
        _finish(platform, job_id, "failed", message=_("The user who started this import may no longer import."))
        return
    language = i18n.current_language.set(user.language)  # rejected rows are explained in their language
    try:
        _run(platform, job_id, user, path, mapping, dry_run, filename)
    finally:
        i18n.current_language.reset(language)


def _run(platform: Platform, job_id: int, user: CurrentUser, path: Path, mapping: dict[str, str], dry_run: bool,
         filename: str) -> None:
    try:
        table = importer.read_table(path)
        runner = importer.Importer(platform, user, mapping, dry_run=dry_run)
        report = runner.run(table, progress=lambda r: _progress(platform, job_id, r), file_name=filename)
    except (importer.UnreadableFile, ValueError, OSError) as exc:
        _finish(platform, job_id, "failed", message=str(exc))
        return
    except Exception as exc:  # noqa: BLE001  (report, then let the worker log it)
        _finish(platform, job_id, "failed", message=_("The import stopped: %(error)s", error=type(exc).__name__))
        raise
    _finish(platform, job_id, "done", report=report)


def _progress(platform: Platform, job_id: int, report: importer.Report) -> None:
    with platform.session() as db:
        db.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            processed=report.processed, created=report.created, updated=report.updated,
            unchanged=report.unchanged, rejected=report.rejected))


def _finish(platform: Platform, job_id: int, status: str, report: importer.Report | None = None,
            message: str = "") -> None:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "message": message}
    if report is not None:
        values.update(processed=report.processed, created=report.created, updated=report.updated,
                      unchanged=report.unchanged, rejected=report.rejected,
                      errors=[p.as_dict() for p in report.problems[:MAX_STORED_ERRORS]],
                      matches=[{"line": line, "contact_id": contact_id, "action": action}
                               for line, action, contact_id in report.outcomes
                               if action in ("updated", "unchanged")][:MAX_STORED_ERRORS])
    with platform.session() as db:
        db.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values))


def job_dict(job: ImportJob) -> dict[str, Any]:
    return {
        "id": job.id, "filename": job.filename, "status": job.status, "dry_run": job.dry_run,
        "headers": job.headers, "mapping": job.mapping, "total": job.total, "processed": job.processed,
        "created": job.created, "updated": job.updated, "unchanged": job.unchanged, "rejected": job.rejected, "message": job.message,
        "errors": job.errors[:100], "error_count": len(job.errors),
        "matches": job.matches[:100], "match_count": len(job.matches),
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def error_report(platform: Platform, job: ImportJob) -> str:
    try:
        table = importer.read_table(stored_path(platform, job))
    except (importer.UnreadableFile, OSError):
        table = importer.Table(headers=[], rows=[])
    return importer.error_report_csv(table, job.errors)


def discard(platform: Platform, db: Session, job: ImportJob) -> None:
    """Delete the uploaded file and the job (its personal data goes with the file)."""
    stored_path(platform, job).unlink(missing_ok=True)
    db.delete(job)


def recent_jobs(db: Session, user: CurrentUser, limit: int = 10) -> list[ImportJob]:
    return list(db.scalars(select(ImportJob).where(ImportJob.user_id == user.id)
                           .order_by(ImportJob.id.desc()).limit(limit)))


def purge_old_imports() -> None:
    """The scheduled task: delete uploads (and their jobs) older than :data:`KEEP_UPLOADS`."""
    platform = current()
    with platform.session() as db:
        old = db.scalars(select(ImportJob).where(ImportJob.created_at < utcnow() - KEEP_UPLOADS,
                                                 ImportJob.status.not_in(("queued", "running"))))
        for job in old:
            discard(platform, db, job)
