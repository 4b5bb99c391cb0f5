"""``POST /cliq/webhook`` (CONTRACT §4): authenticity of what is handled, dedupe, reply.

The acknowledgement path, in order: admission (:class:`~bot.web.middleware.Admission`: past a
bound of deliveries in flight, 503 at once), the body, its authenticity, the event, then
:func:`_answer` — the handler's reply and **one durable write** that makes a repeated delivery
get that same reply (``storage/events.py``):

- a file message: the handler runs inside an open delivery, on which the intake stages the
  upload jobs instead of writing them (``bot/files/intake.py``); the reply it returns is then
  written *on* those jobs, all in one coalesced insert. A duplicate key on a job is the
  duplicate delivery, answered with the reply stored on it. No read of a dedupe record first:
  the handler's reads come from memory (``bot/cache.py``), so a fresh file costs one round trip;
- any other event: the stored reply is looked up (one read) and, if absent, the handler runs
  and its reply is recorded (one write) — a replay never runs a handler twice;
- an event no handler takes: nothing is recorded (the answer is a function of the event alone).

Deliveries of one event are taken one at a time within a process. A store that does not answer
gives 503 (the sender retries; what was written, if anything, is found by the retry).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.cliq.events import Event, parse_event
from bot.cliq.messages import CliqFunction, Message, Suggestions
from bot.cliq.signing import verify_cliq, verify_hmac
from bot.errors import NotAuthentic, PayloadTooLarge
from bot.keys import METRICS, RUNTIME, SETTINGS
from bot.router import dispatch
from bot.web.middleware import Admission

if TYPE_CHECKING:
    from bot.runtime import Components
    from storage.events import Committed

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

ADMISSION: web.AppKey[Admission] = web.AppKey("webhook_admission", Admission)
MAX_BODY = 1024 * 1024  # CONTRACT §4: a larger body is answered 413; the app's request limit too
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
    with request.app[ADMISSION].slot() as admitted:
        if not admitted:
            request.app[METRICS].events.inc(handler="unknown", outcome="shed")
            return Admission.refusal()
        return await _delivery(request)


async def _delivery(request: web.Request) -> web.Response:
    started = time.perf_counter()
    body = await _read_body(request)
    _, content = _authenticate(request, body)
    event = parse_event(content)
    # Bounded label values: any handler string a sender makes up is answered, not counted apart.
    label = event.handler if event.handled else "other"
    components = request.app[RUNTIME].components
    function = request.app[SETTINGS].cliq_function
    # One deadline for all the database work of this delivery: a hung store gives a 503 (Cliq
    # retries, and the dedupe makes the retry safe) instead of holding the request forever.
    with request.app[RUNTIME].store.deadline(_STORE_DEADLINE):
        async with components.events.one_at_a_time(event.identity):
            output, outcome = await _answer(components, event, function)
    metrics = request.app[METRICS]
    metrics.events.inc(handler=label, outcome=outcome)
    if outcome != "duplicate":
        metrics.event_latency.observe(time.perf_counter() - started, handler=label)
    return web.json_response({"output": output})


def _deduped_by_jobs(event: Event) -> bool:
    """A file message (the file flow's event, CONTRACT §4): its jobs are its dedupe record."""
    return event.type == "bot" and event.handler == "message_handler" and bool(event.attachments)


async def _answer(
    components: Components, event: Event, function: CliqFunction
) -> tuple[object, str]:
    """The ``output`` for ``event`` and its outcome label, with its one durable write."""
    ledger = components.events
    with ledger.delivery(event.identity) as delivery:  # every store call below is the ack path
        if not _deduped_by_jobs(event):
            first = await ledger.answered(event.identity)
            if first is not None:
                return Suggestions.output_of(first), "duplicate"
        message, outcome = await dispatch(components.router, event, components.context)
        reply = _stored(message, function)
        if outcome == "unhandled" and not delivery.jobs:
            return Suggestions.output_of(reply), outcome  # no handler ran: nothing to keep
        committed = await ledger.commit(delivery, reply)
        if committed.first_reply is not None:
            return Suggestions.output_of(committed.first_reply), "duplicate"
        if committed.held:
            reply, outcome = await _knowing_held(components, event, function, committed)
    return Suggestions.output_of(reply), outcome


async def _knowing_held(
    components: Components, event: Event, function: CliqFunction, committed: Committed
) -> tuple[dict[str, Any], str]:
    """Some attachments have jobs from another event (the same message re-sent with a new
    body): ask the handler again, knowing which, and keep that reply on what was written."""
    ledger = components.events
    with ledger.delivery(event.identity, held=committed.held):
        message, outcome = await dispatch(components.router, event, components.context)
    reply = _stored(message, function)
    if committed.written:
        await ledger.amend(committed.written, reply)
    return reply, outcome


def _stored(message: Message, function: CliqFunction) -> dict[str, Any]:
    """The reply as it is stored and answered again (a suggestion list is stored as a map)."""
    if isinstance(message, Suggestions):  # a slash command's suggestions: a list (CONTRACT §4)
        return message.to_stored()
    return message.to_dict(function)
