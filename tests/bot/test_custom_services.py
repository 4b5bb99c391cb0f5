"""Custom services on a standard OAuth 2 / OpenID server (CONTRACT §5 ``service add``, §8),
connected as a new admin would: the authlib-built server of ``bot/sandbox/oauth_server.py``,
the real app and store, over HTTP, nothing patched."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from typing import Any

import aiohttp
import pytest

from bot.accounts import AccountService, refresh_margin
from bot.app import create_app
from bot.errors import NotAuthorized
from bot.keys import RUNTIME
from bot.sandbox.oauth_server import OAuthServer
from bot.sealing import seal_client_secret
from tests.conftest import ADMIN, ANA, BEN, World

CLIENT = "acme-client"
SECRET = "acme-client-secret"
LINK = "acme"
ANA_MAIL = "ana@acme.example"
BEN_MAIL = "ben@acme.example"


@pytest.fixture
async def oauth(aiohttp_server: Any) -> OAuthServer:
    server = OAuthServer()
    server.add_client(CLIENT, SECRET)
    started = await aiohttp_server(server.app())
    server.base_url = str(started.make_url("")).rstrip("/")
    return server


def db(world: World) -> Any:
    return world.app[RUNTIME].db


def accounts(world: World) -> AccountService:
    found: AccountService = world.app[RUNTIME].components.accounts
    return found


async def auth_doc(world: World, user_id: str = ANA.id) -> dict[str, Any]:
    doc = await db(world)["authorizations"].find_one({"connection": LINK, "user_id": user_id})
    assert doc is not None
    return dict(doc)


async def add_service(world: World, oauth: OAuthServer, client: str = CLIENT, **extra: str) -> None:
    reply = await world.chat.run(
        ADMIN, "service add " + oauth.service_args("acme", client, **extra)
    )
    assert "Added the custom service `acme`" in reply.text, reply.text


async def create(world: World, scopes: str = "openid,email,items.read") -> None:
    reply = await world.chat.run(ADMIN, f"create Acme service=acme scopes={scopes}")
    assert f"`{LINK}`" in reply.text, reply.text


async def connect(world: World, email: str = ANA_MAIL, user: Any = ANA) -> tuple[int, str]:
    """``user`` asks for a connect link and allows access as ``email``: the callback page."""
    reply = await world.chat.run(user, f"connect {LINK}")
    url = reply.button_url()
    assert url, reply.text
    return await world.chat.consent(url, email)


async def whoami(oauth: OAuthServer, token: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(oauth.url("/api/whoami"), headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status, await resp.json()


# -- scopes: space by default ------------------------------------------------------------------


async def test_the_default_space_delimiter_is_what_a_standard_server_accepts(
    world: World, oauth: OAuthServer
) -> None:
    await add_service(world, oauth)
    await create(world)
    status, page = await connect(world)
    assert status == 200 and f"Connected as {ANA_MAIL}" in page, page
    await world.messages_for(ANA, f"Connected as {ANA_MAIL}")
    doc = await auth_doc(world)
    assert doc["status"] == "connected" and doc["scope"] == "openid email items.read"
    [token] = oauth.by_access.values()
    assert token.scope.split() == ["openid", "email", "items.read"]


async def test_a_comma_delimiter_on_a_standard_server_is_its_invalid_scope_error(
    world: World, oauth: OAuthServer
) -> None:
    """What the old default did: one unknown scope "openid,email,items.read"."""
    await add_service(world, oauth, scope_delimiter="comma")
    await create(world)
    status, page = await connect(world)
    assert status == 502 and "invalid_scope" in page, page
    assert oauth.calls["token:authorization_code"] == 0
    assert await db(world)["authorizations"].count_documents({}) == 0


async def test_a_stored_service_keeps_its_delimiter(world: World, aiohttp_server: Any) -> None:
    """A service added before the default changed was stored with ``,`` and no newer fields."""
    comma = OAuthServer(scope_delimiter=",")
    comma.add_client(CLIENT, SECRET, auth_methods=["client_secret_basic"])
    started = await aiohttp_server(comma.app())
    comma.base_url = str(started.make_url("")).rstrip("/")
    vault = world.app[RUNTIME].components.vault
    await db(world)["services"].insert_one(
        {
            "_id": "acme",
            "name": "acme",
            "authorize_url": comma.authorize_url,
            "token_url": comma.token_url,
            "client_id": CLIENT,
            "client_secret": seal_client_secret(vault, "acme", SECRET),
            "revoke_url": comma.revoke_url,
            "userinfo_url": comma.userinfo_url,
            "scopes": [],
            "param_type": "header",
            "scope_delimiter": ",",
        }
    )
    await create(world, "openid,email")
    status, page = await connect(world)
    assert status == 200 and f"Connected as {ANA_MAIL}" in page, page
    assert (await auth_doc(world))["scope"] == "openid email"


# -- authorize_params and refresh tokens -----------------------------------------------------------


async def test_prompt_consent_makes_an_openid_server_issue_a_refresh_token(
    world: World, oauth: OAuthServer
) -> None:
    oauth.offline_access_requires_consent = True
    await add_service(world, oauth, authorize_params="prompt=consent")
    [doc] = [d async for d in db(world)["services"].find()]
    assert doc["authorize_params"] == [["prompt", "consent"]]
    await create(world, "openid,email,offline_access")
    status, page = await connect(world)
    assert status == 200 and "must be renewed" not in page, page
    [code] = oauth.codes.values()
    assert code.offline
    assert (await auth_doc(world))["refresh"] is not None


async def test_without_a_refresh_token_the_user_is_told_when_to_renew_and_prompted_then(
    world: World, oauth: OAuthServer
) -> None:
    oauth.offline_access_requires_consent = True  # and no prompt=consent: no refresh token
    oauth.expires_in = 2
    await add_service(world, oauth)
    await create(world, "openid,email,offline_access")
    status, page = await connect(world)
    assert status == 200 and f"Connected as {ANA_MAIL}" in page, page
    when = re.search(
        r"must be renewed when its access token expires, in about 1 minute \(at (\S+ \S+ UTC)\)",
        page,
    )
    assert when, page
    message = await world.messages_for(ANA, "must be renewed")
    assert when.group(1) in message["text"]
    doc = await auth_doc(world)
    assert doc["refresh"] is None and doc["status"] == "connected"
    token = await accounts(world).access_token(LINK, ANA.id)  # used until it expires
    assert (await whoami(oauth, token))[0] == 200
    await asyncio.sleep(max(0.0, doc["expires_at"] - time.time()) + 0.05)
    with pytest.raises(NotAuthorized):
        await accounts(world).access_token(LINK, ANA.id)
    assert oauth.calls["token:refresh_token"] == 0  # never attempted
    assert (await auth_doc(world))["status"] == "disconnected"
    reply = await world.chat.run(ANA, f"status {LINK}")
    assert "You: disconnected" in reply.text, reply.text
    reply = await world.chat.run(ANA, f"connect {LINK}")
    assert reply.button_url(), reply.text
    assert oauth.calls["token:refresh_token"] == 0


# -- client authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("methods", "expected"), [(["client_secret_post"], "post"), (["client_secret_basic"], "basic")]
)
async def test_client_auth_matches_what_the_client_may_use(
    world: World, oauth: OAuthServer, methods: list[str], expected: str
) -> None:
    oauth.add_client("only-one", "only-one-secret", auth_methods=methods)
    await add_service(world, oauth, client="only-one")
    [doc] = [d async for d in db(world)["services"].find()]
    assert doc["client_auth"] == expected
    await create(world)
    status, page = await connect(world)
    assert status == 200 and f"Connected as {ANA_MAIL}" in page, page
    assert oauth.calls["token:authorization_code"] == 1


async def test_the_wrong_client_auth_is_refused_by_the_server(
    world: World, oauth: OAuthServer
) -> None:
    oauth.add_client("basic-only", "basic-only-secret", auth_methods=["client_secret_basic"])
    await add_service(world, oauth, client="basic-only", client_auth="post")
    await create(world)
    status, page = await connect(world)
    assert status == 502 and "did not accept the sign-in" in page, page
    assert "basic-only-secret" not in page
    assert await db(world)["authorizations"].count_documents({}) == 0


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("client_auth=jwt", "client_auth must be basic or post"),
        ("authorize_params=prompt", "authorize_params must be k=v pairs"),
        ("authorize_params=state=mine", "authorize_params cannot set state"),
        ("authorize_params=a=1&a=2", "names a more than once"),
        ("authorize_params==x", "a parameter without a name"),
    ],
)
async def test_bad_new_options_are_refused(
    world: World, oauth: OAuthServer, option: str, expected: str
) -> None:
    reply = await world.chat.run(
        ADMIN, f"service add {oauth.service_args('acme', CLIENT)} {option}"
    )
    assert expected in reply.text, reply.text
    assert await db(world)["services"].count_documents({}) == 0


# -- the provider's own errors -----------------------------------------------------------------


async def test_a_provider_error_is_shown_as_such_and_escaped(
    world: World, oauth: OAuthServer
) -> None:
    await add_service(world, oauth)
    await create(world)
    oauth.authorize_error = ("server_error", "<b>x</b>")
    status, page = await connect(world)
    assert status == 502, page
    assert "server_error" in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page and "did not allow" not in page
    message = await world.messages_for(ANA, "server_error")
    assert "&lt;b&gt;x&lt;/b&gt;" in message["text"] and "<b>" not in message["text"]
    assert "did not allow" not in message["text"]
    assert oauth.calls["token:authorization_code"] == 0
    assert await db(world)["authorizations"].count_documents({}) == 0
    oauth.authorize_error = ("access_denied", "The user said no")
    status, page = await connect(world)
    assert status == 200 and "You did not allow access" in page, page


# -- refresh: a margin that fits, one refresh for concurrent uses ------------------------------


async def test_a_60_s_token_is_not_refreshed_on_every_use(world: World, oauth: OAuthServer) -> None:
    oauth.expires_in = 60
    assert refresh_margin(60) == 6.0 and refresh_margin(3600) == 120.0
    await add_service(world, oauth)
    await create(world)
    await connect(world)
    doc = await auth_doc(world)
    assert doc["lifetime"] == 60 and doc["refresh"] is not None
    tokens = {await accounts(world).access_token(LINK, ANA.id) for _ in range(5)}
    assert len(tokens) == 1 and oauth.calls["token:refresh_token"] == 0
    # 30 s left: a fixed 120 s margin would refresh now; a tenth of the lifetime does not
    collection = db(world)["authorizations"]
    await collection.update_one({"_id": doc["_id"]}, {"$set": {"expires_at": time.time() + 30}})
    assert await accounts(world).access_token(LINK, ANA.id) in tokens
    assert oauth.calls["token:refresh_token"] == 0
    # within the 6 s margin: refreshed, once
    await collection.update_one({"_id": doc["_id"]}, {"$set": {"expires_at": time.time() + 3}})
    fresh = await accounts(world).access_token(LINK, ANA.id)
    assert fresh not in tokens and oauth.calls["token:refresh_token"] == 1
    assert await accounts(world).access_token(LINK, ANA.id) == fresh
    assert oauth.calls["token:refresh_token"] == 1


async def test_five_concurrent_uses_of_an_expired_token_refresh_once_in_any_process(
    world: World, oauth: OAuthServer, aiohttp_server: Any
) -> None:
    oauth.expires_in = 1
    await add_service(world, oauth)
    await create(world)
    await connect(world)
    await connect(world, BEN_MAIL, BEN)
    other = create_app(dataclasses.replace(world.settings))
    await aiohttp_server(other)
    two = other[RUNTIME].components.accounts
    oauth.expires_in = 3600  # the refreshed tokens live long enough to be tried below
    await asyncio.sleep(1.1)  # expired at the server and for the bot
    one = accounts(world)
    tokens = await asyncio.gather(
        *(svc.access_token(LINK, ANA.id) for svc in (one, two, one, two, one))
    )
    assert oauth.calls["token:refresh_token"] == 1
    assert len(set(tokens)) == 1
    status, me = await whoami(oauth, tokens[0])
    assert status == 200 and me["email"] == ANA_MAIL
    # Ben's authorization is his own: his own refresh, with his own account
    ben = await two.access_token(LINK, BEN.id)
    assert oauth.calls["token:refresh_token"] == 2
    assert (await whoami(oauth, ben))[1]["email"] == BEN_MAIL
