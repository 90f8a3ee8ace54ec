"""The small value types that plugins return from hooks.

Everything a plugin declares to the core (permissions, roles, record rules, personal fields,
menu entries, page panels, schedules, settings) is one of these plain dataclasses, so a
plugin never needs to reach into the core's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Permission:
    """A permission such as ``contacts.read``; the part before the dot is the plugin's name."""

    name: str
    label: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RoleTemplate:
    """A default role a plugin ships; created once, then owned by the administrators."""

    name: str
    permissions: tuple[str, ...]
    label: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordRule:
    """Restricts which rows of ``model`` a user sees.

    ``where(user)`` returns a SQLAlchemy boolean clause over ``model``'s columns, or ``None``
    when the rule does not restrict that user (for example because they hold ``bypass``).
    Every rule that applies is AND-ed into list queries and by-id lookups.
    """

    model: type
    where: Callable[[Any], Any]
    name: str = ""


@dataclass(frozen=True)
class PersonalField:
    """A column holding personal data (PIPL): drives masking, export and erasure.

    ``view_permission`` unmasks it, ``write_permission`` allows changing it, ``mask`` turns a
    plain value into what other users see.
    """

    model: type
    attribute: str
    view_permission: str
    write_permission: str
    mask: Callable[[str], str] | None = None


@dataclass(frozen=True)
class MenuItem:
    """A navigation entry. ``permission`` hides it from users who lack it."""

    label: dict[str, str]
    url: str
    permission: str | None = None
    order: int = 100
    icon: str = ""


@dataclass(frozen=True)
class Panel:
    """A piece of HTML a plugin puts into a named slot of someone else's page."""

    title: str
    html: str
    order: int = 100


@dataclass(frozen=True)
class Schedule:
    """Run the task ``task`` (a name returned by ``kehu_tasks``) every ``seconds``."""

    task: str
    seconds: float
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Setting:
    """A configuration value a plugin declares (CKAN-style config declaration).

    It is read from the environment variable ``KEHU_<PLUGIN>_<NAME>`` (upper case) and falls
    back to ``default``.
    """

    name: str
    default: str
    description: str
    secret: bool = False


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a person's timeline (a note, a call, a ticket event, an order...)."""

    at: Any  # an aware datetime
    kind: str
    title: str
    body: str = ""
    url: str = ""
    source: str = ""  # the plugin that contributed it
