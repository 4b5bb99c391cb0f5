"""The router tree (bot/router.py): nesting, first match wins, generated help, usage, suggestions.

Plain events and a context without stores: nothing here needs the database.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bot.cliq.events import Event, parse_event
from bot.cliq.messages import Message, Suggestions, text
from bot.config import Settings
from bot.context import Context
from bot.errors import UsageError
from bot.router import BOT_COMMAND, Router, RouterError, dispatch

USER = {"id": "55501", "email": "ana@example.com", "first_name": "Ana"}
ADMIN_EMAIL = "admin@example.com"


def context(**settings: Any) -> Context:
    none: Any = None
    return Context(
        settings=Settings(admins=frozenset({ADMIN_EMAIL}), **settings),
        catalog=none,
        connections=none,
        authorizations=none,
        audit=none,
        accounts=none,
        files=none,
    )


def event(kind: str, handler: str, **params: Any) -> Event:
    name = params.pop("name", "Files Bot")
    body = {"type": kind, "handler": {"type": handler}, "name": name, "params": params}
    body["params"].setdefault("user", USER)
    return parse_event(json.dumps(body).encode())


def said(words: str) -> Event:
    return event("bot", "message_handler", message={"text": words})


def clicked(key: str) -> Event:
    return event("function", "button_handler", arguments={"key": key}, target={"name": "b"})


def command(arguments: str, name: str = "connection", *, admin: bool = False) -> Event:
    user = {**USER, "email": ADMIN_EMAIL} if admin else USER
    return event("command", "execution_handler", name=name, arguments=arguments, user=user)


def suggestion(arguments: str, name: str = "connection") -> Event:
    return event("command", "suggestion_handler", name=name, arguments=arguments)


def answer(reply: str) -> Any:
    async def handler(event: Event, ctx: Context) -> Message:
        return text(reply)

    return handler


async def reply_to(router: Router, ev: Event, ctx: Context | None = None) -> str:
    message, _ = await dispatch(router, ev, ctx or context())
    return message.text


# -- the tree ----------------------------------------------------------------------------------


def test_include_router_refuses_a_cycle() -> None:
    a, b, c = Router("a"), Router("b"), Router("c")
    a.include_router(b)
    b.include_router(c)
    with pytest.raises(RouterError, match="cycle"):
        c.include_router(a)
    with pytest.raises(RouterError, match="cycle"):
        a.include_router(a)


def test_include_router_refuses_a_router_attached_twice_in_one_tree() -> None:
    root, a, b, shared = Router("root"), Router("a"), Router("b"), Router("shared")
    root.include_router(a)
    a.include_router(shared)
    with pytest.raises(RouterError, match="attached twice"):
        a.include_router(shared)
    with pytest.raises(RouterError, match="attached twice"):
        root.include_router(shared)  # already below a
    b.include_router(shared)  # another tree: fine until the two trees meet
    with pytest.raises(RouterError, match="attached twice"):
        root.include_router(b)
    with pytest.raises(TypeError):
        root.include_router("a")  # type: ignore[arg-type]


def test_one_router_serves_several_trees() -> None:
    """One application builds one tree; a process may run several (tests, the sandbox)."""
    feature = Router("feature")
    for _ in range(3):
        Router("app").include_router(feature)


def test_registering_a_non_coroutine_fails_at_once() -> None:
    router = Router("r")

    def plain(event: Event, ctx: Context) -> Message:
        return text("no")

    registrations = [
        router.text("hi"),
        router.button("b"),
        router.welcome(),
        router.message(),
        router.command("weather"),
        router.command("weather").subcommand("now"),
        router.command("weather").suggestions,
    ]
    for register in registrations:
        with pytest.raises(TypeError, match="async"):
            register(plain)  # type: ignore[arg-type]


def test_registrations_are_checked() -> None:
    router = Router("r")
    with pytest.raises(ValueError, match="one word"):
        router.text("two words")
    with pytest.raises(ValueError, match="one word"):
        router.command("")
    cmd = router.command("weather")
    assert router.command("weather") is cmd  # one command of a name per router
    cmd.subcommand("now")(answer("now"))
    with pytest.raises(RouterError, match="twice"):
        cmd.subcommand("NOW")(answer("again"))


# -- first match wins ----------------------------------------------------------------------------


async def test_first_match_wins_in_registration_order() -> None:
    root, first, second = Router("root"), Router("first"), Router("second")
    first.message()(answer("first, any message"))
    second.text("status")(answer("second, status"))
    root.include_router(first)
    root.include_router(second)
    assert await reply_to(root, said("status")) == "first, any message"


async def test_built_in_words_win_over_a_later_routers_same_word() -> None:
    root, builtin, plugin = Router("root"), Router("builtin"), Router("plugin")
    builtin.text("status", help="the built-in one")(answer("built-in status"))
    plugin.text("STATUS", help="the plugin's")(answer("plugin status"))
    plugin.text("weather", help="the weather")(answer("sunny"))
    root.include_router(builtin)
    root.include_router(plugin)
    assert await reply_to(root, said("Status please")) == "built-in status"
    assert await reply_to(root, said("  weather in Lisbon")) == "sunny"
    assert root.words() == [("status", "the built-in one"), ("weather", "the weather")]


async def test_a_text_word_is_the_first_word_and_sees_the_whole_text() -> None:
    router = Router("r")
    seen: list[str] = []

    @router.text("echo")
    async def echo(event: Event, ctx: Context) -> Message:
        seen.append(event.text)
        return text("ok")

    assert await reply_to(router, said("ECHO this, please")) == "ok"
    assert seen == ["ECHO this, please"]
    assert "does not handle" in await reply_to(router, said("echoes"))
    attachment = {"name": "a.txt", "id": "1", "url": "https://files.example/a"}
    with_file = event("bot", "message_handler", message={"text": "echo"}, attachments=[attachment])
    assert "does not handle" in await reply_to(router, with_file)


# -- buttons -------------------------------------------------------------------------------------


async def test_buttons_route_by_key_prefix_and_see_the_rest_of_the_key() -> None:
    router = Router("r")
    seen: list[str] = []

    @router.button("retry")
    async def retry(event: Event, ctx: Context) -> Message:
        assert event.button is not None
        seen.append(event.button.key)
        return text("retrying")

    @router.button()
    async def other(event: Event, ctx: Context) -> Message:
        assert event.button is not None
        return text(f"not mine: {event.button.key}")

    assert await reply_to(router, clicked("retry:job:42")) == "retrying"
    assert seen == ["job:42"]
    for key in ("retry:", "retry", "retrying:1", "cancel:1", ""):
        assert await reply_to(router, clicked(key)) == f"not mine: {key}"


# -- commands, usage, suggestions ----------------------------------------------------------------


def bot_command_tree() -> Router:
    root, users, admins = Router("root"), Router("users"), Router("admins")
    cmd = users.command(BOT_COMMAND, epilog="Quote names with spaces.")

    @cmd.subcommand("help", summary="How to use this command")
    async def help_(event: Event, ctx: Context) -> Message:
        return text(cmd.usage(ctx))

    @cmd.subcommand("status", usage="status [LINK]", summary="Connection status")
    async def status(event: Event, ctx: Context) -> Message:
        return text(f"status of {event.arguments or 'the published one'}")

    @cmd.subcommand("set", usage="set LINK [name=N]", summary="Change it")
    async def refused(event: Event, ctx: Context) -> Message:
        raise UsageError("Say what to change.")

    more = admins.command(BOT_COMMAND)
    more.subcommand("create", usage=("create NAME", "create NAME service=S"), admin=True)(
        answer("created")
    )
    more.subcommand("status", usage="status OTHER")(answer("never: the first status wins"))
    root.include_router(users)
    root.include_router(admins)
    return root


async def test_subcommands_of_the_bots_command_from_several_routers() -> None:
    root = bot_command_tree()
    assert await reply_to(root, command("status  team_dropbox")) == "status of team_dropbox"
    assert await reply_to(root, command("STATUS")) == "status of the published one"
    assert await reply_to(root, command("create X", admin=True)) == "created"
    refused = await reply_to(root, command("create X"))
    assert "Only admins" in refused and "nothing" in refused


async def test_the_bots_command_name_is_the_setting() -> None:
    root = bot_command_tree()
    ctx = context(command_name="files")
    reply = await reply_to(root, command("status", name="Files"), ctx)
    assert reply == "status of the published one"
    assert "does not handle" in await reply_to(root, command("status"), ctx)
    assert (await reply_to(root, command("help", name="files"), ctx)).startswith("Usage: /files ")


async def test_usage_is_generated_from_the_registrations() -> None:
    root = bot_command_tree()
    usage = await reply_to(root, command("help"))
    assert usage == "\n".join(
        [
            "Usage: /connection <subcommand> …",
            "  help",
            "  status [LINK]",
            "  set LINK [name=N]",
            "Admins:",
            "  create NAME",
            "  create NAME service=S",
            "Quote names with spaces.",
        ]
    )
    assert await reply_to(root, command("")) == usage  # the bare command
    unknown = await reply_to(root, command("frobnicate x"))
    assert unknown == f"Unknown subcommand `frobnicate`.\n\n{usage}"
    # Every usage error a subcommand raises shows the usage.
    assert await reply_to(root, command("set x")) == f"Say what to change.\n\n{usage}"


async def test_the_subcommand_word_ends_where_a_shell_word_ends() -> None:
    root = bot_command_tree()
    assert await reply_to(root, command("\tstatus\n team_dropbox ")) == "status of team_dropbox "
    reply = await reply_to(root, command("status\u2028 x"))  # not a separator in a shell line
    assert reply.startswith("Unknown subcommand `status\u2028`.\n\nUsage: /connection"), reply


async def test_a_plugin_command_with_a_literal_name() -> None:
    root, plugin = Router("root"), Router("plugin")
    seen: list[str] = []

    @plugin.command("weather")
    async def weather(event: Event, ctx: Context) -> Message:
        seen.append(event.arguments)
        return text("sunny")

    root.include_router(plugin)
    assert await reply_to(root, command("in Lisbon", name="Weather")) == "sunny"
    assert seen == ["in Lisbon"]
    assert "does not handle" in await reply_to(root, command("x", name="connection"))
    assert "does not handle" in await reply_to(root, suggestion("", name="weather"))


async def suggested(root: Router, typed: str, name: str = "connection") -> list[tuple[str, str]]:
    message, _ = await dispatch(root, suggestion(typed, name), context())
    assert isinstance(message, Suggestions)
    return list(message.items)


async def test_suggestions_offer_the_registered_subcommands() -> None:
    root = bot_command_tree()
    assert await suggested(root, "") == [
        ("help", "How to use this command"),
        ("status", "Connection status"),
        ("set", "Change it"),
        ("create", "The create subcommand (admins)"),
    ]
    assert [t for t, _ in await suggested(root, "s")] == ["status", "set"]
    assert [t for t, _ in await suggested(root, "ST", name="Connection")] == ["status"]
    assert [t for t, _ in await suggested(root, "st ")] == []  # a complete word, no such name
    assert [t for t, _ in await suggested(root, "status team")] == ["status"]
    assert "does not handle" in await reply_to(root, suggestion("", name="weather"))


async def test_a_command_may_answer_its_own_suggestions() -> None:
    router = Router("r")
    cmd = router.command("weather")

    @cmd.suggestions
    async def cities(event: Event, ctx: Context) -> Message:
        return Suggestions(items=(("Lisbon", f"typed {event.arguments!r}"),))

    assert await suggested(router, "Li", name="weather") == [("Lisbon", "typed 'Li'")]


async def test_dispatch_binds_the_tree_it_dispatches_through() -> None:
    router = Router("r")
    trees: list[Router | None] = []

    @router.welcome()
    async def welcome(event: Event, ctx: Context) -> Message:
        trees.append(ctx.router)
        return text("hi")

    ctx = context()
    await dispatch(router, event("bot", "welcome_handler"), ctx)
    await dispatch(router, event("bot", "welcome_handler"), replace(ctx, router=router))
    assert trees == [router, router] and ctx.router is None
