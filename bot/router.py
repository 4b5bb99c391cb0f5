"""The chat router: one tree of registrations for everything a chat can send.

Every kind of event registers on a :class:`Router` (aiogram's model)::

    router = Router("weather")

    @router.text("weather", help="the weather where you are")
    async def weather(event: Event, ctx: Context) -> Message: ...

    @router.button("forecast")            # clicks on keys "forecast:<value>"
    async def forecast(event: Event, ctx: Context) -> Message: ...

    cmd = router.command("weather")       # the slash command /weather ...
    @cmd.subcommand("city", usage="city NAME", summary="Set your city")
    async def city(event: Event, ctx: Context) -> Message: ...

Event kinds: :meth:`Router.welcome`, :meth:`Router.mention`, :meth:`Router.message` (text or
attachments), and :meth:`Router.route` for any filter. Built-ins register on "the bot's
command" with :data:`BOT_COMMAND`, resolved at dispatch against ``BOT_COMMAND_NAME``.

Routers nest with :meth:`Router.include_router`, which refuses a cycle and a router attached
twice in one tree (a router may serve several trees: one per application). Resolution walks the
tree depth-first, a router's own registrations before its children's, and the first match wins:
built-ins are included first, so a plugin's word, key or subcommand never overrides a built-in
one. A handler is ``async def handler(event, ctx) -> Message``; registering anything else fails
at import.

What a route matched on is consumed: a subcommand's handler sees ``event.arguments`` without
the subcommand word, a button handler sees ``event.button.key`` without ``prefix:``.
Subcommands of one command registered on several routers of a tree form one command: the usage
(``/connection help``, every usage error) and the suggestions are generated from all of them.

:func:`dispatch` is the one place errors become chat replies: a :class:`~bot.errors.ChatError`
is shown to the user as it is; a :class:`~bot.errors.NotAuthorized` naming a connection goes to
``ctx.on_not_authorized``, which keeps the event and answers with a connect prompt (the event is
dispatched again once the user connects, CONTRACT §10); anything unexpected is logged with its
traceback and answered with a generic apology. Store outages are re-raised so the webhook
answers 503 and Cliq retries.

Part of the core: this module imports neither ``handlers/`` nor aiohttp nor pymongo.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

from bot.cliq.events import Event
from bot.cliq.messages import Message, Suggestions, text
from bot.errors import ChatError, NotAllowed, NotAuthorized, StoreUnavailable, UsageError

if TYPE_CHECKING:
    from bot.context import Context, NotAuthorizedHook

__all__ = [
    "BOT_COMMAND",
    "Command",
    "Filter",
    "Handler",
    "Router",
    "RouterError",
    "Subcommand",
    "dispatch",
    "suggest",
]

log = logging.getLogger(__name__)

Filter: TypeAlias = Callable[[Event, "Context"], bool]
Handler: TypeAlias = Callable[[Event, "Context"], Awaitable[Message]]
Select: TypeAlias = Callable[[Event, "Context"], "Event | None"]
Decorator: TypeAlias = Callable[[Handler], Handler]

ADMINS_ONLY: Final = "Only admins can do that; nothing was changed."
_SORRY: Final = "Sorry, something went wrong on my side. Please try again in a minute."


class RouterError(RuntimeError):
    """A router tree that cannot work: a cycle, or a router attached twice in one tree."""


class _BotCommand:
    """The bot's own slash command, whose name is a setting (``BOT_COMMAND_NAME``)."""

    def __repr__(self) -> str:
        return "BOT_COMMAND"


#: Register on the bot's own slash command: ``router.command(BOT_COMMAND)``.
BOT_COMMAND: Final = _BotCommand()

CommandName: TypeAlias = "str | _BotCommand"


def _async_only(fn: object) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"handler {fn!r} must be an async function (async def)")


def _one_word(value: str, what: str) -> str:
    word = value.strip().lower()
    if not word or len(word.split()) != 1:
        raise ValueError(f"a {what} is one word, not {value!r}")
    return word


def _first_word(line: str) -> str:
    """A chat message's first word, lowercased."""
    parts = line.split(maxsplit=1)
    return parts[0].lower() if parts else ""


# A command line splits like a shell line (CONTRACT §5): on the whitespace shlex splits on.
_SUBCOMMAND = re.compile(r"[ \t\r\n]*([^ \t\r\n]*)[ \t\r\n]*(.*)", re.DOTALL)


def _subcommand(arguments: str) -> tuple[str, str]:
    """``("word", "rest")``: a command's first word lowercased and the text after it."""
    found = _SUBCOMMAND.match(arguments)
    return (found.group(1).lower(), found.group(2)) if found else ("", arguments)


def _is_text(event: Event) -> bool:
    return event.type == "bot" and event.handler == "message_handler" and not event.attachments


class _Entry(Protocol):
    def match(self, event: Event, ctx: Context) -> tuple[Handler, Event] | None: ...


@dataclass(frozen=True)
class _Route:
    """One registration: ``select`` gives the event as the handler sees it, or ``None``."""

    select: Select
    handler: Handler
    word: str = ""  # a text word, listed by Router.words()
    help: str = ""

    def match(self, event: Event, ctx: Context) -> tuple[Handler, Event] | None:
        routed = self.select(event, ctx)
        return None if routed is None else (self.handler, routed)


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: tuple[str, ...]
    summary: str
    admin: bool
    handler: Handler  # guarded: the admin check and the usage of usage errors

    @property
    def description(self) -> str:
        """One line for the suggestion list."""
        line = self.summary or f"The {self.name} subcommand"
        return f"{line} (admins)" if self.admin else line


class Command:
    """A slash command on one router: a handler for all of it, subcommands, suggestions.

    ``@router.command("name")`` registers a handler for the whole command (``event.arguments``
    is the text after it); :meth:`subcommand` registers one by its first word. A command with
    subcommands and no whole-command handler answers its usage when called bare, and a usage
    error naming an unknown subcommand."""

    def __init__(self, router: Router, name: CommandName, epilog: str = "") -> None:
        self.router = router
        self.name = name
        self.epilog = epilog
        self.subcommands: dict[str, Subcommand] = {}
        self._handler: Handler | None = None
        self._suggest: Handler | None = None

    def __call__(self, fn: Handler) -> Handler:
        _async_only(fn)
        if self._handler is not None:
            raise RouterError(f"/{self.name} has a handler already on router {self.router.name}")
        self._handler = fn
        return fn

    def subcommand(
        self, name: str, *, usage: str | Sequence[str] = "", summary: str = "", admin: bool = False
    ) -> Decorator:
        """Register ``/command name …``; ``admin=True`` refuses everyone but admins."""
        word = _one_word(name, "subcommand name")
        if word in self.subcommands:
            raise RouterError(f"subcommand {word!r} of /{self.name} is registered twice")
        lines = (usage,) if isinstance(usage, str) else tuple(usage)

        def register(fn: Handler) -> Handler:
            _async_only(fn)
            guarded = self._guard(fn, admin)
            self.subcommands[word] = Subcommand(
                word, tuple(line for line in lines if line) or (word,), summary, admin, guarded
            )
            return fn

        return register

    def suggestions(self, fn: Handler) -> Handler:
        """Register the command's own suggestion handler (default: its subcommands)."""
        _async_only(fn)
        self._suggest = fn
        return fn

    def resolved(self, ctx: Context) -> str:
        return ctx.settings.command_name if isinstance(self.name, _BotCommand) else self.name

    def usage(self, ctx: Context) -> str:
        """The usage of this command, from every router of the tree being dispatched."""
        tree = ctx.router if ctx.router is not None else self.router
        return tree.usage(self.resolved(ctx), ctx)

    def _guard(self, fn: Handler, admin: bool) -> Handler:
        @functools.wraps(fn)
        async def guarded(event: Event, ctx: Context) -> Message:
            if admin and not ctx.is_admin(event.user):
                raise NotAllowed(ADMINS_ONLY)
            try:
                return await fn(event, ctx)
            except UsageError as err:
                if err.usage:
                    raise
                raise UsageError(str(err), self.usage(ctx)) from err

        return guarded

    def named(self, event: Event, ctx: Context) -> bool:
        return event.type == "command" and event.name.lower() == self.resolved(ctx).lower()

    def match(self, event: Event, ctx: Context) -> tuple[Handler, Event] | None:
        if not self.named(event, ctx):
            return None
        if event.handler == "execution_handler":
            word, rest = _subcommand(event.arguments)
            sub = self.subcommands.get(word)
            if sub is not None:
                return sub.handler, replace(event, arguments=rest)
            return None if self._handler is None else (self._handler, event)
        if event.handler == "suggestion_handler":
            if self._suggest is not None:
                return self._suggest, event
            if self.subcommands:
                return _suggestions, event
        return None


class Router:
    """Registrations for events, tried in order, then the included routers' (depth first)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: list[_Route | Command] = []
        self._children: list[Router] = []
        self._parents: weakref.WeakSet[Router] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"Router({self.name!r})"

    # -- registration ------------------------------------------------------------------------

    def route(self, match: Filter) -> Decorator:
        """Any event for which ``match(event, ctx)`` holds."""
        return self._register(lambda e, ctx: e if match(e, ctx) else None)

    def welcome(self) -> Decorator:
        return self.route(lambda e, _: e.type == "bot" and e.handler == "welcome_handler")

    def mention(self) -> Decorator:
        return self.route(lambda e, _: e.type == "bot" and e.handler == "mention_handler")

    def message(self, *, attachments: bool | None = None) -> Decorator:
        """A direct message to the bot: with attachments, without, or either (``None``)."""

        def match(e: Event, _: Context) -> bool:
            if e.type != "bot" or e.handler != "message_handler":
                return False
            return attachments is None or bool(e.attachments) == attachments

        return self.route(match)

    def text(self, word: str, *, help: str = "") -> Decorator:
        """A direct text message whose first word is ``word`` (any case); ``event.text`` is the
        whole text. ``help`` is its line in the help reply (:meth:`words`)."""
        key = _one_word(word, "chat word")

        def select(e: Event, _: Context) -> Event | None:
            return e if _is_text(e) and _first_word(e.text) == key else None

        return self._register(select, word=key, help=help)

    def button(self, prefix: str | None = None) -> Decorator:
        """Clicks on the bot's buttons whose key is ``prefix:VALUE`` (VALUE not empty); the
        handler sees ``event.button.key == VALUE``. ``None``: every click, key unchanged."""
        if prefix is not None and not prefix.strip():
            raise ValueError("a button prefix is not empty")
        head = f"{prefix}:" if prefix is not None else ""

        def select(e: Event, _: Context) -> Event | None:
            click = e.button
            if e.type != "function" or e.handler != "button_handler" or click is None:
                return None
            if prefix is None:
                return e
            value = click.key[len(head) :] if click.key.startswith(head) else ""
            return replace(e, button=replace(click, key=value)) if value else None

        return self._register(select)

    def command(self, name: CommandName, *, epilog: str = "") -> Command:
        """The slash command ``/name`` (or the bot's own, :data:`BOT_COMMAND`) on this router;
        use it as a decorator for the whole command, or register subcommands on it."""
        if isinstance(name, str):
            name = _one_word(name, "command name")
        for entry in self._entries:
            if isinstance(entry, Command) and entry.name == name:
                return entry
        command = Command(self, name, epilog)
        self._entries.append(command)
        return command

    def _register(self, select: Select, *, word: str = "", help: str = "") -> Decorator:
        def register(fn: Handler) -> Handler:
            _async_only(fn)
            self._entries.append(_Route(select, fn, word, help))
            return fn

        return register

    # -- the tree ----------------------------------------------------------------------------

    def include_router(self, child: Router) -> Router:
        """Attach ``child`` after this router's earlier children; returns it."""
        if not isinstance(child, Router):
            raise TypeError(f"include_router takes a Router, not {child!r}")
        if any(r is self for r in child._tree()):
            raise RouterError(f"including {child!r} in {self!r} would make a cycle")
        present = {id(r) for top in self._tops() for r in top._tree()}
        for r in child._tree():
            if id(r) in present:
                raise RouterError(f"{r!r} is attached twice in one tree (via {self!r})")
        self._children.append(child)
        child._parents.add(self)
        return child

    def _tree(self) -> Iterator[Router]:
        yield self
        for child in self._children:
            yield from child._tree()

    def _tops(self) -> list[Router]:
        tops: list[Router] = []
        todo, seen = [self], set()
        while todo:
            router = todo.pop()
            if id(router) not in seen:
                seen.add(id(router))
                parents = list(router._parents)
                todo += parents
                if not parents:
                    tops.append(router)
        return tops

    def _all(self) -> Iterator[_Route | Command]:
        for router in self._tree():
            yield from router._entries

    # -- what is registered ------------------------------------------------------------------

    def resolve(self, event: Event, ctx: Context) -> tuple[Handler, Event] | None:
        """The first handler in the tree for ``event``, and the event as it sees it."""
        for entry in self._all():
            found = entry.match(event, ctx)
            if found is not None:
                return found
        command = event.type == "command" and event.handler == "execution_handler"
        if command and self.subcommands(event.name, ctx):
            return _bare_command, event
        return None

    def words(self) -> list[tuple[str, str]]:
        """``(word, help)`` of every text word in the tree, in order; the first of a word wins."""
        found: dict[str, str] = {}
        for entry in self._all():
            if isinstance(entry, _Route) and entry.word and entry.word not in found:
                found[entry.word] = entry.help
        return list(found.items())

    def subcommands(self, command: str, ctx: Context) -> list[Subcommand]:
        """The subcommands of ``/command`` in the tree, in order; the first of a name wins."""
        found: dict[str, Subcommand] = {}
        for entry in self._all():
            if isinstance(entry, Command) and entry.resolved(ctx).lower() == command.lower():
                for name, sub in entry.subcommands.items():
                    found.setdefault(name, sub)
        return list(found.values())

    def usage(self, command: str, ctx: Context) -> str:
        """``Usage: /command <subcommand> …`` with every subcommand's usage lines, admins'
        last, then the commands' epilogs."""
        subs = self.subcommands(command, ctx)
        lines = [f"Usage: /{command} <subcommand> …"]
        lines += [f"  {line}" for sub in subs if not sub.admin for line in sub.usage]
        admin = [f"  {line}" for sub in subs if sub.admin for line in sub.usage]
        if admin:
            lines += ["Admins:", *admin]
        lines += [
            entry.epilog
            for entry in self._all()
            if isinstance(entry, Command)
            and entry.epilog
            and entry.resolved(ctx).lower() == command.lower()
        ]
        return "\n".join(lines)


def suggest(typed: str, subcommands: Sequence[Subcommand]) -> tuple[tuple[str, str], ...]:
    """The ``(name, description)`` of the subcommands that fit ``typed`` (the text after the
    command): all before anything is typed; those starting with the first word while it is
    typed; once it is followed by more text, only the one of exactly that name."""
    words = typed.split()
    fits = list(subcommands)
    if words:
        first = words[0].lower()
        complete = len(typed.strip()) > len(words[0]) or typed[-1:].isspace()
        fits = [s for s in fits if (s.name == first if complete else s.name.startswith(first))]
    return tuple((s.name, s.description) for s in fits)


def _tree(ctx: Context) -> Router:
    if ctx.router is None:
        raise RuntimeError("ctx.router is the tree being dispatched: call through dispatch()")
    return ctx.router


async def _suggestions(event: Event, ctx: Context) -> Message:
    """A command's default suggestions: its subcommands in the whole tree."""
    subs = _tree(ctx).subcommands(event.name, ctx)
    return Suggestions(items=suggest(event.arguments, subs))


async def _bare_command(event: Event, ctx: Context) -> Message:
    """A command with subcommands called bare (its usage) or with an unknown one."""
    tree = _tree(ctx)
    name = next(
        (e.resolved(ctx) for e in tree._all() if isinstance(e, Command) and e.named(event, ctx)),
        event.name,
    )
    word, _ = _subcommand(event.arguments)
    if not word:
        return text(tree.usage(name, ctx))
    raise UsageError(f"Unknown subcommand `{word}`.", tree.usage(name, ctx))


def _unhandled(event: Event) -> Message:
    # Anything Cliq sends that no route takes (context, form, widget, installation handlers,
    # unknown types, another command's name) gets 200 and this (CONTRACT §4).
    def shown(value: str) -> str:
        value = value.replace("`", "'")
        return value if len(value) <= 60 else value[:59] + "…"

    what = f"`{shown(event.type)}` / `{shown(event.handler)}` events"
    if event.name and event.type != "bot":  # a bot's events carry the bot's own name
        what += f" for `{shown(event.name)}`"
    return text(f"This bot does not handle {what}.")


async def dispatch(router: Router, event: Event, ctx: Context) -> tuple[Message, str]:
    """The reply for ``event`` and its outcome label for metrics."""
    if ctx.router is not router:
        ctx = replace(ctx, router=router)
    found = router.resolve(event, ctx)
    if found is None:
        return _unhandled(event), "unhandled"
    handler, routed = found
    try:
        return await handler(routed, ctx), "ok"
    except UsageError as err:
        body = f"{err}\n\n{err.usage}" if err.usage else str(err)
        return text(body), "refused"
    except ChatError as err:
        return text(str(err)), "refused"
    except StoreUnavailable:
        raise
    except NotAuthorized as err:
        if err.link and ctx.on_not_authorized is not None:
            return await _not_authorized(event, ctx, err, ctx.on_not_authorized)
        return _failed(handler, event)
    except Exception:
        return _failed(handler, event)


def _failed(handler: Handler, event: Event) -> tuple[Message, str]:
    """Called while the handler's error is being handled: logged with its traceback."""
    log.exception("handler %s failed for event %s", handler.__qualname__, event.identity[:12])
    return text(_SORRY), "error"


async def _not_authorized(
    event: Event, ctx: Context, err: NotAuthorized, hook: NotAuthorizedHook
) -> tuple[Message, str]:
    """A handler let ``NotAuthorized`` for a connection propagate: the hook keeps the event
    (as it came, before routing: it is dispatched again once the user connects) and words the
    connect prompt (CONTRACT §10)."""
    try:
        return await hook(event, ctx, err), "kept"
    except ChatError as hook_err:
        return text(str(hook_err)), "refused"
    except StoreUnavailable:
        raise
    except Exception:
        log.exception("keeping event %s for %s failed", event.identity[:12], err.link)
        return text(_SORRY), "error"
