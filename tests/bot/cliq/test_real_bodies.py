"""Bodies shaped as Zoho Cliq really sends them (reference/cliq.md), and their mutations.

The one rule of CONTRACT §4: strict only on a JSON object with non-empty ``type`` and
``handler.type``, ``params`` an object, and ``params.user.id`` for the handled kinds; every other
field is optional and of any JSON type. Unit level through :func:`parse_event`, and over HTTP
against the whole app (a real embedded store, HMAC-signed deliveries): 200, never 400.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.cliq.events import HANDLED, Attachment, ButtonClick, Chat, CliqUser, parse_event
from bot.errors import BadPayload
from tests.bot.cliq.bodies import FILE_URL, USER, message_body
from tests.conftest import ANA, World

ENVIRONMENT = {"tld": ".com", "data_center": "US", "base_url": "https://cliq.example/company/9001"}
ACCESS = {
    "user_id": "700001",
    "chat_id": "CT_1_55501-B2",
    "organization": {"type": "company", "id": "9001"},
}


def user() -> dict[str, Any]:
    return dict(USER)


def message_handler() -> dict[str, Any]:
    """reference/cliq.md "Body of a message-handler call", with its full access and environment."""
    body = message_body()
    body["params"]["access"] = copy.deepcopy(ACCESS)
    body["params"]["environment"] = dict(ENVIRONMENT)
    return body


def text_message() -> dict[str, Any]:
    """A text message: ``message_details.message`` of type text with placeholder keys."""
    body = message_handler()
    params = body["params"]
    del params["attachments"]
    params["message"] = params["raw_message"] = "status"
    params["message_details"] = {
        "time": 1764300000000,
        "message": {"type": "text", "text": "status", "file": None, "comment": ""},
    }
    return body


def welcome_handler() -> dict[str, Any]:
    return {
        "name": "Files Bot",
        "unique_name": "filesbot",
        "type": "bot",
        "handler": {"type": "welcome_handler"},
        "response_url": "https://cliq.example/v2/extensions/1/responses/100",
        "timestamp": 1764300000001,
        "params": {
            "user": user(),
            "newuser": True,
            "access": copy.deepcopy(ACCESS),
            "environment": dict(ENVIRONMENT),
        },
    }


def mention_handler() -> dict[str, Any]:
    """A mention in a channel: ``params.message`` is an object, ``time`` a string, no title."""
    return {
        "name": "Files Bot",
        "unique_name": "filesbot",
        "type": "bot",
        "handler": {"type": "mention_handler"},
        "timestamp": 1764300000002,
        "params": {
            "user": user(),
            "chat": {"id": "CT_9_team", "type": "channel"},
            "message": {
                "sender": {"id": "55501", "name": "Ana Lima"},
                "time": "1764300000002",
                "text": "@filesbot help",
                "type": "text",
            },
            "mentions": [{"id": "b-1", "name": "Files Bot", "type": "bot"}],
            "location": {"latitude": 0.0, "longitude": 0.0, "accuracy": 10, "status": "granted"},
        },
    }


def execution_handler(arguments: str = "help") -> dict[str, Any]:
    """The slash command: options, selections, mentions, a channel with its unique name."""
    return {
        "name": "connection",
        "unique_name": "connection",
        "type": "command",
        "handler": {"type": "execution_handler"},
        "response_url": "https://cliq.example/v2/extensions/1/responses/101",
        "timestamp": 1764300000003,
        "params": {
            "arguments": arguments,
            "options": {"verbose": "yes"},
            "selections": [{"id": "m-1", "text": "earlier message"}],
            "mentions": [{"id": "55502", "name": "Ben", "type": "user"}],
            "attachments": [
                {"name": "notes.txt", "id": "f-9", "type": "text/plain", "url": "https://f.ex/9"}
            ],
            "user": user(),
            "chat": {
                "id": "CT_9_team",
                "type": "channel",
                "title": "team",
                "channel_unique_name": "team",
            },
            "location": {},
            "access": copy.deepcopy(ACCESS),
            "environment": dict(ENVIRONMENT),
        },
    }


def button_handler(key: str = "connect:team_dropbox") -> dict[str, Any]:
    """A click: only the key comes back, in ``arguments``; ``target`` has name, hint and more."""
    return {
        "name": "cliqbot",
        "unique_name": "cliqbot",
        "type": "function",
        "handler": {"type": "button_handler"},
        "timestamp": 1764300000004,
        "params": {
            "user": user(),
            "chat": {"id": "CT_1_55501-B2", "type": "bot", "title": "Files Bot"},
            "message": {"type": "text", "text": "Connect your Dropbox", "id": "m-7"},
            "target": {"name": "Connect", "hint": "Connect your account", "id": "b-0"},
            "event": "click",
            "arguments": {"key": key},
            "access": copy.deepcopy(ACCESS),
            "environment": dict(ENVIRONMENT),
        },
    }


def suggestion_handler(arguments: str = "") -> dict[str, Any]:
    return {
        "name": "connection",
        "unique_name": "connection",
        "type": "command",
        "handler": {"type": "suggestion_handler"},
        "timestamp": 1764300000005,
        "params": {
            "arguments": arguments,
            "user": user(),
            "chat": {"id": "CT_9_team", "type": "channel", "title": "team"},
            "access": copy.deepcopy(ACCESS),
            "environment": dict(ENVIRONMENT),
        },
    }


def encode(body: object) -> bytes:
    return json.dumps(body).encode()


def parse(body: object) -> Any:
    return parse_event(encode(body))


def put(body: dict[str, Any], value: object, *path: str | int) -> dict[str, Any]:
    body = copy.deepcopy(body)
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


def drop(body: dict[str, Any], *path: str | int) -> dict[str, Any]:
    body = copy.deepcopy(body)
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


PDF = Attachment("f-1", "q3.pdf", FILE_URL, "application/pdf", "quarterly report")

# -- the shapes as documented --------------------------------------------------------------------


def test_message_handler_as_documented() -> None:
    event = parse(message_handler())
    assert event.handled and event.text == "quarterly report"
    assert event.user == CliqUser("55501", "ana@example.com", "Ana", "Lima")
    assert event.chat == Chat("CT_1_55501-B2", "bot", "Files Bot")
    assert event.attachments == (PDF,)
    assert event.timestamp_ms == 1764300000000


def test_a_text_message_with_placeholder_file_keys_has_no_attachment() -> None:
    event = parse(text_message())
    assert (event.text, event.attachments) == ("status", ())


def test_welcome_with_newuser() -> None:
    event = parse(welcome_handler())
    assert (event.handler, event.user.first_name, event.chat) == ("welcome_handler", "Ana", None)


def test_mention_with_a_message_object_and_no_chat_title() -> None:
    event = parse(mention_handler())
    assert event.text == "@filesbot help"
    assert event.chat == Chat("CT_9_team", "channel", "")


def test_execution_handler_with_options_selections_and_a_channel() -> None:
    event = parse(execution_handler("status team_dropbox"))
    assert (event.name, event.arguments) == ("connection", "status team_dropbox")
    assert dict(event.options) == {"verbose": "yes"}
    # a slash command's attachments carry ``type``, not ``contenttype``
    assert event.attachments == (Attachment("f-9", "notes.txt", "https://f.ex/9", "text/plain"),)
    assert event.chat == Chat("CT_9_team", "channel", "team")


def test_button_handler_gives_the_key_and_the_target() -> None:
    event = parse(button_handler())
    assert event.button == ButtonClick(
        "connect:team_dropbox", "Connect", {"key": "connect:team_dropbox"}
    )
    assert event.text == "" and event.user.id == "55501"


def test_suggestion_handler() -> None:
    event = parse(suggestion_handler("se"))
    assert event.handled and (event.type, event.handler) == ("command", "suggestion_handler")
    assert (event.name, event.arguments) == ("connection", "se")


def test_a_handler_as_a_plain_string_in_old_bodies() -> None:
    event = parse(put(message_handler(), "message_handler", "handler"))
    assert event.handler == "message_handler" and event.handled


# -- mutations -----------------------------------------------------------------------------------


def test_null_last_name_and_numbers_where_strings_were_expected() -> None:
    body = put(welcome_handler(), None, "params", "user", "last_name")
    body["params"]["user"].update({"first_name": 12, "email": 3.5, "admin": "true"})
    event = parse(body)
    assert event.user == CliqUser("55501", "3.5", "12", "", admin=False)
    assert event.user.display_name == "12"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("params", "user", "id"), 55501),
        (("params", "user", "organization_id"), 9001),
        (("params", "user", "zoho_user_id"), 700001),
        (("params", "access", "user_id"), 700001),
        (("params", "access", "organization", "id"), 9001),
    ],
)
def test_numeric_ids(path: tuple[str, ...], value: int) -> None:
    event = parse(put(message_handler(), value, *path))
    assert event.user.id == "55501" and event.attachments == (PDF,)


def test_a_numeric_chat_id_is_a_string() -> None:
    assert parse(put(mention_handler(), 42, "params", "chat", "id")).chat == Chat("42", "channel")


@pytest.mark.parametrize(
    "path",
    [
        ("unique_name",),
        ("response_url",),
        ("timestamp",),
        ("name",),
        ("params", "chat", "title"),
        ("params", "chat"),
        ("params", "message_details"),
        ("params", "access"),
        ("params", "environment"),
        ("params", "user", "email"),
        ("params", "user", "first_name"),
    ],
)
def test_missing_optional_fields(path: tuple[str, ...]) -> None:
    for make in (message_handler, execution_handler, button_handler, mention_handler):
        body = make()
        node: Any = body
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
        event = parse(body)
        assert event.user.id == "55501"


def test_other_json_types_for_optional_fields() -> None:
    body = message_handler()
    body.update({"unique_name": None, "response_url": ["x"], "timestamp": "soon", "name": 7})
    body["params"].update({"chat": "CT_1", "message": {"text": 9}, "mentions": {}, "links": 5})
    event = parse(body)
    assert (event.unique_name, event.response_url, event.timestamp_ms) == ("", None, 0)
    assert (event.name, event.chat, event.text) == ("7", None, "9")
    assert event.attachments == (PDF,)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1764300000000, 1764300000000),
        ("1764300000000", 1764300000000),
        (1764300000000.5, 1764300000000),
        (" 1764300000000 ", 1764300000000),
        ("1.7643e12", 1764300000000),
        ("garbage", 0),
        (True, 0),
        (-5, 0),
        (10**30, 0),
        ({"ms": 1}, 0),
    ],
)
def test_timestamps(value: object, expected: int) -> None:
    assert parse(put(welcome_handler(), value, "timestamp")).timestamp_ms == expected


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("", "application/pdf", "file.pdf"),
        ("   ", "text/plain; charset=utf-8", "file.txt"),
        (None, "image/png", "file.png"),
        (42, "application/pdf", "file.pdf"),
        ({"x": 1}, "application/x-unknown-thing", "file"),
        ("", "application/octet-stream", "file"),
        ("", None, "file"),
    ],
)
def test_an_attachment_without_a_usable_name_gets_a_default_name(
    name: object, content_type: object, expected: str
) -> None:
    body = drop(message_handler(), "params", "message_details")
    body["params"]["attachments"] = [
        {"name": name, "id": "f-2", "url": "https://files.example/f-2", "contenttype": content_type}
    ]
    (attachment,) = parse(body).attachments
    assert attachment.name == expected and attachment.url == "https://files.example/f-2"


def test_a_name_missing_in_one_copy_is_taken_from_the_other() -> None:
    body = put(message_handler(), "", "params", "attachments", 0, "name")
    assert parse(body).attachments == (PDF,)
    body = put(message_handler(), "", "params", "message_details", "message", "file", "name")
    assert parse(body).attachments == (PDF,)


def test_unusable_attachment_entries_are_skipped_without_logging_their_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = drop(message_handler(), "params", "message_details")
    secret_url = "https://files.example/secret?sig=s3cr3t"
    body["params"]["attachments"] = [
        "not an object",
        None,
        {"name": "no-url.txt", "comment": "s3cr3t"},
        {"name": "empty-url.txt", "url": ""},
        {"name": "number-url.txt", "url": 5},
        {"name": "ok.txt", "url": secret_url, "id": 77},
    ]
    with caplog.at_level("DEBUG"):
        event = parse(body)
    assert event.attachments == (Attachment("77", "ok.txt", secret_url),)
    assert "skipped params.attachments[0]" in caplog.text
    assert "s3cr3t" not in caplog.text and "no-url.txt" not in caplog.text


def test_non_scalar_argument_values() -> None:
    body = button_handler()
    body["params"]["arguments"] = {"key": 12345, "extra": {"nested": [1, None, True]}, "n": None}
    click = parse(body).button
    assert click is not None and click.key == "12345"
    assert dict(click.arguments) == {"key": 12345, "extra": {"nested": [1, None, True]}, "n": None}
    with pytest.raises(TypeError):
        click.arguments["key"] = "x"
    body = execution_handler()
    body["params"]["options"] = {"list": [1, 2], "map": {"a": "b"}, "num": 2.5, "none": None}
    assert dict(parse(body).options) == {
        "list": "[1,2]",
        "map": '{"a":"b"}',
        "num": "2.5",
        "none": "",
    }


@pytest.mark.parametrize(
    "arguments", [None, "x", [{"key": "a"}], {}, {"key": None}, {"key": {"k": 1}}, {"other": 1}]
)
def test_a_button_event_always_has_a_click(arguments: object) -> None:
    click = parse(put(button_handler(), arguments, "params", "arguments")).button
    assert click is not None and click.key == "" and click.target == "Connect"


def test_a_button_key_that_is_a_number_or_boolean() -> None:
    assert parse(put(button_handler(), {"key": 7}, "params", "arguments")).button.key == "7"
    assert parse(put(button_handler(), {"key": 2.5}, "params", "arguments")).button.key == "2.5"
    assert parse(put(button_handler(), {"key": True}, "params", "arguments")).button.key == "true"


def test_a_command_without_a_name_still_parses() -> None:
    event = parse(drop(execution_handler(), "name"))
    assert event.name == "" and event.handled


# -- the one rule as a property ------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)
PARAM_KEYS = [
    "chat",
    "message",
    "message_details",
    "attachments",
    "arguments",
    "options",
    "target",
    "selections",
    "mentions",
    "access",
    "environment",
    "newuser",
    "location",
    "body",
    "event",
]
TOP_KEYS = ["name", "unique_name", "response_url", "timestamp", "signature", "surprise"]
kinds = st.sampled_from(sorted(HANDLED)) | st.tuples(
    st.sampled_from(["bot", "command", "function", "widget", "extension", "x"]),
    st.sampled_from(["context_handler", "form_handler", "view_handler", "unknown_handler"]),
)
BUTTON = ("function", "button_handler")
user_ids = st.text(min_size=1, max_size=12) | st.integers()


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    kind, handler = draw(kinds)
    params: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from(PARAM_KEYS) | st.text(max_size=8), json_values, max_size=8)
    )
    user_fields = draw(
        st.dictionaries(
            st.sampled_from(["email", "first_name", "last_name", "admin", "zoho_user_id"])
            | st.text(max_size=8),
            json_values,
            max_size=5,
        )
    )
    params["user"] = {**user_fields, "id": draw(user_ids)}
    extras = draw(st.dictionaries(st.sampled_from(TOP_KEYS) | st.text(max_size=8), json_values))
    old_handler = draw(st.booleans())
    handler_value: object = (
        handler
        if old_handler
        else {
            **draw(st.dictionaries(st.sampled_from(["name", "id"]), json_values)),
            "type": handler,
        }
    )
    return {**extras, "type": kind, "handler": handler_value, "params": params}


@hsettings(max_examples=400, deadline=None)
@given(valid_bodies())
def test_valid_type_handler_and_user_id_always_parse(body: dict[str, Any]) -> None:
    event = parse(body)
    handler = body["handler"] if isinstance(body["handler"], str) else body["handler"]["type"]
    assert (event.type, event.handler) == (body["type"], handler)
    assert event.user.id == str(body["params"]["user"]["id"])
    assert isinstance(event.text, str) and isinstance(event.arguments, str)
    assert all(isinstance(v, str) for v in event.options.values())
    assert all(a.url and a.name and a.id for a in event.attachments)
    assert (event.button is not None) == ((event.type, event.handler) == BUTTON)


@hsettings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20), json_values)
def test_unhandled_kinds_need_nothing_but_type_and_handler(
    kind: str, handler: str, params: object
) -> None:
    body = {"type": kind, "handler": {"type": handler}, "params": params}
    if (kind, handler) in HANDLED:
        return
    try:
        event = parse(body)
    except BadPayload as err:
        assert err.field == "params" and not isinstance(params, dict | type(None))
    else:
        assert (event.type, event.handler) == (kind, handler)


# -- over HTTP: 200, never 400 -------------------------------------------------------------------


async def test_real_bodies_over_http_are_answered(world: World) -> None:
    welcome = put(welcome_handler(), None, "params", "user", "last_name")
    welcome["params"]["user"]["id"] = 55501
    reply = await world.chat.post(welcome)
    assert reply.status == 200 and reply.text.startswith("Hi Ana!"), reply.body

    reply = await world.chat.post(mention_handler())
    assert reply.status == 200 and "Send me a file" in reply.text, reply.body

    command = drop(execution_handler("help"), "unique_name")
    del command["response_url"]
    del command["params"]["chat"]["title"]
    command["params"]["options"] = {"x": [1, {"y": None}]}
    command["params"]["user"]["organization_id"] = 9001
    reply = await world.chat.post(command)
    assert reply.status == 200 and "Usage: /connection" in reply.text, reply.body

    text = text_message()
    text["timestamp"] = "1764300000009"
    text["params"]["chat"] = 12
    reply = await world.chat.post(text)
    assert reply.status == 200 and "No connection is published" in reply.text, reply.body


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(drop(button_handler(), "params", "target"), id="no-target"),
        pytest.param(put(button_handler(), {"key": {"a": [1]}}, "params", "arguments"), id="obj"),
        pytest.param(put(button_handler(), [1, 2], "params", "arguments"), id="list-arguments"),
        pytest.param(put(button_handler("retry:j-1"), 3, "params", "target", "name"), id="num"),
    ],
)
async def test_odd_button_bodies_over_http_are_200(world: World, body: dict[str, Any]) -> None:
    reply = await world.chat.post(body)
    assert reply.status == 200, reply.body
    assert isinstance(reply.output.get("text"), str)


async def test_an_attachment_without_a_name_is_saved_under_a_default_name(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    offered = world.cliq.add_file("", b"%PDF-1.4 quarterly", content_type="application/pdf")
    body = message_handler()
    del body["params"]["message_details"]
    body["params"]["message"] = body["params"]["raw_message"] = ""
    body["params"]["attachments"] = [
        {**offered, "name": None, "comment": None},
        "junk",
        {"name": "no-url.txt"},
    ]
    body["timestamp"] = "not a time"
    reply = await world.chat.post(body)
    assert reply.status == 200, reply.body
    await world.messages_for(ANA, "Saved file.pdf")
    assert world.dropbox.read_file("ana@dropbox.example", "/Cliq Uploads/file.pdf") == (
        b"%PDF-1.4 quarterly"
    )


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=valid_bodies())
async def test_valid_bodies_over_http_are_200(world: World, body: dict[str, Any]) -> None:
    reply = await world.chat.post(body)
    assert reply.status == 200, (reply.body, body)
    output = reply.body.get("output")
    if isinstance(output, list):  # only the slash command's suggestions answer a list
        assert body["type"] == "command"
        assert all(set(item) == {"title", "description"} for item in output)
    else:
        assert isinstance(output, dict) and isinstance(output.get("text"), str), reply.body
