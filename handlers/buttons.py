"""Clicks on buttons the bot itself sent: connect, retry, cancel."""

from __future__ import annotations

from bot.cliq.events import Event
from bot.cliq.messages import Message, text
from bot.errors import UsageError
from handlers.commands import connect_prompt
from handlers.context import Context
from handlers.router import Router

router = Router("buttons")


@router.button()
async def button(event: Event, ctx: Context) -> Message:
    click = event.button
    assert click is not None
    action = click.data.get("action", click.name)
    if action == "connect":
        link = click.data.get("link", "")
        conn = await ctx.connections.require(link)
        return await connect_prompt(
            ctx, conn, event.user, f"Connect your account to *{conn.name}*."
        )
    job = click.data.get("job", "")
    if action == "retry" and job:
        return text(await ctx.files.retry(event.user.id, job))
    if action == "cancel" and job:
        return text(await ctx.files.cancel(event.user.id, job))
    raise UsageError("That button is not one of mine, or it is out of date.")
