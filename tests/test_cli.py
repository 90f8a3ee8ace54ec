"""The ``kehu`` command line as a whole (each command group is tested with its module)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kehu.cli import main


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_a_bad_setting_is_one_line_and_exit_code_2_whatever_the_command(
        value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KEHU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEHU_DATABASE_URL", f"sqlite:///{tmp_path / 'kehu.sqlite3'}")
    monkeypatch.setenv("KEHU_WEB_THREADS", value)
    with pytest.raises(SystemExit) as stopped:
        main(["modules", "list"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.strip().splitlines() == [
        f"kehu: configuration error: KEHU_WEB_THREADS must be a whole number of at least 1, not {value!r}"]


def test_web_threads_default_by_database_and_setting_wins() -> None:
    from kehu.config import Settings

    assert Settings.from_env({"KEHU_DATABASE_URL": "sqlite:///x.sqlite3"}).web_threads == 2
    assert Settings.from_env({"KEHU_DATABASE_URL": "postgresql://db/kehu"}).web_threads == 8
    assert Settings.from_env({"KEHU_DATABASE_URL": "sqlite:///x.sqlite3", "KEHU_WEB_THREADS": "6"}).web_threads == 6


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_refuses_a_port_outside_0_to_65535_before_starting_anything(
        port: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KEHU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEHU_DATABASE_URL", f"sqlite:///{tmp_path / 'kehu.sqlite3'}")
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", port])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "Invalid value for '--port'" in error and "Traceback" not in error
    assert not (tmp_path / "kehu.sqlite3").exists()
