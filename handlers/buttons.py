"""Clicks on buttons the bot itself sent, routed by the button's key (CONTRACT §4).

Cliq sends back only the key of a clicked button, so every key says what the click means:
``connect:<link name>``, ``retry:<job id>``, ``cancel:<job id>``; the router hands each handler
the part after the prefix as ``event.button.key``. Any other click is answered by
:mod:`handlers.fallback`, after plugins' keys.
"""

from __future__ import annotations

from bot.cliq.events import Event
from bot.cliq.messages import Message, text
from bot.context import Context
from bot.router import Router
from handlers.prompts import connect_prompt

router = Router("buttons")

NOT_MINE = "That button is not one of mine, or it is out of date."


def _value(event: Event) -> str:
    return event.button.key if event.button is not None else ""


@router.button("connect")
async def connect(event: Event, ctx: Context) -> Message:
    conn = await ctx.connections.require(_value(event))
    return await connect_prompt(ctx, conn, event.user, f"Connect your account to *{conn.name}*.")


@router.button("retry")
async def retry(event: Event, ctx: Context) -> Message:
    return text(await ctx.files.retry(event.user.id, _value(event)))


@router.button("cancel")
async def cancel(event: Event, ctx: Context) -> Message:
    return text(await ctx.files.cancel(event.user.id, _value(event)))
