"""Administration of users, roles, API tokens and the audit log (pages)."""

from __future__ import annotations

from starlette.routing import Route


def routes() -> list[Route]:
    return []
