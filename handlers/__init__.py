"""Chat behaviour: one module per feature, each exporting a ``router``."""

from __future__ import annotations

from bot.router import Router
from handlers import buttons, chat, commands, files, suggestions, welcome


def build_router() -> Router:
    """The bot's router; order matters where filters overlap (first match wins)."""
    root = Router("cliqbot")
    for feature in (welcome, commands, suggestions, files, chat, buttons):
        root.include(feature.router)
    return root
