"""Every handler type Cliq sends gets 200 (CONTRACT §4), over HTTP against the whole app.

The ones the bot does not handle get a short text saying so — never a 400, whatever the rest of
the body holds. The slash command's suggestion handler answers a list of subcommands that fit
what was typed so far.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bot.config import Settings
from bot.context import Context
from bot.keys import RUNTIME
from handlers import build_router
from tests.conftest import ANA, World

# (type, handler.type, extra handler keys, params beside the user) — reference/cliq.md
NOT_HANDLED: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("bot", "context_handler", {}, {"chat": {"id": "CT_1", "type": "bot"}}),
    ("bot", "participation_handler", {}, {"operation": "added", "data": {"members": []}}),
    ("bot", "action_handler", {"name": "Save file"}, {"action": {"name": "Save file"}}),
    (
        "bot",
        "incomingwebhook_handler",
        {},
        {"body": json.dumps({"event": "push", "n": 1}), "headers": {"x": "y"}},
    ),
    ("bot", "alert_handler", {}, {"alert": {"name": "disk"}}),
    ("bot", "call_handler", {}, {"operation": "call_ended", "data": {"duration": 12}}),
    ("function", "form_handler", {}, {"form": {"name": "f", "values": {"a": {"x": 1}}}}),
    ("function", "form_change_handler", {}, {"target": {"name": "a", "value": [1]}}),
    ("function", "form_values_handler", {}, {"target": {"name": "a", "query": "q"}}),
    ("function", "form_view_handler", {}, {"form": None}),
    ("function", "applet_button_handler", {}, {"arguments": {"key": 1}, "target": "x"}),
    ("widget", "view_handler", {}, {"target": {"id": "tab-1"}, "event": "load"}),
    ("linkpreview", "unfurl_handler", {}, {"url": "https://example.com/x"}),
    ("linkpreview", "preview_handler", {}, {"url": "https://example.com/x"}),
    ("linkpreview", "menu_handler", {}, {"url": 5}),
    ("linkpreview", "after_send_handler", {}, {}),
    ("extension", "installation_handler", {}, {"app_info": {"current_version": "1.0"}}),
    ("extension", "installation_validator", {}, {"app_info": None}),
    ("extension", "uninstallation_handler", {}, {}),
    ("spaceship", "warp_handler", {}, {"speed": 9.5}),
    ("bot", "brand_new_handler", {}, {"anything": [None, {"x": []}]}),
]

_clock = iter(range(int(time.time() * 1000), 2**62))


def body_for(
    kind: str, handler: str, handler_extra: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": "Files Bot",
        "unique_name": "filesbot",
        "type": kind,
        "handler": {"type": handler, **handler_extra},
        "timestamp": next(_clock),
        "params": {"user": ANA.payload(), **params},
    }


def assert_not_handled(reply: Any, handler: str) -> None:
    assert reply.status == 200, reply.body
    text = reply.text
    assert "not handle" in text and handler[:59] in text, reply.body
    assert len(text) < 200, text


@pytest.mark.parametrize(
    ("kind", "handler", "handler_extra", "params"),
    [pytest.param(*case, id=f"{case[0]}/{case[1]}") for case in NOT_HANDLED],
)
async def test_every_other_handler_type_gets_200_not_handled(
    world: World, kind: str, handler: str, handler_extra: dict[str, Any], params: dict[str, Any]
) -> None:
    reply = await world.chat.post(body_for(kind, handler, handler_extra, params))
    assert_not_handled(reply, handler)


async def test_not_handled_whatever_the_rest_of_the_body_is(world: World) -> None:
    variants: list[dict[str, Any]] = []
    for kind, handler, extra, params in NOT_HANDLED[:6]:
        base = body_for(kind, handler, extra, params)
        no_user = json.loads(json.dumps(base))
        del no_user["params"]["user"]
        odd_user = json.loads(json.dumps(base))
        odd_user["params"]["user"] = {"id": None, "admin": "yes", "last_name": None}
        old = json.loads(json.dumps(base))
        old["handler"] = handler  # a plain string, as before late 2019
        bare = {"type": kind, "handler": {"type": handler}, "params": None, "n": next(_clock)}
        variants += [no_user, odd_user, old, bare]
    for body in variants:
        reply = await world.chat.post(body)
        handler = body["handler"] if isinstance(body["handler"], str) else body["handler"]["type"]
        assert_not_handled(reply, handler)


async def test_a_long_unknown_handler_name_gets_a_short_reply(world: World) -> None:
    reply = await world.chat.post(body_for("bot", "x" * 5000 + "_handler", {}, {}))
    assert reply.status == 200 and "not handle" in reply.text and len(reply.text) < 200


async def test_another_command_or_function_name_is_not_handled(world: World) -> None:
    for kind, handler in (("command", "execution_handler"), ("command", "suggestion_handler")):
        body = body_for(kind, handler, {}, {"arguments": "help"})
        body["name"] = "weather"
        reply = await world.chat.post(body)
        assert_not_handled(reply, handler)
        assert "weather" in reply.text
    body = body_for("command", "execution_handler", {}, {"arguments": "help"})
    del body["name"]  # a command without a name matches no route: lenient, not a 400
    assert_not_handled(await world.chat.post(body), "execution_handler")


# -- the suggestion handler ----------------------------------------------------------------------


def subcommand_names() -> list[str]:
    """The subcommands of ``/connection`` registered in the built-in tree, in order."""
    none: Any = None
    ctx = Context(Settings(), none, none, none, none, none, none)
    return [sub.name for sub in build_router().subcommands("connection", ctx)]


def suggestion(arguments: object, name: str = "connection") -> dict[str, Any]:
    body = body_for("command", "suggestion_handler", {}, {"chat": {"id": "CT_9", "type": "x"}})
    body["name"] = name
    if arguments is not None:
        body["params"]["arguments"] = arguments
    return body


async def suggested(world: World, arguments: object, name: str = "connection") -> list[str]:
    reply = await world.chat.post(suggestion(arguments, name))
    assert reply.status == 200, reply.body
    output = reply.body["output"]
    assert isinstance(output, list), reply.body
    for item in output:
        assert set(item) == {"title", "description"}, item
        assert isinstance(item["description"], str) and item["description"], item
        assert "\n" not in item["description"]
    return [item["title"] for item in output]


async def test_suggestions_list_every_subcommand_before_anything_is_typed(world: World) -> None:
    everything = subcommand_names()
    assert {"help", "create", "connect", "list", "status"} <= set(everything)
    assert await suggested(world, "") == everything
    assert await suggested(world, None) == everything  # no arguments at all
    assert await suggested(world, "   ") == everything
    assert await suggested(world, ["not", "text"]) == everything


async def test_suggestions_complete_the_first_word_by_prefix(world: World) -> None:
    names = subcommand_names()
    assert await suggested(world, "se") == [n for n in names if n.startswith("se")]
    assert {"services", "service", "set"} <= set(await suggested(world, "se"))
    assert await suggested(world, "SER") == [n for n in names if n.startswith("ser")]
    assert await suggested(world, "con") == ["connect"]
    assert await suggested(world, "c", name="Connection") == [n for n in names if n.startswith("c")]
    assert await suggested(world, "zzz") == []


async def test_once_the_first_word_is_complete_only_that_subcommand_fits(world: World) -> None:
    assert await suggested(world, "service ") == ["service"]
    assert await suggested(world, 'service add "My API"') == ["service"]
    assert await suggested(world, "unknown thing") == []


async def test_a_replayed_suggestion_delivery_gets_the_same_list(world: World) -> None:
    body = suggestion("pub")
    first = await world.chat.post(body)
    again = await world.chat.post(body)
    assert first.status == again.status == 200
    assert again.body == first.body and first.body["output"][0]["title"] == "publish"
    db = world.app[RUNTIME].db
    assert await db["processed_events"].count_documents({}) == 1
