"""The stable surface for plugins (CONTRACT §10): import everything a plugin uses from here.

A plugin is a module named in ``BOT_PLUGINS`` with a module-level ``router``::

    from bot.plugin import Context, Event, Message, Router, text

    router = Router("weather")

    @router.text("weather", help="the weather where you are")
    async def weather(event: Event, ctx: Context) -> Message:
        return text(f"Sunny, {event.user.first_name}.")

The names below stay; what is behind them may move.
"""

from __future__ import annotations

from bot.cliq.events import Event
from bot.cliq.messages import Button, Message, text
from bot.context import Context
from bot.errors import ChatError, NotAuthorized
from bot.invoke import InvokeResponse
from bot.router import Router

__all__ = [
    "Button",
    "ChatError",
    "Context",
    "Event",
    "InvokeResponse",
    "Message",
    "NotAuthorized",
    "Router",
    "text",
]
