"""The application-wide middlewares: request logging and error mapping (STYLE practice 5).

``create_app`` registers them, outermost first: :func:`logging_middleware` (it sees the final
status of every answer, a mapped error's too), then :func:`error_middleware` (domain errors
become JSON answers with their status code). Authenticity is not a middleware: only the webhook
is signed, and its check needs the raw body, so it is the first step of that route. Admission
(:class:`Admission`: past a bound of deliveries in flight, 503 at once) is not one either: only
the webhook is admitted, so it is the step before that.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.errors import BadPayload, NotAuthentic, PayloadTooLarge, RequestError, StoreUnavailable
from bot.keys import METRICS

log = logging.getLogger(__name__)
access_log = logging.getLogger("bot.access")

_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_RETRY_AFTER = "5"
_SHED_RETRY_AFTER = "1"


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


class Admission:
    """At most ``limit`` webhook deliveries in flight (``BOT_MAX_EVENTS_IN_FLIGHT``): one more is
    answered 503 with ``Retry-After`` at once, before its body is read, instead of queueing
    towards the store's deadline. Nothing of it was accepted, so nothing is lost: the sender
    retries (CONTRACT §4: 503, the sender retries). The webhook's first step, like its
    authenticity check: only that route is admitted."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the bound of deliveries in flight must be at least 1")
        self.limit = limit
        self.in_flight = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[bool]:
        """``True`` (and the slot held for the block) if admitted, else ``False``."""
        if self.in_flight >= self.limit:
            yield False
            return
        self.in_flight += 1
        try:
            yield True
        finally:
            self.in_flight -= 1

    @staticmethod
    def refusal() -> web.Response:
        return web.json_response(
            {"error": "too many events in flight; retry later"},
            status=503,
            headers={"Retry-After": _SHED_RETRY_AFTER},
        )
