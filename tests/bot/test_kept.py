"""Kept events are stored as JSON and read back as the very event (CONTRACT §10): every kind of
event a handler may keep, as the bot parses it from Cliq-shaped bodies."""

from __future__ import annotations

import json

import pytest

from bot.cliq.events import Event, parse_event
from bot.kept import decode_event, encode_event, summary
from bot.sandbox.driver import ChatDriver, ChatUser

ANA = ChatUser("55501", "ana@example.com", "Ana", "Lima")


def _events() -> list[Event]:
    chat = ChatDriver(None, "http://127.0.0.1:9", "secret")  # type: ignore[arg-type]
    bodies = [
        chat.message(ANA, "files please"),
        chat.message(ANA, "", [{"name": "a.pdf", "id": "f1", "url": "https://x/1"}]),
        chat.command_event(ANA, 'sample "team dropbox" x=1'),
        chat.button(ANA, "retry:job-1", label="Retry"),
        chat.welcome(ANA),
    ]
    bodies[2]["params"]["options"] = {"when": "now", "n": 3}
    bodies[3]["params"]["arguments"]["nested"] = {"deep": [1, {"x": None}]}
    return [parse_event(json.dumps(body).encode()) for body in bodies]


@pytest.mark.parametrize("event", _events(), ids=lambda e: f"{e.type}-{e.handler}")
def test_an_event_survives_the_store_as_it_was(event: Event) -> None:
    again = decode_event(encode_event(event))
    assert again == event
    assert again.identity == event.identity
    with pytest.raises(TypeError):
        again.options["x"] = "y"  # type: ignore[index]  # read-only, as parsed


def test_the_summary_names_what_was_asked_in_a_few_words() -> None:
    text, _, command, button, _ = _events()
    assert summary(text) == "`files please`"
    assert summary(command) == '`/connection sample "team dropbox" x=1`'
    assert summary(button) == "`the Retry click`"
    long = decode_event(encode_event(text).replace("files please", "word " * 40))
    assert len(summary(long)) == 62 and summary(long).endswith("…`")
