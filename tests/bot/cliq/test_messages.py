from __future__ import annotations

import json
import logging

import pytest

from bot.cliq.messages import (
    MAX_BUTTONS,
    MAX_KEY,
    MAX_LABEL,
    MAX_TEXT,
    MAX_URL,
    Button,
    CliqFunction,
    Message,
    Slide,
    text,
)


def test_text_shorthand() -> None:
    assert text("hello").to_dict() == {"text": "hello"}


def test_full_message_map() -> None:
    message = Message(
        text="Connect your Dropbox",
        card_title="Dropbox",
        card_theme="prompt",
        buttons=(
            Button.open_url("Connect", "http://127.0.0.1:8080/connect/abc"),
            Button.invoke("Cancel", "cancel:job-7", type="-"),
        ),
        slides=(
            Slide.table("Files", ["Name", "Size"], [{"Name": "a.txt", "Size": "3 B"}]),
            Slide.bullets("Steps", ["one", "two"]),
            Slide.labels("Status", {"Connection": "team_dropbox"}),
            Slide.paragraph("", "plain words"),
        ),
    )
    out = message.to_dict(CliqFunction("filesaction"))
    assert out == {
        "text": "Connect your Dropbox",
        "card": {"title": "Dropbox", "theme": "prompt"},
        "buttons": [
            {
                "label": "Connect",
                "type": "+",
                "action": {
                    "type": "open.url",
                    "data": {"web": "http://127.0.0.1:8080/connect/abc"},
                },
            },
            {
                "label": "Cancel",
                "type": "-",
                "action": {"type": "invoke.function", "data": {"name": "filesaction"}},
                "key": "cancel:job-7",
            },
        ],
        "slides": [
            {
                "type": "table",
                "title": "Files",
                "data": {"headers": ["Name", "Size"], "rows": [{"Name": "a.txt", "Size": "3 B"}]},
            },
            {"type": "list", "title": "Steps", "data": ["one", "two"]},
            {"type": "label", "title": "Status", "data": [{"Connection": "team_dropbox"}]},
            {"type": "text", "data": "plain words"},
        ],
    }
    json.dumps(out)  # serialisable as is


def test_default_card_theme() -> None:
    assert Message("x", card_title="T").to_dict()["card"] == {
        "title": "T",
        "theme": "modern-inline",
    }


def test_invoke_button_data_is_exactly_the_function() -> None:
    button = Button.invoke("Retry", "retry:7")
    assert button.to_dict(CliqFunction("filesaction", "admin@example.com")) == {
        "label": "Retry",
        "type": "+",
        "action": {
            "type": "invoke.function",
            "data": {"name": "filesaction", "owner": "admin@example.com"},
        },
        "key": "retry:7",
    }


def test_invoke_button_needs_the_function_and_a_short_key() -> None:
    with pytest.raises(ValueError, match="Cliq function"):
        Message("x", buttons=(Button.invoke("Retry", "retry:7"),)).to_dict()
    assert len(Button.invoke("ok", "k" * MAX_KEY).key) == MAX_KEY
    for bad in ("", "k" * (MAX_KEY + 1)):
        with pytest.raises(ValueError, match="key"):
            Button.invoke("Retry", bad)


def test_text_is_truncated_with_ellipsis() -> None:
    assert text("a" * MAX_TEXT).to_dict()["text"] == "a" * MAX_TEXT
    long = text("a" * (MAX_TEXT + 1)).to_dict()["text"]
    assert isinstance(long, str)
    assert len(long) == MAX_TEXT
    assert long.endswith("…")


def test_labels_are_truncated_to_20() -> None:
    exact = Button.open_url("x" * MAX_LABEL, "http://h/c").to_dict()
    assert exact["label"] == "x" * MAX_LABEL
    label = Button.open_url("Connect your Dropbox account now", "http://h/c").to_dict()["label"]
    assert label == "Connect your Dropbo…"
    assert isinstance(label, str)
    assert len(label) == MAX_LABEL


def test_at_most_five_buttons_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    buttons = tuple(Button.open_url(f"b{i}", f"http://h/{i}") for i in range(7))
    with caplog.at_level(logging.WARNING, logger="bot.cliq.messages"):
        out = Message("pick", buttons=buttons).to_dict()
    rendered = out["buttons"]
    assert isinstance(rendered, list)
    assert len(rendered) == MAX_BUTTONS
    assert [b["label"] for b in rendered] == ["b0", "b1", "b2", "b3", "b4"]
    assert any("b5, b6" in r.getMessage() for r in caplog.records)


def test_five_buttons_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    buttons = tuple(Button.open_url(f"b{i}", f"http://h/{i}") for i in range(5))
    with caplog.at_level(logging.WARNING):
        Message("pick", buttons=buttons).to_dict()
    assert not caplog.records


def test_open_url_longer_than_256_is_refused() -> None:
    ok = "http://h/" + "x" * (MAX_URL - len("http://h/"))
    assert len(Button.open_url("ok", ok).to_dict()["action"]["data"]["web"]) == MAX_URL  # type: ignore[index]
    with pytest.raises(ValueError, match="256"):
        Button.open_url("long", ok + "x")
    raw = Button("long", {"type": "open.url", "data": {"web": ok + "x"}})
    with pytest.raises(ValueError, match="256"):
        Message("x", buttons=(raw,)).to_dict()


def test_open_url_without_link_is_refused() -> None:
    with pytest.raises(ValueError, match="data.web"):
        Button("bad", {"type": "open.url", "data": {}}).to_dict()


def test_empty_message_map_has_only_text() -> None:
    assert Message("hi").to_dict() == {"text": "hi"}
