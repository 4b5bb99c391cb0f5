"""The authlib-built OAuth 2 server and protected API, through real HTTP and authlib's client
helpers (grant URI, token request, client auth, PKCE challenge)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import (
    parse_authorization_code_response,
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from yarl import URL

from bot.sandbox.driver import ChatDriver
from bot.sandbox.oauth_server import OAuthServer

CLIENT_ID = "acme-client"
SECRET = "acme-secret"
REDIRECT = "http://127.0.0.1:9/oauth/callback"
ANA = "ana.lima@example.com"
BEN = "ben@example.com"
SCOPE = "openid email items.read"
FORM = "application/x-www-form-urlencoded"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')

Client = TestClient[web.Request, web.Application]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Grant:
    status: int
    location: str
    state: str
    verifier: str

    @property
    def query(self) -> dict[str, str]:
        return dict(URL(self.location).query)

    @property
    def code(self) -> str:
        parsed: dict[str, str] = parse_authorization_code_response(self.location, self.state)
        return parsed["code"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> OAuthServer:
    server = OAuthServer(expires_in=60, clock=clock)
    server.add_client(CLIENT_ID, SECRET, [REDIRECT])
    server.add_account(ANA, "Ana Lima")
    server.add_account(BEN)
    return server


async def serve(aiohttp_client: Any, server: OAuthServer) -> Client:
    client: Client = await aiohttp_client(server.app())
    server.base_url = str(client.make_url("")).rstrip("/")
    return client


@pytest.fixture
async def http(aiohttp_client: Any, server: OAuthServer) -> Client:
    return await serve(aiohttp_client, server)


async def authorize(
    http: Client,
    server: OAuthServer,
    *,
    scope: str = SCOPE,
    email: str = ANA,
    decision: str = "allow",
    client_id: str = CLIENT_ID,
    pkce: bool = True,
    **extra: str,
) -> Grant:
    """The browser's part: open the authorize URL, click an account (or Deny)."""
    state, verifier = generate_token(20), generate_token(48)
    if pkce:
        extra.setdefault("code_challenge", create_s256_code_challenge(verifier))
        extra.setdefault("code_challenge_method", "S256")
    uri = prepare_grant_uri(
        server.authorize_url, client_id, "code", REDIRECT, scope, state, **extra
    )
    async with http.session.get(URL(uri, encoded=True), allow_redirects=False) as resp:
        if resp.status != 200:
            return Grant(resp.status, resp.headers.get("Location", ""), state, verifier)
        page = await resp.text()
    fields = {name: unescape(value) for name, value in HIDDEN.findall(page)}
    if decision == "allow":
        fields["email"] = email
    else:
        fields["decision"] = decision
    async with http.post("/oauth2/authorize/decide", data=fields, allow_redirects=False) as resp:
        return Grant(resp.status, resp.headers.get("Location", ""), state, verifier)


async def token_call(
    http: Client,
    grant_type: str,
    *,
    auth: str = "client_secret_basic",
    client_id: str = CLIENT_ID,
    secret: str = SECRET,
    **params: str,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    body = prepare_token_request(grant_type, **params)
    _, headers, body = ClientAuth(client_id, secret, auth).prepare(
        "POST", "/token", {"Content-Type": FORM}, body
    )
    async with http.post("/token", data=body, headers=headers) as resp:
        return resp.status, await resp.json(), resp


async def exchange(http: Client, grant: Grant, **kw: str) -> dict[str, Any]:
    status, answer, _ = await token_call(
        http,
        "authorization_code",
        code=grant.code,
        redirect_uri=REDIRECT,
        code_verifier=grant.verifier,
        **kw,
    )
    assert status == 200, answer
    return answer


async def connect(http: Client, server: OAuthServer, **kw: Any) -> dict[str, Any]:
    return await exchange(http, await authorize(http, server, **kw))


async def api(
    http: Client, path: str, token: str | None, *, query: bool = False, **params: str
) -> aiohttp.ClientResponse:
    headers = {}
    if token is not None and query:
        params["access_token"] = token
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.get(path, params=params, headers=headers) as resp:
        await resp.read()
        return resp


async def revoke(http: Client, token: str, hint: str | None = None) -> int:
    form = {"token": token, **({"token_type_hint": hint} if hint else {})}
    raw = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    async with http.post("/revoke", data=form, headers={"Authorization": f"Basic {raw}"}) as r:
        return r.status


# ------------------------------------------------------------------------------ code + PKCE


async def test_consent_page_and_code_exchange(http: Client, server: OAuthServer) -> None:
    state = "s-1"
    uri = prepare_grant_uri(
        server.authorize_url,
        CLIENT_ID,
        "code",
        REDIRECT,
        SCOPE,
        state,
        code_challenge=create_s256_code_challenge("v" * 43),
        code_challenge_method="S256",
    )
    async with http.session.get(URL(uri, encoded=True)) as resp:
        assert resp.status == 200
        page = await resp.text()
    assert 'action="/oauth2/authorize/decide"' in page
    assert f'name="email" value="{ANA}"' in page and f'name="email" value="{BEN}"' in page
    assert dict(HIDDEN.findall(page))["state"] == state
    assert "items.read" in page

    grant = await authorize(http, server, email=BEN)
    assert grant.status == 302 and grant.location.startswith(REDIRECT + "?")
    assert grant.query["state"] == grant.state
    answer = await exchange(http, grant)
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 60
    assert answer["scope"] == SCOPE and answer["refresh_token"]
    who = await api(http, "/api/whoami", answer["access_token"])
    assert who.status == 200
    assert (await who.json())["email"] == BEN
    assert server.calls["token:authorization_code"] == 1
    assert server.calls["/authorize"] == 2 and server.calls["/oauth2/authorize/decide"] == 1


async def test_wrong_or_missing_verifier_is_refused_and_spends_the_code(
    http: Client, server: OAuthServer
) -> None:
    grant = await authorize(http, server)
    status, answer, _ = await token_call(
        http,
        "authorization_code",
        code=grant.code,
        redirect_uri=REDIRECT,
        code_verifier=generate_token(48),
    )
    assert (status, answer["error"]) == (400, "invalid_grant")
    status, answer, _ = await token_call(
        http,
        "authorization_code",
        code=grant.code,
        redirect_uri=REDIRECT,
        code_verifier=grant.verifier,
    )
    assert (status, answer["error"]) == (400, "invalid_grant")  # single use

    grant = await authorize(http, server)
    status, answer, _ = await token_call(
        http, "authorization_code", code=grant.code, redirect_uri=REDIRECT
    )
    assert (status, answer["error"]) == (400, "invalid_request")


async def test_pkce_is_required_and_s256_only(http: Client, server: OAuthServer) -> None:
    grant = await authorize(http, server, pkce=False)
    assert grant.status == 302
    assert grant.query["error"] == "invalid_request" and grant.query["state"] == grant.state
    grant = await authorize(http, server, code_challenge="x" * 43, code_challenge_method="plain")
    assert grant.query["error"] == "invalid_request"


async def test_code_reuse_revokes_what_it_gave(http: Client, server: OAuthServer) -> None:
    grant = await authorize(http, server)
    answer = await exchange(http, grant)
    status, again, _ = await token_call(
        http,
        "authorization_code",
        code=grant.code,
        redirect_uri=REDIRECT,
        code_verifier=grant.verifier,
    )
    assert (status, again["error"]) == (400, "invalid_grant")
    assert (await api(http, "/api/whoami", answer["access_token"])).status == 401


async def test_bad_client_or_redirect_is_not_redirected(http: Client, server: OAuthServer) -> None:
    grant = await authorize(http, server, client_id="nobody")
    assert grant.status == 400 and not grant.location
    uri = prepare_grant_uri(
        server.authorize_url, CLIENT_ID, "code", "http://evil.example/cb", SCOPE, "s"
    )
    async with http.session.get(URL(uri, encoded=True), allow_redirects=False) as resp:
        assert resp.status == 400 and "Location" not in resp.headers
        assert (await resp.json())["error"] == "invalid_request"


async def test_deny_and_error_override(http: Client, server: OAuthServer) -> None:
    grant = await authorize(http, server, decision="deny")
    assert grant.query["error"] == "access_denied" and grant.query["state"] == grant.state
    server.authorize_error = ("server_error", "The provider is having a bad day.")
    grant = await authorize(http, server)
    assert grant.status == 302 and grant.location.startswith(REDIRECT)
    assert grant.query == {
        "error": "server_error",
        "error_description": "The provider is having a bad day.",
        "state": grant.state,
    }


# ------------------------------------------------------------------------- refresh, revoke


async def test_refresh_rotates_and_refuses_the_old_token(http: Client, server: OAuthServer) -> None:
    first = await connect(http, server)
    status, second, _ = await token_call(
        http, "refresh_token", refresh_token=first["refresh_token"]
    )
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == SCOPE
    status, answer, _ = await token_call(
        http, "refresh_token", refresh_token=first["refresh_token"]
    )
    assert (status, answer["error"]) == (400, "invalid_grant")
    status, third, _ = await token_call(
        http, "refresh_token", refresh_token=second["refresh_token"], scope="items.read"
    )
    assert status == 200 and third["scope"] == "items.read"
    status, answer, _ = await token_call(
        http, "refresh_token", refresh_token=third["refresh_token"], scope="items.write"
    )
    assert (status, answer["error"]) == (400, "invalid_scope")
    assert server.calls["token:refresh_token"] == 4


async def test_revocation(http: Client, server: OAuthServer) -> None:
    tokens = await connect(http, server)
    assert await revoke(http, tokens["access_token"], "access_token") == 200
    assert (await api(http, "/api/whoami", tokens["access_token"])).status == 401
    status, fresh, _ = await token_call(
        http, "refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 200  # revoking an access token leaves the grant

    assert await revoke(http, fresh["refresh_token"]) == 200  # no hint
    assert (await api(http, "/api/whoami", fresh["access_token"])).status == 401
    status, answer, _ = await token_call(
        http, "refresh_token", refresh_token=fresh["refresh_token"]
    )
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert await revoke(http, "never-issued") == 200  # RFC 7009 §2.2
    async with http.post("/revoke", data={"token": "x"}) as resp:
        assert resp.status == 401  # the client must authenticate
    assert server.calls["/revoke"] == 4


async def test_revoke_account_ends_every_grant(http: Client, server: OAuthServer) -> None:
    one, two = await connect(http, server), await connect(http, server)
    other = await connect(http, server, email=BEN)
    assert server.revoke_account(ANA) == 2
    for tokens in (one, two):
        status, answer, _ = await token_call(
            http, "refresh_token", refresh_token=tokens["refresh_token"]
        )
        assert (status, answer["error"]) == (400, "invalid_grant")
        assert (await api(http, "/api/items", tokens["access_token"])).status == 401
    assert (await api(http, "/api/items", other["access_token"])).status == 200

    kept = server.issue_tokens(CLIENT_ID, ANA, "items.read")
    server.revoke_account(ANA, access_tokens=False)
    assert (await api(http, "/api/items", kept["access_token"])).status == 200
    status, _, _ = await token_call(http, "refresh_token", refresh_token=kept["refresh_token"])
    assert status == 400


# ----------------------------------------------------------------------------- client auth


async def test_basic_and_post_client_auth(http: Client, server: OAuthServer) -> None:
    for auth in ("client_secret_basic", "client_secret_post"):
        await exchange(http, await authorize(http, server), auth=auth)

    server.add_client("post-only", "p-secret", [REDIRECT], auth_methods=["client_secret_post"])
    grant = await authorize(http, server, client_id="post-only")
    params = {"code": grant.code, "redirect_uri": REDIRECT, "code_verifier": grant.verifier}
    status, answer, resp = await token_call(
        http, "authorization_code", client_id="post-only", secret="p-secret", **params
    )
    assert (status, answer["error"]) == (401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    grant = await authorize(http, server, client_id="post-only")
    params = {"code": grant.code, "redirect_uri": REDIRECT, "code_verifier": grant.verifier}
    status, _, _ = await token_call(
        http,
        "authorization_code",
        auth="client_secret_post",
        client_id="post-only",
        secret="p-secret",
        **params,
    )
    assert status == 200

    server.add_client("basic-only", "b-secret", [REDIRECT], auth_methods=["client_secret_basic"])
    grant = await authorize(http, server, client_id="basic-only")
    params = {"code": grant.code, "redirect_uri": REDIRECT, "code_verifier": grant.verifier}
    status, answer, _ = await token_call(
        http,
        "authorization_code",
        auth="client_secret_post",
        client_id="basic-only",
        secret="b-secret",
        **params,
    )
    assert (status, answer["error"]) == (401, "invalid_client")

    status, answer, _ = await token_call(http, "refresh_token", secret="wrong", refresh_token="x")
    assert (status, answer["error"]) == (401, "invalid_client")


async def test_client_without_refresh_tokens(http: Client, server: OAuthServer) -> None:
    server.add_client("short", "s-secret", [REDIRECT], refresh_tokens=False)
    grant = await authorize(http, server, client_id="short")
    answer = await exchange(http, grant, client_id="short", secret="s-secret")
    assert "refresh_token" not in answer


# --------------------------------------------------------------------------------- scopes


async def test_comma_delimited_scope_is_one_unknown_scope(
    http: Client, server: OAuthServer
) -> None:
    grant = await authorize(http, server, scope="email,items.read")
    assert grant.status == 302
    assert grant.query["error"] == "invalid_scope" and grant.query["state"] == grant.state
    assert "'email,items.read'" in grant.query["error_description"]


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), ("+", "plus")])
async def test_a_server_with_another_delimiter_splits_on_it(
    aiohttp_client: Any, clock: Clock, delimiter: str, name: str
) -> None:
    server = OAuthServer(scope_delimiter=delimiter, clock=clock)
    server.add_client(CLIENT_ID, SECRET, [REDIRECT])
    http = await serve(aiohttp_client, server)
    answer = await connect(http, server, scope=f"email{delimiter}items.read")
    assert answer["scope"] == f"email{delimiter}items.read"
    who = await api(http, "/api/whoami", answer["access_token"])
    assert (await who.json())["scopes"] == ["email", "items.read"]
    assert f"scope_delimiter={name}" in server.service_args("acme", CLIENT_ID)


async def test_openid_offline_access_needs_prompt_consent(
    aiohttp_client: Any, clock: Clock
) -> None:
    server = OAuthServer(offline_access_requires_consent=True, clock=clock)
    server.add_client(CLIENT_ID, SECRET, [REDIRECT])
    http = await serve(aiohttp_client, server)
    plain = await connect(http, server, scope="openid email")
    offline_only = await connect(http, server, scope="openid offline_access")
    consent_only = await connect(http, server, scope="openid email", prompt="consent")
    both = await connect(http, server, scope="openid offline_access", prompt="consent")
    assert "refresh_token" not in plain
    assert "refresh_token" not in offline_only
    assert "refresh_token" not in consent_only
    assert both["refresh_token"]
    status, refreshed, _ = await token_call(
        http, "refresh_token", refresh_token=both["refresh_token"]
    )
    assert status == 200 and refreshed["refresh_token"]  # rotation keeps the grant offline


async def test_required_scope_is_403(http: Client, server: OAuthServer) -> None:
    server.require_scope["/api/items"] = "items.write"
    tokens = await connect(http, server)
    resp = await api(http, "/api/items", tokens["access_token"])
    assert resp.status == 403
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    assert 'scope="items.write"' in resp.headers["WWW-Authenticate"]


# ------------------------------------------------------------------------- protected API


async def test_userinfo(http: Client, server: OAuthServer) -> None:
    tokens = await connect(http, server)
    resp = await api(http, "/userinfo", tokens["access_token"])
    info = await resp.json()
    account = server.accounts[ANA]
    assert (info["sub"], info["email"], info["name"]) == (account.sub, ANA, "Ana Lima")
    assert server.calls["/userinfo"] == 1


async def test_bearer_in_header_or_query(aiohttp_client: Any, clock: Clock) -> None:
    server = OAuthServer(clock=clock)
    server.add_client(CLIENT_ID, SECRET)
    http = await serve(aiohttp_client, server)
    token = server.issue_tokens(CLIENT_ID, ANA, "items.read")["access_token"]
    header = await api(http, "/api/whoami", token)
    assert (await header.json())["token_via"] == "header"
    query = await api(http, "/api/items", token, query=True)
    assert query.status == 200 and query.headers["Cache-Control"] == "private"
    assert (await query.json())["owner"] == ANA
    async with http.get(
        "/api/items", params={"access_token": token}, headers={"Authorization": f"Bearer {token}"}
    ) as both:
        assert both.status == 400
        assert 'error="invalid_request"' in both.headers["WWW-Authenticate"]
    server.accept_query_token = False
    assert (await api(http, "/api/items", token, query=True)).status == 401


async def test_expired_revoked_or_missing_token_is_401(
    http: Client, server: OAuthServer, clock: Clock
) -> None:
    tokens = await connect(http, server)
    assert (await api(http, "/api/items", tokens["access_token"])).status == 200
    clock.now += 61
    resp = await api(http, "/api/items", tokens["access_token"])
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    status, fresh, _ = await token_call(
        http, "refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 200
    server.expire_access_tokens(ANA)
    assert (await api(http, "/api/whoami", fresh["access_token"], query=True)).status == 401
    missing = await api(http, "/api/whoami", None)
    assert (missing.status, missing.headers["WWW-Authenticate"]) == (401, "Bearer")
    unknown = await api(http, "/api/whoami", "no-such-token")
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]


async def test_limited_slow_and_big(http: Client, server: OAuthServer) -> None:
    token = server.issue_tokens(CLIENT_ID, ANA, "items.read")["access_token"]
    other = server.issue_tokens(CLIENT_ID, BEN)["access_token"]
    first = await api(http, "/api/limited", token)
    assert (first.status, first.headers["Retry-After"]) == (429, "1")
    assert (await api(http, "/api/limited", token)).status == 200
    assert (await api(http, "/api/limited", other)).status == 429
    assert server.calls["/api/limited"] == 3

    slow = await api(http, "/api/slow", token, seconds="0.05")
    assert (await slow.json())["slept"] == 0.05
    assert (await api(http, "/api/slow", token, seconds="999")).status == 400

    async with http.get("/api/big", params={"mib": "2"}, headers=bearer(token)) as resp:
        assert resp.content_length == 2 * 1024 * 1024
        assert len(await resp.read()) == 2 * 1024 * 1024
    async with http.get(
        "/api/big", params={"mib": "0.5", "chunked": "1"}, headers=bearer(token)
    ) as resp:
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        assert len(await resp.read()) == 512 * 1024


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ serving, ChatDriver


async def test_chat_driver_consent_drives_it(aiohttp_server: Any) -> None:
    """The bot side is a stub: ``/connect`` redirects to the authorize URL, the callback
    exchanges the code with authlib's helpers over a real socket."""
    server = OAuthServer(expires_in=2)
    base = await server.start()
    try:
        assert base.startswith("http://127.0.0.1:") and server.base_url == base
        pending: dict[str, str] = {}

        async def connect_link(request: web.Request) -> web.Response:
            verifier, state = generate_token(48), generate_token(16)
            pending[state] = verifier
            uri = prepare_grant_uri(
                server.authorize_url,
                CLIENT_ID,
                "code",
                str(request.url.with_path("/oauth/callback").with_query(None)),
                SCOPE,
                state,
                code_challenge=create_s256_code_challenge(verifier),
                code_challenge_method="S256",
            )
            raise web.HTTPFound(uri)

        async def callback(request: web.Request) -> web.Response:
            query = request.query
            if "error" in query:
                return web.Response(text=f"error {query['error']}", status=400)
            body = prepare_token_request(
                "authorization_code",
                code=query["code"],
                redirect_uri=str(request.url.with_query(None)),
                code_verifier=pending.pop(query["state"]),
            )
            _, headers, body = ClientAuth(CLIENT_ID, SECRET).prepare(
                "POST", server.token_url, {"Content-Type": FORM}, body
            )
            async with (
                aiohttp.ClientSession() as s,
                s.post(server.token_url, data=body, headers=headers) as resp,
            ):
                tokens = await resp.json()
            async with (
                aiohttp.ClientSession() as s,
                s.get(server.userinfo_url, headers=bearer(tokens["access_token"])) as resp,
            ):
                info = await resp.json()
            return web.Response(text=f"Connected as {info['email']} ({tokens['expires_in']} s)")

        bot = web.Application()
        bot.router.add_get("/connect", connect_link)
        bot.router.add_get("/oauth/callback", callback)
        bot_server = await aiohttp_server(bot)
        server.add_client(CLIENT_ID, SECRET, [str(bot_server.make_url("/oauth/callback"))])

        async with aiohttp.ClientSession() as session:
            driver = ChatDriver(session, str(bot_server.make_url("")), "unused")
            connect_url = str(bot_server.make_url("/connect"))
            status, page = await driver.consent(connect_url, "carla@example.com")
            assert (status, page) == (200, "Connected as carla@example.com (2 s)")
            status, page = await driver.consent(connect_url, BEN, allow=False)
            assert (status, page) == (400, "error access_denied")
        assert server.calls["token:authorization_code"] == 1
        assert "carla@example.com" in server.accounts

        args = server.service_args("acme", CLIENT_ID, scopes="openid,email")
        assert args.startswith(f"acme authorize_url={base}/authorize token_url={base}/token ")
        assert f"revoke_url={base}/revoke userinfo_url={base}/userinfo" in args
        assert args.endswith(" scopes=openid,email")
    finally:
        await server.stop()
    await server.stop()  # idempotent


async def test_basic_credentials_are_form_encoded_first(http: Client, server: OAuthServer) -> None:
    """RFC 6749 §2.3.1, as the bot sends them: each of id and secret percent-encoded."""
    odd_id, odd_secret = "odd:client", "s+e/c ret:%"
    server.add_client(odd_id, odd_secret, [REDIRECT])
    token = server.issue_tokens(odd_id, ANA, "email")
    pair = f"{quote(odd_id, safe='')}:{quote(odd_secret, safe='')}"
    headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    async with http.post("/token", data=form, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
