"""Suggestions while the slash command is typed (CONTRACT §4 ``suggestion_handler``).

Cliq calls the command's suggestion handler as the user types ``/connection …``; the answer is
``{"output": [{"title": ..., "description": ...}, ...]}`` — a list, not a message map. The
handler offers the subcommands of :mod:`handlers.commands` whose name starts with the first word
typed so far (all of them before anything is typed; once the first word is followed by more
text, only the subcommand of exactly that name).

A handler returns a :class:`~bot.cliq.messages.Message`; :class:`Suggestions` is one whose reply
is that list instead: the webhook renders it with :meth:`Suggestions.to_output`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from bot.cliq.events import Event
from bot.cliq.messages import Message
from bot.context import Context
from bot.router import Router
from handlers import commands

__all__ = ["DESCRIPTIONS", "Suggestions", "router", "subcommand_names", "suggest"]

router = Router("suggestions")

#: One line per subcommand; only the subcommands registered in :mod:`handlers.commands` are
#: offered, and one registered without a line here is offered with a generic one.
DESCRIPTIONS: Final[Mapping[str, str]] = {
    "help": "How to use this command",
    "services": "The services a connection can use",
    "service": "Configure, add or remove a service (admins)",
    "create": "Create a connection (admins)",
    "set": "Change a connection's name, scopes or switch (admins)",
    "connect": "Get a link to connect your account",
    "publish": "Make a connection the one files are saved with (admins)",
    "unpublish": "Stop saving files with a connection (admins)",
    "revoke": "Revoke a connection's owner authorization",
    "disconnect": "Disconnect your own account from a connection",
    "delete": "Delete a connection (admins)",
    "list": "Your connections and the ones shared with you",
    "status": "Connection status",
    "sample": "How to use a connection from a plugin",
    "page": "A sign-in link to your connections page",
}

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


def subcommand_names() -> list[str]:
    """The registered subcommands of ``/connection``, in registration order."""
    return list(commands._SUBCOMMANDS)


def suggest(typed: str) -> tuple[tuple[str, str], ...]:
    """The ``(subcommand, description)`` pairs that fit ``typed``, the text after the command."""
    words = typed.split()
    names = subcommand_names()
    if words:
        first = words[0].lower()
        complete = len(typed.strip()) > len(words[0]) or typed[-1:].isspace()
        names = [n for n in names if (n == first if complete else n.startswith(first))]
    return tuple((n, DESCRIPTIONS.get(n, f"The {n} subcommand")) for n in names)


def _is_suggestion(event: Event, ctx: Context) -> bool:
    return (
        event.type == "command"
        and event.handler == "suggestion_handler"
        and event.name.lower() == ctx.settings.command_name.lower()
    )


@router.route(_is_suggestion)
async def suggestions(event: Event, ctx: Context) -> Message:
    return Suggestions(items=suggest(event.arguments))
