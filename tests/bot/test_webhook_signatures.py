"""``POST /cliq/webhook`` over HTTP: Cliq's signature forms of CONTRACT §4.

Each form is accepted, each is refused with 401 when the content it verifies is not the content
sent, and what is handled is exactly what was verified. A real app, a real embedded store and a
test RSA key; nothing is mocked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from bot.cliq.events import event_identity
from bot.cliq.signing import hmac_signature, js_stringify, sign_cliq_rsa
from bot.config import Settings
from bot.keys import RUNTIME
from tests.conftest import ADMIN, ANA, WEBHOOK_SECRET, World

JSON = {"Content-Type": "application/json"}
CREATE = 'create "Équipe Dropbox" service=dropbox scopes=sharing.read'


@pytest.fixture
def world_settings(cliq_signed_settings: Settings) -> Settings:
    return cliq_signed_settings


def compact(body: object) -> bytes:
    """What Cliq's JavaScript signs: ``JSON.stringify`` of the parsed body."""
    return js_stringify(body).encode("utf-8")


def spaced(body: object) -> bytes:
    """The same content as Cliq's serializer would not write it: indented, non-ASCII escaped."""
    return json.dumps(body, indent=2, ensure_ascii=True).encode("ascii")


def cliq_header(key: RSAPrivateKey, signed: bytes) -> dict[str, str]:
    return JSON | {"X-Cliq-Signature": sign_cliq_rsa(key, signed)}


def hmac_headers(raw: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    return JSON | {
        "X-Bot-Timestamp": stamp,
        "X-Bot-Signature": hmac_signature(secret, stamp, raw),
    }


def with_signature(key: RSAPrivateKey, body: dict[str, Any]) -> dict[str, Any]:
    """The in-body form: ``signature`` over ``JSON.stringify`` of the rest."""
    return {**body, "signature": sign_cliq_rsa(key, compact(body))}


async def post(world: World, raw: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    async with world.chat.http.post(
        f"{world.bot_url}/cliq/webhook", data=raw, headers=dict(headers)
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def handled_identities(world: World) -> list[str]:
    db = world.app[RUNTIME].db
    return [doc["_id"] async for doc in db["processed_events"].find({}, {"_id": 1})]


async def connections(world: World) -> int:
    return int(await world.app[RUNTIME].db["connections"].count_documents({}))


def unknown(world: World, word: str) -> dict[str, Any]:
    """A slash command whose reply repeats the word it was sent."""
    return world.chat.command_event(ANA, word)


# -- each form accepted -----------------------------------------------------------------------


async def test_header_over_the_raw_body(world: World, cliq_key: RSAPrivateKey) -> None:
    event = unknown(world, "zebra-ünï")
    raw = spaced(event)
    status, body = await post(world, raw, cliq_header(cliq_key, raw))
    assert status == 200, body
    assert "Unknown subcommand `zebra-ünï`" in body["output"]["text"]
    assert await handled_identities(world) == [event_identity(event)]


async def test_header_over_the_compact_json_of_a_spaced_non_ascii_body(
    world: World, cliq_key: RSAPrivateKey
) -> None:
    event = unknown(world, "zebra-ünï-😀-\u2028")
    raw = spaced(event)
    assert b"\\u00fc" in raw and b"\n  " in raw and raw != compact(event)
    status, body = await post(world, raw, cliq_header(cliq_key, compact(event)))
    assert status == 200, body
    assert "Unknown subcommand `zebra-ünï-😀-\u2028`" in body["output"]["text"]
    assert await handled_identities(world) == [event_identity(event)]


async def test_a_signature_field_in_the_body(world: World, cliq_key: RSAPrivateKey) -> None:
    event = world.chat.command_event(ADMIN, CREATE)
    raw = spaced(with_signature(cliq_key, event))
    status, body = await post(world, raw, JSON)
    assert status == 200, body
    assert "Created" in body["output"]["text"] or "created" in body["output"]["text"], body
    doc = await world.app[RUNTIME].db["connections"].find_one({})
    assert doc is not None and doc["name"] == "Équipe Dropbox"
    assert await connections(world) == 1


async def test_the_body_field_form_handles_the_body_without_the_field(
    world: World, cliq_key: RSAPrivateKey
) -> None:
    event = world.chat.command_event(ADMIN, CREATE)
    signed = with_signature(cliq_key, event)
    status, body = await post(world, compact(signed), JSON)
    assert status == 200, body
    # what was handled is the event without `signature`: its identity, not the signed body's
    assert await handled_identities(world) == [event_identity(event)]
    assert event_identity(event) != event_identity(signed)
    # ... so the same event sent with HMAC is that very delivery again: same reply, no new work
    raw = compact(event)
    status, again = await post(world, raw, hmac_headers(raw))
    assert status == 200 and again == body
    assert await connections(world) == 1
    assert await handled_identities(world) == [event_identity(event)]


async def test_the_body_field_form_shows_the_handled_text(
    world: World, cliq_key: RSAPrivateKey
) -> None:
    event = unknown(world, "zebra-ünï")
    status, body = await post(world, spaced(with_signature(cliq_key, event)), JSON)
    assert status == 200, body
    assert "Unknown subcommand `zebra-ünï`" in body["output"]["text"]


async def test_a_bad_header_of_another_form_does_not_veto_the_body_field(
    world: World, cliq_key: RSAPrivateKey
) -> None:
    event = unknown(world, "zebra")
    headers = JSON | {
        "X-Cliq-Signature": sign_cliq_rsa(cliq_key, b"something else"),
        "X-Bot-Timestamp": str(int(time.time())),
        "X-Bot-Signature": "v1=" + "0" * 64,
    }
    status, body = await post(world, compact(with_signature(cliq_key, event)), headers)
    assert status == 200, body
    assert "Unknown subcommand `zebra`" in body["output"]["text"]


# -- each form refused when tampered --------------------------------------------------------


def _changed(event: dict[str, Any]) -> dict[str, Any]:
    other = json.loads(json.dumps(event))
    other["params"]["arguments"] = CREATE.replace("Équipe", "Other")
    return other


async def test_raw_form_with_a_changed_value_is_401(world: World, cliq_key: RSAPrivateKey) -> None:
    event = world.chat.command_event(ADMIN, CREATE)
    headers = cliq_header(cliq_key, spaced(event))
    status, body = await post(world, spaced(_changed(event)), headers)
    assert status == 401 and "error" in body
    assert await connections(world) == 0 and await handled_identities(world) == []


async def test_compact_signature_over_other_content_is_401(
    world: World, cliq_key: RSAPrivateKey
) -> None:
    event = world.chat.command_event(ADMIN, CREATE)
    headers = cliq_header(cliq_key, compact(event))
    for raw in (spaced(_changed(event)), compact(_changed(event))):
        status, body = await post(world, raw, headers)
        assert status == 401 and "error" in body, raw
    # the same content with its keys in another order is another JSON.stringify too
    reordered = spaced(dict(reversed(list(event.items()))))
    status, _ = await post(world, reordered, headers)
    assert status == 401
    assert await connections(world) == 0 and await handled_identities(world) == []


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: b.update(extra="field"), id="extra-field"),
        pytest.param(lambda b: b["params"].update(arguments="delete team"), id="changed-value"),
        pytest.param(lambda b: b["params"]["user"].update(admin=True), id="changed-user"),
        pytest.param(lambda b: b.update(signature=b["signature"][::-1]), id="changed-signature"),
    ],
)
async def test_body_field_form_with_a_changed_body_is_401(
    world: World, cliq_key: RSAPrivateKey, tamper: Any
) -> None:
    signed = with_signature(cliq_key, world.chat.command_event(ADMIN, CREATE))
    tamper(signed)
    status, body = await post(world, spaced(signed), JSON)
    assert status == 401 and body["error"] == "bad Cliq signature"
    assert await connections(world) == 0 and await handled_identities(world) == []


async def test_a_signature_field_that_belongs_to_another_key_is_401(world: World) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    status, _ = await post(world, compact(with_signature(other, unknown(world, "x"))), JSON)
    assert status == 401


async def test_a_body_that_is_not_json_passes_only_a_raw_form(
    world: World, cliq_key: RSAPrivateKey
) -> None:
    raw = b'{"type": "bot", "signature": '
    status, body = await post(world, raw, cliq_header(cliq_key, raw))
    assert status == 400 and body["field"] == "body"  # authentic, then malformed as today
    status, _ = await post(world, raw, cliq_header(cliq_key, b'{"type":"bot"}'))
    assert status == 401
    status, _ = await post(world, b'{"type":"bot","n":NaN}', cliq_header(cliq_key, b""))
    assert status == 401
    assert await handled_identities(world) == []


async def test_unsigned_is_still_401(world: World) -> None:
    status, body = await post(world, compact(unknown(world, "x")), JSON)
    assert status == 401 and body["error"] == "the request is not signed"


# -- HMAC: raw body only, unchanged ---------------------------------------------------------


async def test_hmac_is_over_the_raw_body_only(world: World) -> None:
    event = unknown(world, "zebra-ünï")
    raw = spaced(event)
    status, body = await post(world, raw, hmac_headers(raw))
    assert status == 200 and "Unknown subcommand `zebra-ünï`" in body["output"]["text"]
    other = unknown(world, "zebra-2")
    status, body = await post(world, spaced(other), hmac_headers(compact(other)))
    assert status == 401 and body["error"] == "bad or stale HMAC signature"


async def test_hmac_handles_a_signature_field_as_part_of_the_body(world: World) -> None:
    event = {**unknown(world, "zebra"), "signature": "not checked by HMAC"}
    raw = compact(event)
    status, body = await post(world, raw, hmac_headers(raw))
    assert status == 200, body
    assert await handled_identities(world) == [event_identity(event)]
