"""Operations endpoints (CONTRACT §9): liveness, readiness, metrics."""

from __future__ import annotations

from aiohttp import web

from bot.errors import StoreUnavailable
from bot.keys import METRICS, RUNTIME

routes = web.RouteTableDef()

_READY_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[RUNTIME].store.ping(_READY_TIMEOUT)
    except StoreUnavailable as err:  # reported, not raised: "not ready" is the answer
        return web.json_response({"status": "unavailable", "mongodb": err.cause}, status=503)
    return web.json_response({"status": "ready", "mongodb": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    app_metrics = request.app[METRICS]
    body = app_metrics.render().encode("utf-8")
    return web.Response(body=body, headers={"Content-Type": app_metrics.content_type})
