"""Database access: the declarative base every model uses, engines and sessions.

All models, the core's and every plugin's, share :class:`Model`'s metadata so that foreign
keys may cross plugins (a ticket points at a contact). Which module owns a table is known from
the ``kehu_models`` hook, not from the metadata.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
import time
import weakref
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (Connection, DateTime, Dialect, Engine, Executable, MetaData, Row, Select, create_engine, event,
                        func, select)
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql import util as sql_util
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Model(DeclarativeBase):
    """Base class of every Kehu model. Name tables ``<plugin>_<thing>``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def read_rows(db: Session | Connection, statement: Executable,
              params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
    """The rows of ``statement``, a SELECT of columns (not of model objects), read on the
    session's connection (or on ``db``, a connection): ``Session.execute`` passes each row
    through the ORM's loading, which was a quarter of the contact list's reading time. A
    session's pending changes are flushed first, as ``Session.execute`` would."""
    if isinstance(db, Connection):
        return db.execute(statement, params).all()
    db.flush()
    return db.connection().execute(statement, params).all()


@contextmanager
def reading_connection(engine: Engine) -> Iterator[Connection]:
    """A read-only connection, rolled back at the end. On SQLite its transaction is a deferred
    ``BEGIN``: it never waits for the write lock (the caller may hold it in another connection).
    On PostgreSQL it runs in autocommit: under READ COMMITTED each statement sees its own
    snapshot either way, and a page's reads save the round trips of ``BEGIN`` and ``ROLLBACK``."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.info["write"] = False
        try:
            yield connection
        finally:
            connection.rollback()
            connection.info.pop("write", None)


def count_rows(db: Session, statement: Select[Any], up_to: int | None = None) -> int:
    """How many rows ``statement`` gives; with ``up_to``, counting stops after ``up_to + 1``
    (a list shows "1000+": counting a whole table costs more than the page itself)."""
    if up_to is not None:
        statement = statement.limit(up_to + 1)
    return read_rows(db, select(func.count()).select_from(statement.order_by(None).subquery()))[0][0] or 0


class KeptStatements:
    """Statements a process builds once and keeps by key, at most ``size`` of them: all are
    forgotten when more come (they are built again when asked). Building a SELECT with its
    cache key can cost more than running it. Safe for the threads pages run in."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: dict[Hashable, Any] = {}

    def get(self, key: Hashable) -> Any:
        return self._kept.get(key)  # one look-up: another thread may clear it meanwhile

    def keep(self, key: Hashable, statement: Any) -> Any:
        if len(self._kept) >= self.size:
            self._kept.clear()
        self._kept[key] = statement
        return statement


#: How long :func:`kept_rows` keeps what it read, in seconds: the longest a change written by
#: another process (a second web process, a job worker) takes to show.
KEPT_ROWS_SECONDS = 2.0
_kept_rows: weakref.WeakKeyDictionary[Engine, dict[Hashable, tuple[float, int, Sequence[Row[Any]]]]] = (
    weakref.WeakKeyDictionary())
_write_counter = itertools.count(1)
_last_written: dict[str, int] = {}  # table name -> the counter's value at its latest write in this process
_EVERY_TABLE = "*"  # written by SQL whose tables are not known (DDL, driver SQL): every kept read is stale


def kept_rows(db: Session | Connection, statement: Select[Any],
              params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
    """The rows of ``statement`` (as :func:`read_rows`), kept in this process for
    :data:`KEPT_ROWS_SECONDS`: for small tables that pages read on every request and that
    rarely change, such as a workflow's statuses, categories or custom field definitions.

    A write to one of the statement's tables through any engine of this process makes the kept
    rows stale at once (the write and its commit both count); a write by another process
    shows within :data:`KEPT_ROWS_SECONDS`, and so does a row that the database itself removes
    (``ON DELETE CASCADE`` from another table). A transaction that has written is given the kept
    rows of tables it has not written; the rest it reads, and keeps nothing. Use it to *show*
    things; a check that guards a write, or a value a write stores, reads with
    :func:`read_rows`. On PostgreSQL each read saved is a round trip.
    ``params`` are part of the key, so their values must be hashable (a tuple for an ``IN``
    list, not a list).
    """
    if isinstance(db, Session) and (db.new or db.dirty or db.deleted):
        db.flush()  # these writes are counted before anything is read
    connection = db if isinstance(db, Connection) else db.connection()
    written = connection.info.get("kehu_written")  # by this transaction, not committed yet
    kept = _kept_rows.get(connection.engine)
    if kept is None:
        kept = _kept_rows.setdefault(connection.engine, {})
    key = (statement, tuple(sorted(params.items())) if params else ())
    found = kept.get(key)
    now = time.monotonic()
    if found is not None:
        read_at, counted_at, rows = found
        if (now - read_at < KEPT_ROWS_SECONDS and not _written_since(statement, counted_at)
                and not (written and _may_read_own_writes(statement, written))):
            return rows
    if written:  # what it reads may hold its own writes: not for others' eyes before they commit
        return read_rows(db, statement, params)
    counted_at = next(_write_counter)  # before reading: a write meanwhile makes these rows stale
    rows = tuple(read_rows(db, statement, params))
    if len(kept) >= 1000:
        kept.clear()
    kept[key] = (now, counted_at, rows)
    return rows


def _may_read_own_writes(statement: Select[Any], written: set[str]) -> bool:
    """Whether ``statement`` may read tables among ``written`` (a transaction's own writes, or
    tables not known on either side): then it must be read, not given kept rows."""
    tables = _tables_of(statement)
    return _EVERY_TABLE in written or _EVERY_TABLE in tables or not written.isdisjoint(tables)


def _written_since(statement: Select[Any], counted_at: int) -> bool:
    last_written = _last_written
    if last_written.get(_EVERY_TABLE, 0) > counted_at:
        return True
    return any(last_written.get(name, 0) > counted_at for name in _tables_of(statement))


@functools.lru_cache(maxsize=2048)
def _tables_of(statement: Select[Any]) -> frozenset[str]:
    """The names of the tables ``statement`` reads, aliased ones and those of subqueries too."""
    found = sql_util.find_tables(statement, include_aliases=True)
    return frozenset(getattr(getattr(f, "element", f), "name", None) or _EVERY_TABLE for f in found)


_READING_SQL = ("SELECT", "PRAGMA", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SHOW", "SET ")


def _note_writes(engine: Engine) -> None:
    """Tell :func:`kept_rows` which tables this engine writes to: when the statement runs and
    again when its transaction ends (a read between the two may have kept the old rows)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if context is not None and (context.isinsert or context.isupdate or context.isdelete):
            table = getattr(context.compiled.statement, "table", None)
            name = getattr(table, "name", None) or _EVERY_TABLE
        elif statement.lstrip()[:10].upper().startswith(_READING_SQL):
            return
        else:  # text(), driver SQL, DDL: which tables is not known
            name = _EVERY_TABLE
        _last_written[name] = next(_write_counter)
        conn.info.setdefault("kehu_written", set()).add(name)

    def _ended(conn):  # type: ignore[no-untyped-def]
        if conn.invalidated:  # cut off (its writes are lost with it); its info is not readable
            return
        written = conn.info.pop("kehu_written", None)
        if written:
            counted = next(_write_counter)
            for name in written:
                _last_written[name] = counted

    event.listen(engine, "commit", _ended)
    event.listen(engine, "rollback", _ended)


#: How long :func:`count_capped` remembers a count that reached its cap, in seconds.
CAPPED_COUNT_SECONDS = 30.0
_capped_counts: dict[Hashable, float] = {}  # key -> when it was counted (time.monotonic)


def count_capped(db: Session, counting: Executable, up_to: int, key: Hashable,
                params: Mapping[str, Any] | None = None) -> int:
    """The number ``counting`` (a ``SELECT count(*)`` of at most ``up_to + 1`` rows, see
    :func:`count_rows`) gives. A count that reached ``up_to + 1`` (a list shows "1000+") is
    remembered under ``key`` (say, the user and the list's filters) for
    :data:`CAPPED_COUNT_SECONDS` and not counted again meanwhile: counting to a thousand on
    every page turn cost as much as the page's own query, and a list of over a thousand rarely
    falls under it within that time."""
    now = time.monotonic()
    key = (key, up_to)
    counted_at = _capped_counts.get(key)
    if counted_at is not None and now - counted_at < CAPPED_COUNT_SECONDS:
        return up_to + 1
    total = read_rows(db, counting, params)[0][0] or 0
    if total > up_to:
        if len(_capped_counts) >= 10_000:  # forget the stale ones first (pages run in several threads)
            remembered = list(_capped_counts.items())
            for stale, _at in [(k, at) for k, at in remembered if now - at >= CAPPED_COUNT_SECONDS] or remembered:
                _capped_counts.pop(stale, None)
        _capped_counts[key] = now
    return total


#: Seconds an SQLite connection is used before it is opened again: a connection reads the
#: planner's statistics when it opens, so refreshed ones (:func:`refresh_statistics`) reach the
#: web processes' pooled connections within this time.
SQLITE_CONNECTION_LIFETIME = 3600


def refresh_statistics(engine: Engine) -> bool:
    """Refresh the query planner's statistics of an SQLite database; True if it did.

    SQLite gathers none by itself (PostgreSQL's autovacuum does, so nothing is done there).
    Without them the planner guesses, and a queue's record rule ("my team or assigned to me")
    led it to read a whole team's tickets instead of walking the queue's index: 270 ms
    against 2 ms for the same page. Sampled statistics (``PRAGMA analysis_limit``) misled it
    the same way (they saw one team), so every index is read in full: one table per
    transaction, which keeps writers waiting for a table's analysis at most (0.25 s for
    200,000 tickets). ``kehu db upgrade`` runs this after migrating (new indexes have no
    statistics yet) and the job worker every :data:`kehu.jobs.STATISTICS_INTERVAL`; other
    processes' connections read them when they next open (:data:`SQLITE_CONNECTION_LIFETIME`).
    """
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        tables = [name for (name,) in driver.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            begin_immediate(driver)
            try:
                driver.execute(f'ANALYZE "{table}"')
                driver.execute("COMMIT")
            except BaseException:
                if driver.in_transaction:
                    driver.execute("ROLLBACK")
                raise
    return True


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], datetime | None] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        # SQLite keeps the ISO text SQLAlchemy wrote, in UTC ("2026-11-25 19:31:51.123456").
        # Parsed with its offset appended by the C ``fromisoformat``, a timestamp costs a tenth of
        # SQLAlchemy's regular expression followed by ``replace(tzinfo=...)``: a page of rows
        # reads several per row.
        from_text = datetime.fromisoformat

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            if isinstance(value, str):
                try:
                    value = from_text(value + "+00:00")
                except ValueError:  # text that carries its own offset
                    value = from_text(value)
            return value if value.tzinfo is UTC else self.process_result_value(value, dialect)

        return process


BUSY_TIMEOUT = 30.0  # seconds SQLite waits for a lock (a writer for the write lock) before giving up


def make_engine(url: str, **kwargs: object) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and real transactions around DDL."""
    if url.startswith("sqlite"):
        kwargs.setdefault("pool_recycle", SQLITE_CONNECTION_LIFETIME)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
    else:
        engine = create_engine(psycopg_url(url), **kwargs)
        _ping_after_idle(engine)
    _note_writes(engine)
    return engine


#: Seconds a pooled database-server connection may sit idle before it is pinged when taken out.
PING_AFTER_IDLE = 10.0


def _ping_after_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it sat idle for :data:`PING_AFTER_IDLE`.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip to the server that a
    page paid two or three times (the user's look-up, the page, a panel). A connection given
    back a moment ago is alive or was cut by a restart that its next statement reports: the
    engine then treats it as a disconnect and replaces every pooled connection (one failed
    request per process). A connection that sat idle, which a firewall or an idle timeout may
    have cut silently, is pinged, and replaced when the ping fails (the pool retries).
    """

    @event.listens_for(engine.pool, "checkin")
    def _given_back(dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info["kehu_idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _taken(dbapi_connection, record, proxy):  # type: ignore[no-untyped-def]
        idle_since = record.info.get("kehu_idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            ping_alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001  (any failure: the connection is not usable)
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc
        if not ping_alive:
            raise DisconnectionError("a pooled connection failed its ping")


def psycopg_url(url: str) -> str:
    """``postgresql://…`` (what operators write) → ``postgresql+psycopg://…`` (the driver we ship)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite neither begins a transaction before DDL nor lets SQLAlchemy own BEGIN; take
    # over so each module's migration really runs in one transaction (SQLAlchemy's recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # Straight to the driver: this runs before every transaction, and SQLAlchemy's
        # statement machinery (events, result set-up) cost more than the BEGIN itself.
        driver = conn.connection.driver_connection
        if conn.info.get("write", True):
            begin_immediate(driver)
        else:
            driver.execute("BEGIN")


def begin_immediate(driver: sqlite3.Connection, timeout: float = BUSY_TIMEOUT) -> None:
    """``BEGIN IMMEDIATE``: take SQLite's write lock up front, so that two writers queue
    instead of failing with "database is locked" when a reader upgrades to a writer.

    The waiting is done here, not by SQLite's busy handler: that one sleeps in steps that grow
    to 100 ms, while a Kehu write transaction holds the lock for a few milliseconds, so a
    writer kept sleeping long after the lock was free (PATCH requests waited up to 1.3 s with
    four at once). Here a waiter retries after at most 2 ms.
    """
    driver.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + timeout
        pause = 0.0002
        while True:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
