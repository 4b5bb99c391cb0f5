"""Zoho's data centres: a user of another one is connected, refreshed and revoked there.

Zoho's accounts server sends a user of another data centre on to theirs, and the sign-in comes
back with ``location`` and ``accounts-server`` (https://zoho.com/accounts/protocol/oauth/
multi-dc/client-authorization.html); the code, the refreshes and the revocation must go to that
server, and to no server Zoho does not have. Two authlib-built stand-ins play the US and EU
accounts servers; the app, the store and the chat are real, over HTTP.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from bot.catalogue import CATALOGUE, AccountFields
from bot.config import ServiceClient, Settings
from bot.keys import RUNTIME
from bot.providers.oauth2 import OAuth2Service
from bot.sandbox.oauth_server import OAuthServer
from bot.secret import Secret
from bot.services import catalogue_service
from tests.conftest import ADMIN, ANA, World

CLIENT, SECRET = "1000.ZOHOCLIENT", "zoho-client-secret"
SCOPES = ("AaaServer.profile.Read", "Desk.tickets.READ")
LINK = "desk"


@pytest.fixture
async def centres(aiohttp_server: Any) -> tuple[OAuthServer, OAuthServer]:
    """The US accounts server, which sends this user on to the EU one."""
    found = []
    for _ in range(2):
        server = OAuthServer(scopes=SCOPES, scope_delimiter=",")
        server.add_client(CLIENT, SECRET)
        started = await aiohttp_server(server.app())
        server.base_url = str(started.make_url("")).rstrip("/")
        found.append(server)
    us, eu = found
    us.send_to, eu.location = eu.base_url, "eu"
    return us, eu


@pytest.fixture
def world_settings(settings: Settings, centres: tuple[OAuthServer, OAuthServer]) -> Settings:
    us, eu = centres
    zoho = dataclasses.replace(
        CATALOGUE["zoho"],
        authorize_url=us.url("/authorize"),
        token_url=us.url("/token"),
        revoke_url=us.url("/revoke"),
        userinfo_url=us.url("/userinfo"),
        account=AccountFields(id=("sub",), email=("email",), name=(("name",),)),
        regional_servers=(us.url(""), eu.url("")),
    )
    return dataclasses.replace(
        settings,
        catalogue={**CATALOGUE, "zoho": zoho},
        service_clients={"zoho": ServiceClient(CLIENT, Secret(SECRET))},
    )


async def _create(world: World) -> None:
    reply = await world.chat.run(ADMIN, "create Desk service=zoho scopes=Desk.tickets.READ")
    assert f"`{LINK}`" in reply.text, reply.text


async def test_a_user_of_another_data_centre_is_served_by_it_throughout(
    world: World, centres: tuple[OAuthServer, OAuthServer]
) -> None:
    us, eu = centres
    await _create(world)
    page = await world.connect(ANA, "ana@zoho.eu.example", LINK)
    assert "Connected as ana@zoho.eu.example" in page, page
    assert us.calls["/authorize"] == 1 and eu.calls["/authorize"] == 1  # sent on to the EU
    assert eu.calls["token:authorization_code"] == 1 and eu.calls["/userinfo"] == 1
    assert us.calls["token:authorization_code"] == 0 and us.calls["/userinfo"] == 0
    doc = await world.app[RUNTIME].db["authorizations"].find_one({"user_id": ANA.id})
    assert doc is not None and doc["server"] == eu.url("")

    accounts = world.app[RUNTIME].components.accounts
    first = await accounts.access_token(LINK, ANA.id)
    eu.expire_access_tokens()
    fresh = await accounts.refresh(LINK, ANA.id, rejected=first)
    assert fresh != first
    assert eu.calls["token:refresh_token"] == 1 and us.calls["token:refresh_token"] == 0
    async with (
        aiohttp.ClientSession() as http,
        http.get(eu.url("/api/whoami"), headers={"Authorization": f"Bearer {fresh}"}) as resp,
    ):
        assert resp.status == 200 and (await resp.json())["email"] == "ana@zoho.eu.example"

    reply = await world.chat.run(ANA, f"disconnect {LINK}")
    assert "Disconnected" in reply.text, reply.text
    assert eu.calls["/revoke"] == 1 and us.calls["/revoke"] == 0


async def test_a_user_of_the_home_data_centre_stays_there(
    world: World, centres: tuple[OAuthServer, OAuthServer]
) -> None:
    us, eu = centres
    us.send_to = None  # this user's account is on the US server itself
    await _create(world)
    page = await world.connect(ANA, "ana@zoho.com.example", LINK)
    assert "Connected as ana@zoho.com.example" in page, page
    assert us.calls["token:authorization_code"] == 1 and eu.calls["token:authorization_code"] == 0
    doc = await world.app[RUNTIME].db["authorizations"].find_one({"user_id": ANA.id})
    assert doc is not None and doc["server"] is None


async def test_a_sign_in_from_a_server_zoho_does_not_have_sends_nothing_there(
    world: World, centres: tuple[OAuthServer, OAuthServer], aiohttp_server: Any
) -> None:
    us, eu = centres
    other = OAuthServer(scopes=SCOPES, scope_delimiter=",")
    other.add_client(CLIENT, SECRET)
    started = await aiohttp_server(other.app())
    other.base_url = str(started.make_url("")).rstrip("/")
    us.send_to, other.location = other.base_url, "xx"  # a look-alike, not one of Zoho's
    await _create(world)
    status, page = await world.chat.consent(
        (await world.chat.run(ANA, f"connect {LINK}")).button_url() or "", "ana@zoho.eu.example"
    )
    assert status == 400, page
    assert other.base_url in page and "nothing was sent there" in page, page
    assert other.calls["token:authorization_code"] == 0  # the code never went there
    assert await world.app[RUNTIME].db["authorizations"].find_one({"user_id": ANA.id}) is None


def _service(**changes: Any) -> OAuth2Service:
    zoho = catalogue_service(CATALOGUE["zoho"], CLIENT, Secret(SECRET))
    return dataclasses.replace(zoho, **changes)


def test_a_service_moves_its_token_endpoints_to_a_listed_server_only() -> None:
    zoho = _service()
    eu = zoho.at_server("https://accounts.zoho.eu")
    assert eu.token_url == "https://accounts.zoho.eu/oauth/v2/token"
    assert eu.revoke_url == "https://accounts.zoho.eu/oauth/v2/token/revoke"
    assert eu.userinfo_url == "https://accounts.zoho.eu/oauth/user/info"
    assert eu.authorize_url == zoho.authorize_url  # the sign-in itself starts at home
    assert zoho.at_server("HTTPS://accounts.zoho.EU/") == eu  # an origin, in any case
    assert zoho.at_server("") is zoho and zoho.at_server(None) is zoho
    assert zoho.at_server("https://accounts.zoho.com") is zoho
    for foreign in (
        "https://accounts.zoho.eu.example",
        "http://accounts.zoho.eu",  # not https
        "https://evil.example",
        "https://accounts.zoho.eu/steal",
    ):
        with pytest.raises(ValueError, match="is not one of the servers of zoho"):
            zoho.at_server(foreign)


def test_a_service_without_data_centres_ignores_the_parameter() -> None:
    plain = _service(regional_servers=())
    assert plain.at_server("https://evil.example") is plain


def test_every_zoho_entry_lists_every_zoho_accounts_server() -> None:
    servers = {e.regional_servers for n, e in CATALOGUE.items() if e.kind == "zoho"}
    assert len(servers) == 1
    (listed,) = servers
    assert "https://accounts.zoho.eu" in listed and "https://accounts.zohocloud.ca" in listed
    assert all(not e.regional_servers for e in CATALOGUE.values() if e.kind != "zoho")
    assert {urlsplit(url).netloc for url in listed} >= {
        urlsplit(CATALOGUE[n].token_url).netloc for n in CATALOGUE if n.startswith("zoho")
    }
