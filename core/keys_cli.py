"""``kehu keys``: the state of the encryption keys, data key rotation, master key rotation."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from kehu import crypto
from kehu.models import DataKey


def _boot_with_keys():  # type: ignore[no-untyped-def]
    from kehu.cli import Failure, boot

    platform = boot()
    try:
        crypto.ensure_keys(platform)
    except crypto.KeyProblem as exc:
        raise Failure(str(exc)) from exc
    return platform


@click.group()
def keys() -> None:
    """Encryption keys of personal data."""


@keys.command(name="status")
def keys_status() -> None:
    """List the data keys and how many sealed values each one holds."""
    platform = _boot_with_keys()
    counts = crypto.count_by_key(platform)
    with platform.session() as session:
        for key in session.scalars(select(DataKey).order_by(DataKey.id)):
            state = "active" if key.active else ("retired" if key.retired_at else "old (rotation unfinished)")
            held = "" if key.purpose == crypto.INDEX else f"  {counts.get(key.id, 0)} values"
            click.echo(f"{key.id:>4}  {key.purpose:<8} {state:<26} created {key.created_at:%Y-%m-%d %H:%M}{held}")


@keys.command(name="rotate")
@click.option("--resume", is_flag=True, help="Finish an interrupted rotation instead of starting a new key.")
def keys_rotate(resume: bool) -> None:
    """Re-encrypt every personal value under a new data key, while the application serves.

    Safe to interrupt: `kehu keys rotate --resume` continues with the same key.
    """
    platform = _boot_with_keys()
    if resume:
        key_id = crypto.keyring().active_id
        click.echo(f"resuming rotation to data key {key_id}")
    else:
        key_id = crypto.start_rotation(platform)
        click.echo(f"new data key {key_id}; old keys still decrypt until the rotation ends")
    total = sum(n for k, n in crypto.count_by_key(platform).items() if k != key_id)
    with click.progressbar(length=total, label="re-encrypting", show_pos=True) as bar:
        report = crypto.rotate(platform, progress=bar.update)
    click.echo(f"rewritten {report.rewritten} values; {report.left} left on old keys")
    if report.left:
        from kehu.cli import Failure

        raise Failure(f"{report.left} values are still on old keys (writers kept changing them): "
                      f"run `kehu keys rotate --resume`")
    if report.retired:
        click.echo(f"retired data keys {', '.join(map(str, report.retired))}")


@keys.command(name="rewrap")
@click.argument("new_master_key_file", type=click.Path(dir_okay=False, path_type=Path))
def keys_rewrap(new_master_key_file: Path) -> None:
    """Wrap the data keys with a new master key (created at NEW_MASTER_KEY_FILE if missing).

    Afterwards set KEHU_MASTER_KEY_FILE to the new file on every machine and keep the old one
    until every process has restarted.
    """
    platform = _boot_with_keys()
    if crypto.ensure_master_key(new_master_key_file):
        click.echo(f"created new master key {new_master_key_file}")
    count = crypto.rewrap(platform, new_master_key_file)
    click.echo(f"rewrapped {count} data keys: now set KEHU_MASTER_KEY_FILE={new_master_key_file}")
