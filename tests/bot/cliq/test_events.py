from __future__ import annotations

import contextlib
import copy
import json
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.cliq.events import HANDLED, Attachment, ButtonClick, Chat, CliqUser, parse_event
from bot.errors import BadPayload
from tests.bot.cliq.bodies import CHAT, FILE_URL, USER, message_body


def welcome_body() -> dict[str, Any]:
    return {
        "name": "Files Bot",
        "unique_name": "filesbot",
        "type": "bot",
        "handler": {"type": "welcome_handler"},
        "timestamp": 1764300000000,
        "params": {"user": dict(USER), "newuser": True, "access": {}, "environment": {}},
    }


def mention_body() -> dict[str, Any]:
    return {
        "name": "Files Bot",
        "unique_name": "filesbot",
        "type": "bot",
        "handler": {"type": "mention_handler"},
        "timestamp": 1764300000000,
        "params": {
            "user": dict(USER),
            "chat": {"id": "CT_9_team", "type": "channel", "title": "team"},
            "message": "@filesbot help",
            "mentions": [{"id": "b-1", "name": "Files Bot", "type": "bot"}],
            "location": {},
        },
    }


def command_body() -> dict[str, Any]:
    return {
        "name": "connection",
        "unique_name": "connection",
        "type": "command",
        "handler": {"type": "execution_handler"},
        "timestamp": 1764300000000,
        "params": {
            "arguments": 'create "Team Dropbox" service=dropbox scopes=a,b',
            "options": {"verbose": "yes", "count": 3, "flag": True},
            "selections": [],
            "mentions": [],
            "attachments": [],
            "user": {**USER, "admin": True},
            "chat": {
                "id": "CT_9_team",
                "type": "channel",
                "title": "team",
                "channel_unique_name": "team",
            },
            "location": {},
            "access": {},
            "environment": {},
        },
    }


def button_body() -> dict[str, Any]:
    return {
        "name": "connectaction",
        "unique_name": "connectaction",
        "type": "function",
        "handler": {"type": "button_handler"},
        "timestamp": 1764300000000,
        "params": {
            "user": dict(USER),
            "chat": dict(CHAT),
            "message": {"type": "text", "text": "Connect your Dropbox"},
            "target": {"name": "Connect", "hint": "Connect your account"},
            "event": "click",
            "arguments": {"key": "connect:team_dropbox"},
        },
    }


def encode(body: object) -> bytes:
    return json.dumps(body).encode()


def test_message_handler_with_attachment() -> None:
    event = parse_event(encode(message_body()))
    assert (event.type, event.handler, event.name, event.unique_name) == (
        "bot",
        "message_handler",
        "Files Bot",
        "filesbot",
    )
    assert event.handled
    assert event.user == CliqUser("55501", "ana@example.com", "Ana", "Lima", admin=False)
    assert event.user.display_name == "Ana Lima"
    assert event.chat is not None
    assert (event.chat.id, event.chat.type, event.chat.title) == (
        "CT_1_55501-B2",
        "bot",
        "Files Bot",
    )
    assert event.text == "quarterly report"
    assert event.arguments == ""
    assert event.button is None
    assert event.timestamp_ms == 1764300000000
    assert event.response_url == "https://cliq.example/v2/extensions/1/responses/99"
    # the same file in params.attachments and message_details: one attachment
    assert event.attachments == (
        Attachment("f-1", "q3.pdf", FILE_URL, "application/pdf", "quarterly report"),
    )
    assert len(event.identity) == 64


def test_attachment_only_in_message_details() -> None:
    body = message_body()
    del body["params"]["attachments"]
    event = parse_event(encode(body))
    assert event.attachments == (
        Attachment("f-1", "q3.pdf", FILE_URL, "application/pdf", "quarterly report"),
    )


def test_several_attachments_keep_order_and_missing_id_is_derived_stably() -> None:
    body = message_body()
    del body["params"]["message_details"]
    body["params"]["attachments"] = [
        {"name": "a.txt", "url": "https://files.example/a"},
        {"name": "b.txt", "id": 42, "url": "https://files.example/b", "contenttype": "text/plain"},
        {"name": "a.txt", "url": "https://files.example/a"},
    ]
    event = parse_event(encode(body))
    assert [a.name for a in event.attachments] == ["a.txt", "b.txt"]
    first, second = event.attachments
    assert first.id and first.id == parse_event(encode(body)).attachments[0].id
    assert second.id == "42"
    assert second.content_type == "text/plain"


def test_message_as_object_and_plain_text_message() -> None:
    body = message_body()
    del body["params"]["message_details"]
    del body["params"]["attachments"]
    body["params"]["message"] = {"text": "help", "type": "text"}
    event = parse_event(encode(body))
    assert event.text == "help"
    assert event.attachments == ()


def test_welcome_handler() -> None:
    event = parse_event(encode(welcome_body()))
    assert event.handler == "welcome_handler"
    assert event.user.id == "55501"
    assert event.chat is None
    assert event.text == ""


def test_mention_handler() -> None:
    event = parse_event(encode(mention_body()))
    assert event.handler == "mention_handler"
    assert event.text == "@filesbot help"
    assert event.chat is not None
    assert event.chat.type == "channel"


def test_command_execution_handler() -> None:
    event = parse_event(encode(command_body()))
    assert (event.type, event.handler, event.name) == ("command", "execution_handler", "connection")
    assert event.arguments == 'create "Team Dropbox" service=dropbox scopes=a,b'
    assert dict(event.options) == {"verbose": "yes", "count": "3", "flag": "true"}
    assert event.user.admin is True
    assert event.text == ""


def test_button_handler() -> None:
    event = parse_event(encode(button_body()))
    assert (event.type, event.handler) == ("function", "button_handler")
    assert event.button == ButtonClick(
        key="connect:team_dropbox",
        target="Connect",
        arguments=MappingProxyType({"key": "connect:team_dropbox"}),
    )
    assert event.text == ""  # params.message is the message holding the button
    assert event.arguments == ""


def test_numeric_ids_are_strings() -> None:
    body = welcome_body()
    body["params"]["user"]["id"] = 55501
    event = parse_event(encode(body))
    assert event.user.id == "55501"


@pytest.mark.parametrize("admin", ["true", 1, "True", None, [True], {"x": True}])
def test_admin_only_when_boolean_true(admin: object) -> None:
    body = welcome_body()
    body["params"]["user"]["admin"] = admin
    assert parse_event(encode(body)).user.admin is False


def test_display_name_falls_back() -> None:
    assert CliqUser("1", "a@example.com", "", "").display_name == "a@example.com"
    assert CliqUser("1").display_name == "1"
    assert CliqUser("1", first_name="Ana").display_name == "Ana"


def test_unhandled_handler_parses_without_user() -> None:
    body = {"type": "bot", "handler": {"type": "context_handler"}, "params": {"chat": 5}}
    event = parse_event(encode(body))
    assert event.handler == "context_handler"
    assert not event.handled
    assert event.user == CliqUser(id="")
    assert event.chat is None
    # a form handler of the function, a widget's view handler
    for kind, handler in (("function", "form_handler"), ("widget", "view_handler")):
        event = parse_event(encode({"type": kind, "handler": {"type": handler}}))
        assert (event.type, event.handler, event.button) == (kind, handler, None)


def test_the_suggestion_handler_is_handled_and_needs_the_user() -> None:
    assert ("command", "suggestion_handler") in HANDLED
    body: dict[str, Any] = {
        "name": "connection",
        "type": "command",
        "handler": {"type": "suggestion_handler"},
        "params": {"arguments": "se", "user": {"id": 55501}},
    }
    event = parse_event(encode(body))
    assert event.handled and (event.arguments, event.user.id) == ("se", "55501")
    del body["params"]["user"]
    with pytest.raises(BadPayload) as info:
        parse_event(encode(body))
    assert info.value.field == "params.user"


def test_unknown_fields_are_ignored() -> None:
    body = welcome_body()
    body["surprise"] = {"deep": [1, 2, 3]}
    body["params"]["user"]["surprise"] = None
    assert parse_event(encode(body)).user.id == "55501"


def test_identity_is_stable_across_key_order_and_whitespace() -> None:
    body = message_body()
    compact = json.dumps(body, separators=(",", ":")).encode()
    shuffled = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()
    assert parse_event(compact).identity == parse_event(shuffled).identity
    other = copy.deepcopy(body)
    other["timestamp"] += 1
    assert parse_event(encode(other)).identity != parse_event(compact).identity


def _without(body: dict[str, Any], *path: str | int) -> dict[str, Any]:
    body = copy.deepcopy(body)
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


def _with(body: dict[str, Any], value: object, *path: str | int) -> dict[str, Any]:
    body = copy.deepcopy(body)
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_without(message_body(), "type"), "type"),
        (_with(message_body(), 7, "type"), "type"),
        (_with(message_body(), "", "type"), "type"),
        (_without(message_body(), "handler"), "handler.type"),
        (_with(message_body(), "", "handler"), "handler.type"),
        (_with(message_body(), 5, "handler"), "handler.type"),
        (_with(message_body(), ["message_handler"], "handler"), "handler.type"),
        (_without(message_body(), "handler", "type"), "handler.type"),
        (_with(message_body(), "", "handler", "type"), "handler.type"),
        (_with(message_body(), {"name": "x"}, "handler", "type"), "handler.type"),
        (_with(message_body(), [], "params"), "params"),
        (_with(message_body(), "x", "params"), "params"),
        (_without(message_body(), "params"), "params.user"),
        (_with(message_body(), None, "params"), "params.user"),
        (_without(message_body(), "params", "user"), "params.user"),
        (_with(message_body(), "55501", "params", "user"), "params.user"),
        (_without(message_body(), "params", "user", "id"), "params.user.id"),
        (_with(message_body(), "", "params", "user", "id"), "params.user.id"),
        (_with(message_body(), None, "params", "user", "id"), "params.user.id"),
        (_with(message_body(), True, "params", "user", "id"), "params.user.id"),
        (_with(message_body(), 3.5, "params", "user", "id"), "params.user.id"),
        (_with(message_body(), {"id": 1}, "params", "user", "id"), "params.user.id"),
        (_without(welcome_body(), "params", "user"), "params.user"),
        (_without(mention_body(), "params", "user", "id"), "params.user.id"),
        (_without(command_body(), "params", "user"), "params.user"),
        (_without(button_body(), "params", "user"), "params.user"),
    ],
)
def test_missing_or_wrong_fields_are_named(body: dict[str, Any], field: str) -> None:
    """The strict part of the one rule (CONTRACT §4): nothing else gives a BadPayload."""
    with pytest.raises(BadPayload) as info:
        parse_event(encode(body))
    assert info.value.field == field
    assert field in str(info.value)


# Fields that used to be refused and are now read leniently: (body, what, expected value).
PDF = Attachment("f-1", "q3.pdf", FILE_URL, "application/pdf", "quarterly report")


@pytest.mark.parametrize(
    ("body", "read", "expected"),
    [
        (
            _with(message_body(), "message_handler", "handler"),
            lambda e: e.handler,
            "message_handler",
        ),
        (_with(message_body(), 1, "params", "user", "email"), lambda e: e.user.email, "1"),
        (
            _with(message_body(), None, "params", "user", "last_name"),
            lambda e: e.user.last_name,
            "",
        ),
        (_with(message_body(), [], "params", "chat"), lambda e: e.chat, None),
        (_without(message_body(), "params", "chat", "id"), lambda e: e.chat, None),
        (
            _with(message_body(), 7, "params", "chat", "id"),
            lambda e: e.chat,
            Chat("7", "bot", "Files Bot"),
        ),
        (
            _without(message_body(), "params", "chat", "title"),
            lambda e: e.chat,
            Chat("CT_1_55501-B2", "bot"),
        ),
        (_with(message_body(), 5, "params", "message"), lambda e: e.text, "5"),
        (_with(message_body(), [1], "params", "message"), lambda e: e.text, ""),
        (_with(message_body(), {}, "params", "attachments"), lambda e: e.attachments, (PDF,)),
        (_with(message_body(), ["x"], "params", "attachments"), lambda e: e.attachments, (PDF,)),
        (
            _without(message_body(), "params", "attachments", 0, "url"),
            lambda e: e.attachments,
            (PDF,),  # the copy in message_details still has it
        ),
        (
            _without(message_body(), "params", "attachments", 0, "name"),
            lambda e: e.attachments,
            (PDF,),  # the copy in message_details has the name
        ),
        (
            _without(message_body(), "params", "message_details", "message", "file"),
            lambda e: e.attachments,
            (PDF,),
        ),
        (
            _without(
                _without(message_body(), "params", "attachments"),
                "params",
                "message_details",
                "message",
                "file",
                "url",
            ),
            lambda e: e.attachments,
            (),
        ),
        (_with(message_body(), "x", "timestamp"), lambda e: e.timestamp_ms, 0),
        (
            _with(message_body(), "1764300000000", "timestamp"),
            lambda e: e.timestamp_ms,
            1764300000000,
        ),
        (
            _with(message_body(), 1764300000000.9, "timestamp"),
            lambda e: e.timestamp_ms,
            1764300000000,
        ),
        (_with(message_body(), 5, "response_url"), lambda e: e.response_url, None),
        (_without(message_body(), "response_url"), lambda e: e.response_url, None),
        (_without(message_body(), "unique_name"), lambda e: e.unique_name, ""),
        (_without(command_body(), "name"), lambda e: e.name, ""),
        (_with(command_body(), "", "name"), lambda e: e.name, ""),
        (_with(command_body(), 42, "name"), lambda e: e.name, "42"),
        (_with(command_body(), ["a"], "params", "arguments"), lambda e: e.arguments, ""),
        (_with(command_body(), "a=b", "params", "options"), lambda e: dict(e.options), {}),
        (
            _with(command_body(), {"a": [1], "b": {"c": None}, "d": None}, "params", "options"),
            lambda e: dict(e.options),
            {"a": "[1]", "b": '{"c":null}', "d": ""},
        ),
        (
            _without(button_body(), "params", "target"),
            lambda e: (e.button.key, e.button.target),
            ("connect:team_dropbox", ""),
        ),
        (
            _with(button_body(), "Connect", "params", "target"),
            lambda e: (e.button.key, e.button.target),
            ("connect:team_dropbox", ""),
        ),
        (
            _without(button_body(), "params", "target", "name"),
            lambda e: (e.button.key, e.button.target),
            ("connect:team_dropbox", ""),
        ),
        (
            _with(button_body(), "x", "params", "arguments"),
            lambda e: (e.button.key, dict(e.button.arguments)),
            ("", {}),
        ),
        (
            _with(button_body(), {"key": 7, "extra": [1, {"a": None}]}, "params", "arguments"),
            lambda e: (e.button.key, dict(e.button.arguments)),
            ("7", {"key": 7, "extra": [1, {"a": None}]}),
        ),
    ],
)
def test_fields_the_bot_does_not_need_are_read_leniently(
    body: dict[str, Any], read: Any, expected: object
) -> None:
    assert read(parse_event(encode(body))) == expected


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b"null", b'"text"', b"42", b"\xff\xfe\x00", b"[" * 100_000]
)
def test_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(BadPayload) as info:
        parse_event(raw)
    assert info.value.field == "body"


def test_non_object_body_message() -> None:
    with pytest.raises(BadPayload, match="body must be a JSON object"):
        parse_event(b"[1, 2]")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_bad_payload(raw: bytes) -> None:
    with contextlib.suppress(BadPayload):
        parse_event(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)
_keys = ["type", "handler", "params", "name", "user", "id", "chat", "message", "attachments"]
field_keys = st.sampled_from(
    [*_keys, "message_details", "file", "url", "target", "arguments", "options", "timestamp"]
)
shaped = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["bot", "command", "function", "other"]) | json_values,
        "handler": st.fixed_dictionaries(
            {
                "type": st.sampled_from(
                    ["message_handler", "welcome_handler", "execution_handler", "button_handler"]
                )
                | json_values
            }
        )
        | json_values,
        "params": st.dictionaries(field_keys, json_values, max_size=8) | json_values,
    },
    optional={"name": json_values, "timestamp": json_values, "response_url": json_values},
)


@settings(max_examples=150, deadline=None)
@given(json_values | shaped)
def test_arbitrary_json_raises_only_bad_payload(value: object) -> None:
    try:
        event = parse_event(json.dumps(value).encode())
    except BadPayload:
        return
    assert isinstance(event.type, str)
    assert isinstance(event.user.id, str)


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {"user": st.fixed_dictionaries({"id": st.text(min_size=1)})},
        optional={
            "attachments": st.lists(
                st.dictionaries(
                    st.sampled_from(["name", "id", "url", "contenttype", "comment"]),
                    json_values,
                ),
                max_size=3,
            ),
            "message_details": json_values,
            "message": json_values,
            "chat": json_values,
        },
    )
)
def test_message_params_raise_only_bad_payload(params: dict[str, Any]) -> None:
    body = {"type": "bot", "handler": {"type": "message_handler"}, "params": params}
    with contextlib.suppress(BadPayload):
        parse_event(json.dumps(body).encode())
