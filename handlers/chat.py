"""Text messages to the bot (CONTRACT §4): the words ``status``, ``connect``, ``disconnect`` and
``help``, linking codes (CONTRACT §8), mentions. The help reply lists every word registered in
the tree, plugins' too; anything no word takes gets it (:mod:`handlers.fallback`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable

from bot.cliq.events import Event
from bot.cliq.messages import Message, text
from bot.context import Context
from bot.router import Handler, Router
from handlers.prompts import connect_prompt, disconnect_user, status_message
from storage.records import Connection

router = Router("chat")

INTRO = "Send me a file (or forward one) and I save it to Dropbox in `{folder}`."
OUTRO = "Admins manage connections with `/{cmd} help`."
NOT_PUBLISHED = "No connection is published yet: an admin sets one up first."

_CODE = re.compile(r"^\s*(\d{6})\s*$")


def help_message(ctx: Context) -> Message:
    """What the bot does, and every chat word of the tree being dispatched with its help."""
    words = ctx.router.words() if ctx.router is not None else router.words()
    lines = [f"- `{word}`: {line}" if line else f"- `{word}`" for word, line in words]
    return text(
        "\n".join(
            [
                INTRO.format(folder=ctx.settings.upload_folder),
                *lines,
                OUTRO.format(cmd=ctx.settings.command_name),
            ]
        )
    )


def _linking_code(event: Event, ctx: Context) -> bool:
    return (
        event.type == "bot"
        and event.handler == "message_handler"
        and not event.attachments
        and _CODE.match(event.text) is not None
    )


@router.route(_linking_code)
async def linking_code(event: Event, ctx: Context) -> Message:
    """A message that is exactly six digits is tried as a linking code first (CONTRACT §8)."""
    reply = await ctx.accounts.verify_code(event.user, event.text.strip())
    return reply if reply is not None else help_message(ctx)


Reply = Callable[[Event, Context, Connection], Awaitable[Message]]


def _on_published(reply: Reply) -> Handler:
    """The word's reply about the published connection, or that there is none yet."""

    @functools.wraps(reply)
    async def handler(event: Event, ctx: Context) -> Message:
        conn = await ctx.connections.published()
        if conn is None:
            return text(NOT_PUBLISHED)
        return await reply(event, ctx, conn)

    return handler


@router.text("status", help="your connection and your files in flight")
@_on_published
async def status(event: Event, ctx: Context, conn: Connection) -> Message:
    return await status_message(ctx, conn, event.user)


@router.text("connect", help="connect your own account")
@_on_published
async def connect(event: Event, ctx: Context, conn: Connection) -> Message:
    if event.user.id != conn.owner_id and not conn.login_user_credentials:
        return text(
            f"*{conn.name}* runs on its owner's account for everyone: you need not connect."
        )
    return await connect_prompt(ctx, conn, event.user, f"Connect your account to *{conn.name}*.")


@router.text("disconnect", help="disconnect your account")
@_on_published
async def disconnect(event: Event, ctx: Context, conn: Connection) -> Message:
    return await disconnect_user(ctx, conn, event.user)


@router.text("help", help="this text")
async def help_(event: Event, ctx: Context) -> Message:
    return help_message(ctx)


@router.mention()
async def mention(event: Event, ctx: Context) -> Message:
    return help_message(ctx)
