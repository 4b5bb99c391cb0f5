"""Reading a slash command's arguments (CONTRACT §5): split like a shell line, ``key=value``
words are options. Every problem is a :class:`~bot.errors.UsageError`; the command adds its
usage to it."""

from __future__ import annotations

import shlex
from collections.abc import Collection
from dataclasses import dataclass, field

from bot.errors import UsageError

__all__ = ["Args", "allow_only", "one_word", "parse_arguments", "scopes", "switch"]


@dataclass
class Args:
    words: list[str]
    options: dict[str, str] = field(default_factory=dict)


def parse_arguments(line: str) -> Args:
    """Split like a shell line; ``key=value`` words are options (keys in lowercase)."""
    try:
        parts = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"I could not read that command: {exc}.") from None
    args = Args(words=[])
    for part in parts:
        key, sep, value = part.partition("=")
        if sep and key and key.replace("_", "").isalnum():
            if key.lower() in args.options:
                raise UsageError(f"`{key}` is given twice.")
            args.options[key.lower()] = value
        else:
            args.words.append(part)
    return args


def allow_only(args: Args, allowed: Collection[str] = ()) -> None:
    unknown = sorted(set(args.options) - set(allowed))
    if unknown:
        raise UsageError(f"Unknown option(s): {', '.join(unknown)}.")


def one_word(args: Args, what: str) -> str:
    if len(args.words) != 1:
        raise UsageError(f"Name one {what}.")
    return args.words[0]


def switch(value: str) -> bool:
    """``login_user_credentials=on|off`` (also true/false, yes/no)."""
    lowered = value.lower()
    if lowered in ("on", "true", "yes"):
        return True
    if lowered in ("off", "false", "no"):
        return False
    raise UsageError(f"login_user_credentials must be on or off, not `{value}`.")


def scopes(value: str) -> tuple[str, ...]:
    """``scopes=a,b``: the scopes in order, each once (none is for the rules to refuse)."""
    return tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
