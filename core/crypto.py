"""Field-level encryption of personal data, blind indexes for exact search, key rotation.

How a value is sealed
    AES-256-GCM with a random 96-bit nonce per value. The stored blob is
    ``version (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext and tag``. The
    associated data is ``<table>.<column>.<row key>``: a ciphertext copied into another column
    or another row does not decrypt. The row key is a random id every row with sealed columns
    carries (:class:`SealedRow`), because a row's primary key is not known before its INSERT.

Where the keys live
    Data keys (one per rotation, purpose ``encrypt``; one for blind indexes, purpose ``index``)
    are random 256-bit keys stored in ``kehu_data_key`` wrapped (AES key wrap, RFC 3394) by the
    master key. The master key is a file outside the database (``KEHU_MASTER_KEY_FILE``); a
    missing or wrong master key stops start-up with :class:`KeyProblem`.

How a plugin uses it::

    class Contact(Model, crypto.SealedRow):
        street_sealed: Mapped[bytes | None] = mapped_column(crypto.Encrypted(), nullable=True)
        street = crypto.sealed("street_sealed")      # plaintext in Python, sealed in the row

Blind indexes
    ``blind_index(value, bits)`` is an HMAC-SHA256 of an already normalized value under the
    index key, truncated to ``bits``. Equal values give equal indexes; a lookup returns
    candidates that the caller decrypts and compares, so truncation collisions never make a
    search inexact.

Rotation
    :func:`start_rotation` makes a new active key; old keys stay for decryption.
    :func:`rotate` rewrites every sealed value not yet on the active key, batch by batch, each
    row by compare-and-swap (``UPDATE … WHERE value = <what we read>``) so a concurrent update
    is never overwritten; it passes over the tables until none is left, then retires the old
    keys. It is resumable: running it again continues where it stopped.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from sqlalchemy import Engine, LargeBinary, String, inspect, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from kehu.db import reading_connection, utcnow
from kehu.models import DataKey

if TYPE_CHECKING:  # pragma: no cover
    from kehu.platform import Platform

BLOB_VERSION = 1
_HEADER = struct.Struct(">BI")  # version, key id
_NONCE_BYTES = 12
ENCRYPT, INDEX = "encrypt", "index"
#: How long a process trusts its idea of the active key before asking the database again
#: (another process may have started a rotation).
ACTIVE_KEY_RECHECK_SECONDS = 2.0


class KeyProblem(RuntimeError):
    """The keys cannot be used (missing or wrong master key, no keys loaded). Says what to do."""


class DecryptionFailed(ValueError):
    """A sealed value that does not open: tampered with, moved to another row or column, or
    sealed under a key this database does not have."""


# --- master key ---------------------------------------------------------------------------


def ensure_master_key(path: Path) -> bool:
    """Create a master key file at ``path`` (mode 0600) unless one exists; True if created."""
    path = Path(path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32))
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False  # another process made it first
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key + b"\n")
    return True


def read_master_key(path: Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise KeyProblem(
            f"master key file {path} does not exist: set KEHU_MASTER_KEY_FILE to the key file this "
            f"deployment was created with (kehu db upgrade creates one only for a new database)")
    try:
        key = base64.urlsafe_b64decode(path.read_bytes().strip())
    except (ValueError, OSError) as exc:
        raise KeyProblem(f"master key file {path} cannot be read: {exc}") from exc
    if len(key) != 32:
        raise KeyProblem(f"master key file {path} does not hold a 256-bit key (base64 of 32 bytes)")
    return key


# --- keyring --------------------------------------------------------------------------------


@dataclass
class Keyring:
    """The unwrapped data keys of one database, shared by every thread of a process."""

    engine: Engine
    master: bytes
    ciphers: dict[int, AESGCM] = field(default_factory=dict)
    retired: set[int] = field(default_factory=set)
    active_id: int = 0
    index_key: bytes = b""
    index_mac: Any = None  # an HMAC keyed with index_key: copying it is twice as fast as keying anew
    checked_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> None:
        # Read-only, so never waiting for SQLite's write lock: the caller may hold it in another
        # connection of this thread (encrypting inside a transaction).
        with reading_connection(self.engine) as conn:
            rows = conn.execute(select(DataKey.id, DataKey.purpose, DataKey.wrapped_key, DataKey.active,
                                       DataKey.retired_at).order_by(DataKey.id)).all()
        ciphers: dict[int, AESGCM] = {}
        index_keys: list[bytes] = []
        active = 0
        retired = set()
        for row in rows:
            try:
                raw = aes_key_unwrap(self.master, row.wrapped_key)
            except InvalidUnwrap:
                raise KeyProblem(
                    f"the master key does not open data key {row.id} of this database: "
                    f"KEHU_MASTER_KEY_FILE points at the wrong key file") from None
            if row.purpose == INDEX:
                index_keys.append(raw)
                continue
            ciphers[row.id] = AESGCM(raw)
            if row.active:
                active = max(active, row.id)
            if row.retired_at is not None:
                retired.add(row.id)
        with self.lock:
            self.ciphers, self.retired, self.active_id = ciphers, retired, active
            # The first index key ever made is the one: blind indexes must not change under rotation.
            self.index_key = index_keys[0] if index_keys else b""
            self.index_mac = hmac.new(self.index_key, digestmod=hashlib.sha256) if self.index_key else None
            self.checked_at = time.monotonic()

    def active_cipher(self) -> tuple[int, AESGCM]:
        if time.monotonic() - self.checked_at > ACTIVE_KEY_RECHECK_SECONDS:
            with reading_connection(self.engine) as conn:
                newest = conn.scalar(select(DataKey.id).where(DataKey.purpose == ENCRYPT, DataKey.active)
                                     .order_by(DataKey.id.desc()).limit(1))
            if newest is not None and newest != self.active_id:
                self.load()
            else:
                self.checked_at = time.monotonic()
        if not self.active_id:
            raise KeyProblem("no active data key: run `kehu db upgrade`")
        return self.active_id, self.ciphers[self.active_id]

    def cipher(self, key_id: int) -> AESGCM:
        found = self.ciphers.get(key_id)
        if found is None:  # a key made by another process (a rotation) since we loaded
            self.load()
            found = self.ciphers.get(key_id)
        if found is None:
            raise DecryptionFailed(f"sealed with data key {key_id}, which this database does not have")
        return found


_keyring: Keyring | None = None


def _wrap_new_key(master: bytes) -> bytes:
    return aes_key_wrap(master, secrets.token_bytes(32))


def ensure_keys(platform: Platform) -> Keyring:
    """Load this database's data keys with the master key, creating the first ones if needed,
    and make them the process's keyring. Raises :class:`KeyProblem` with what to do."""
    global _keyring
    master = read_master_key(platform.settings.master_key_file)
    keyring = Keyring(engine=platform.engine, master=master)
    keyring.load()  # a wrong master key fails here, before anything is written
    if not keyring.active_id or not keyring.index_key:
        with Session(platform.engine) as session, session.begin():
            purposes = set(session.scalars(select(DataKey.purpose).where(DataKey.active)))
            for purpose in (ENCRYPT, INDEX):
                if purpose not in purposes:
                    session.add(DataKey(purpose=purpose, wrapped_key=_wrap_new_key(master), active=True))
        keyring.load()
    _keyring = keyring
    return keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise KeyProblem("encryption keys are not loaded (kehu.crypto.ensure_keys was not called)")
    return _keyring


# --- values -------------------------------------------------------------------------------


def encrypt(plaintext: str, aad: bytes) -> bytes:
    """Seal ``plaintext`` under the active key, bound to ``aad``."""
    key_id, cipher = keyring().active_cipher()
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return _HEADER.pack(BLOB_VERSION, key_id) + nonce + cipher.encrypt(nonce, plaintext.encode("utf-8"), aad)


def key_id_of(blob: bytes) -> int:
    if len(blob) < _HEADER.size + _NONCE_BYTES + 16:
        raise DecryptionFailed("not a sealed value (too short)")
    version, key_id = _HEADER.unpack_from(blob)
    if version != BLOB_VERSION:
        raise DecryptionFailed(f"not a sealed value (format {version})")
    return key_id


_NONCE_AT, _SEALED_AT = _HEADER.size, _HEADER.size + _NONCE_BYTES


def decrypt(blob: bytes, aad: bytes) -> str:
    """Open a value sealed by :func:`encrypt` with the same ``aad``, or raise DecryptionFailed."""
    if type(blob) is not bytes:
        blob = bytes(blob)
    cipher = keyring().cipher(key_id_of(blob))
    try:
        return cipher.decrypt(blob[_NONCE_AT:_SEALED_AT], blob[_SEALED_AT:], aad).decode()
    except InvalidTag:
        raise DecryptionFailed("sealed value does not open: altered, or moved from another row or column") from None


def blind_index(value: str, bits: int = 64) -> str:
    """HMAC-SHA256 of an already normalized ``value`` under the index key, as ``bits`` bits of hex.

    Choose ``bits`` per field from the expected row count: with 64 bits, a table of 10 million
    values has a chance of about 3e-6 that any two different values share an index — and a
    shared index only costs one more candidate to decrypt, never a wrong result.
    """
    if bits % 4 or not 16 <= bits <= 256:
        raise ValueError("bits must be a multiple of 4 between 16 and 256")
    keyed = keyring().index_mac
    if keyed is None:
        raise KeyProblem("no blind index key: run `kehu db upgrade`")
    mac = keyed.copy()
    mac.update(value.encode("utf-8"))
    return mac.hexdigest()[: bits // 4]


# --- columns --------------------------------------------------------------------------------


class Encrypted(TypeDecorator[bytes]):
    """The column type of a sealed value. It only stores blobs made by :func:`encrypt` (through
    :func:`sealed`), so plaintext can never be written into it by mistake."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: object) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError("an Encrypted column stores sealed bytes: assign the plain value through crypto.sealed()")
        key_id_of(bytes(value))
        return bytes(value)

    def process_result_value(self, value: Any, dialect: object) -> bytes | None:
        return None if value is None else bytes(value)


def new_row_key() -> str:
    return secrets.token_hex(16)


class SealedRow:
    """Mixin for models with sealed columns: the random per-row id bound into every value."""

    row_key: Mapped[str] = mapped_column(String(32), default=new_row_key)


@dataclass(frozen=True)
class SealedField:
    model: type
    attribute: str
    column: str

    @property
    def table(self) -> str:
        return self.model.__tablename__  # type: ignore[attr-defined, no-any-return]

    def aad(self, row_key: str) -> bytes:
        """``table.column.row_key``: binds a sealed value to its row and column."""
        return self._aad_prefix + row_key.encode()

    @functools.cached_property
    def _aad_prefix(self) -> bytes:  # a list page opens a value per row
        return f"{self.table}.{self.column}.".encode()


#: Every sealed attribute of every imported model (key rotation walks them).
SEALED_FIELDS: list[SealedField] = []


class sealed:  # noqa: N801 - used like a column declaration
    """A plain-text attribute stored sealed in ``column`` (an :class:`Encrypted` column);
    ``None`` and ``""`` are stored as NULL."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.field: SealedField | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        if not issubclass(owner, SealedRow):
            raise TypeError(f"{owner.__name__}.{name}: a model with sealed fields must inherit crypto.SealedRow")
        self.field = SealedField(owner, name, self.column)
        SEALED_FIELDS.append(self.field)

    def _aad(self, obj: Any) -> bytes:
        assert self.field is not None
        if not obj.row_key:
            obj.row_key = new_row_key()
        return self.field.aad(obj.row_key)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        blob = getattr(obj, self.column)
        return None if blob is None else decrypt(blob, self._aad(obj))

    def __set__(self, obj: Any, value: str | None) -> None:
        setattr(obj, self.column, None if value in (None, "") else encrypt(str(value), self._aad(obj)))


# --- rotation -------------------------------------------------------------------------------


@dataclass
class RotationReport:
    active_key: int
    rewritten: int = 0
    conflicts: int = 0  # rows changed by someone else while we read them (picked up next pass)
    left: int = 0
    retired: list[int] = field(default_factory=list)


def sealed_fields_in(platform: Platform) -> list[SealedField]:
    """The sealed fields whose tables exist in ``platform``'s database (disabled modules' too:
    their data must be rotated as well)."""
    existing = set(inspect(platform.engine).get_table_names())
    return [f for f in SEALED_FIELDS if f.table in existing]


def start_rotation(platform: Platform) -> int:
    """Make a new active data key; the others stay for decryption. Returns the new key's id."""
    ring = keyring()
    with Session(platform.engine) as session, session.begin():
        session.execute(update(DataKey).where(DataKey.purpose == ENCRYPT, DataKey.active).values(active=False))
        key = DataKey(purpose=ENCRYPT, wrapped_key=_wrap_new_key(ring.master), active=True)
        session.add(key)
        session.flush()
        new_id = key.id
    ring.load()
    return new_id


def count_by_key(platform: Platform) -> dict[int, int]:
    """How many sealed values each data key holds."""
    counts: dict[int, int] = {}
    for sealed_field, _pk, _row_key, blob in _scan(platform, sealed_fields_in(platform)):
        key_id = key_id_of(blob)
        counts[key_id] = counts.get(key_id, 0) + 1
    return counts


def _scan(platform: Platform, fields: list[SealedField], batch: int = 1000) -> Iterator[tuple[SealedField, Any, str, bytes]]:
    for sealed_field in fields:
        table = sealed_field.model.__table__  # type: ignore[attr-defined]
        (pk,) = table.primary_key.columns
        column = table.c[sealed_field.column]
        last = None
        while True:
            query = select(pk, table.c.row_key, column).where(column.is_not(None)).order_by(pk).limit(batch)
            if last is not None:
                query = query.where(pk > last)
            with platform.engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                break
            for row in rows:
                yield sealed_field, row[0], row[1], bytes(row[2])
            last = rows[-1][0]


def rotate(platform: Platform, batch: int = 500, progress: Callable[[int], None] | None = None,
           max_passes: int = 20) -> RotationReport:
    """Re-encrypt every value not on the active key; see the module docstring."""
    ring = keyring()
    ring.load()
    report = RotationReport(active_key=ring.active_id)
    fields = sealed_fields_in(platform)
    for _ in range(max_passes):
        rewritten_this_pass = conflicts_this_pass = 0
        pending: list[tuple[SealedField, Any, str, bytes]] = []
        for item in _scan(platform, fields):
            if key_id_of(item[3]) != ring.active_id:
                pending.append(item)
            if len(pending) >= batch:
                done, missed = _rewrite(platform, pending)
                rewritten_this_pass += done
                conflicts_this_pass += missed
                if progress:
                    progress(done + missed)
                pending = []
        if pending:
            done, missed = _rewrite(platform, pending)
            rewritten_this_pass += done
            conflicts_this_pass += missed
            if progress:
                progress(done + missed)
        report.rewritten += rewritten_this_pass
        report.conflicts += conflicts_this_pass
        if rewritten_this_pass == 0 and conflicts_this_pass == 0:
            break
        # A writer whose keyring is older than ACTIVE_KEY_RECHECK_SECONDS may still seal under
        # the old key: the next pass picks those values up.
    report.left = sum(n for key_id, n in count_by_key(platform).items() if key_id != ring.active_id)
    if report.left == 0:
        with Session(platform.engine) as session, session.begin():
            old = session.scalars(select(DataKey).where(DataKey.purpose == ENCRYPT, DataKey.id != ring.active_id,
                                                        DataKey.retired_at.is_(None))).all()
            for key in old:
                key.retired_at = utcnow()
                report.retired.append(key.id)
        ring.load()
    return report


def _rewrite(platform: Platform, items: list[tuple[SealedField, Any, str, bytes]]) -> tuple[int, int]:
    done = missed = 0
    with platform.engine.begin() as conn:
        for sealed_field, pk_value, row_key, blob in items:
            aad = sealed_field.aad(row_key)
            fresh = encrypt(decrypt(blob, aad), aad)
            table = sealed_field.model.__table__  # type: ignore[attr-defined]
            (pk,) = table.primary_key.columns
            column = table.c[sealed_field.column]
            result = conn.execute(update(table).where(pk == pk_value, column == blob).values({column.key: fresh}))
            if result.rowcount == 1:
                done += 1
            else:
                missed += 1
    return done, missed


def rewrap(platform: Platform, new_master_file: Path) -> int:
    """Wrap every data key with the master key in ``new_master_file`` (master key rotation).
    Returns the number of keys rewrapped; afterwards point KEHU_MASTER_KEY_FILE at the new file."""
    ring = keyring()
    new_master = read_master_key(new_master_file)
    count = 0
    with Session(platform.engine) as session, session.begin():
        for key in session.scalars(select(DataKey)):
            key.wrapped_key = aes_key_wrap(new_master, aes_key_unwrap(ring.master, key.wrapped_key))
            count += 1
    ring.master = new_master
    return count
