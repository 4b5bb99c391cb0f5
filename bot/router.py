"""The chat router: handlers register on routers with filters; the first match wins.

Feature modules each export a ``router``; :func:`handlers.build_router` includes them in order.
:func:`dispatch` is the one place errors become chat replies: a :class:`~bot.errors.ChatError`
is shown to the user as it is; anything unexpected is logged with its traceback and answered
with a generic apology. Store outages are re-raised so the webhook answers 503 and Cliq retries.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from bot.cliq.events import Event
from bot.cliq.messages import Message, text
from bot.errors import ChatError, StoreUnavailable, UsageError

if TYPE_CHECKING:
    from bot.context import Context

log = logging.getLogger(__name__)

Filter: TypeAlias = Callable[[Event, "Context"], bool]
Handler: TypeAlias = Callable[[Event, "Context"], Awaitable[Message]]


class Router:
    def __init__(self, name: str) -> None:
        self.name = name
        self._routes: list[tuple[Filter, Handler]] = []
        self._children: list[Router] = []

    def route(self, match: Filter) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            if not inspect.iscoroutinefunction(fn):
                raise TypeError(f"handler {fn!r} must be an async function")
            self._routes.append((match, fn))
            return fn

        return register

    def welcome(self) -> Callable[[Handler], Handler]:
        return self.route(lambda e, _: e.type == "bot" and e.handler == "welcome_handler")

    def mention(self) -> Callable[[Handler], Handler]:
        return self.route(lambda e, _: e.type == "bot" and e.handler == "mention_handler")

    def message(self, *, attachments: bool | None = None) -> Callable[[Handler], Handler]:
        def match(e: Event, _: Context) -> bool:
            if e.type != "bot" or e.handler != "message_handler":
                return False
            return attachments is None or bool(e.attachments) == attachments

        return self.route(match)

    def command(self) -> Callable[[Handler], Handler]:
        return self.route(
            lambda e, ctx: (
                e.type == "command"
                and e.handler == "execution_handler"
                and e.name.lower() == ctx.settings.command_name.lower()
            )
        )

    def button(self) -> Callable[[Handler], Handler]:
        return self.route(lambda e, _: e.type == "function" and e.handler == "button_handler")

    def include(self, router: Router) -> None:
        self._children.append(router)

    def resolve(self, event: Event, ctx: Context) -> Handler | None:
        for match, fn in self._routes:
            if match(event, ctx):
                return fn
        for child in self._children:
            found = child.resolve(event, ctx)
            if found is not None:
                return found
        return None


async def dispatch(router: Router, event: Event, ctx: Context) -> tuple[Message, str]:
    """The reply for ``event`` and its outcome label for metrics."""
    handler = router.resolve(event, ctx)
    if handler is None:
        # Anything Cliq sends that no route takes (context, form, widget, installation
        # handlers, unknown types, another command's name) gets 200 and this (CONTRACT §4).
        def shown(value: str) -> str:
            value = value.replace("`", "'")
            return value if len(value) <= 60 else value[:59] + "…"

        what = f"`{shown(event.type)}` / `{shown(event.handler)}` events"
        if event.name and event.type != "bot":  # a bot's events carry the bot's own name
            what += f" for `{shown(event.name)}`"
        return text(f"This bot does not handle {what}."), "unhandled"
    try:
        return await handler(event, ctx), "ok"
    except UsageError as err:
        body = f"{err}\n\n{err.usage}" if err.usage else str(err)
        return text(body), "refused"
    except ChatError as err:
        return text(str(err)), "refused"
    except StoreUnavailable:
        raise
    except Exception:
        log.exception("handler %s failed for event %s", handler.__qualname__, event.identity[:12])
        return text(
            "Sorry, something went wrong on my side. Please try again in a minute."
        ), "error"
