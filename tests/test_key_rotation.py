"""Data key rotation while other threads keep writing: nothing lost, nothing left on old keys."""

from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kehu import crypto
from kehu.config import Settings
from kehu.keys_cli import keys
from kehu.platform import Platform
from tests.conftest import boot_with


class RotationBase(DeclarativeBase):
    """Outside the application's metadata (no drift in schema checks)."""


class Secret(RotationBase, crypto.SealedRow):
    __tablename__ = "test_rotation_secret"

    id: Mapped[int] = mapped_column(primary_key=True)
    expected: Mapped[str] = mapped_column(String(60))
    value_sealed: Mapped[bytes | None] = mapped_column(crypto.Encrypted(), nullable=True)
    value = crypto.sealed("value_sealed")


@pytest.fixture
def platform(settings: Settings):  # type: ignore[no-untyped-def]
    platform = boot_with(settings)
    Secret.__table__.create(platform.engine)
    yield platform
    Secret.__table__.drop(platform.engine)


def test_rotation_under_concurrent_writes_leaves_nothing_on_old_keys(platform: Platform) -> None:
    rows = 1500
    with platform.session() as db:
        db.add_all(Secret(expected=f"v{i}-0", value=f"v{i}-0") for i in range(rows))
    old_key = crypto.keyring().active_id
    stop = threading.Event()
    writes = {"count": 0}

    def writer(offset: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            row_id = (offset * 7919 + n * 104729) % rows + 1
            new_value = f"v{row_id - 1}-w{offset}-{n}"
            with platform.session() as db:
                secret = db.get(Secret, row_id)
                assert secret is not None
                secret.value = new_value
                secret.expected = new_value  # the plain copy, to check nothing was lost
            writes["count"] += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    new_key = crypto.start_rotation(platform)
    report = crypto.rotate(platform, batch=200)
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    # writers that sealed under the old key after the first pass are caught by a resumed run
    report = crypto.rotate(platform)

    assert writes["count"] > 20, "the writers did not run during the rotation"
    assert new_key != old_key
    assert report.left == 0
    counts = crypto.count_by_key(platform)
    assert set(counts) == {new_key} and counts[new_key] == rows
    with platform.session() as db:
        for secret in db.scalars(select(Secret)):
            assert secret.value == secret.expected
    assert old_key in crypto.keyring().retired


def test_old_key_still_decrypts_until_rotation_finishes(platform: Platform) -> None:
    with platform.session() as db:
        db.add(Secret(expected="a", value="a"))
    crypto.start_rotation(platform)
    with platform.session() as db:
        assert db.scalars(select(Secret)).one().value == "a"  # still on the old key, still readable
    assert crypto.rotate(platform).rewritten == 1


def test_keys_cli_rotate_and_status(platform: Platform, settings: Settings) -> None:
    with platform.session() as db:
        db.add_all(Secret(expected=str(i), value=str(i)) for i in range(30))
    runner = CliRunner()
    result = runner.invoke(keys, ["rotate"])
    assert result.exit_code == 0, result.output
    assert "rewritten 30 values; 0 left on old keys" in result.output
    status = runner.invoke(keys, ["status"])
    assert status.exit_code == 0, status.output
    assert "active" in status.output and "30 values" in status.output and "retired" in status.output
