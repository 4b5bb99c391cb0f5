"""Typed inbound events: the JSON body Cliq sends to a webhook bot, command or function.

:func:`parse_event` turns the raw body into an :class:`Event`, or raises
:class:`~bot.errors.BadPayload` naming the problem and the field. One rule (CONTRACT §4):
**strict only on what the bot cannot go on without; lenient on everything else.**

Strict — these, and nothing else, give a ``BadPayload``:

* the body is a JSON object;
* ``type`` and ``handler.type`` are non-empty strings (``handler`` may also be that string
  itself, as in bodies from before late 2019);
* ``params`` is an object when present (``null`` counts as empty);
* for the handled kinds (:data:`HANDLED`) ``params.user.id`` is a non-empty string or an
  integer (turned into its decimal string).

Lenient — everything else is optional and read the way Cliq really sends it. A field that is
missing, ``null`` or of another JSON type falls back to its default: numbers and booleans become
strings where a string is expected, objects and lists there become the default; a timestamp that
is not a number of milliseconds is 0; an option value that is not a scalar is JSON-encoded; an
attachment that is not an object or has no URL is skipped (logged by its position only), one
without a usable name gets a default name (``file`` plus the content type's extension); button
``arguments`` keep any JSON; ``admin`` counts only when it is JSON ``true``; unknown fields are
ignored. A body is never refused for a field the bot does not need; a command without a name
simply matches no route.

The module is web-framework free on purpose: handlers use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from bot.errors import BadPayload

__all__ = [
    "DEFAULT_FILE_NAME",
    "HANDLED",
    "Attachment",
    "ButtonClick",
    "Chat",
    "CliqUser",
    "Event",
    "default_file_name",
    "event_identity",
    "parse_event",
]

log = logging.getLogger(__name__)

#: The (``type``, ``handler.type``) pairs the bot handles (CONTRACT §4); for these
#: ``params.user.id`` is required.
HANDLED: Final = frozenset(
    {
        ("bot", "welcome_handler"),
        ("bot", "message_handler"),
        ("bot", "mention_handler"),
        ("command", "execution_handler"),
        ("command", "suggestion_handler"),
        ("function", "button_handler"),
    }
)

#: The name an attachment gets when the body gives none (an extension may be added).
DEFAULT_FILE_NAME: Final = "file"

_EMPTY: Mapping[str, str] = MappingProxyType({})
_EMPTY_ANY: Mapping[str, Any] = MappingProxyType({})
_MAX_MS: Final = 2**63 - 1  # what a store can keep as an integer
# Only the standard library's own table, so a default name does not depend on the host.
_MIME: Final = mimetypes.MimeTypes()


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
    """A click on a button: Cliq sends back only the button's key (CONTRACT §4)."""

    key: str  # params.arguments.key as a string ("" when absent; numbers → str)
    target: str = ""  # params.target.name, "" when absent
    arguments: Mapping[str, Any] = field(default_factory=lambda: _EMPTY_ANY)  # read-only view


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

    kind = _required_str(raw.get("type"), "type")
    handler_obj = raw.get("handler")
    if isinstance(handler_obj, str):  # bodies from before late 2019
        handler = _required_str(handler_obj, "handler.type")
    elif isinstance(handler_obj, dict):
        handler = _required_str(handler_obj.get("type"), "handler.type")
    else:
        raise BadPayload("handler.type is required", field="handler.type")

    params_raw = raw.get("params")
    if params_raw is None:
        params_raw = {}
    if not isinstance(params_raw, dict):
        raise BadPayload("params must be an object", field="params")
    params: dict[str, Any] = params_raw

    response_url = raw.get("response_url")
    return Event(
        type=kind,
        handler=handler,
        name=_text(raw.get("name")),
        unique_name=_text(raw.get("unique_name")),
        user=_user(params, required=(kind, handler) in HANDLED),
        chat=_chat(params.get("chat")),
        text=_message_text(params.get("message")) if kind == "bot" else "",
        arguments=_text(params.get("arguments")) if kind == "command" else "",
        options=_options(params.get("options")),
        attachments=_attachments(params),
        button=_button(params) if (kind, handler) == ("function", "button_handler") else None,
        timestamp_ms=_timestamp(raw.get("timestamp")),
        response_url=response_url if isinstance(response_url, str) and response_url else None,
        identity=identity,
    )


# --- field readers: only _required_str and _user (when required) raise -------------------------


def _required_str(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadPayload(f"{path} is required and must be a non-empty string", field=path)
    return value


def _text(value: object) -> str:
    """A string field, leniently: numbers and booleans as text, anything else ``""``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return ""


def _id(value: object) -> str:
    """An id: a string, or an integer number as its decimal string; anything else ``""``."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _user(params: Mapping[str, Any], *, required: bool) -> CliqUser:
    user = params.get("user")
    if not isinstance(user, dict):
        if required:
            raise BadPayload("params.user is required and must be an object", field="params.user")
        return CliqUser(id="")
    user_id = _id(user.get("id"))
    if required and not user_id:
        raise BadPayload(
            "params.user.id is required and must be a string or an integer",
            field="params.user.id",
        )
    return CliqUser(
        id=user_id,
        email=_text(user.get("email")),
        first_name=_text(user.get("first_name")),
        last_name=_text(user.get("last_name")),
        admin=user.get("admin") is True,
    )


def _chat(chat: object) -> Chat | None:
    """The chat, or ``None`` when the body names none (no object, or no usable id)."""
    if not isinstance(chat, dict):
        return None
    chat_id = _id(chat.get("id"))
    if not chat_id:
        return None
    return Chat(id=chat_id, type=_text(chat.get("type")), title=_text(chat.get("title")))


def _message_text(message: object) -> str:
    """``params.message``: the text itself, or an object (a mention's) holding ``text``."""
    if isinstance(message, dict):
        return _text(message.get("text"))
    return _text(message)


def _options(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict):
        return _EMPTY
    return MappingProxyType({str(k): _option_value(v) for k, v in value.items()})


def _option_value(value: object) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _text(value)


def _button(params: Mapping[str, Any]) -> ButtonClick:
    arguments = params.get("arguments")
    args: Mapping[str, Any] = (
        MappingProxyType(arguments) if isinstance(arguments, dict) else _EMPTY_ANY
    )
    target = params.get("target")
    return ButtonClick(
        key=_text(args.get("key")),
        target=_text(target.get("name")) if isinstance(target, dict) else "",
        arguments=args,
    )


def _timestamp(value: object) -> int:
    """Milliseconds: an integer, a float or a numeric string; anything else (garbage) is 0."""
    number: float | int
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str) and value.isascii() and len(value) <= 40:
        digits = value.strip()
        if digits.isdigit():
            number = int(digits)
        else:
            try:
                number = float(digits)
            except ValueError:
                return 0
    else:
        return 0
    if isinstance(number, float):
        if not math.isfinite(number):
            return 0
        number = int(number)
    return number if 0 <= number <= _MAX_MS else 0


def _derived_id(url: str) -> str:
    return "u-" + hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def default_file_name(content_type: str) -> str:
    """``file`` plus the extension the standard table gives ``content_type``, if any."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if not kind or kind == "application/octet-stream":
        return DEFAULT_FILE_NAME
    extension = _MIME.guess_extension(kind)
    return DEFAULT_FILE_NAME + extension if extension else DEFAULT_FILE_NAME


def _attachment(
    entry: object, path: str, *, type_keys: tuple[str, ...], comment: str = ""
) -> tuple[Attachment, bool] | None:
    """The attachment and whether the body named it, or ``None`` (skipped) without a URL."""
    if not isinstance(entry, dict):
        log.warning("skipped %s: not an object", path)
        return None
    url = entry.get("url")
    if not isinstance(url, str) or not url.strip():
        log.warning("skipped %s: it has no url", path)
        return None
    content_type = next((t for k in type_keys if (t := _text(entry.get(k)))), "")
    name = entry.get("name")
    named = isinstance(name, str) and bool(name.strip())
    own_comment = entry.get("comment")
    return (
        Attachment(
            id=_id(entry.get("id")) or _derived_id(url),
            name=name if isinstance(name, str) and named else default_file_name(content_type),
            url=url,
            content_type=content_type,
            comment=comment if own_comment is None else _text(own_comment),
        ),
        named,
    )


def _attachments(params: Mapping[str, Any]) -> tuple[Attachment, ...]:
    found: list[tuple[Attachment, bool] | None] = []
    listed = params.get("attachments")
    if isinstance(listed, list):
        # A bot message's entries carry ``contenttype``, a slash command's ``type``.
        found.extend(
            _attachment(entry, f"params.attachments[{i}]", type_keys=("contenttype", "type"))
            for i, entry in enumerate(listed)
        )
    details = params.get("message_details")
    message = details.get("message") if isinstance(details, dict) else None
    if isinstance(message, dict) and message.get("type") == "attachment":
        found.append(
            _attachment(
                message.get("file"),
                "params.message_details.message.file",
                type_keys=("type", "contenttype"),
                comment=_text(message.get("comment")),
            )
        )
    # The same file may be listed twice (attachments and message_details): keep it once, in
    # its first place, with the name the body gave if only a later copy has one.
    unique: list[Attachment] = []
    named_at: list[bool] = []
    by_id: dict[str, int] = {}
    by_url: dict[str, int] = {}
    for item in found:
        if item is None:
            continue
        attachment, named = item
        at = by_id.get(attachment.id, by_url.get(attachment.url))
        if at is None:
            by_id[attachment.id] = by_url[attachment.url] = len(unique)
            unique.append(attachment)
            named_at.append(named)
        elif named and not named_at[at]:
            unique[at] = replace(unique[at], name=attachment.name)
            named_at[at] = True
    return tuple(unique)
