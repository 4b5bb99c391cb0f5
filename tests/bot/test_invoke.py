"""``ctx.invoke`` (CONTRACT §10) from a plugin, over HTTP, against a real OAuth 2 server.

The provider is :class:`bot.sandbox.oauth_server.OAuthServer` (authlib's authorization code +
PKCE, refresh-token rotation, RFC 7009 revocation, a protected API) added as a custom service
with ``/connection service add``; the plugin is ``tests.plugins.api`` loaded through
``BOT_PLUGINS``. Users connect through the consent page, as in a browser. Nothing of the code
under test is patched; the real store keeps every authorization and kept event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import create_app
from bot.cliq.events import event_identity
from bot.config import Settings
from bot.keys import RUNTIME
from bot.sandbox.driver import ChatDriver, ChatUser, Reply
from bot.sandbox.oauth_server import OAuthServer
from tests.conftest import ADMIN, ANA, BEN, World
from tests.plugins import api

CLIENT, CLIENT_SECRET = "cliqbot-test", "client-s3cret"
SCOPES = "openid,email,items.read"
ANA_ACME, BEN_ACME, OWNER_ACME = "ana@acme.example", "ben@acme.example", "owner@acme.example"
OUR_LOGGERS = ("bot", "handlers", "storage", "tests")


@pytest.fixture
def world_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, plugins=("tests.plugins.api",))


@pytest.fixture
async def acme(aiohttp_server: Any) -> AsyncIterator[OAuthServer]:
    provider = OAuthServer(expires_in=3600)
    provider.add_client(CLIENT, CLIENT_SECRET)  # any http(s) redirect URI: the bot's port varies
    server = await aiohttp_server(provider.app())
    provider.base_url = str(server.make_url("")).rstrip("/")
    yield provider


@pytest.fixture(autouse=True)
def _all_logs(caplog: pytest.LogCaptureFixture) -> None:
    for name in OUR_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)


async def add_service(world: World, acme: OAuthServer, name: str = "acme", **extra: str) -> None:
    # scope_delimiter given explicitly: the default is changing from comma to space.
    args = acme.service_args(name, CLIENT, scope_delimiter="space", scopes=SCOPES, **extra)
    reply = await world.chat.run(ADMIN, f"service add {args}")
    assert "Added" in reply.text, reply.text


async def create(world: World, name: str, *, service: str = "acme", switch: str = "on") -> str:
    reply = await world.chat.run(
        ADMIN, f'create "{name}" service={service} scopes={SCOPES} login_user_credentials={switch}'
    )
    link = name.lower().replace(" ", "_")
    assert f"`{link}`" in reply.text, reply.text
    return link


async def acme_api(world: World, acme: OAuthServer, *who: tuple[ChatUser, str]) -> str:
    """The custom service ``acme``, the shared connection "Acme API", and ``who`` connected."""
    await add_service(world, acme)
    link = await create(world, "Acme API")
    for user, email in who:
        await world.connect(user, email, link)
    return link


async def fetch(chat: ChatDriver, user: ChatUser, link: str, url: str, *extra: str) -> Reply:
    reply = await chat.say(user, " ".join(("fetch", link, url, *extra)))
    assert reply.status == 200, reply.body
    return reply


def answer(reply: Reply) -> tuple[int, dict[str, Any]]:
    status, _, body = reply.text.partition(" ")
    return int(status), json.loads(body)


def tokens(acme: OAuthServer) -> list[str]:
    found = [*acme.by_access, *acme.by_refresh]
    assert found
    return found


def assert_no_token_leaked(
    acme: OAuthServer, caplog: pytest.LogCaptureFixture, world: World, *replies: Reply
) -> None:
    """No token in our log lines (tracebacks included), a reply, or a posted message."""
    formatter = logging.Formatter("%(message)s")
    logged = "\n".join(
        formatter.format(r) for r in caplog.records if r.name.startswith(OUR_LOGGERS)
    )
    assert "invoke GET" in logged  # the calls were logged (by host and path only)
    said = json.dumps([r.body for r in replies]) + json.dumps(
        [m.to_dict() for m in world.cliq.messages]
    )
    for token in tokens(acme):
        assert token not in logged
        assert token not in said


async def test_each_user_calls_with_their_own_token_and_off_with_the_owners(
    world: World, acme: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    await add_service(world, acme)
    shared = await create(world, "Acme API")
    owners = await create(world, "Owner API", switch="off")
    await world.connect(ANA, ANA_ACME, shared)
    await world.connect(BEN, BEN_ACME, shared)
    await world.connect(ADMIN, OWNER_ACME, owners)
    whoami = acme.url("/api/whoami")

    replies = [await fetch(world.chat, user, shared, whoami) for user in (ANA, BEN)]
    (ana_status, ana), (ben_status, ben) = (answer(r) for r in replies)
    assert (ana_status, ben_status) == (200, 200)
    assert (ana["email"], ben["email"]) == (ANA_ACME, BEN_ACME)
    assert ana["token_via"] == "header" and ana["client_id"] == CLIENT
    assert set(ana["scopes"]) == set(SCOPES.split(","))

    for user in (ANA, BEN):  # switch off: the owner's account, whoever asks
        replies.append(await fetch(world.chat, user, owners, whoami))
        assert answer(replies[-1])[1]["email"] == OWNER_ACME
    assert acme.calls["/api/whoami"] == 4
    assert_no_token_leaked(acme, caplog, world, *replies)


async def test_param_type_query_sends_the_token_as_access_token(
    world: World, acme: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    await add_service(world, acme, "acmeq", param_type="query")
    link = await create(world, "Query API", service="acmeq")
    await world.connect(ANA, ANA_ACME, link)
    reply = await fetch(world.chat, ANA, link, acme.url("/api/items?limit=3"))
    status, items = answer(reply)
    assert status == 200 and items["owner"] == ANA_ACME
    reply = await fetch(world.chat, ANA, link, acme.url("/api/whoami"))
    assert answer(reply)[1]["token_via"] == "query"
    slow = await fetch(world.chat, ANA, link, acme.url("/api/slow?seconds=3"), "0.3")
    assert "did not finish within 0.3 s" in slow.text  # the URL (and its token) not named
    assert_no_token_leaked(acme, caplog, world, reply, slow)


async def test_an_expired_token_is_refreshed_once_for_five_concurrent_invokes(
    world: World, acme: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    acme.expires_in = 1
    link = await acme_api(world, acme, (ANA, ANA_ACME))
    acme.expires_in = 3600  # the refreshed token lives long
    await asyncio.sleep(1.2)  # expired, for the bot and for the server alike
    whoami = acme.url("/api/whoami")
    replies = await asyncio.gather(*(fetch(world.chat, ANA, link, whoami) for _ in range(5)))
    assert [answer(r)[0] for r in replies] == [200] * 5, [r.text for r in replies]
    assert acme.calls["token:refresh_token"] == 1
    assert acme.calls["/api/whoami"] == 5  # refreshed before the calls, not after a 401
    assert_no_token_leaked(acme, caplog, world, *replies)


async def test_a_401_is_refreshed_once_and_retried(world: World, acme: OAuthServer) -> None:
    link = await acme_api(world, acme, (ANA, ANA_ACME))
    acme.expire_access_tokens(ANA_ACME)  # the server says expired; the bot does not know yet
    reply = await fetch(world.chat, ANA, link, acme.url("/api/whoami"))
    assert answer(reply)[0] == 200
    assert acme.calls["token:refresh_token"] == 1
    assert acme.calls["/api/whoami"] == 2


async def test_a_revoked_grant_prompts_to_connect_and_the_kept_request_runs_once_after(
    world: World, acme: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    link = await acme_api(world, acme, (ANA, ANA_ACME))
    acme.revoke_account(ANA_ACME)  # the user removed the app at the provider
    body = world.chat.message(ANA, f"fetch {link} {acme.url('/api/whoami')}")
    prompt = await world.chat.post(body)
    url = prompt.button_url()
    assert url and "Connect it, and I run your request then" in prompt.text, prompt.text
    assert "7 days" in prompt.text
    assert api.runs[event_identity(body)] == 1

    again = await world.chat.post(body)  # the same delivery again: answered, not kept twice
    assert again.text == prompt.text
    status, page = await world.chat.consent(url, ANA_ACME)
    assert status == 200, page
    posted = await world.messages_for(ANA, '"email": "ana@acme.example"')
    assert posted["text"].startswith("200 ")
    await asyncio.sleep(0.5)  # time for a second run, if there were one
    resumed = [m for m in world.cliq.messages_for(ANA.id) if str(m["text"]).startswith("200 ")]
    assert len(resumed) == 1, resumed
    assert api.runs[event_identity(body)] == 2  # the first run, and once more after connecting
    assert_no_token_leaked(acme, caplog, world, prompt)


async def test_a_restart_between_the_prompt_and_the_connect_still_runs_it(
    world: World, acme: OAuthServer, aiohttp_server: Any
) -> None:
    link = await acme_api(world, acme, (BEN, BEN_ACME))
    acme.revoke_account(BEN_ACME)
    prompt = await fetch(world.chat, BEN, link, acme.url("/api/items"))
    url = prompt.button_url()
    assert url, prompt.text

    # A second process on the same database (the first one is not asked anything again):
    # what it runs comes from the store, not from the memory of the process that kept it.
    second = create_app(world.settings)
    server = await aiohttp_server(second)
    second_url = str(server.make_url("")).rstrip("/")
    second[RUNTIME].public_url = second_url
    status, page = await world.chat.consent(url.replace(world.bot_url, second_url), BEN_ACME)
    assert status == 200, page
    posted = await world.messages_for(BEN, '"owner": "ben@acme.example"')
    assert posted["text"].startswith("200 ")
    await server.close()


async def test_429_waits_once_when_it_fits_the_timeout(world: World, acme: OAuthServer) -> None:
    link = await acme_api(world, acme, (ANA, ANA_ACME))
    started = time.monotonic()
    reply = await fetch(world.chat, ANA, link, acme.url("/api/limited"))
    assert answer(reply) == (200, {"ok": True})
    assert time.monotonic() - started >= 1.0  # Retry-After: 1
    assert acme.calls["/api/limited"] == 2

    acme.retry_after = 30  # a wait longer than the timeout is not waited: the 429 is returned
    await world.connect(BEN, BEN_ACME, link)
    started = time.monotonic()
    reply = await fetch(world.chat, BEN, link, acme.url("/api/limited"), "5")
    assert reply.text.startswith("429 ") and "rate_limited" in reply.text
    assert time.monotonic() - started < 3


async def test_answers_over_20_mib_timeouts_and_network_errors_are_clear(
    world: World, acme: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    link = await acme_api(world, acme, (ANA, ANA_ACME))
    replies = [
        await fetch(world.chat, ANA, link, acme.url("/api/big?mib=21")),
        await fetch(world.chat, ANA, link, acme.url("/api/big?mib=21&chunked=1")),
    ]
    for reply in replies:
        assert "the answer is larger than 20 MiB" in reply.text, reply.text
    fits = await fetch(world.chat, ANA, link, acme.url("/api/big?mib=2"))
    assert fits.text.startswith("200 ")

    slow = await fetch(world.chat, ANA, link, acme.url("/api/slow?seconds=5"), "0.5")
    assert "did not finish within 0.5 s" in slow.text, slow.text
    gone = await fetch(world.chat, ANA, link, "http://127.0.0.1:9/api/whoami")
    assert "The call to 127.0.0.1:9 failed: the host could not be reached." in gone.text
    assert_no_token_leaked(acme, caplog, world, *replies, slow, gone)


async def test_with_the_switch_off_the_owner_is_prompted_and_the_sender_gets_the_answer(
    world: World, acme: OAuthServer
) -> None:
    await add_service(world, acme)
    link = await create(world, "Owner API", switch="off")
    await world.connect(ADMIN, OWNER_ACME, link)
    acme.revoke_account(OWNER_ACME)
    reply = await fetch(world.chat, ANA, link, acme.url("/api/whoami"))
    assert "its owner has to connect it first" in reply.text and reply.button_url() is None
    asked = await world.messages_for(ADMIN, "A request of Ana Lima needs *Owner API*")
    url = asked["buttons"][0]["action"]["data"]["web"]
    status, page = await world.chat.consent(url, OWNER_ACME)
    assert status == 200, page
    posted = await world.messages_for(ANA, '"email": "owner@acme.example"')
    assert posted["text"].startswith("200 ")
    assert not [m for m in world.cliq.messages_for(ADMIN.id) if "200 {" in str(m["text"])]


async def test_a_kept_request_expires_and_the_sender_is_told(
    world: World, acme: OAuthServer, aiohttp_server: Any
) -> None:
    link = await acme_api(world, acme)
    quick = create_app(dataclasses.replace(world.settings, kept_file_ttl=1.0))
    server = await aiohttp_server(quick)
    quick[RUNTIME].public_url = str(server.make_url("")).rstrip("/")
    chat = ChatDriver(world.chat.http, quick[RUNTIME].public_url, world.chat.secret)
    reply = await fetch(chat, BEN, link, acme.url("/api/whoami"))
    url = reply.button_url()
    assert url and "I keep it for 1 second" in reply.text, reply.text
    told = await world.messages_for(BEN, "waited 1 second for `acme_api`", timeout=10)
    assert told["text"].startswith(f"Your request `fetch {link} ")
    status, _ = await chat.consent(url, BEN_ACME)  # connecting later runs nothing
    assert status == 200
    await world.messages_for(BEN, "Connected as ben@acme.example")
    await asyncio.sleep(0.5)
    assert not [m for m in world.cliq.messages_for(BEN.id) if "200 {" in str(m["text"])]
    await server.close()


async def test_a_refresh_another_process_holds_is_waited_for_only_until_the_timeout(
    world: World, acme: OAuthServer
) -> None:
    link = await acme_api(world, acme, (ANA, ANA_ACME))
    auths = world.app[RUNTIME].db["authorizations"]
    held = {"holder": "another-process", "until": datetime.now(UTC) + timedelta(seconds=60)}
    await auths.update_one(
        {"connection": link, "user_id": ANA.id},
        {"$set": {"expires_at": time.time() - 1, "lease": held}},  # due, and being refreshed
    )
    # The lease wait (20 s) must not outlast the call's own 0.5 s; 10 s is a generous bound.
    reply = await asyncio.wait_for(fetch(world.chat, ANA, link, acme.url("/api/whoami"), "0.5"), 10)
    assert "could not be renewed right now" in reply.text, reply.text
    assert acme.calls["token:refresh_token"] == 0 and acme.calls["/api/whoami"] == 0
