"""The catalogue's providers whose OAuth differs (GitHub, Zoho), against local stand-ins that
answer in the shapes their docs give (docs/catalogue-sources.md), over real HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.catalogue import CATALOGUE
from bot.providers.kinds import oauth_hooks
from bot.providers.oauth2 import Account, OAuth2Client, OAuth2Service
from bot.secret import Secret
from bot.services import catalogue_service

CLIENT_ID = "Iv1.8a61f9b3a7aba766"
CLIENT_SECRET = "gh-client-secret"
TOKEN = "gho_16C7e42F292c6912E7710c838347Ae178B4a"


@dataclass
class GitHub:
    """GitHub's token endpoint, ``/user``, ``/user/emails`` and the Applications API."""

    public_email: str | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    token_accepts: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/login/oauth/access_token", self.token)
        app.router.add_get("/user", self.user)
        app.router.add_get("/user/emails", self.user_emails)
        app.router.add_delete("/applications/{client_id}/token", self.delete_token)
        return app

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_accepts.append(request.headers.get("Accept", ""))
        if form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "incorrect_client_credentials"})
        answer = {"access_token": TOKEN, "scope": "read:user,user:email", "token_type": "bearer"}
        if request.headers.get("Accept") == "application/json":
            return web.json_response(answer)
        body = "&".join(f"{k}={v.replace(',', '%2C')}" for k, v in answer.items())
        return web.Response(text=body, content_type="application/x-www-form-urlencoded")

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def user(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response(
            {"login": "octocat", "id": 583231, "name": None, "email": self.public_email}
        )

    async def user_emails(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response(self.emails)

    async def delete_token(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.match_info["client_id"] != CLIENT_ID:
            return web.json_response({"message": "Not Found"}, status=404)
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"message": "Requires authentication"}, status=401)
        token = json.loads(await request.read())["access_token"]
        if token != TOKEN or token in self.deleted:
            return web.json_response({"message": "Not Found"}, status=404)
        self.deleted.append(token)
        return web.Response(status=204)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def _serve(app: web.Application) -> AsyncIterator[str]:
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
def github() -> GitHub:
    return GitHub()


@pytest.fixture
async def github_service(github: GitHub) -> AsyncIterator[OAuth2Service]:
    async for base in _serve(github.app()):
        found = replace(
            CATALOGUE["github"],
            token_url=f"{base}/login/oauth/access_token",
            userinfo_url=f"{base}/user",
            revoke_url=f"{base}/applications/{{client_id}}/token",
            api_url=base,
        )
        yield catalogue_service(found, CLIENT_ID, Secret(CLIENT_SECRET))


async def test_github_tokens_come_as_json_with_comma_scopes_normalised(
    session: aiohttp.ClientSession, github: GitHub, github_service: OAuth2Service
) -> None:
    client = OAuth2Client(session, hooks=oauth_hooks)
    tokens = await client.exchange_code(
        github_service, code="c0de", redirect_uri="https://bot.example/cb", code_verifier="v" * 43
    )
    assert github.token_accepts == ["application/json"]
    assert tokens.access_token.reveal() == TOKEN
    assert tokens.refresh_token is None and tokens.expires_at is None  # an OAuth app's token
    assert tokens.scope == "read:user user:email"


@pytest.mark.parametrize(
    ("public_email", "emails", "expected"),
    [
        ("octo@public.example", [], "octo@public.example"),
        (
            None,
            [
                {"email": "old@example.com", "primary": False, "verified": True},
                {"email": "unverified@example.com", "primary": True, "verified": False},
                {"email": "octocat@github.com", "primary": True, "verified": True},
            ],
            "octocat@github.com",
        ),
        (
            None,
            [{"email": "only@example.com", "primary": False, "verified": True}],
            "only@example.com",
        ),
        (None, [{"email": "no@example.com", "primary": True, "verified": False}], ""),
    ],
    ids=["public", "primary-verified", "verified", "none-verified"],
)
async def test_github_account_from_user_and_user_emails(
    session: aiohttp.ClientSession,
    github: GitHub,
    github_service: OAuth2Service,
    public_email: str | None,
    emails: list[dict[str, Any]],
    expected: str,
) -> None:
    github.public_email, github.emails = public_email, emails
    client = OAuth2Client(session, hooks=oauth_hooks)
    account = await client.fetch_account(github_service, TOKEN)
    assert account == Account(id="583231", email=expected, name="octocat")


async def test_github_revokes_through_the_applications_api(
    session: aiohttp.ClientSession, github: GitHub, github_service: OAuth2Service
) -> None:
    client = OAuth2Client(session, hooks=oauth_hooks)
    await client.revoke(github_service, access_token=TOKEN, refresh_token=None)
    assert github.deleted == [TOKEN]
    await client.revoke(github_service, access_token=TOKEN, refresh_token=None)  # gone: done
    assert github.deleted == [TOKEN]


@dataclass
class ZohoAccounts:
    """Zoho's revoke endpoint (token in the query) and ``/oauth/user/info``."""

    revoked: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth/v2/token/revoke", self.revoke)
        app.router.add_get("/oauth/user/info", self.user_info)
        return app

    async def revoke(self, request: web.Request) -> web.Response:
        form = await request.post()
        fields = {key: str(value) for key, value in form.items()}
        self.revoked.append({"query_token": request.query.get("token", ""), **fields})
        return web.json_response({"status": "success"})

    async def user_info(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer 1000.access":
            return web.json_response({"response": "error"}, status=401)
        return web.json_response(
            {
                "First_Name": "Ana",
                "Last_Name": "Lima",
                "Display_Name": "",
                "Email": "ana@zylker.example",
                "ZUID": 72839117,
            }
        )


async def test_zoho_revokes_the_refresh_token_in_the_query_and_reads_its_user_info(
    session: aiohttp.ClientSession,
) -> None:
    zoho = ZohoAccounts()
    async for base in _serve(zoho.app()):
        found = replace(
            CATALOGUE["zoho_eu"],
            revoke_url=f"{base}/oauth/v2/token/revoke",
            userinfo_url=f"{base}/oauth/user/info",
        )
        service = catalogue_service(found, "1000.CLIENT", Secret("zoho-secret"))
        client = OAuth2Client(session, hooks=oauth_hooks)
        await client.revoke(service, access_token="1000.access", refresh_token="1000.refresh")
        account = await client.fetch_account(service, "1000.access")
    [call] = zoho.revoked  # the refresh token takes its access tokens with it
    assert call["query_token"] == "1000.refresh" and "token" not in call
    assert call["client_id"] == "1000.CLIENT" and call["client_secret"] == "zoho-secret"
    assert account == Account(id="72839117", email="ana@zylker.example", name="Ana Lima")
