"""Reply builders: typed messages rendered into Cliq message maps within Cliq's limits.

Limits (reference/cliq.md): message text at most 5,000 characters, at most 5 buttons, a button
label at most 20 characters, a button key at most 100, an ``open.url`` link at most 256 characters.

Buttons that act in the bot are ``invoke.function`` buttons identified by their ``key`` alone:
Cliq sends back only the key of a clicked button (CONTRACT §4), so what a click means lives in
the key (``retry:<job id>``) and ``action.data`` is exactly the Cliq function to invoke
(``CLIQ_FUNCTION_NAME``, plus ``owner`` when set), filled in when the message is rendered.

Text and labels are shortened with an ellipsis; extra buttons are dropped with a logged warning;
a link that is too long is a programming error (connect links are short) and raises
:class:`ValueError`.

A slash command's suggestion handler answers a list instead of a message map (CONTRACT §4):
:class:`Suggestions` is the :class:`Message` that carries it.

The module is web-framework free on purpose: handlers use it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MAX_BUTTONS",
    "MAX_LABEL",
    "MAX_TEXT",
    "MAX_URL",
    "MAX_KEY",
    "Button",
    "CliqFunction",
    "Message",
    "Slide",
    "Suggestions",
    "text",
]

logger = logging.getLogger(__name__)

MAX_TEXT: Final = 5000
MAX_LABEL: Final = 20
MAX_BUTTONS: Final = 5
MAX_URL: Final = 256
MAX_KEY: Final = 100
_ELLIPSIS: Final = "…"


def _shorten(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[: limit - 1] + _ELLIPSIS


def _check_url(url: str) -> None:
    if len(url) > MAX_URL:
        raise ValueError(f"an open.url link is at most {MAX_URL} characters, got {len(url)}")


def _plain(value: object) -> object:
    """Mappings and sequences as plain dicts and lists, ready for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class CliqFunction:
    """The Cliq function (type button) that receives clicks on the bot's ``invoke.function``
    buttons: ``CLIQ_FUNCTION_NAME`` and, when set, ``CLIQ_FUNCTION_OWNER``."""

    name: str
    owner: str | None = None

    def action_data(self) -> dict[str, str]:
        data = {"name": self.name}
        if self.owner:
            data["owner"] = self.owner
        return data


@dataclass(frozen=True)
class Button:
    """A button: an ``open.url`` link, or an ``invoke.function`` click identified by ``key``."""

    label: str
    action: Mapping[str, object]
    type: str = "+"
    key: str = ""

    @classmethod
    def open_url(cls, label: str, url: str, *, type: str = "+") -> Button:
        _check_url(url)
        return cls(label=label, action={"type": "open.url", "data": {"web": url}}, type=type)

    @classmethod
    def invoke(cls, label: str, key: str, *, type: str = "+") -> Button:
        """A button whose click comes back to the bot with ``key`` (at most 100 characters)."""
        if not key or len(key) > MAX_KEY:
            raise ValueError(f"a button key is 1 to {MAX_KEY} characters, got {len(key)}")
        return cls(label=label, action={"type": "invoke.function"}, type=type, key=key)

    @property
    def invokes(self) -> bool:
        return self.action.get("type") == "invoke.function"

    def to_dict(self, function: CliqFunction | None = None) -> dict[str, object]:
        action = self.action
        if action.get("type") == "open.url":
            data = action.get("data")
            web = data.get("web") if isinstance(data, Mapping) else None
            if not isinstance(web, str):
                raise ValueError("an open.url action needs data.web")
            _check_url(web)
        elif self.invokes:
            if function is None:
                raise ValueError("an invoke.function button is rendered with the Cliq function")
            action = {"type": "invoke.function", "data": function.action_data()}
        out: dict[str, object] = {
            "label": _shorten(self.label, MAX_LABEL),
            "type": self.type,
            "action": _plain(action),
        }
        if self.key:
            out["key"] = self.key
        return out


@dataclass(frozen=True)
class Slide:
    """A slide: ``table`` {"headers": [...], "rows": [{...}]}, ``list`` [...],
    ``label`` [{key: value}], ``text`` str (``images`` is a list of URLs)."""

    type: str
    title: str
    data: object

    @classmethod
    def table(cls, title: str, headers: Sequence[str], rows: Sequence[Mapping[str, str]]) -> Slide:
        return cls("table", title, {"headers": list(headers), "rows": [dict(r) for r in rows]})

    @classmethod
    def bullets(cls, title: str, items: Sequence[str]) -> Slide:
        return cls("list", title, list(items))

    @classmethod
    def labels(cls, title: str, pairs: Mapping[str, str]) -> Slide:
        return cls("label", title, [{k: v} for k, v in pairs.items()])

    @classmethod
    def paragraph(cls, title: str, body: str) -> Slide:
        return cls("text", title, body)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.type}
        if self.title:
            out["title"] = self.title
        out["data"] = _plain(self.data)
        return out


@dataclass(frozen=True)
class Message:
    text: str
    card_title: str | None = None
    card_theme: str = "modern-inline"
    buttons: tuple[Button, ...] = ()
    slides: tuple[Slide, ...] = ()

    def to_dict(self, function: CliqFunction | None = None) -> dict[str, object]:
        """The Cliq message map (``text``, ``card``, ``buttons``, ``slides``) within limits.

        ``function`` is where ``invoke.function`` buttons send their clicks; a message with
        such a button cannot be rendered without it."""
        out: dict[str, object] = {"text": _shorten(self.text, MAX_TEXT)}
        if self.card_title is not None:
            out["card"] = {"title": self.card_title, "theme": self.card_theme}
        buttons = self.buttons
        if len(buttons) > MAX_BUTTONS:
            logger.warning(
                "message has %d buttons; Cliq shows at most %d, dropping: %s",
                len(buttons),
                MAX_BUTTONS,
                ", ".join(b.label for b in buttons[MAX_BUTTONS:]),
            )
            buttons = buttons[:MAX_BUTTONS]
        if buttons:
            out["buttons"] = [b.to_dict(function) for b in buttons]
        if self.slides:
            out["slides"] = [s.to_dict() for s in self.slides]
        return out


def text(msg: str) -> Message:
    """A plain text message."""
    return Message(text=msg)


# The key under which the dedupe store keeps a list reply (it keeps maps): a Cliq message map
# never has it.
_STORED_KEY: Final = "_suggestions"


@dataclass(frozen=True)
class Suggestions(Message):
    """A suggestion handler's reply: ``(title, description)`` pairs, rendered as a list.

    It is a :class:`Message` (with empty text) so that handlers keep one return type; where it
    is rendered as a message by mistake it is an empty one."""

    text: str = ""
    items: tuple[tuple[str, str], ...] = ()

    def to_output(self) -> list[dict[str, object]]:
        """The reply's ``output``: ``[{"title": ..., "description": ...}, ...]``."""
        return [{"title": title, "description": line} for title, line in self.items]

    def to_stored(self) -> dict[str, object]:
        """The reply as the dedupe store keeps it (a map); :meth:`output_of` reads it back."""
        return {_STORED_KEY: self.to_output()}

    @staticmethod
    def output_of(stored: Mapping[str, Any]) -> object:
        """The ``output`` of a stored reply: a stored list as the list, a message map as is."""
        if set(stored) == {_STORED_KEY} and isinstance(stored[_STORED_KEY], list):
            return stored[_STORED_KEY]
        return stored
