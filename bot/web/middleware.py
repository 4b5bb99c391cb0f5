"""The application-wide middlewares: request logging and error mapping (STYLE practice 5).

``create_app`` registers them, outermost first: :func:`logging_middleware` (it sees the final
status of every answer, a mapped error's too), then :func:`error_middleware` (domain errors
become JSON answers with their status code). Authenticity is not a middleware: only the webhook
is signed, and its check needs the raw body, so it is the first step of that route.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.errors import BadPayload, NotAuthentic, PayloadTooLarge, RequestError, StoreUnavailable
from bot.keys import METRICS

log = logging.getLogger(__name__)
access_log = logging.getLogger("bot.access")

_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_RETRY_AFTER = "5"


@web.middleware
async def logging_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path (never the query: a callback's holds the code),
    status, milliseconds. Probes log at DEBUG."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        level = logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO
        access_log.log(
            level,
            "%s %s %s %.0fms",
            request.method,
            request.path,
            status,
            (time.perf_counter() - started) * 1000,
        )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Error mapping for JSON endpoints: domain errors → status codes, the rest → 500 + log."""
    try:
        return await handler(request)
    except RequestError as err:
        if isinstance(err, NotAuthentic | PayloadTooLarge | BadPayload):
            request.app[METRICS].events.inc(handler="unknown", outcome=f"http_{err.status}")
        body: dict[str, object] = {"error": str(err)}
        if isinstance(err, BadPayload) and err.field:
            body["field"] = err.field
        return web.json_response(body, status=err.status)
    except StoreUnavailable:
        log.warning(
            "the database is not answering; %s %s answered 503", request.method, request.path
        )
        return web.json_response(
            {"error": "the database is not answering; retry later"},
            status=503,
            headers={"Retry-After": _RETRY_AFTER},
        )
