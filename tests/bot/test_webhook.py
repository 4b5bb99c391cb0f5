"""``POST /cliq/webhook`` (CONTRACT §4): authenticity, shape, size, dispatch and replays."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.cliq.signing import hmac_signature, sign_cliq_rsa
from bot.config import Settings
from bot.keys import RUNTIME
from tests.conftest import ADMIN, ANA, WEBHOOK_SECRET, World


@pytest.fixture
def world_settings(cliq_signed_settings: Settings) -> Settings:
    return cliq_signed_settings


def dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def signed(raw: bytes, ts: int | None = None, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {
        "Content-Type": "application/json",
        "X-Bot-Timestamp": stamp,
        "X-Bot-Signature": hmac_signature(secret, stamp, raw),
    }


async def post(
    world: World, raw: bytes, headers: Mapping[str, str]
) -> tuple[int, dict[str, Any] | None, str]:
    data = io.BytesIO(raw) if len(raw) > 1024 * 1024 else raw
    async with world.chat.http.post(
        f"{world.bot_url}/cliq/webhook", data=data, headers=dict(headers)
    ) as resp:
        text = await resp.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return resp.status, body if isinstance(body, dict) else None, text


async def processed(world: World) -> int:
    db = world.app[RUNTIME].db
    return int(await db["processed_events"].count_documents({}))


# -- authenticity -----------------------------------------------------------------------------


async def test_unsigned_is_401_and_nothing_happens(world: World) -> None:
    raw = dumps(world.chat.command_event(ADMIN, "create X service=dropbox scopes=sharing.read"))
    status, body, _ = await post(world, raw, {"Content-Type": "application/json"})
    assert status == 401 and body is not None and "error" in body
    assert await processed(world) == 0
    assert await world.app[RUNTIME].db["connections"].count_documents({}) == 0


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda h: h | {"X-Bot-Signature": "v1=" + "0" * 64}, id="wrong-hmac"),
        pytest.param(lambda h: h | {"X-Bot-Signature": h["X-Bot-Signature"][3:]}, id="no-v1"),
        pytest.param(lambda h: h | {"X-Bot-Timestamp": "12x"}, id="bad-timestamp"),
        pytest.param(lambda h: {k: v for k, v in h.items() if k != "X-Bot-Timestamp"}, id="no-ts"),
    ],
)
async def test_bad_hmac_is_401(world: World, mutate: Any) -> None:
    raw = dumps(world.chat.command_event(ADMIN, "help"))
    status, body, _ = await post(world, raw, mutate(signed(raw)))
    assert status == 401 and body is not None and "error" in body
    assert await processed(world) == 0


async def test_a_different_secret_is_401(world: World) -> None:
    raw = dumps(world.chat.command_event(ADMIN, "help"))
    status, _, _ = await post(world, raw, signed(raw, secret="not-the-secret"))
    assert status == 401


async def test_a_tampered_body_is_401(world: World) -> None:
    raw = dumps(world.chat.command_event(ADMIN, "help"))
    headers = signed(raw)
    status, _, _ = await post(world, raw.replace(b"help", b"list"), headers)
    assert status == 401


@pytest.mark.parametrize(("skew", "ok"), [(-301, False), (301, False), (-290, True), (290, True)])
async def test_timestamp_window_is_300_seconds_past_or_future(
    world: World, skew: int, ok: bool
) -> None:
    raw = dumps(world.chat.command_event(ADMIN, "help"))
    status, _, _ = await post(world, raw, signed(raw, int(time.time()) + skew))
    assert status == (200 if ok else 401)


async def test_rsa_signed_body_is_accepted(world: World, cliq_key: RSAPrivateKey) -> None:
    raw = dumps(world.chat.command_event(ANA, "help"))
    headers = {"Content-Type": "application/json", "X-Cliq-Signature": sign_cliq_rsa(cliq_key, raw)}
    status, body, _ = await post(world, raw, headers)
    assert status == 200 and body is not None
    assert "Usage: /connection" in body["output"]["text"]


@pytest.mark.parametrize("kind", ["other-key", "garbage", "tampered"])
async def test_bad_rsa_signature_is_401(world: World, cliq_key: RSAPrivateKey, kind: str) -> None:
    raw = dumps(world.chat.command_event(ADMIN, "create X service=dropbox scopes=sharing.read"))
    if kind == "other-key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        signature = sign_cliq_rsa(other, raw)
    elif kind == "garbage":
        signature = "not base64 at all!"
    else:
        signature = sign_cliq_rsa(cliq_key, raw + b" ")
    headers = {"Content-Type": "application/json", "X-Cliq-Signature": signature}
    status, body, _ = await post(world, raw, headers)
    assert status == 401 and body is not None and "error" in body
    assert await world.app[RUNTIME].db["connections"].count_documents({}) == 0


# -- shape and size ---------------------------------------------------------------------------


def _without(path: str, body: dict[str, Any]) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node[key]
    del node[last]
    return body


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda w: b"{not json", "body"),
        (lambda w: b"\xff\xfe", "body"),
        (lambda w: b"[1, 2]", "body"),
        (lambda w: b'"text"', "body"),
        (lambda w: b"null", "body"),
        (lambda w: dumps(_without("type", w.chat.welcome(ANA))), "type"),
        (lambda w: dumps(_without("handler.type", w.chat.welcome(ANA))), "handler.type"),
        (lambda w: dumps(_without("handler", w.chat.welcome(ANA))), "handler.type"),
        (lambda w: dumps(_without("params.user", w.chat.welcome(ANA))), "params.user"),
        (lambda w: dumps(_without("params.user.id", w.chat.message(ANA, "hi"))), "params.user.id"),
        (
            lambda w: dumps(_without("params.user.id", w.chat.button(ANA, "retry:1"))),
            "params.user.id",
        ),
        (lambda w: dumps({**w.chat.welcome(ANA), "params": []}), "params"),
        (lambda w: dumps({**w.chat.welcome(ANA), "type": 7}), "type"),
    ],
)
async def test_malformed_bodies_are_400_naming_the_problem(
    world: World, make: Any, field: str
) -> None:
    raw = make(world)
    status, body, _ = await post(world, raw, signed(raw))
    assert status == 400, body
    assert body is not None and isinstance(body["error"], str) and body["error"]
    assert body.get("field") == field, body
    assert await processed(world) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda w: _without("name", w.chat.command_event(ANA, "help")),
        lambda w: _without("params.target", w.chat.button(ANA, "retry:1")),
    ],
)
async def test_what_the_bot_does_not_need_is_never_a_400(world: World, make: Any) -> None:
    raw = dumps(make(world))
    status, body, _ = await post(world, raw, signed(raw))
    assert status == 200 and body is not None and "output" in body, body


async def test_a_body_over_one_mebibyte_is_413(world: World) -> None:
    event = world.chat.message(ANA, "x" * (1024 * 1024))
    raw = dumps(event)
    status, body, _ = await post(world, raw, signed(raw))
    assert status == 413 and body is not None and "error" in body


async def test_a_chunked_body_over_one_mebibyte_is_413(world: World) -> None:
    raw = dumps(world.chat.message(ANA, "y" * (1024 * 1024 + 10)))

    async def chunks() -> Any:
        for i in range(0, len(raw), 65536):
            yield raw[i : i + 65536]

    headers = signed(raw)
    async with world.chat.http.post(
        f"{world.bot_url}/cliq/webhook", data=chunks(), headers=headers
    ) as resp:
        assert resp.status == 413


async def test_a_body_just_under_the_limit_is_accepted(world: World) -> None:
    event = world.chat.message(ANA, "")
    room = 1024 * 1024 - len(dumps(event)) - 16
    event["params"]["message"] = "z" * room
    raw = dumps(event)
    assert len(raw) <= 1024 * 1024
    status, _, _ = await post(world, raw, signed(raw))
    assert status == 200


# -- dispatch ---------------------------------------------------------------------------------


async def test_unhandled_types_get_200_saying_so(world: World) -> None:
    for kind, handler in [("bot", "context_handler"), ("widget", "view_handler")]:
        body = world.chat.welcome(ANA)
        body["type"], body["handler"] = kind, {"type": handler}
        del body["params"]["user"]  # not needed for an unhandled type
        reply = await world.chat.post(body)
        assert reply.status == 200
        assert "not handle" in reply.text and handler in reply.text, reply.text


async def test_a_command_with_another_name_is_not_handled(world: World) -> None:
    body = world.chat.command_event(ADMIN, "help")
    body["name"] = "weather"
    reply = await world.chat.post(body)
    assert reply.status == 200 and "not handle" in reply.text, reply.text


async def test_welcome_greets_and_shows_the_status(world: World) -> None:
    reply = await world.chat.post(world.chat.welcome(ANA))
    assert reply.status == 200
    assert reply.text.startswith("Hi Ana!") and "No connection is published" in reply.text
    await world.setup_connection(switch="on")
    reply = await world.chat.post(world.chat.welcome(ANA))
    assert "Team Dropbox" in reply.text and "You: not connected." in reply.text, reply.text
    assert reply.output["card"]["title"] == "Welcome"
    await world.connect(ANA, "ana@dropbox.example")
    reply = await world.chat.post(world.chat.welcome(ANA))
    assert "You: connected as ana@dropbox.example." in reply.text, reply.text


async def test_help_text_and_mentions_get_help(world: World) -> None:
    for reply in (
        await world.chat.say(ANA, "help"),
        await world.chat.say(ANA, "what can you do?"),
        await world.chat.post(world.chat.mention(ANA, "@filesbot hello")),
    ):
        assert reply.status == 200
        assert "Send me a file" in reply.text and "/Cliq Uploads" in reply.text, reply.text


async def test_chat_words_status_connect_disconnect(world: World) -> None:
    assert "No connection is published" in (await world.chat.say(ANA, "status")).text
    await world.setup_connection(switch="on")
    reply = await world.chat.say(ANA, "connect")
    assert reply.button_url(), reply.text
    assert "You: not connected." in (await world.chat.say(ANA, "Status")).text
    assert "not connected" in (await world.chat.say(ANA, "disconnect")).text


async def test_button_connect_gives_a_connect_link(world: World) -> None:
    await world.setup_connection(switch="on")
    reply = await world.chat.post(world.chat.button(ANA, "connect:team_dropbox", label="Connect"))
    url = reply.button_url()
    assert reply.status == 200 and url and url.startswith(world.bot_url + "/connect/")
    button = reply.output["buttons"][0]
    assert button["action"] == {"type": "open.url", "data": {"web": url}}
    status, page = await world.chat.consent(url, "ana@dropbox.example")
    assert status == 200 and "Connected as ana@dropbox.example" in page
    for key in ("launch", "launch:x", "", "connect:"):
        reply = await world.chat.post(world.chat.button(ANA, key))
        assert reply.status == 200 and "not one of mine" in reply.text, key


# -- replays ----------------------------------------------------------------------------------


async def test_a_replayed_delivery_gets_the_same_reply_without_repeating_work(
    world: World,
) -> None:
    raw = dumps(
        world.chat.command_event(ADMIN, 'create "Team Dropbox" service=dropbox scopes=sharing.read')
    )
    status, first, _ = await post(world, raw, signed(raw, int(time.time()) - 5))
    assert status == 200 and first is not None
    assert "`team_dropbox`" in first["output"]["text"]
    status, again, _ = await post(world, raw, signed(raw))  # re-signed, new timestamp
    assert status == 200 and again == first
    db = world.app[RUNTIME].db
    assert await db["connections"].count_documents({}) == 1
    assert await db["audit"].count_documents({}) == 1
    assert await db["connect_links"].count_documents({}) == 1  # one link, not a second one


# -- fuzz ---------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_event_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["bot", "command", "function", "x"]) | _json_values,
        "handler": st.fixed_dictionaries(
            {
                "type": st.sampled_from(
                    [
                        "welcome_handler",
                        "message_handler",
                        "mention_handler",
                        "execution_handler",
                        "button_handler",
                    ]
                )
                | _json_values
            }
        )
        | _json_values,
        "name": st.just("connection") | _json_values,
        "params": st.dictionaries(
            st.sampled_from(["user", "chat", "message", "arguments", "attachments", "target"]),
            _json_values,
        )
        | _json_values,
    }
)
_bodies = (
    st.binary(max_size=200)
    | _json_values.map(lambda v: json.dumps(v).encode())
    | _event_like.map(lambda v: json.dumps(v).encode())
)
_header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80
)


@hsettings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=_bodies,
    sign=st.sampled_from(["hmac", "none", "random"]),
    skew=st.integers(min_value=-400, max_value=400),
    extra=st.dictionaries(
        st.sampled_from(["X-Bot-Signature", "X-Bot-Timestamp", "X-Cliq-Signature"]),
        _header_values,
        max_size=3,
    ),
)
async def test_fuzzed_deliveries_only_get_200_400_401_or_413(
    world: World, body: bytes, sign: str, skew: int, extra: dict[str, str]
) -> None:
    headers = {"Content-Type": "application/json"}
    if sign == "hmac":
        headers |= signed(body, int(time.time()) + skew)
    elif sign == "random":
        headers |= extra
    try:
        status, reply, _ = await post(world, body, headers)
    except aiohttp.ClientError as exc:  # pragma: no cover - would be a server crash
        pytest.fail(f"the server dropped the connection: {exc!r}")
    assert status in (200, 400, 401, 413), (status, reply, body, headers)
    assert reply is not None
    if status == 200:
        assert isinstance(reply.get("output"), dict) and "text" in reply["output"]
    else:
        assert isinstance(reply.get("error"), str)


async def test_one_valid_scheme_is_enough(world: World, cliq_key: RSAPrivateKey) -> None:
    """CONTRACT §4: processed if *one* of the schemes holds, whatever the other header says."""
    raw = dumps(world.chat.command_event(ANA, "help"))
    headers = {
        "Content-Type": "application/json",
        "X-Bot-Timestamp": str(int(time.time())),
        "X-Bot-Signature": "v1=" + "0" * 64,
        "X-Cliq-Signature": sign_cliq_rsa(cliq_key, raw),
    }
    status, body, _ = await post(world, raw, headers)
    assert status == 200 and body is not None, body
    headers = signed(raw) | {"X-Cliq-Signature": "AAAA"}
    status, body, _ = await post(world, raw, headers)
    assert status == 200, body
