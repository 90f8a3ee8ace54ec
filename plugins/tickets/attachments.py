"""Attachments: checked, stored on disk under the instance folder, served only to those allowed.

Files live in ``<KEHU_HOME>/attachments/tickets/`` under a random name; the table keeps the
original name, the type and the size. A file is accepted when its size is within
``max_attachment_mb`` and its extension is in ``attachment_types``; its type is taken from the
extension (never from what the browser claims) and, for images and PDF, its first bytes must
match. Files are always served as downloads (``Content-Disposition: attachment``, ``nosniff``).

A file written for a transaction that rolls back is deleted again.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from pathlib import Path

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from kehu.db import utcnow
from kehu.i18n import gettext as _
from kehu.platform import Platform

from .models import Attachment, Ticket

TYPES = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
    "pdf": "application/pdf", "txt": "text/plain", "csv": "text/csv", "log": "text/plain",
    "doc": "application/msword", "xls": "application/vnd.ms-excel",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "zip": "application/zip", "mp4": "video/mp4",
}
MAGIC = {
    "jpg": (b"\xff\xd8\xff",), "jpeg": (b"\xff\xd8\xff",), "png": (b"\x89PNG\r\n\x1a\n",),
    "gif": (b"GIF87a", b"GIF89a"), "pdf": (b"%PDF-",), "zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "docx": (b"PK\x03\x04",), "xlsx": (b"PK\x03\x04",),
}
_WRITTEN = "kehu_tickets_written_files"


class Rejected(ValueError):
    """The file is not accepted; the message says why (for the user)."""


def folder(platform: Platform) -> Path:
    path = platform.settings.home / "attachments" / "tickets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def path_of(platform: Platform, attachment: Attachment) -> Path:
    return folder(platform) / attachment.stored_name


def clean_filename(name: str) -> str:
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"|?*').strip(" .")
    return name[:200] or "file"


def check(platform: Platform, filename: str, content: bytes) -> tuple[str, str]:
    """The clean file name and its type; :class:`Rejected` when the file is not accepted."""
    name = clean_filename(filename)
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    allowed = [e.strip().lower() for e in platform.setting("tickets", "attachment_types").split(",") if e.strip()]
    if extension not in allowed or extension not in TYPES:
        raise Rejected(_("Files of this type are not accepted. Accepted: %(types)s.", types=", ".join(allowed)))
    limit = int(float(platform.setting("tickets", "max_attachment_mb")) * 1024 * 1024)
    if len(content) > limit:
        raise Rejected(_("The file is too large (at most %(mb)s MB).", mb=platform.setting("tickets", "max_attachment_mb")))
    if not content:
        raise Rejected(_("The file is empty."))
    signatures = MAGIC.get(extension)
    if signatures and not content.startswith(signatures):
        raise Rejected(_("The file's content does not match its type."))
    if extension == "webp" and not (content[:4] == b"RIFF" and content[8:12] == b"WEBP"):
        raise Rejected(_("The file's content does not match its type."))
    return name, TYPES[extension]


def store(platform: Platform, db: Session, ticket: Ticket, filename: str, content: bytes, *, public: bool,
          by_customer: bool, uploaded_by_id: int | None = None, comment_id: int | None = None) -> Attachment:
    """Check and store a file for ``ticket`` in the caller's transaction."""
    name, content_type = check(platform, filename, content)
    stored = secrets.token_hex(16)
    target = folder(platform) / stored
    temporary = target.with_suffix(".part")
    with open(temporary, "wb") as handle:
        handle.write(content)
    os.replace(temporary, target)
    db.info.setdefault(_WRITTEN, []).append(target)
    row = Attachment(ticket_id=ticket.id, comment_id=comment_id, filename=name, stored_name=stored,
                     content_type=content_type, size=len(content), public=public or by_customer,
                     by_customer=by_customer, uploaded_by_id=uploaded_by_id, created_at=utcnow())
    db.add(row)
    db.flush()
    return row


def discard(platform: Platform, stored_name: str) -> None:
    try:
        (folder(platform) / stored_name).unlink()
    except FileNotFoundError:
        pass


def _after_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # not a released savepoint: really committed
        session.info.pop(_WRITTEN, None)


def _after_transaction_end(session: Session, transaction: object) -> None:
    # The outermost transaction ended without commit: its files go too.
    if getattr(transaction, "parent", None) is None and not getattr(transaction, "nested", False):
        for path in session.info.pop(_WRITTEN, []):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


if not sa_event.contains(Session, "after_commit", _after_commit):
    sa_event.listen(Session, "after_commit", _after_commit)
    sa_event.listen(Session, "after_transaction_end", _after_transaction_end)
