"""kehu.db on SQLite: writers queue for the write lock; readers never wait for it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, String, bindparam, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import NullPool

from kehu import db as kehu_db
from kehu.db import (SQLITE_CONNECTION_LIFETIME, begin_immediate, make_engine, read_rows, reading_connection,
                     refresh_statistics)
from kehu.jobs import STATISTICS_INTERVAL


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def test_a_writer_waits_for_the_lock_and_gets_it_once_it_is_free(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    first, second = connect(path), connect(path)
    first.execute("CREATE TABLE t (n INTEGER)")
    begin_immediate(first)
    first.execute("INSERT INTO t VALUES (1)")
    order: list[str] = []

    def write() -> None:
        begin_immediate(second)
        second.execute("INSERT INTO t VALUES (2)")
        second.execute("COMMIT")
        order.append("second")

    waiter = threading.Thread(target=write)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and order == []  # still waiting: the first writer holds the lock
    order.append("first")
    first.execute("COMMIT")
    waiter.join(10)
    assert order == ["first", "second"]
    assert [n for (n,) in first.execute("SELECT n FROM t ORDER BY n")] == [1, 2]
    # The connection's own busy timeout is back for the statements that follow.
    assert second.execute("PRAGMA busy_timeout").fetchone() == (30000,)


def test_a_writer_gives_up_with_database_is_locked_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    first, second = connect(path), connect(path)
    first.execute("CREATE TABLE t (n INTEGER)")
    begin_immediate(first)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(second, timeout=0.05)
    first.execute("ROLLBACK")


def test_reading_connections_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with engine.connect() as writer:
        with writer.begin():  # BEGIN IMMEDIATE: holds the write lock
            writer.execute(text("INSERT INTO t VALUES (2)"))
            with engine.connect() as reader:
                reader.info["write"] = False  # what Platform.reading() sets
                assert reader.execute(text("SELECT count(*) FROM t")).scalar_one() == 1  # the committed state
                reader.rollback()
                reader.info.pop("write")
    engine.dispose()


def test_refreshed_statistics_lead_the_planner_to_the_selective_index(tmp_path: Path) -> None:
    # As after a migration: the table has statistics, its new indexes none. The planner then
    # takes each equality as selective and reads every row of a team ("team or owner")
    # instead of walking the due-date index.
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, team TEXT, owner INTEGER, due INTEGER, "
                                "other INTEGER)"))
        connection.execute(text("CREATE INDEX ix_other ON t (other)"))
        connection.execute(text("INSERT INTO t (team, owner, due, other) VALUES (:team, :owner, :due, :other)"),
                           [{"team": "a" if n % 2 else "b", "owner": n % 50, "due": n if n % 10 == 0 else None,
                             "other": n} for n in range(20_000)])
        connection.execute(text("ANALYZE"))
        for ddl in ("CREATE INDEX ix_team ON t (team, owner)", "CREATE INDEX ix_owner ON t (owner, team)",
                    "CREATE INDEX ix_due ON t (due, team, owner)"):
            connection.execute(text(ddl))
    query = "EXPLAIN QUERY PLAN SELECT id FROM t WHERE (team = 'a' OR owner = 3) AND due < 5000 ORDER BY due"

    def plan() -> str:
        with engine.connect() as connection:
            return " | ".join(row[-1] for row in connection.execute(text(query)))

    assert "ix_team" in plan()  # the guess
    assert refresh_statistics(engine) is True
    assert "ix_due" in plan() and "ix_team" not in plan()
    engine.dispose()


def test_pooled_sqlite_connections_are_opened_again_to_read_new_statistics(tmp_path: Path) -> None:
    # A connection reads the planner's statistics when it opens, never later.
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert engine.pool._recycle == SQLITE_CONNECTION_LIFETIME <= STATISTICS_INTERVAL.total_seconds() / 2
    engine.dispose()


def test_utc_datetimes_read_back_from_sqlite_as_they_were_written(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import Column, Integer, MetaData, Table, insert, select

    from kehu.db import UTCDateTime

    engine = make_engine(f"sqlite:///{tmp_path / 'times.sqlite3'}")
    table = Table("moments", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))
    table.metadata.create_all(engine)
    written = [datetime(2026, 11, 25, 19, 31, 51, 123456, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
               datetime(2026, 11, 26, 3, 0, tzinfo=timezone(timedelta(hours=8))), None]
    with engine.begin() as connection:
        connection.execute(insert(table), [{"id": n, "at": value} for n, value in enumerate(written)])
        # Text written by hand or by another tool: a date alone, seconds only, an explicit offset.
        connection.execute(text("INSERT INTO moments (id, at) VALUES (10, '2026-03-01'), "
                                "(11, '2026-03-01 08:00:00'), (12, '2026-03-01T08:00:00+08:00')"))
    with engine.connect() as connection:
        read = dict(connection.execute(select(table.c.id, table.c.at)).all())
    for number, value in enumerate(written):
        assert read[number] == value
        assert read[number] is None or read[number].tzinfo is UTC
    assert read[10] == datetime(2026, 3, 1, tzinfo=UTC)
    assert read[11] == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert read[12] == datetime(2026, 3, 1, tzinfo=UTC)
    assert all(read[n].tzinfo is UTC for n in (10, 11, 12))
    engine.dispose()


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "things"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


def test_read_rows_gives_what_execute_gives_and_sees_pending_changes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rows.sqlite3'}")
    Base.metadata.create_all(engine)
    statement = select(Thing.id, Thing.name).order_by(Thing.id)
    with Session(engine) as db:
        db.add_all([Thing(id=1, name="王芳"), Thing(id=2, name="b")])  # not flushed yet
        rows = read_rows(db, statement)
        assert [tuple(row) for row in rows] == [(1, "王芳"), (2, "b")]
        assert [row.name for row in rows] == ["王芳", "b"]
        assert rows == db.execute(statement).all()
        assert read_rows(db, statement.where(Thing.id == bindparam("wanted")), {"wanted": 2})[0].name == "b"
        db.commit()
    # On a reading connection too, even while another connection holds the write lock; and
    # what it was asked to change is rolled back at the end.
    with engine.connect() as writer:
        begin_immediate(writer.connection.driver_connection)
        with reading_connection(engine) as connection:
            assert [tuple(row) for row in read_rows(connection, statement)] == [(1, "王芳"), (2, "b")]
        writer.rollback()
    with reading_connection(engine) as connection:
        connection.execute(text("DELETE FROM things"))
    with reading_connection(engine) as connection:
        assert len(read_rows(connection, statement)) == 2
    engine.dispose()


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    thing_id: Mapped[int] = mapped_column(Integer)


def test_kept_rows_are_read_again_after_a_write_to_their_tables_or_after_a_while(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    from kehu.db import kept_rows

    clock = [1000.0]
    monkeypatch.setattr(kehu_db.time, "monotonic", lambda: clock[0])
    path = tmp_path / "kept.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    reads: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: reads.append(args[2]))
    things = select(Thing.id, Thing.name).order_by(Thing.id)
    # Tables in an aliased join and in a subquery count too.
    tagged = select(Thing.id).where(Thing.id.in_(select(Tag.thing_id)))

    def names() -> list[str]:
        with reading_connection(engine) as connection:
            return [row.name for row in kept_rows(connection, things)]

    def tagged_ids() -> list[int]:
        with reading_connection(engine) as connection, Session(bind=connection) as db:
            return [row.id for row in kept_rows(db, tagged)]

    with Session(engine) as db:
        db.add(Thing(id=1, name="a"))
        db.commit()
    assert names() == ["a"] and tagged_ids() == []
    reads.clear()
    assert names() == ["a"] and tagged_ids() == []
    assert reads == []  # both from memory

    # Written through this process's engine (the ORM): read again at once.
    with Session(engine) as db:
        db.add(Tag(id=1, thing_id=1))
        db.commit()
    assert names() == ["a"] and tagged_ids() == [1]
    assert len([sql for sql in reads if sql.startswith("SELECT")]) == 1  # only the tagged read

    # Written with text(): its tables are not known, so every kept read is stale.
    with engine.begin() as connection:
        connection.execute(text("UPDATE things SET name = 'b'"))
    assert names() == ["b"]

    # A read between a write and its commit keeps the old rows only until the commit.
    with engine.connect() as writer:
        writer.execute(Thing.__table__.update().values(name="c"))
        assert names() == ["b"]  # not committed yet
        writer.commit()
    assert names() == ["c"]

    # A transaction's own writes are read (not kept for others) until it commits.
    with Session(engine) as db:
        db.get(Thing, 1).name = "x"  # pending: flushed before the read
        assert [row.name for row in kept_rows(db, things)] == ["x"]
        db.get(Thing, 1).name = "y"
        db.flush()  # written, not committed
        assert [row.name for row in kept_rows(db, things)] == ["y"]
        assert names() == ["c"]  # another connection sees what is committed
        db.rollback()
    assert names() == ["c"]

    # A transaction that wrote to other tables is given the kept rows of these; what it reads
    # of the tables it wrote is read (its own writes included), and not kept for others.
    with Session(engine) as db:
        db.add(Thing(id=2, name="e"))
        db.commit()
    assert names() == ["c", "e"] and tagged_ids() == [1]
    reads.clear()
    with Session(engine) as db:
        db.add(Tag(id=2, thing_id=2))
        assert [row.name for row in kept_rows(db, things)] == ["c", "e"]  # the Tag is flushed first
        assert [sql for sql in reads if sql.startswith("INSERT")] and not [
            sql for sql in reads if sql.startswith("SELECT")]
        assert tagged_ids() == [1]  # another session keeps what is committed, after the write
        assert [row.id for row in kept_rows(db, tagged)] == [1, 2]  # its own write, not those kept rows
        assert tagged_ids() == [1]  # and its read was not kept for others
        db.rollback()
    reads.clear()
    assert tagged_ids() == [1] and len(reads) == 1  # read again: the rolled-back write counted
    with Session(engine) as db:
        db.delete(db.get(Thing, 2))
        db.commit()
    assert names() == ["c"]

    # Written by another process (here: sqlite3 itself): seen once the kept rows have aged.
    other = connect(path)
    other.execute("UPDATE things SET name = 'd'")
    assert names() == ["c"]
    clock[0] += kehu_db.KEPT_ROWS_SECONDS
    assert names() == ["d"]
    other.close()
    engine.dispose()


def test_counts_stop_at_the_cap_and_a_capped_count_is_remembered_for_a_while(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import func

    from kehu.db import count_capped, count_rows

    engine = make_engine(f"sqlite:///{tmp_path / 'count.sqlite3'}")
    Base.metadata.create_all(engine)
    with Session(engine) as db:
        db.add_all([Thing(id=n, name=str(n)) for n in range(1, 13)])
        db.flush()
        everything = select(Thing.id)
        assert count_rows(db, everything) == 12
        assert count_rows(db, everything, up_to=5) == 6  # stopped after the cap
        assert count_rows(db, everything.where(Thing.id <= 3), up_to=5) == 3

        def capped(limit: int) -> Any:
            return select(func.count()).select_from(everything.limit(limit + 1).subquery())

        clock = [1000.0]
        monkeypatch.setattr(kehu_db.time, "monotonic", lambda: clock[0])
        assert count_capped(db, capped(20), 20, key="all-20") == 12  # under the cap: counted each time
        assert count_capped(db, capped(10), 10, key="all-10") == 11
        db.add_all([Thing(id=n, name=str(n)) for n in range(13, 16)])
        db.flush()
        assert count_capped(db, capped(20), 20, key="all-20") == 15
        db.execute(Thing.__table__.delete().where(Thing.id > 2))
        assert count_capped(db, capped(10), 10, key="all-10") == 11  # remembered: "10+" a while longer
        assert count_capped(db, capped(20), 20, key="all-10") == 2  # under another cap: counted
        clock[0] += kehu_db.CAPPED_COUNT_SECONDS
        assert count_capped(db, capped(10), 10, key="all-10") == 2  # counted again
    engine.dispose()


def test_reading_connections_on_postgresql_run_in_autocommit_and_go_back_as_they_were() -> None:
    import os

    url = os.environ.get("KEHU_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL run skipped: set KEHU_TEST_POSTGRES_URL (as .ci/run does) to run it")
    engine = make_engine(url, pool_size=1)
    try:
        with reading_connection(engine) as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
            assert connection.connection.driver_connection.autocommit  # no BEGIN, no ROLLBACK
        with engine.connect() as connection:  # the same pooled connection, as writers get it
            assert not connection.connection.driver_connection.autocommit
    finally:
        engine.dispose()


def test_pooled_postgresql_connections_are_pinged_only_after_sitting_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from sqlalchemy.exc import DBAPIError

    url = os.environ.get("KEHU_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL run skipped: set KEHU_TEST_POSTGRES_URL (as .ci/run does) to run it")
    clock = [1000.0]
    monkeypatch.setattr(kehu_db.time, "monotonic", lambda: clock[0])
    engine = make_engine(url, pool_size=1, max_overflow=0)
    killer = make_engine(url, poolclass=NullPool)

    def backend_of_next_checkout() -> int:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    def cut(pid: int) -> None:
        with killer.connect() as connection:
            assert connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar_one()

    try:
        first = backend_of_next_checkout()
        assert backend_of_next_checkout() == first  # given back and reused

        # Cut while idle for longer than PING_AFTER_IDLE: the ping finds out, a new one is used.
        cut(first)
        clock[0] += kehu_db.PING_AFTER_IDLE + 1
        second = backend_of_next_checkout()
        assert second != first

        # Cut a moment after it was given back: no ping; its next statement reports the
        # disconnect, the pool is replaced, and the next request works again.
        cut(second)
        with pytest.raises(DBAPIError) as failed:
            backend_of_next_checkout()
        assert failed.value.connection_invalidated
        assert backend_of_next_checkout() not in (first, second)
    finally:
        engine.dispose()
        killer.dispose()
