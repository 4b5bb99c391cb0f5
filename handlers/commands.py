"""The slash command ``/connection`` (CONTRACT §5): its usage and what every user may run.

The command's name is ``BOT_COMMAND_NAME``; its subcommands are registered here and in
:mod:`handlers.services` and :mod:`handlers.admin`. Its usage (``help``, and every usage error)
and its suggestions are generated from those registrations (:mod:`bot.router`).
"""

from __future__ import annotations

from bot.admin import OwnedConnection, SharedConnection
from bot.cliq.events import Event
from bot.cliq.messages import Message, Slide, text
from bot.context import Context
from bot.errors import Conflict, UsageError
from bot.router import BOT_COMMAND, Router
from handlers.arguments import allow_only, parse_arguments
from handlers.prompts import connect_prompt, disconnect_user, status_message
from storage.records import Connection

router = Router("commands")
connection = router.command(BOT_COMMAND)

MINE = ("Connection", "Link name", "Service", "Status", "Shared", "Published")
SHARED = ("Connection", "Link name", "Service", "Status", "Account")


@connection.subcommand("help", summary="How to use this command")
async def help_(event: Event, ctx: Context) -> Message:
    return text(connection.usage(ctx))


async def _named_or_published(ctx: Context, line: str) -> Connection:
    """The connection a ``[LINK]`` argument names, else the published one."""
    args = parse_arguments(line)
    allow_only(args)
    if args.words:
        return await ctx.connections.require(args.words[0])
    conn = await ctx.connections.published()
    if conn is None:
        raise UsageError("No connection is published yet; name one.")
    return conn


@connection.subcommand("list", summary="Your connections and the ones shared with you")
async def list_(event: Event, ctx: Context) -> Message:
    allow_only(parse_arguments(event.arguments))
    overview = await ctx.admin.overview(event.user)
    sections = (
        ("My connections", MINE, [_my_row(m) for m in overview.mine]),
        ("Shared connections", SHARED, [_shared_row(s) for s in overview.shared]),
    )
    lines: list[str] = []
    for title, _, rows in sections:
        lines.append(f"*{title}*")
        lines += [f"- {r['Connection']} (`{r['Link name']}`): {r['Status']}" for r in rows] or [
            "- none"
        ]
    # Tables only where there is something to show; the text lists both either way.
    slides = tuple(Slide.table(title, headers, rows) for title, headers, rows in sections if rows)
    return Message(text="\n".join(lines), card_title="Connections", slides=slides)


def _my_row(mine: OwnedConnection) -> dict[str, str]:
    c = mine.connection
    return {
        "Connection": c.name,
        "Link name": c.link,
        "Service": c.service,
        "Status": mine.status,
        "Shared": "on" if c.login_user_credentials else "off",
        "Published": "yes" if c.published else "no",
    }


def _shared_row(shared: SharedConnection) -> dict[str, str]:
    c, auth = shared.connection, shared.authorization
    return {
        "Connection": c.name,
        "Link name": c.link,
        "Service": c.service,
        "Status": auth.status,
        "Account": auth.account_email or auth.account_name,
    }


@connection.subcommand("status", usage="status [LINK]", summary="Connection status")
async def status(event: Event, ctx: Context) -> Message:
    args = parse_arguments(event.arguments)
    allow_only(args)
    if args.words:
        conn = await ctx.connections.require(args.words[0])
    else:
        published = await ctx.connections.published()
        if published is None:
            return text("No connection is published, so the bot keeps no files yet.")
        conn = published
    return await status_message(ctx, conn, event.user)


@connection.subcommand(
    "connect", usage="connect [LINK]", summary="Get a link to connect your account"
)
async def connect(event: Event, ctx: Context) -> Message:
    conn = await _named_or_published(ctx, event.arguments)
    user = event.user
    if user.id != conn.owner_id and not conn.login_user_credentials:
        raise Conflict(
            f"`{conn.link}` runs on its owner's account for everyone; only the owner connects it."
        )
    whose = "your account" if user.id != conn.owner_id else "the connection's account (yours)"
    return await connect_prompt(ctx, conn, user, f"Connect {whose} to *{conn.name}*.")


@connection.subcommand(
    "disconnect",
    usage="disconnect [LINK]",
    summary="Disconnect your own account from a connection",
)
async def disconnect(event: Event, ctx: Context) -> Message:
    conn = await _named_or_published(ctx, event.arguments)
    return await disconnect_user(ctx, conn, event.user)
