"""Clicks on buttons the bot itself sent, routed by the button's key (CONTRACT §4).

Cliq sends back only the key of a clicked button, so every key says what the click means:
``connect:<link name>``, ``retry:<job id>``, ``cancel:<job id>``.
"""

from __future__ import annotations

from bot.cliq.events import Event
from bot.cliq.messages import Message, text
from bot.context import Context
from bot.errors import UsageError
from bot.router import Router
from handlers.commands import connect_prompt

router = Router("buttons")

NOT_MINE = "That button is not one of mine, or it is out of date."


@router.button()
async def button(event: Event, ctx: Context) -> Message:
    click = event.button
    assert click is not None
    action, _, value = click.key.partition(":")
    if not value:
        raise UsageError(NOT_MINE)
    if action == "connect":
        conn = await ctx.connections.require(value)
        return await connect_prompt(
            ctx, conn, event.user, f"Connect your account to *{conn.name}*."
        )
    if action == "retry":
        return text(await ctx.files.retry(event.user.id, value))
    if action == "cancel":
        return text(await ctx.files.cancel(event.user.id, value))
    raise UsageError(NOT_MINE)
