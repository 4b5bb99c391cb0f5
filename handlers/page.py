"""The way to the connections page (CONTRACT §11): the chat word ``connections`` and
``/connection page`` answer with a button to a single-use sign-in link for the asking user."""

from __future__ import annotations

from bot import durations
from bot.cliq.events import Event
from bot.cliq.messages import Button, Message
from bot.context import Context
from bot.errors import Conflict
from bot.router import BOT_COMMAND, Router
from handlers.arguments import allow_only, parse_arguments

router = Router("page")
connection = router.command(BOT_COMMAND)


async def _page_link(event: Event, ctx: Context) -> Message:
    if ctx.signin is None:
        raise Conflict("The connections page is not set up on this bot.")
    url = await ctx.signin.link(event.user)
    ttl = durations.words(ctx.settings.connect_link_ttl)
    return Message(
        text=(
            "Your connections page: your connections, the ones shared with you, and your files"
            f" with their progress.\nThe sign-in link works once and for {ttl}; ask again for"
            " a new one."
        ),
        card_title="Your connections page",
        buttons=(Button.open_url("Open the page", url),),
    )


@router.text("connections", help="your connections page")
async def connections(event: Event, ctx: Context) -> Message:
    return await _page_link(event, ctx)


@connection.subcommand("page", summary="A sign-in link to your connections page")
async def page(event: Event, ctx: Context) -> Message:
    allow_only(parse_arguments(event.arguments))
    return await _page_link(event, ctx)
