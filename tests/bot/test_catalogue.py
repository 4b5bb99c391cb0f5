"""The default-service catalogue (CONTRACT §10): authorize URLs, configuration, ``service
configure``, ``services`` and ``check`` — over HTTP to the real app and store."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.__main__ import check
from bot.catalogue import CATALOGUE, CatalogueEntry, entry
from bot.config import ServiceClient, Settings, load_settings
from bot.errors import ConfigError
from bot.keys import RUNTIME
from bot.providers.kinds import requested_scopes
from bot.providers.oauth2 import authorization_url, new_code_verifier
from bot.sandbox.oauth_server import OAuthServer
from bot.secret import Secret
from bot.services import catalogue_service
from tests.conftest import ADMIN, ANA, World

REDIRECT = "https://bot.example.com/oauth/callback"
#: What the providers' docs say (docs/catalogue-sources.md), written out independently of the
#: catalogue: authorize host and path, scope delimiter, whether a revoke endpoint exists.
FACTS = {
    "google": ("accounts.google.com", "/o/oauth2/v2/auth", " ", True),
    "microsoft": ("login.microsoftonline.com", "/common/oauth2/v2.0/authorize", " ", False),
    "box": ("account.box.com", "/api/oauth2/authorize", " ", True),
    "github": ("github.com", "/login/oauth/authorize", " ", True),
    "zoho": ("accounts.zoho.com", "/oauth/v2/auth", ",", True),
    "zoho_eu": ("accounts.zoho.eu", "/oauth/v2/auth", ",", True),
    "zoho_in": ("accounts.zoho.in", "/oauth/v2/auth", ",", True),
    "zoho_au": ("accounts.zoho.com.au", "/oauth/v2/auth", ",", True),
    "zoho_jp": ("accounts.zoho.jp", "/oauth/v2/auth", ",", True),
    "zoho_ca": ("accounts.zohocloud.ca", "/oauth/v2/auth", ",", True),
    "zoho_sa": ("accounts.zoho.sa", "/oauth/v2/auth", ",", True),
    "zoho_uk": ("accounts.zoho.uk", "/oauth/v2/auth", ",", True),
    "zoho_cn": ("accounts.zoho.com.cn", "/oauth/v2/auth", ",", True),
}


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def db(world: World) -> Any:
    return world.app[RUNTIME].db


async def docs(world: World, collection: str) -> list[dict[str, Any]]:
    return [d async for d in db(world)[collection].find()]


async def rows(world: World) -> dict[str, dict[str, str]]:
    reply = await world.chat.run(ANA, "services")
    return {r["Service"]: r for r in reply.output["slides"][0]["data"]["rows"]}


async def authorize_target(world: World, link: str) -> tuple[str, dict[str, str]]:
    """Open ANA's connect link for ``link``; the authorize URL it redirects to, split."""
    reply = await world.chat.run(ANA, f"connect {link}")
    url = reply.button_url()
    assert url, reply.text
    async with world.chat.http.get(url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        target = urlsplit(resp.headers["Location"])
    base = f"{target.scheme}://{target.netloc}{target.path}"
    return base, {k: v[0] for k, v in parse_qs(target.query).items()}


# -- every entry builds a correct authorize URL --------------------------------------------------


def test_the_catalogue_has_every_default_service_of_the_contract() -> None:
    assert set(CATALOGUE) == set(FACTS)
    assert entry("Zoho_EU") is CATALOGUE["zoho_eu"]
    assert entry("dropbox") is None  # Dropbox is configured by DROPBOX_*, not the catalogue


@pytest.mark.parametrize("name", sorted(FACTS))
def test_every_entry_builds_a_correct_authorize_url(name: str) -> None:
    found = CATALOGUE[name]
    host, path, delimiter, revokes = FACTS[name]
    assert found.scope_delimiter == delimiter
    assert (found.revoke_url is not None) == revokes
    service = catalogue_service(found, f"id-of-{name}", Secret("the-secret"))
    scopes = requested_scopes(service, ("some.scope",))
    assert scopes == tuple(dict.fromkeys(("some.scope", *found.default_scopes)))
    verifier = new_code_verifier()
    url = authorization_url(
        service, redirect_uri=REDIRECT, state="st-1", code_verifier=verifier, scopes=scopes
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", host, path)
    query = parse_qs(parts.query)
    assert query.pop("scope") == [delimiter.join(scopes)]
    extra = {key: [value] for key, value in found.authorize_params.items()}
    assert query == {
        "client_id": [f"id-of-{name}"],
        "response_type": ["code"],
        "redirect_uri": [REDIRECT],
        "state": ["st-1"],
        "code_challenge": [s256(verifier)],
        "code_challenge_method": ["S256"],
        **extra,
    }
    assert "the-secret" not in url and verifier not in url


def test_the_entries_extra_parameters_and_default_scopes() -> None:
    assert CATALOGUE["google"].authorize_params == {"access_type": "offline", "prompt": "consent"}
    assert "offline_access" in CATALOGUE["microsoft"].default_scopes
    assert CATALOGUE["zoho_ca"].authorize_params == {"access_type": "offline", "prompt": "consent"}
    assert CATALOGUE["github"].default_scopes == ("read:user", "user:email")
    github = catalogue_service(CATALOGUE["github"], "Iv1.abc", Secret("s"))
    assert github.revoke_url == "https://api.github.com/applications/Iv1.abc/token"
    assert "no revocation endpoint" in CATALOGUE["microsoft"].note


# -- configuration --------------------------------------------------------------------------------


def test_service_clients_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "SERVICE_GOOGLE_CLIENT_ID": "gid",
            "SERVICE_GOOGLE_CLIENT_SECRET": "g-secret",
            "SERVICE_ZOHO_EU_CLIENT_ID": "zid",
            "SERVICE_ZOHO_EU_CLIENT_SECRET": "z-secret",
            "SERVICE_BOX_CLIENT_ID": "",  # blank, as in .env.example: not configured
        }
    )
    assert settings.service_clients == {
        "google": ServiceClient("gid", Secret("g-secret")),
        "zoho_eu": ServiceClient("zid", Secret("z-secret")),
    }
    assert "g-secret" not in repr(settings)


def test_half_or_unknown_service_clients_stop_start_up_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "SERVICE_GOOGLE_CLIENT_ID": "gid",
                "SERVICE_GOGLE_CLIENT_SECRET": "typo-secret",
                "SERVICE_DROPBOX_CLIENT_ID": "x",
            }
        )
    problems = "\n".join(caught.value.problems)
    assert (
        "SERVICE_GOOGLE_CLIENT_ID / SERVICE_GOOGLE_CLIENT_SECRET: set both or neither" in problems
    )
    assert "SERVICE_GOGLE_CLIENT_SECRET: no default service `gogle`" in problems
    assert "DROPBOX_APP_KEY / DROPBOX_APP_SECRET" in problems
    assert "typo-secret" not in problems


# -- `services`, `service configure`, and env-enabled services over HTTP ---------------------


async def test_services_lists_default_services_and_what_each_is_missing(world: World) -> None:
    listed = await rows(world)
    assert set(CATALOGUE) | {"dropbox"} <= set(listed)
    assert listed["dropbox"]["Status"] == "ready"
    google = listed["google"]
    assert google["Kind"] == "default"
    assert google["Status"] == (
        "not configured: set SERVICE_GOOGLE_CLIENT_ID / _SECRET or run"
        " `service configure google client_id=… client_secret=…`"
    )
    assert google["Scopes"] == "any (always asks for openid, email, profile)"
    assert "SERVICE_ZOHO_CA_CLIENT_ID" in listed["zoho_ca"]["Status"]
    assert "disconnecting deletes the stored tokens" in listed["microsoft"]["Status"]
    reply = await world.chat.run(ADMIN, 'create "Mail" service=google scopes=openid')
    assert "not configured yet" in reply.text and "SERVICE_GOOGLE_CLIENT_ID" in reply.text
    assert "Nothing was created" in reply.text and reply.button_url() is None
    assert await docs(world, "connections") == []


@pytest.fixture
def world_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return dataclasses.replace(settings, **getattr(request, "param", {}))


GOOGLE_ENV = pytest.mark.parametrize(
    "world_settings",
    [{"service_clients": {"google": ServiceClient("g-client", Secret("g-secret"))}}],
    indirect=True,
)


@GOOGLE_ENV
async def test_a_service_enabled_by_the_environment_connects_to_the_provider(
    world: World,
) -> None:
    assert (await rows(world))["google"]["Status"] == "ready"
    drive = "https://www.googleapis.com/auth/drive.readonly"
    reply = await world.chat.run(ADMIN, f'create "G Drive" service=google scopes={drive}')
    assert "`g_drive`" in reply.text, reply.text
    base, query = await authorize_target(world, "g_drive")
    assert base == "https://accounts.google.com/o/oauth2/v2/auth"
    assert query["client_id"] == "g-client"
    assert query["scope"] == f"{drive} openid email profile"
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == f"{world.bot_url}/oauth/callback"
    reply = await world.chat.run(ADMIN, "service configure google client_id=a client_secret=b")
    assert "configured by SERVICE_GOOGLE_CLIENT_ID / SERVICE_GOOGLE_CLIENT_SECRET" in reply.text
    assert await docs(world, "services") == []


async def test_service_configure_enables_a_default_service_with_a_sealed_secret(
    world: World,
) -> None:
    reply = await world.chat.run(
        ANA, "service configure zoho_eu client_id=z-id client_secret=z-secret-value"
    )
    assert "Only admins" in reply.text, reply.text
    assert await docs(world, "services") == []
    reply = await world.chat.run(
        ADMIN, "service configure Zoho_EU client_id=z-id client_secret=z-secret-value"
    )
    assert "Enabled the default service `zoho_eu`" in reply.text, reply.text
    [doc] = await docs(world, "services")
    assert doc["_id"] == "zoho_eu" and doc["default"] is True and doc["client_id"] == "z-id"
    assert "z-secret-value" not in repr(doc)
    assert [(d["action"], d["target"]) for d in await docs(world, "audit")] == [
        ("service.configure", "zoho_eu")
    ]
    assert "z-secret-value" not in repr(await docs(world, "audit"))
    listed = await rows(world)
    assert listed["zoho_eu"]["Status"] == "ready"
    assert "zoho_eu" not in {n for n, r in listed.items() if r["Kind"] == "custom"}
    reply = await world.chat.run(ADMIN, "create Desk service=zoho_eu scopes=Desk.tickets.READ")
    assert "`desk`" in reply.text, reply.text
    base, query = await authorize_target(world, "desk")
    assert base == "https://accounts.zoho.eu/oauth/v2/auth"
    assert query["client_id"] == "z-id"
    assert query["scope"] == "Desk.tickets.READ,AaaServer.profile.Read"
    # configured again: the new client replaces the old one; still one record
    reply = await world.chat.run(ADMIN, "service configure zoho_eu client_id=z2 client_secret=s2")
    assert "Enabled" in reply.text, reply.text
    [doc] = await docs(world, "services")
    assert doc["client_id"] == "z2"
    assert (await authorize_target(world, "desk"))[1]["client_id"] == "z2"
    reply = await world.chat.run(ADMIN, "service remove zoho_eu")
    assert "default service and cannot be removed" in reply.text, reply.text
    assert len(await docs(world, "services")) == 1


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("service configure nosuch client_id=a client_secret=b", "no default service `nosuch`"),
        ("service configure dropbox client_id=a client_secret=b", "DROPBOX_APP_KEY"),
        ("service configure box client_id=a", "needs client_secret="),
        ("service configure box client_secret=b", "needs client_id="),
        ("service configure box client_id=a client_secret=b scopes=x", "Unknown option(s)"),
        ("service configure", "Use `service add NAME"),
        (
            "service add google authorize_url=https://a.example/x token_url=https://a.example/t"
            " client_id=a client_secret=b",
            "`google` is a default service",
        ),
    ],
)
async def test_service_configure_refusals_change_nothing(
    world: World, arguments: str, expected: str
) -> None:
    reply = await world.chat.run(ADMIN, arguments)
    assert expected in reply.text, reply.text
    assert await docs(world, "services") == []
    assert await docs(world, "audit") == []


async def test_a_custom_service_keeps_a_name_the_catalogue_took_later(world: World) -> None:
    """A deployment that added `github` as a custom service before the catalogue had one."""
    from bot.sealing import seal_client_secret

    vault = world.app[RUNTIME].components.vault
    await db(world)["services"].insert_one(
        {
            "_id": "github",
            "name": "github",
            "authorize_url": "https://github.example/login/oauth/authorize",
            "token_url": "https://github.example/login/oauth/access_token",
            "client_id": "legacy-id",
            "client_secret": seal_client_secret(vault, "github", "legacy-secret"),
            "scopes": ["repo"],
            "param_type": "header",
            "scope_delimiter": ",",
        }
    )
    listed = await rows(world)
    assert listed["github"]["Kind"] == "custom" and listed["github"]["Scopes"] == "repo"
    reply = await world.chat.run(ADMIN, "service configure github client_id=a client_secret=b")
    assert "`github` is a custom service here" in reply.text, reply.text
    await world.chat.run(ADMIN, "create Code service=github scopes=repo")
    base, query = await authorize_target(world, "code")
    assert base == "https://github.example/login/oauth/authorize"
    assert query["client_id"] == "legacy-id" and query["scope"] == "repo"


# -- `cliqbot check` --------------------------------------------------------------------------


async def test_check_reports_a_half_configured_service(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env.update(
        {
            "BOT_DATA_DIR": str(tmp_path / "data"),
            "SERVICE_BOX_CLIENT_ID": "box-id",
            "SERVICE_GITHUB_CLIENT_SECRET": "gh-secret-value",
        }
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    lines = err.decode().splitlines()
    assert "config: SERVICE_BOX_CLIENT_ID / SERVICE_BOX_CLIENT_SECRET: set both or neither" in lines
    assert (
        "config: SERVICE_GITHUB_CLIENT_ID / SERVICE_GITHUB_CLIENT_SECRET: set both or neither"
        in lines
    )
    assert b"gh-secret-value" not in out + err


async def test_check_validates_the_endpoints_of_configured_services(
    settings: Settings, aiohttp_server: Any
) -> None:
    oauth = OAuthServer()
    server = await aiohttp_server(oauth.app())
    base = str(server.make_url("")).rstrip("/")
    answering = CatalogueEntry(
        name="answering",
        title="Answering",
        kind="custom",
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        revoke_url=f"{base}/revoke",
        userinfo_url=f"{base}/userinfo",
        scope_delimiter=" ",
        default_scopes=(),
        account=CATALOGUE["google"].account,
    )
    gone = dataclasses.replace(
        answering, name="gone", token_url="http://127.0.0.1:9/token", revoke_url=None
    )
    client = ServiceClient("cid", Secret("never-printed"))
    configured = dataclasses.replace(
        settings,
        cliq_api_base=base,
        dropbox_authorize_url=base,
        dropbox_api_url=base,
        dropbox_content_url=base,
        service_clients={"answering": client, "gone": client, "not_in_catalogue": client},
        catalogue={"answering": answering, "gone": gone},
    )
    problems = await check(configured)
    services = [p for p in problems if p.startswith("SERVICE_")]
    assert services == [
        "SERVICE_GONE_CLIENT_ID: the token endpoint of `gone`, http://127.0.0.1:9/token,"
        " is not reachable (ClientConnectorError)",
        "SERVICE_NOT_IN_CATALOGUE_CLIENT_ID: no default service `not_in_catalogue`",
    ]
    assert oauth.calls["/authorize"] >= 1 and oauth.calls["/userinfo"] >= 1
    assert not any("never-printed" in p for p in problems)


async def test_check_validates_the_endpoints_of_services_stored_from_chat(
    world: World, aiohttp_server: Any
) -> None:
    oauth = OAuthServer()
    server = await aiohttp_server(oauth.app())
    base = str(server.make_url("")).rstrip("/")
    for name, at in (("answering", base), ("gone", "http://127.0.0.1:9")):
        reply = await world.chat.run(
            ADMIN,
            f"service add {name} authorize_url={at}/authorize token_url={at}/token"
            f" client_id=cid client_secret=stored-never-printed",
        )
        assert "Added the custom service" in reply.text, reply.text
    reply = await world.chat.run(
        ADMIN, "service configure zoho_eu client_id=z-id client_secret=z-never-printed"
    )
    assert "Enabled the default service `zoho_eu`" in reply.text, reply.text
    zoho_eu = dataclasses.replace(
        CATALOGUE["zoho_eu"],
        authorize_url="http://127.0.0.1:9/oauth/v2/auth",
        token_url=f"{base}/token",
        revoke_url=None,
        userinfo_url=None,
    )
    # The same store and database as the running bot, as an operator's `cliqbot check` would.
    settings = dataclasses.replace(
        world.settings,
        cliq_api_base=base,
        dropbox_authorize_url=base,
        dropbox_api_url=base,
        dropbox_content_url=base,
        catalogue={**CATALOGUE, "zoho_eu": zoho_eu},
    )
    problems = await check(settings)
    stored = [p for p in problems if p.startswith("service ")]
    assert stored == [
        "service `gone` (/connection service add): the authorize endpoint,"
        " http://127.0.0.1:9/authorize, is not reachable (ClientConnectorError)",
        "service `gone` (/connection service add): the token endpoint,"
        " http://127.0.0.1:9/token, is not reachable (ClientConnectorError)",
        "service `zoho_eu` (/connection service configure): the authorize endpoint,"
        " http://127.0.0.1:9/oauth/v2/auth, is not reachable (ClientConnectorError)",
    ], problems
    assert not any("never-printed" in p for p in problems)
