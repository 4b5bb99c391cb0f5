"""Text messages to the bot: ``help``, ``status``, ``connect``, ``disconnect``, linking codes."""

from __future__ import annotations

import re

from bot.cliq.events import Event
from bot.cliq.messages import Message, text
from bot.context import Context
from bot.router import Router
from handlers.commands import connect_prompt, disconnect_user, status_message

router = Router("chat")

HELP = """\
Send me a file (or forward one) and I save it to Dropbox in `{folder}`.
- `status`: your connection and your files in flight
- `connect`: connect your own account
- `disconnect`: disconnect your account
- `help`: this text
Admins manage connections with `/{cmd} help`."""

_CODE = re.compile(r"^\s*(\d{6})\s*$")


def help_message(ctx: Context) -> Message:
    return text(HELP.format(folder=ctx.settings.upload_folder, cmd=ctx.settings.command_name))


@router.mention()
async def mention(event: Event, ctx: Context) -> Message:
    return help_message(ctx)


@router.message(attachments=False)
async def chat(event: Event, ctx: Context) -> Message:
    words = event.text.strip().lower().split()
    word = words[0] if words else ""
    if (match := _CODE.match(event.text)) is not None:
        reply = await ctx.accounts.verify_code(event.user, match.group(1))
        if reply is not None:
            return reply
    if word not in ("status", "connect", "disconnect"):
        return help_message(ctx)
    conn = await ctx.connections.published()
    if conn is None:
        return text("No connection is published yet: an admin sets one up first.")
    if word == "status":
        return await status_message(ctx, conn, event.user)
    if word == "disconnect":
        return await disconnect_user(ctx, conn, event.user)
    if event.user.id != conn.owner_id and not conn.login_user_credentials:
        return text(
            f"*{conn.name}* runs on its owner's account for everyone: you need not connect."
        )
    return await connect_prompt(ctx, conn, event.user, f"Connect your account to *{conn.name}*.")
