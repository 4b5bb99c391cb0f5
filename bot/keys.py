"""Typed application keys: how routes reach what ``create_app`` built (no singletons)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.metrics import Metrics
    from bot.runtime import Runtime

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
