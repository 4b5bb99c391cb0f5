"""A module that does not import: it registers a handler that is not ``async def``."""

from __future__ import annotations

from bot.plugin import Event, Router

router = Router("broken")


@router.text("broken")  # raises TypeError at import: handlers are async functions
def not_async(event: Event, ctx: object) -> None:
    return None
