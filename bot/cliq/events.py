"""Typed inbound events: the JSON body Cliq sends to a webhook bot, command or function.

:func:`parse_event` turns the raw body into an :class:`Event` or raises
:class:`~bot.errors.BadPayload` naming the problem and the field. It is strict where the bot
relies on a value and lenient where it does not:

* the body must be a JSON object with string ``type`` and ``handler.type``; ``params`` must be an
  object when present;
* for the handled kinds (see :data:`HANDLED`) ``params.user.id`` is required, a command needs its
  ``name`` and a button click its ``params.target``; every present field of the wrong type is an
  error;
* any other handler type still parses (the router answers "not handled"); its user, chat and
  the rest are read best effort and fall back to empty values instead of failing;
* ids may come as numbers and are turned into strings; ``admin`` counts only when it is the JSON
  boolean ``true``; unknown fields are ignored.

The module is web-framework free on purpose: handlers use it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeVar

from bot.errors import BadPayload

__all__ = [
    "HANDLED",
    "Attachment",
    "ButtonClick",
    "Chat",
    "CliqUser",
    "Event",
    "event_identity",
    "parse_event",
]

#: The (``type``, ``handler.type``) pairs the bot handles (CONTRACT §4).
HANDLED: Final = frozenset(
    {
        ("bot", "welcome_handler"),
        ("bot", "message_handler"),
        ("bot", "mention_handler"),
        ("command", "execution_handler"),
        ("function", "button_handler"),
    }
)

_EMPTY: Mapping[str, str] = MappingProxyType({})
_T = TypeVar("_T")


@dataclass(frozen=True)
class CliqUser:
    id: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    admin: bool = False

    @property
    def display_name(self) -> str:
        """ "First Last", else the email, else the id."""
        full = f"{self.first_name} {self.last_name}".strip()
        return full or self.email or self.id


@dataclass(frozen=True)
class Chat:
    id: str
    type: str = ""
    title: str = ""


@dataclass(frozen=True)
class Attachment:
    id: str
    name: str
    url: str
    content_type: str = ""
    comment: str = ""


@dataclass(frozen=True)
class ButtonClick:
    """A click on a button the bot sent: ``target.name`` and the action's ``data``."""

    name: str
    data: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class Event:
    type: str
    handler: str
    name: str
    unique_name: str
    user: CliqUser
    chat: Chat | None
    text: str
    arguments: str
    options: Mapping[str, str]
    attachments: tuple[Attachment, ...]
    button: ButtonClick | None
    timestamp_ms: int
    response_url: str | None
    identity: str

    @property
    def handled(self) -> bool:
        return (self.type, self.handler) in HANDLED


def event_identity(payload: object) -> str:
    """Hex SHA-256 of the canonical JSON of ``payload`` (sorted keys, compact, ASCII)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def parse_event(body: bytes) -> Event:
    """Parse a raw webhook body; raises :class:`BadPayload` naming the problem and field."""
    try:
        raw = json.loads(body)
    except RecursionError:
        raise BadPayload("body is nested too deeply", field="body") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadPayload(f"malformed JSON: {exc}", field="body") from None
    if not isinstance(raw, dict):
        raise BadPayload("body must be a JSON object", field="body")
    try:
        identity = event_identity(raw)
    except (RecursionError, ValueError):
        raise BadPayload("body is nested too deeply", field="body") from None

    kind = _req_str(raw, "type", "type")
    handler_obj = raw.get("handler")
    if not isinstance(handler_obj, dict):
        raise BadPayload("handler.type is required", field="handler.type")
    handler = _req_str(handler_obj, "type", "handler.type")

    params_raw = raw.get("params", {})
    if params_raw is None:
        params_raw = {}
    if not isinstance(params_raw, dict):
        raise BadPayload("params must be an object", field="params")
    params: dict[str, Any] = params_raw

    strict = (kind, handler) in HANDLED

    def part(read: Callable[[], _T], default: _T) -> _T:
        if strict:
            return read()
        try:
            return read()
        except BadPayload:
            return default

    name = part(lambda: _opt_str(raw, "name", "name"), "")
    if kind == "command" and strict and not name:
        raise BadPayload("a command needs its name", field="name")
    button = None
    if (kind, handler) == ("function", "button_handler"):
        button = _button(params)

    return Event(
        type=kind,
        handler=handler,
        name=name,
        unique_name=part(lambda: _opt_str(raw, "unique_name", "unique_name"), ""),
        user=part(lambda: _user(params, required=strict), CliqUser(id="")),
        chat=part(lambda: _chat(params), None),
        text=part(lambda: _text(params) if kind == "bot" else "", ""),
        arguments=part(
            lambda: _opt_str(params, "arguments", "params.arguments") if kind == "command" else "",
            "",
        ),
        options=part(lambda: _str_map(params.get("options"), "params.options"), _EMPTY),
        attachments=part(lambda: _attachments(params), ()),
        button=button,
        timestamp_ms=part(lambda: _timestamp(raw.get("timestamp")), 0),
        response_url=part(lambda: _opt_str(raw, "response_url", "response_url") or None, None),
        identity=identity,
    )


# --- field readers ---------------------------------------------------------------------------


def _req_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise BadPayload(f"{path} is required and must be a non-empty string", field=path)
    return value


def _opt_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadPayload(f"{path} must be a string", field=path)
    return value


def _id(value: object, path: str) -> str:
    """An id: a non-empty string, or an integer number (coerced to its decimal string)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise BadPayload(f"{path} is required and must be a string or an integer", field=path)


def _opt_obj(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadPayload(f"{path} must be an object", field=path)
    return value


def _user(params: Mapping[str, Any], *, required: bool) -> CliqUser:
    user = _opt_obj(params, "user", "params.user")
    if user is None:
        if required:
            raise BadPayload("params.user is required", field="params.user")
        return CliqUser(id="")
    return CliqUser(
        id=_id(user.get("id"), "params.user.id"),
        email=_opt_str(user, "email", "params.user.email"),
        first_name=_opt_str(user, "first_name", "params.user.first_name"),
        last_name=_opt_str(user, "last_name", "params.user.last_name"),
        admin=user.get("admin") is True,
    )


def _chat(params: Mapping[str, Any]) -> Chat | None:
    chat = _opt_obj(params, "chat", "params.chat")
    if chat is None:
        return None
    return Chat(
        id=_id(chat.get("id"), "params.chat.id"),
        type=_opt_str(chat, "type", "params.chat.type"),
        title=_opt_str(chat, "title", "params.chat.title"),
    )


def _text(params: Mapping[str, Any]) -> str:
    message = params.get("message")
    if message is None:
        return ""
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        return _opt_str(message, "text", "params.message.text")
    raise BadPayload("params.message must be a string or an object", field="params.message")


def _scalar_str(value: object, path: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise BadPayload(f"{path} must be a string, number or boolean", field=path)


def _str_map(value: object, path: str) -> Mapping[str, str]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict):
        raise BadPayload(f"{path} must be an object", field=path)
    return MappingProxyType({k: _scalar_str(v, f"{path}.{k}") for k, v in value.items()})


def _button(params: Mapping[str, Any]) -> ButtonClick:
    target = _opt_obj(params, "target", "params.target")
    if target is None:
        raise BadPayload("a button click needs params.target", field="params.target")
    return ButtonClick(
        name=_req_str(target, "name", "params.target.name"),
        data=_str_map(params.get("arguments"), "params.arguments"),
    )


def _timestamp(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise BadPayload("timestamp must be an integer number of milliseconds", field="timestamp")


def _derived_id(url: str) -> str:
    return "u-" + hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _attachment(entry: object, path: str, *, type_key: str, comment: str = "") -> Attachment:
    if not isinstance(entry, dict):
        raise BadPayload(f"{path} must be an object", field=path)
    url = _req_str(entry, "url", f"{path}.url")
    name = _req_str(entry, "name", f"{path}.name")
    raw_id = entry.get("id")
    return Attachment(
        id=_derived_id(url) if raw_id in (None, "") else _id(raw_id, f"{path}.id"),
        name=name,
        url=url,
        content_type=_opt_str(entry, type_key, f"{path}.{type_key}"),
        comment=_opt_str(entry, "comment", f"{path}.comment") if "comment" in entry else comment,
    )


def _attachments(params: Mapping[str, Any]) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    listed = params.get("attachments")
    if listed is not None:
        if not isinstance(listed, list):
            raise BadPayload("params.attachments must be a list", field="params.attachments")
        found.extend(
            _attachment(entry, f"params.attachments[{i}]", type_key="contenttype")
            for i, entry in enumerate(listed)
        )
    details = _opt_obj(params, "message_details", "params.message_details")
    message = _opt_obj(details, "message", "params.message_details.message") if details else None
    if message is not None and message.get("type") == "attachment":
        path = "params.message_details.message.file"
        found.append(
            _attachment(
                message.get("file"),
                path,
                type_key="type",
                comment=_opt_str(message, "comment", "params.message_details.message.comment"),
            )
        )
    unique: list[Attachment] = []
    seen_ids: set[str] = set()
    seen_urls: set[str] = set()
    for item in found:
        if item.id in seen_ids or item.url in seen_urls:
            continue
        seen_ids.add(item.id)
        seen_urls.add(item.url)
        unique.append(item)
    return tuple(unique)
