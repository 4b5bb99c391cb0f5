"""Operations endpoints (CONTRACT §9): liveness, readiness, metrics."""

from __future__ import annotations

from aiohttp import web

from bot.keys import METRICS, RUNTIME

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    # No asyncio timeout around the driver: cancelling PyMongo mid-selection can wedge its pool.
    # The client's serverSelectionTimeoutMS (2 s) bounds the wait instead.
    try:
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
