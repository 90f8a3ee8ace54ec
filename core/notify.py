"""Sending a message to a person through the channels plugins contribute.

Channels come from the ``kehu_notification_channels`` hook: objects with a ``name`` and a
``send(recipient, subject, body)`` method, and optionally ``reaches(recipient)``. A recipient
is a dict of the person's addresses as ``kehu_person_summary`` gives them (``email``,
``phone``, ``wechat_openid``, ...). :func:`offer` sends through every channel that reaches the
recipient; one channel failing does not stop the others.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from kehu.platform import Platform

log = logging.getLogger(__name__)

#: Which recipient value a channel needs, by channel name (a channel may decide itself with a
#: ``reaches(recipient)`` method).
REACH = {"email": "email", "sms": "phone", "wechat": "wechat_openid"}


def channels(platform: Platform) -> list[Any]:
    """Every channel the enabled plugins contribute."""
    found: list[Any] = []
    for result in platform.pm.hook.kehu_notification_channels():
        found.extend(result if isinstance(result, (list, tuple)) else [result])
    return [c for c in found if getattr(c, "name", "") and callable(getattr(c, "send", None))]


def reaches(channel: Any, recipient: dict[str, Any]) -> bool:
    method = getattr(channel, "reaches", None)
    if callable(method):
        return bool(method(recipient))
    return bool(recipient.get(REACH.get(channel.name, channel.name)))


def offer(platform: Platform, recipient: dict[str, Any], subject: str, body: str) -> tuple[list[str], list[str]]:
    """Send through every channel that reaches ``recipient``; returns (delivered, errors)."""
    delivered: list[str] = []
    errors: list[str] = []
    for channel in channels(platform):
        if not reaches(channel, recipient):
            continue
        try:
            channel.send(recipient, subject, body)
        except Exception as exc:  # noqa: BLE001  (one channel failing must not stop the others)
            log.warning("channel %s failed: %s", channel.name, exc)
            errors.append(f"{channel.name}: {type(exc).__name__}: {exc}"[:500])
        else:
            delivered.append(channel.name)
    return delivered, errors
