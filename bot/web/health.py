"""Operations endpoints (CONTRACT §9): liveness, readiness, metrics."""

from __future__ import annotations

import pymongo
from aiohttp import web

from bot.keys import METRICS, RUNTIME

routes = web.RouteTableDef()

_READY_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    # PyMongo's own operation timeout, not an asyncio one: cancelling the async driver while it
    # waits can wedge its pool, and a hung (not dead) server would otherwise never answer.
    try:
        with pymongo.timeout(_READY_TIMEOUT):
            await runtime.db.command("ping")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; reported, not raised
        return web.json_response(
            {"status": "unavailable", "mongodb": type(exc).__name__}, status=503
        )
    return web.json_response({"status": "ready", "mongodb": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[METRICS].render(), content_type="text/plain", charset="utf-8"
    )
