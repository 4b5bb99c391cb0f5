"""The welcome handler: a greeting, what the bot does, and the user's connection status."""

from __future__ import annotations

from bot.cliq.events import Event
from bot.cliq.messages import Message, text
from bot.context import Context
from bot.router import Router
from handlers.prompts import status_message

router = Router("welcome")

INTRO = (
    "Hi {name}! Forward or send me a file and I save it to Dropbox, in `{folder}`."
    " Type `help` to see what else I do."
)


@router.welcome()
async def welcome(event: Event, ctx: Context) -> Message:
    intro = INTRO.format(name=event.user.first_name or "there", folder=ctx.settings.upload_folder)
    conn = await ctx.connections.published()
    if conn is None:
        return text(intro + "\nNo connection is published yet: an admin sets one up first.")
    status = await status_message(ctx, conn, event.user)
    return Message(text=intro + "\n\n" + status.text, card_title="Welcome")
