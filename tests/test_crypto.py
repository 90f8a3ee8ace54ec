"""Field-level encryption: round trips, tamper and transplant detection, keys, blind indexes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kehu import crypto
from kehu.config import Settings
from kehu.models import DataKey
from kehu.platform import Platform
from tests.conftest import boot_with

AAD = b"contacts_contact_point.value_sealed.0123456789abcdef"


@pytest.fixture
def platform(settings: Settings) -> Platform:
    return boot_with(settings)


@pytest.fixture
def keyring(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Keys on a SQLite deployment: for tests of the cipher itself, which no backend changes."""
    monkeypatch.setenv("KEHU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEHU_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.sqlite3'}")
    monkeypatch.setenv("KEHU_MASTER_KEY_FILE", str(tmp_path / "master.key"))
    settings = Settings.from_env()
    settings.ensure_home()
    boot_with(settings)


values = st.one_of(
    st.just(""),
    st.text(max_size=64),
    st.text(max_size=16).map(lambda s: s + "*" * 3),  # trailing '*' (sqlalchemy-utils' padding bug)
    st.text(alphabet=st.sampled_from("\x00a"), max_size=32),  # NUL bytes
    st.text(alphabet=st.sampled_from("😀👨‍👩‍👧客户"), max_size=32),
    st.text(min_size=4096, max_size=4096, alphabet=st.characters(codec="utf-8")),
)


def test_round_trip_of_ten_thousand_values(keyring: None) -> None:
    seen = 0

    @hsettings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(values)
    def round_trip(value: str) -> None:
        nonlocal seen
        blob = crypto.encrypt(value, AAD)
        assert crypto.decrypt(blob, AAD) == value
        seen += 1

    round_trip()
    assert seen >= 10_000


def test_same_value_never_gives_the_same_ciphertext(keyring: None) -> None:
    blobs = {crypto.encrypt("13800138000", AAD) for _ in range(100)}
    assert len(blobs) == 100


@hsettings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(value=st.text(max_size=40), data=st.data())
def test_flipping_any_bit_fails_to_decrypt(keyring: None, value: str, data: st.DataObject) -> None:
    blob = bytearray(crypto.encrypt(value, AAD))
    bit = data.draw(st.integers(0, len(blob) * 8 - 1))
    blob[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(bytes(blob), AAD)


def test_other_row_or_column_fails_to_decrypt(keyring: None) -> None:
    blob = crypto.encrypt("zhang@example.cn", AAD)
    for other in (b"contacts_contact_point.value_sealed.ffffffffffffffff",
                  b"contacts_contact.street_sealed.0123456789abcdef",
                  b"tickets_ticket.value_sealed.0123456789abcdef"):
        with pytest.raises(crypto.DecryptionFailed):
            crypto.decrypt(blob, other)


class ProbeBase(DeclarativeBase):
    """Kept out of the application's metadata, so schema drift checks do not see it."""


class Probe(ProbeBase, crypto.SealedRow):
    __tablename__ = "test_crypto_probe"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(20), default="")
    secret_sealed: Mapped[bytes | None] = mapped_column(crypto.Encrypted(), nullable=True)
    other_sealed: Mapped[bytes | None] = mapped_column(crypto.Encrypted(), nullable=True)
    secret = crypto.sealed("secret_sealed")
    other = crypto.sealed("other_sealed")


@pytest.fixture
def probe_table(platform: Platform):  # type: ignore[no-untyped-def]
    Probe.__table__.create(platform.engine)
    yield Probe
    Probe.__table__.drop(platform.engine)


def test_sealed_attribute_is_stored_encrypted_and_bound_to_its_row(platform: Platform, probe_table: type) -> None:
    with platform.session() as db:
        first = Probe(label="a", secret="13800138000")
        second = Probe(label="b", secret="13900139000")
        db.add_all([first, second])
    with platform.session() as db:
        first, second = db.scalars(select(Probe).order_by(Probe.id)).all()
        assert b"13800138000" not in first.secret_sealed
        assert (first.secret, second.secret) == ("13800138000", "13900139000")
        second.secret_sealed = first.secret_sealed  # copy a ciphertext to another row
        first.other_sealed = first.secret_sealed  # ... and to another column
    with platform.session() as db:
        first, second = db.scalars(select(Probe).order_by(Probe.id)).all()
        with pytest.raises(crypto.DecryptionFailed):
            _ = second.secret
        with pytest.raises(crypto.DecryptionFailed):
            _ = first.other


def test_encrypted_column_refuses_plaintext(platform: Platform, probe_table: type) -> None:
    with pytest.raises(Exception, match="sealed"):
        with platform.session() as db:
            db.add(Probe(label="x", secret_sealed="13800138000"))  # type: ignore[arg-type]


def test_empty_and_none_are_stored_as_null(platform: Platform, probe_table: type) -> None:
    with platform.session() as db:
        db.add(Probe(label="empty", secret=""))
    with platform.session() as db:
        row = db.scalars(select(Probe)).one()
        assert row.secret_sealed is None and row.secret is None


def test_master_key_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    assert crypto.ensure_master_key(path) is True
    assert crypto.ensure_master_key(path) is False
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(crypto.read_master_key(path)) == 32


def test_missing_or_wrong_master_key_stops_with_a_clear_message(settings: Settings) -> None:
    platform = boot_with(settings)
    settings.master_key_file.rename(settings.master_key_file.with_suffix(".moved"))
    with pytest.raises(crypto.KeyProblem, match="does not exist"):
        crypto.ensure_keys(platform)
    crypto.ensure_master_key(settings.master_key_file)  # a new, different key
    with pytest.raises(crypto.KeyProblem, match="wrong key file"):
        crypto.ensure_keys(platform)


def test_blind_index_is_deterministic_keyed_and_truncated(keyring: None) -> None:
    a = crypto.blind_index("phone:+8613800138000", bits=64)
    assert a == crypto.blind_index("phone:+8613800138000", bits=64)
    assert a != crypto.blind_index("phone:+8613900139000", bits=64)
    assert len(a) == 16 and len(crypto.blind_index("x", bits=32)) == 8
    with pytest.raises(ValueError):
        crypto.blind_index("x", bits=7)
    # the index key is not a hash of the value alone: another database gives another index
    import hashlib
    assert a != hashlib.sha256(b"phone:+8613800138000").hexdigest()[:16]


def test_master_key_rewrap(platform: Platform, settings: Settings, tmp_path: Path) -> None:
    blob = crypto.encrypt("secret", AAD)
    new_file = tmp_path / "new-master.key"
    crypto.ensure_master_key(new_file)
    assert crypto.rewrap(platform, new_file) == 2  # one encrypt key, one index key
    new_file.replace(settings.master_key_file)
    crypto.ensure_keys(platform)
    assert crypto.decrypt(blob, AAD) == "secret"
    with platform.session() as db:
        assert db.scalar(select(DataKey.id).limit(1)) is not None


def test_serve_and_worker_refuse_a_wrong_master_key_in_one_line(settings: Settings) -> None:
    from click.testing import CliRunner

    from kehu.cli import cli

    boot_with(settings)
    settings.master_key_file.unlink()
    crypto.ensure_master_key(settings.master_key_file)  # not the key this database was made with
    for command in (["serve", "--no-worker"], ["worker"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1, result.output
        assert "wrong key file" in result.output and len(result.output.strip().splitlines()) == 1
