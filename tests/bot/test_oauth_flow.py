"""Connect links, the OAuth callback and the linking check (CONTRACT §8), end to end over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from bot.accounts import LINKING_TRIES
from bot.config import Settings
from bot.keys import RUNTIME
from bot.sandbox.driver import ChatUser
from bot.vault import Sealed
from tests.conftest import ADMIN, ANA, BEN, World

_FORM_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_CODE = re.compile(r'id="linking-code">(\d{6})<')
# Loggers the product does not own or silences in `serve` (bot.logs.setup_logging): the test
# server's access log, the stand-ins, and pymongo's DEBUG command monitoring.
NOT_OURS = ("aiohttp.access", "bot.sandbox", "pymongo")
LINKING = pytest.mark.parametrize("world_settings", [{"verify_linking": True}], indirect=True)


@pytest.fixture
def world_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return dataclasses.replace(settings, **getattr(request, "param", {}))


@dataclasses.dataclass
class Flow:
    """One browser trip through OAuth, stopped just before the callback."""

    authorize_url: str
    callback_url: str

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.callback_url).query).items()}


async def connect_link(world: World, user: ChatUser) -> str:
    reply = await world.chat.say(user, "connect")
    url = reply.button_url()
    assert url, reply.text
    return url


async def consent(world: World, link: str, email: str, *, allow: bool = True) -> Flow:
    http = world.chat.http
    async with http.get(link, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        authorize = resp.headers["Location"]
    async with http.get(authorize) as resp:
        page = await resp.text()
        assert resp.status == 200, page
        form_url = urljoin(str(resp.url), "/oauth2/authorize/decide")
    fields = {name: unescape(value) for name, value in _FORM_INPUT.findall(page)}
    fields.update({"email": email, "decision": "allow" if allow else "deny"})
    async with http.post(form_url, data=fields, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return Flow(authorize, resp.headers["Location"])


async def get(world: World, url: str) -> tuple[int, str, str]:
    async with world.chat.http.get(url, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def db(world: World) -> Any:
    return world.app[RUNTIME].db


async def auths(world: World) -> list[dict[str, Any]]:
    return [d async for d in db(world)["authorizations"].find()]


def open_token(world: World, doc: dict[str, Any], part: str) -> str:
    vault = world.app[RUNTIME].components.vault
    sealed = Sealed.from_doc(doc["access" if part == "a" else "refresh"])
    return vault.open(sealed, aad=f"authorization:{doc['connection']}:{doc['user_id']}:{part}")


async def every_doc_text(world: World) -> str:
    texts = []
    for name in await db(world).list_collection_names():
        texts += [repr(d) async for d in db(world)[name].find()]
    return "\n".join(texts)


# -- the connect link -----------------------------------------------------------------------------


async def test_connect_link_redirects_to_authorize_with_pkce_and_offline(world: World) -> None:
    await world.setup_connection(switch="on")
    link = await connect_link(world, ANA)
    status, _, _ = await get(world, link.replace("/connect/", "/connect/x"))
    assert status == 410
    async with world.chat.http.get(link, allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Cache-Control"] == "no-store"
        target = resp.headers["Location"]
    parts = urlsplit(target)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == world.settings.dropbox_authorize_url
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["client_id"] == "test-app-key"
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == f"{world.bot_url}/oauth/callback"
    assert len(query["state"]) >= 32
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
    assert query["scope"].split() == ["account_info.read", "files.content.write"]
    assert query["token_access_type"] == "offline"
    assert len(link) < 256  # fits a Cliq open.url action


@pytest.mark.parametrize("how", ["used", "unknown", "expired"])
async def test_used_unknown_or_expired_links_are_410_pages(world: World, how: str) -> None:
    await world.setup_connection(switch="on")
    link = await connect_link(world, ANA)
    if how == "used":
        assert (await get(world, link))[0] == 302
    elif how == "unknown":
        link = link.rsplit("/", 1)[0] + "/AAAAAAAAAAAAAAAA"
    else:
        await db(world)["connect_links"].update_many(
            {}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
        )
    status, content_type, page = await get(world, link)
    assert status == 410 and content_type.startswith("text/html")
    assert "Ask the bot for a new one" in page
    assert await db(world)["oauth_states"].count_documents({}) == (1 if how == "used" else 0)


# -- the callback ---------------------------------------------------------------------------------


async def test_a_full_connect_stores_tokens_and_tells_the_user(world: World) -> None:
    await world.setup_connection(switch="on")
    flow = await consent(world, await connect_link(world, ANA), "ana@dropbox.example")
    status, content_type, page = await get(world, flow.callback_url)
    assert status == 200 and content_type.startswith("text/html")
    assert "Connected as ana@dropbox.example" in page
    await world.messages_for(ANA, "Connected as ana@dropbox.example")
    [doc] = await auths(world)
    assert doc["status"] == "connected" and doc["user_id"] == ANA.id
    assert doc["account"]["email"] == "ana@dropbox.example"
    assert world.dropbox.calls["token:authorization_code"] == 1


@pytest.mark.parametrize("how", ["missing", "unknown", "reused", "expired"])
async def test_bad_state_is_a_400_page_storing_nothing_exchanging_nothing(
    world: World, how: str
) -> None:
    await world.setup_connection(switch="on")
    flow = await consent(world, await connect_link(world, ANA), "ana@dropbox.example")
    url = flow.callback_url
    exchanges = 0
    if how == "missing":
        url = f"{world.bot_url}/oauth/callback?code={flow.query['code']}"
    elif how == "unknown":
        url = url.replace(f"state={flow.query['state']}", "state=forged-state-value")
    elif how == "reused":
        assert (await get(world, url))[0] == 200
        await db(world)["authorizations"].delete_many({})
        exchanges = 1
    else:
        await db(world)["oauth_states"].update_many(
            {}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
        )
    status, content_type, page = await get(world, url)
    assert status == 400 and content_type.startswith("text/html"), page
    assert "Ask the bot for a new link" in page
    assert await auths(world) == []
    assert world.dropbox.calls["token:authorization_code"] == exchanges
    assert flow.query["code"] not in page


async def test_a_callback_with_state_but_no_code_is_400(world: World) -> None:
    await world.setup_connection(switch="on")
    flow = await consent(world, await connect_link(world, ANA), "ana@dropbox.example")
    status, _, _ = await get(world, f"{world.bot_url}/oauth/callback?state={flow.query['state']}")
    assert status == 400
    assert world.dropbox.calls["token:authorization_code"] == 0
    assert await auths(world) == []


async def test_access_denied_tells_the_user_and_keeps_kept_files(world: World) -> None:
    await world.setup_connection(switch="on")
    kept = world.cliq.add_file("keep.txt", b"keep me")
    reply = await world.chat.send_files(ANA, [kept])
    flow = await consent(world, reply.button_url() or "", "ana@dropbox.example", allow=False)
    assert flow.query["error"] == "access_denied"
    status, _, page = await get(world, flow.callback_url)
    assert status == 200 and "You did not allow access" in page
    await world.messages_for(ANA, "did not allow access")
    assert await auths(world) == []
    assert world.dropbox.calls["token:authorization_code"] == 0
    status_reply = await world.chat.say(ANA, "status")
    assert "keep.txt: kept, waiting for a connection" in status_reply.text, status_reply.text
    assert "1 file(s) waiting" in (await world.chat.run(ADMIN, "status")).text


# -- the linking check ----------------------------------------------------------------------------


async def linking_code(world: World, user: ChatUser, email: str) -> str:
    flow = await consent(world, await connect_link(world, user), email)
    status, _, page = await get(world, flow.callback_url)
    assert status == 200, page
    assert "Connected as" not in page
    found = _CODE.search(page)
    assert found, page
    return found.group(1)


@LINKING
async def test_linking_code_activates_only_for_the_same_user(world: World) -> None:
    await world.setup_connection(switch="on")
    code = await linking_code(world, ANA, "ana@dropbox.example")
    [doc] = await auths(world)
    assert doc["status"] == "pending"
    assert code not in await every_doc_text(world)  # only its hash is kept
    assert "You: pending" in (await world.chat.say(ANA, "status")).text
    reply = await world.chat.say(BEN, code)  # someone else sends it: links nothing
    assert "Send me a file" in reply.text, reply.text
    assert [d["status"] for d in await auths(world)] == ["pending"]
    assert not [m for m in world.cliq.messages_for(ANA) if "Connected as" in str(m)]
    reply = await world.chat.say(ANA, f" {code} ")
    assert "Code accepted" in reply.text, reply.text
    [doc] = await auths(world)
    assert doc["status"] == "connected" and doc["pending"] is None
    await world.messages_for(ANA, "Connected as ana@dropbox.example")
    assert "Send me a file" in (await world.chat.say(ANA, code)).text  # nothing pending now


@LINKING
async def test_wrong_linking_codes_are_limited_then_discarded(world: World) -> None:
    await world.setup_connection(switch="on")
    code = await linking_code(world, ANA, "ana@dropbox.example")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in range(LINKING_TRIES - 1, 0, -1):
        reply = await world.chat.say(ANA, wrong)
        assert f"({left} tries left)" in reply.text, reply.text
    revokes = world.dropbox.calls["/2/auth/token/revoke"]
    reply = await world.chat.say(ANA, wrong)
    assert "Too many wrong codes" in reply.text, reply.text
    assert await auths(world) == []
    assert world.dropbox.calls["/2/auth/token/revoke"] == revokes + 1
    reply = await world.chat.say(ANA, code)  # too late, even when right
    assert "Send me a file" in reply.text
    assert await auths(world) == []


@LINKING
async def test_an_expired_linking_check_is_discarded(world: World) -> None:
    await world.setup_connection(switch="on")
    code = await linking_code(world, ANA, "ana@dropbox.example")
    await db(world)["authorizations"].update_many({}, {"$set": {"pending.expires_at": 1.0}})
    reply = await world.chat.say(ANA, code)
    assert "waited more than 5 minutes" in reply.text, reply.text
    assert await auths(world) == []


# -- tokens at rest and secrets out of sight ----------------------------------------------------


async def test_each_user_gets_their_own_tokens_sealed_at_rest(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await world.setup_connection(switch="on")
    pages, flows = [], []
    for user, email in ((ANA, "ana@dropbox.example"), (BEN, "ben@dropbox.example")):
        flow = await consent(world, await connect_link(world, user), email)
        status, _, page = await get(world, flow.callback_url)
        assert status == 200 and f"Connected as {email}" in page
        pages.append(page)
        flows.append(flow)
    # the stand-in's own records say which account each token belongs to
    access = {t: g.grant.email for t, g in world.dropbox._access.items()}
    refresh = {t: g.email for t, g in world.dropbox._refresh.items()}
    docs = {d["user_id"]: d for d in await auths(world)}
    assert set(docs) == {ANA.id, BEN.id}
    assert access[open_token(world, docs[ANA.id], "a")] == "ana@dropbox.example"
    assert refresh[open_token(world, docs[ANA.id], "r")] == "ana@dropbox.example"
    assert access[open_token(world, docs[BEN.id], "a")] == "ben@dropbox.example"
    assert refresh[open_token(world, docs[BEN.id], "r")] == "ben@dropbox.example"
    for doc in docs.values():
        assert doc["access"]["kid"] and doc["refresh"]["kid"]
    secrets_ = [*access, *refresh, "test-app-secret", *(f.query["code"] for f in flows)]
    stored = await every_doc_text(world)
    for secret in secrets_:
        assert secret not in stored
    logged = "\n".join(
        r.getMessage() + (r.exc_text or "")
        for r in caplog.records
        if not r.name.startswith(NOT_OURS)
    )
    replies = "\n".join(pages) + "\n".join(str(m) for m in world.cliq.messages)
    for secret in secrets_:
        assert secret not in logged
        assert secret not in replies


async def test_a_failed_exchange_logs_and_shows_no_secret(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await world.setup_connection(switch="on")
    flow = await consent(world, await connect_link(world, ANA), "ana@dropbox.example")
    world.dropbox._codes.clear()  # the code is no longer valid at the provider
    status, _, page = await get(world, flow.callback_url)
    assert status == 502 and "did not accept the sign-in" in page
    assert await auths(world) == []
    logged = "\n".join(
        r.getMessage() + (r.exc_text or "")
        for r in caplog.records
        if not r.name.startswith(NOT_OURS)
    )
    for secret in (flow.query["code"], "test-app-secret"):
        assert secret not in logged and secret not in page


@LINKING
async def test_an_unfinished_linking_check_is_swept_and_revoked_at_the_provider(
    world: World,
) -> None:
    await world.setup_connection(switch="on")
    await linking_code(world, ANA, "ana@dropbox.example")
    [doc] = await auths(world)
    token = open_token(world, doc, "a")
    await db(world)["authorizations"].update_many({}, {"$set": {"pending.expires_at": 1.0}})
    async with asyncio.timeout(10):  # the worker's housekeeping runs about once a second
        while await auths(world):  # noqa: ASYNC110 - polling the store, not an in-process flag
            await asyncio.sleep(0.05)
    assert world.dropbox._access[token].grant.revoked


async def test_the_pkce_verifier_never_leaves_the_vault(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await world.setup_connection(switch="on")
    flow = await consent(world, await connect_link(world, ANA), "ana@dropbox.example")
    state_doc = await db(world)["oauth_states"].find_one({"_id": flow.query["state"]})
    vault = world.app[RUNTIME].components.vault
    verifier = vault.open(
        Sealed.from_doc(state_doc["verifier"]), aad=f"state:{flow.query['state']}"
    )
    assert verifier not in repr(state_doc) and verifier not in flow.authorize_url
    status, _, page = await get(world, flow.callback_url)
    assert status == 200
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(NOT_OURS))
    assert verifier not in logged and verifier not in page
    assert verifier not in await every_doc_text(world)
