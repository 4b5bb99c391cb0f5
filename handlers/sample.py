"""``/connection sample LINK`` (CONTRACT §5, §10): how to use a connection from a plugin.

Zoho shows sample code for ``invokeurl`` on every connection; this is cliqbot's: a plugin module
calling ``ctx.invoke`` with the connection, and the connection's JSON view (no secrets).
"""

from __future__ import annotations

import json

from bot.cliq.events import Event
from bot.cliq.messages import Message
from bot.context import Context
from bot.invoke import ServiceUsage
from bot.router import BOT_COMMAND, Router
from handlers.arguments import allow_only, one_word, parse_arguments
from storage.records import Connection

router = Router("sample")
connection = router.command(BOT_COMMAND)


@connection.subcommand(
    "sample", usage="sample LINK", summary="How to use a connection from your own code"
)
async def sample(event: Event, ctx: Context) -> Message:
    args = parse_arguments(event.arguments)
    allow_only(args)
    conn = await ctx.connections.require(one_word(args, "connection link name"))
    if ctx.invoker is None:
        raise RuntimeError("ctx.invoker is not wired")
    usage = await ctx.invoker.usage(conn.service)
    whose = "each user's own account" if conn.login_user_credentials else "the owner's account"
    word = f"try_{conn.link}"
    return Message(
        text=(
            f"Use *{conn.name}* from a plugin: save this as a module on the Python path and add"
            f" its name to `BOT_PLUGINS`. The chat word `{word}` then calls"
            f" {_host(usage.url)} on {whose}.\n"
            f"```python\n{snippet(conn, usage, word)}```\n"
            f"The connection:\n```json\n{json.dumps(json_view(conn, usage), indent=2)}\n```"
        ),
        card_title=f"Sample code: {conn.name}",
    )


def snippet(conn: Connection, usage: ServiceUsage, word: str) -> str:
    """A plugin module (valid Python) with one chat word that calls ``usage``'s example."""

    def literal(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a Python literal

    who = "yourself" if conn.login_user_credentials else "its owner"
    return (
        "from bot.plugin import Context, Event, Message, Router, text\n"
        "\n"
        f"router = Router({literal(f'use_{conn.link}')})\n"
        "\n"
        "\n"
        f"@router.text({literal(word)}, help={literal(f'call {conn.name} as {who}')})\n"
        f"async def call_{conn.link}(event: Event, ctx: Context) -> Message:\n"
        "    answer = await ctx.invoke(\n"
        f"        {literal(conn.link)},\n"
        "        event.user,\n"
        f"        {literal(usage.method)},\n"
        f"        {literal(usage.url)},\n"
        "    )\n"
        '    return text(f"{answer.status}: {answer.text()[:500]}")\n'
    )


def json_view(conn: Connection, usage: ServiceUsage) -> dict[str, object]:
    """What a plugin author needs to know of the connection; never a token or secret."""
    return {
        "name": conn.name,
        "link_name": conn.link,
        "service": conn.service,
        "scopes": list(conn.scopes),
        "login_user_credentials": conn.login_user_credentials,
        "published": conn.published,
        "param_type": usage.param_type,
    }


def _host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0] or url
