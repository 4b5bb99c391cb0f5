"""A module named in BOT_PLUGINS that has no ``router``: start-up stops, naming it."""

from __future__ import annotations

ROUTER = None  # not what the bot looks for
