"""The admin subcommands of ``/connection`` (CONTRACT §5): create, set, publish, unpublish,
revoke, delete. Each parses, calls the rules (:class:`bot.admin.ConnectionAdmin`, the same code
the connections page calls) and words the reply."""

from __future__ import annotations

from collections.abc import Collection

from bot.cliq.events import Event
from bot.cliq.messages import Message, text
from bot.context import Context
from bot.errors import UsageError
from bot.router import BOT_COMMAND, Router
from handlers.arguments import allow_only, one_word, parse_arguments, scopes, switch
from handlers.prompts import connect_prompt, unreachable_note

router = Router("admin")
connection = router.command(
    BOT_COMMAND,
    epilog='Quote names with spaces: create "Team Dropbox" service=dropbox'
    " scopes=files.content.write",
)

LINK = "connection link name"
SWITCH = "login_user_credentials"


def _read(event: Event, what: str, options: Collection[str] = ()) -> tuple[str, dict[str, str]]:
    """The one word a subcommand takes (``what`` it names) and its options."""
    args = parse_arguments(event.arguments)
    word = one_word(args, what)
    allow_only(args, options)
    return word, args.options


def _link(event: Event) -> str:
    """The one link name a subcommand takes, and no options."""
    return _read(event, LINK)[0]


@connection.subcommand(
    "create",
    usage="create NAME service=S scopes=a,b [login_user_credentials=on|off]",
    summary="Create a connection",
    admin=True,
)
async def create(event: Event, ctx: Context) -> Message:
    name, given = _read(
        event, "connection (quote names with spaces)", ("service", "scopes", SWITCH)
    )
    if not given.get("service"):
        raise UsageError("Say which service: service=dropbox.")
    if "scopes" not in given:
        raise UsageError("Say which scopes: scopes=a,b.")
    conn = await ctx.admin.create(
        event.user,
        name,
        service=given["service"],
        scopes=scopes(given["scopes"]),
        login_user_credentials=switch(given.get(SWITCH, "on")),
    )
    mode = (
        "each user connects their own account"
        if conn.login_user_credentials
        else "it runs on your account for everyone"
    )
    return await connect_prompt(
        ctx,
        conn,
        event.user,
        f"Created the connection *{conn.name}* with link name `{conn.link}` ({mode}).\n"
        f"Connect your account, then `publish {conn.link}`.",
    )


@connection.subcommand(
    "set",
    usage="set LINK [name=N] [scopes=a,b] [login_user_credentials=on|off]",
    summary="Change a connection's name, scopes or switch",
    admin=True,
)
async def set_(event: Event, ctx: Context) -> Message:
    link, given = _read(event, LINK, ("name", "scopes", SWITCH))
    updated = await ctx.admin.change(
        event.user,
        link,
        name=given.get("name"),
        scopes=scopes(given["scopes"]) if "scopes" in given else None,
        login_user_credentials=switch(given[SWITCH]) if SWITCH in given else None,
    )
    return text(
        f"Updated `{link}`: name *{updated.name}*, scopes {', '.join(updated.scopes)},"
        f" use credentials of login user {'on' if updated.login_user_credentials else 'off'}."
        " The link name stays the same."
    )


@connection.subcommand(
    "publish",
    usage="publish LINK",
    summary="Make a connection the one files are saved with",
    admin=True,
)
async def publish(event: Event, ctx: Context) -> Message:
    link = _link(event)
    published = await ctx.admin.publish(event.user, link)
    previous = published.previous
    note = f" (`{'`, `'.join(previous)}` is no longer published)" if previous else ""
    whose = (
        "each sender's own account"
        if published.connection.login_user_credentials
        else "the owner's account"
    )
    return text(f"Published `{link}`{note}. Files sent to the bot now go to {whose}.")


@connection.subcommand(
    "unpublish", usage="unpublish LINK", summary="Stop saving files with a connection", admin=True
)
async def unpublish(event: Event, ctx: Context) -> Message:
    link = _link(event)
    if not await ctx.admin.unpublish(event.user, link):
        return text(f"`{link}` is not published.")
    return text(f"Unpublished `{link}`. The bot keeps no new files until one is published.")


@connection.subcommand(
    "revoke", usage="revoke LINK", summary="Revoke a connection's owner authorization"
)
async def revoke(event: Event, ctx: Context) -> Message:
    link = _link(event)
    outcome = await ctx.admin.revoke(event.user, link)
    if not outcome.had_authorization:
        return text(f"`{link}` was not connected; its status is `disconnected`.")
    return text(f"Revoked `{link}`; its status is `disconnected`.{unreachable_note(outcome)}")


@connection.subcommand("delete", usage="delete LINK", summary="Delete a connection", admin=True)
async def delete(event: Event, ctx: Context) -> Message:
    link = _link(event)
    await ctx.admin.delete(event.user, link)
    return text(f"Deleted `{link}` and every authorization of it.")
