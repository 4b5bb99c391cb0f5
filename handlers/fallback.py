"""What no other registration took, built-in or plugin: included last (CONTRACT §4).

Text that is no word gets the help reply; a click on a key nobody registered is refused.
"""

from __future__ import annotations

from bot.cliq.events import Event
from bot.cliq.messages import Message
from bot.context import Context
from bot.errors import UsageError
from bot.router import Router
from handlers.buttons import NOT_MINE
from handlers.chat import help_message

router = Router("fallback")


@router.message(attachments=False)
async def anything_else(event: Event, ctx: Context) -> Message:
    return help_message(ctx)


@router.button()
async def not_mine(event: Event, ctx: Context) -> Message:
    raise UsageError(NOT_MINE)
