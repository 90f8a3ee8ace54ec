"""Extension points the contacts plugin offers to other plugins.

They are published at start-up through ``kehu_add_hookspecs``; a plugin that implements them
declares ``depends={"contacts": ">=1.0,<2"}`` in its manifest. Implement them like core hooks::

    import kehu
    from kehu.declarations import TimelineEntry

    @kehu.hookimpl
    def contacts_timeline(session, contact_id, user):
        return [TimelineEntry(at=t.created_at, kind="ticket", title=t.subject, url=f"/tickets/{t.id}",
                              source="tickets") for t in tickets_of(session, contact_id, user)]

    @kehu.hookimpl
    def contacts_merge(session, survivor_id, merged_id):
        session.execute(update(Ticket).where(Ticket.contact_id == merged_id).values(contact_id=survivor_id))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kehu import hookspec

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.orm import Session

    from kehu.declarations import TimelineEntry


@hookspec
def contacts_timeline(session: Session, contact_id: int, user: Any) -> list[TimelineEntry] | None:
    """Called while the contact page builds the person's timeline.

    ``user`` is the :class:`kehu.auth.CurrentUser` looking at the page: return only entries
    they may see. Returns a list of :class:`kehu.declarations.TimelineEntry` (``at`` an aware
    datetime, ``source`` your plugin's name), or ``None``. Entries of every plugin are shown
    together, newest first.
    """


@hookspec
def contacts_merge(session: Session, survivor_id: int, merged_id: int) -> None:
    """Called inside the merge transaction, before the contact ``merged_id`` is deleted.

    Repoint every row of your plugin that refers to ``merged_id`` to ``survivor_id``. Raising
    aborts the whole merge (nothing is changed). Returns nothing.
    """
