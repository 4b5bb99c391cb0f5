"""Chat behaviour: one module per feature, each exporting a ``router``.

:func:`build_router` makes the tree: the built-in features in order, then plugins' routers
(``BOT_PLUGINS`` order), then the fallbacks for what none of them took. First match wins, so a
built-in word, key or subcommand is never overridden by a plugin's.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.router import Router
from handlers import (
    admin,
    buttons,
    chat,
    commands,
    fallback,
    files,
    page,
    sample,
    services,
    welcome,
)

#: The built-in features, in the order they are tried; the subcommands of ``/connection`` are
#: listed in this order too.
FEATURES = (welcome, commands, services, admin, page, sample, files, chat, buttons)


def build_router(plugins: Sequence[Router] = ()) -> Router:
    """The bot's router tree: each feature router once, then ``plugins``, then the fallbacks."""
    root = Router("cliqbot")
    for feature in FEATURES:
        root.include_router(feature.router)
    for plugin in plugins:
        root.include_router(plugin)
    root.include_router(fallback.router)
    return root
