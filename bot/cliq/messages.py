"""Reply builders: typed messages rendered into Cliq message maps within Cliq's limits.

Limits (reference/cliq.md): message text at most 5,000 characters, at most 5 buttons, a button
label at most 20 characters, an ``open.url`` link at most 256 characters. Text and labels are
shortened with an ellipsis; extra buttons are dropped with a logged warning; a link that is too
long is a programming error (connect links are short) and raises :class:`ValueError`.

The module is web-framework free on purpose: handlers use it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_BUTTONS",
    "MAX_LABEL",
    "MAX_TEXT",
    "MAX_URL",
    "Button",
    "Message",
    "Slide",
    "text",
]

logger = logging.getLogger(__name__)

MAX_TEXT: Final = 5000
MAX_LABEL: Final = 20
MAX_BUTTONS: Final = 5
MAX_URL: Final = 256
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
class Button:
    label: str
    action: Mapping[str, object]
    type: str = "+"

    @classmethod
    def open_url(cls, label: str, url: str, *, type: str = "+") -> Button:
        _check_url(url)
        return cls(label=label, action={"type": "open.url", "data": {"web": url}}, type=type)

    @classmethod
    def invoke(
        cls, label: str, function: str, data: Mapping[str, str], *, type: str = "+"
    ) -> Button:
        return cls(
            label=label,
            # "name" last: the function to invoke cannot be overridden by the data.
            action={"type": "invoke.function", "data": {**data, "name": function}},
            type=type,
        )

    def to_dict(self) -> dict[str, object]:
        if self.action.get("type") == "open.url":
            data = self.action.get("data")
            web = data.get("web") if isinstance(data, Mapping) else None
            if not isinstance(web, str):
                raise ValueError("an open.url action needs data.web")
            _check_url(web)
        return {
            "label": _shorten(self.label, MAX_LABEL),
            "type": self.type,
            "action": _plain(self.action),
        }


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

    def to_dict(self) -> dict[str, object]:
        """The Cliq message map (``text``, ``card``, ``buttons``, ``slides``) within limits."""
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
            out["buttons"] = [b.to_dict() for b in buttons]
        if self.slides:
            out["slides"] = [s.to_dict() for s in self.slides]
        return out


def text(msg: str) -> Message:
    """A plain text message."""
    return Message(text=msg)
