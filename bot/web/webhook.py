"""``POST /cliq/webhook`` (CONTRACT §4): authenticity of what is handled, dedupe, reply."""

from __future__ import annotations

import contextlib
import logging
import time

from aiohttp import web

from bot.cliq.events import Event, parse_event
from bot.cliq.signing import verify_cliq, verify_hmac
from bot.errors import NotAuthentic, PayloadTooLarge, StoreError, StoreUnavailable
from bot.keys import METRICS, RUNTIME, SETTINGS
from bot.router import dispatch

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

MAX_BODY = 1024 * 1024  # CONTRACT §4: a larger body is answered 413; the app's request limit too
_DUPLICATE_WAIT = 2.0
_STORE_DEADLINE = 5.0  # a hung store answers 503 (Cliq retries); load alone rarely reaches it


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(MAX_BODY)
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(MAX_BODY)
    return bytes(body)


def _authenticate(request: web.Request, body: bytes) -> tuple[str, bytes]:
    """The scheme that vouched for the delivery and the exact bytes it verified, which are what
    is then parsed and handled (CONTRACT §4): the raw body, or for Cliq's JSON forms the
    ``JSON.stringify`` bytes (without the ``signature`` field for the in-body form). Raises
    ``NotAuthentic``."""
    settings = request.app[SETTINGS]
    runtime = request.app[RUNTIME]
    # Either scheme is enough (CONTRACT §4): a bad header of one does not veto the other.
    signature = request.headers.get("X-Bot-Signature")
    hmac_tried = bool(settings.webhook_secret) and signature is not None
    if (
        settings.webhook_secret
        and hmac_tried
        and verify_hmac(
            settings.webhook_secret.reveal(),
            request.headers.get("X-Bot-Timestamp"),
            signature,
            body,
            time.time(),
        )
    ):
        return "hmac", body  # HMAC is over the raw body only
    key = runtime.components.cliq_public_key
    cliq_tried = False
    if key is not None:
        verdict = verify_cliq(key, request.headers.get("X-Cliq-Signature"), body)
        if verdict.form is not None:
            return f"cliq-{verdict.form}", verdict.content
        cliq_tried = verdict.signed
    if hmac_tried:
        raise NotAuthentic("bad or stale HMAC signature")
    if cliq_tried:
        raise NotAuthentic("bad Cliq signature")
    raise NotAuthentic("the request is not signed")


@routes.post("/cliq/webhook")
async def webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    body = await _read_body(request)
    _, content = _authenticate(request, body)
    event = parse_event(content)
    # Bounded label values: any handler string a sender makes up is answered, not counted apart.
    label = event.handler if event.handled else "other"
    # One deadline for all the database work of this delivery: a hung store gives a 503 (Cliq
    # retries, and the dedupe makes the retry safe) instead of holding the request forever.
    with request.app[RUNTIME].store.deadline(_STORE_DEADLINE):
        return await _handle(request, event, label, started)


async def _handle(request: web.Request, event: Event, label: str, started: float) -> web.Response:
    from bot.cliq.messages import Suggestions

    metrics = request.app[METRICS]
    components = request.app[RUNTIME].components
    previous = await components.events.claim(event.identity)
    if previous is not None:
        reply = previous.reply or await components.events.wait_reply(
            event.identity, _DUPLICATE_WAIT
        )
        metrics.events.inc(handler=label, outcome="duplicate")
        if reply is None:
            reply = {"text": "I got this already and am still working on it."}
        return web.json_response({"output": Suggestions.output_of(reply)})
    try:
        message, outcome = await dispatch(components.router, event, components.context)
    except StoreUnavailable:
        # Forget the claim, so the sender's retry after our 503 is processed afresh instead of
        # being answered "still working on it" with the work never done.
        with contextlib.suppress(StoreError):
            await components.events.release(event.identity)
        raise
    output: object
    if isinstance(message, Suggestions):  # a slash command's suggestions: a list (CONTRACT §4)
        output = message.to_output()
        await components.events.complete(event.identity, message.to_stored())
    else:
        reply = message.to_dict(request.app[SETTINGS].cliq_function)
        await components.events.complete(event.identity, reply)
        output = reply
    metrics.events.inc(handler=label, outcome=outcome)
    metrics.event_latency.observe(time.perf_counter() - started, handler=label)
    return web.json_response({"output": output})
