"""A module whose ``router`` is not a bot.plugin.Router: start-up stops, naming it."""

from __future__ import annotations

router = {"fetch": "not a router"}
