"""OAuth2 client against a small in-test provider speaking RFC 6749 + RFC 7636 + RFC 7009.

The provider below is real HTTP (aiohttp app on loopback); nothing of ours is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from yarl import URL

from bot.errors import (
    InvalidGrant,
    InvalidToken,
    OAuthProviderError,
    ServerError,
    TokenExpired,
)
from bot.providers.kinds import oauth_hooks
from bot.providers.oauth2 import (
    SCOPE_DELIMITERS,
    Account,
    OAuth2Client,
    OAuth2Service,
    authorization_url,
    new_code_verifier,
    new_state,
)
from bot.sandbox.dropbox_standin import DropboxStandin
from bot.secret import Secret

CLIENT_ID = "custom-client"
CLIENT_SECRET = "custom-secret/with:odd&chars"
REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"
NOW = 1_700_000_000.0


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass
class _Grant:
    redirect_uri: str
    challenge: str
    scope: str


@dataclass
class FakeProvider:
    """An OAuth2 authorization server + userinfo endpoint, strict about the wire format."""

    client_auth: str = "basic"
    param_type: str = "header"
    rotate_refresh: bool = False
    userinfo: dict[str, Any] = field(
        default_factory=lambda: {"sub": "u-1", "email": "ana@example.com", "name": "Ana Lima"}
    )
    codes: dict[str, _Grant] = field(default_factory=dict)
    access_tokens: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    authorize_queries: list[str] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    revoked: list[tuple[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_post("/revoke", self.revoke)
        app.router.add_get("/userinfo", self.userinfo_endpoint)
        app.router.add_post("/broken", self.broken)
        app.router.add_post("/html", self.html)
        app.router.add_post("/form-token", self.form_token)
        return app

    # -- endpoints ------------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.Response:
        self.authorize_queries.append(request.query_string)
        query = request.query
        assert query["response_type"] == "code"
        assert query["client_id"] == CLIENT_ID
        assert query["code_challenge_method"] == "S256"
        code = "code-" + secrets.token_urlsafe(16)
        self.codes[code] = _Grant(query["redirect_uri"], query["code_challenge"], query["scope"])
        target = URL(query["redirect_uri"]).update_query(code=code, state=query["state"])
        raise web.HTTPFound(str(target))

    def _client_ok(self, request: web.Request, form: Mapping[str, str]) -> bool:
        header = request.headers.get("Authorization")
        if self.client_auth == "basic":
            if header is None or not header.startswith("Basic ") or "client_secret" in form:
                return False
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (unquote(user), unquote(password)) == (CLIENT_ID, CLIENT_SECRET)
        return (
            header is None
            and form.get("client_id") == CLIENT_ID
            and form.get("client_secret") == CLIENT_SECRET
        )

    def _issue(self, scope: str, *, with_refresh: bool) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(16)
        self.access_tokens[access] = scope
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": scope,
        }
        if with_refresh:
            refresh = "rt-" + secrets.token_urlsafe(16)
            self.refresh_tokens[refresh] = scope
            answer["refresh_token"] = refresh
        return answer

    async def token(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-www-form-urlencoded"
        form = {key: str(value) for key, value in (await request.post()).items()}
        self.token_forms.append(form)
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self.codes.pop(form["code"], None)
            if grant is None or grant.redirect_uri != form.get("redirect_uri"):
                # A careless provider echoing the code: the client must not repeat it.
                return web.json_response(
                    {
                        "error": "invalid_grant",
                        "error_description": f"code {form['code']} doesn't exist or has expired",
                    },
                    status=400,
                )
            if s256(form.get("code_verifier", "")) != grant.challenge:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "PKCE verification failed"},
                    status=400,
                )
            return web.json_response(self._issue(grant.scope, with_refresh=True))
        if grant_type == "refresh_token":
            scope = self.refresh_tokens.get(form["refresh_token"])
            if scope is None:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "refresh token is revoked"},
                    status=400,
                )
            if self.rotate_refresh:
                del self.refresh_tokens[form["refresh_token"]]
            return web.json_response(self._issue(scope, with_refresh=self.rotate_refresh))
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def revoke(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        token = form["token"]
        self.revoked.append((form.get("token_type_hint", ""), token))
        self.access_tokens.pop(token, None)
        self.refresh_tokens.pop(token, None)
        return web.Response(status=200)

    async def userinfo_endpoint(self, request: web.Request) -> web.Response:
        if self.param_type == "header":
            header = request.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
            assert "access_token" not in request.query
        else:
            token = request.query.get("access_token", "")
            assert "Authorization" not in request.headers
        if token in self.expired:
            return web.Response(
                status=401,
                headers={
                    "WWW-Authenticate": 'Bearer error="invalid_token", '
                    'error_description="The access token expired"'
                },
            )
        if token not in self.access_tokens:
            return web.Response(
                status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return web.json_response(self.userinfo)

    async def broken(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text="upstream exploded")

    async def html(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200, text="<html>login</html>", content_type="text/html")

    async def form_token(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            text="access_token=at-form&scope=repo%2Cuser&token_type=bearer",
            content_type="application/x-www-form-urlencoded",
        )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def client(session: aiohttp.ClientSession) -> OAuth2Client:
    return OAuth2Client(session, hooks=oauth_hooks, now=lambda: NOW)


async def start(
    aiohttp_server: AiohttpServer, provider: FakeProvider, **overrides: Any
) -> OAuth2Service:
    server = await aiohttp_server(provider.app())
    base = str(server.make_url("")).rstrip("/")
    service = OAuth2Service(
        name="acme",
        kind="custom",
        authorize_url=f"{base}/authorize?tenant=acme",
        token_url=f"{base}/token",
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        revoke_url=f"{base}/revoke",
        userinfo_url=f"{base}/userinfo",
        scopes=("read", "write"),
        param_type=provider.param_type,
        client_auth=provider.client_auth,
    )
    return replace(service, **overrides)


async def authorize(
    session: aiohttp.ClientSession, service: OAuth2Service, scopes: list[str]
) -> tuple[str, str]:
    """Follow the authorize URL as a browser would; returns (code, verifier)."""
    verifier = new_code_verifier()
    state = new_state()
    url = authorization_url(
        service, redirect_uri=REDIRECT_URI, state=state, code_verifier=verifier, scopes=scopes
    )
    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 302
        location = URL(response.headers["Location"])
    assert location.query["state"] == state
    return location.query["code"], verifier


# -- authorization_url --------------------------------------------------------------------


def _service(**overrides: Any) -> OAuth2Service:
    base = OAuth2Service(
        name="acme",
        kind="custom",
        authorize_url="https://auth.example.com/authorize?tenant=acme&prompt=consent",
        token_url="https://auth.example.com/token",
        client_id="cid",
        client_secret=Secret("shh"),
    )
    return replace(base, **overrides)


def test_authorization_url_has_pkce_and_keeps_existing_params() -> None:
    verifier = new_code_verifier()
    url = authorization_url(
        _service(extra_authorize_params={"access_type": "offline", "state": "hijack"}),
        redirect_uri=REDIRECT_URI,
        state="st-1",
        code_verifier=verifier,
        scopes=["read", "write"],
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "auth.example.com", "/authorize")
    query = parse_qs(parts.query)
    assert query == {
        "tenant": ["acme"],
        "prompt": ["consent"],
        "client_id": ["cid"],
        "response_type": ["code"],
        "redirect_uri": [REDIRECT_URI],
        "state": ["st-1"],
        "scope": ["read write"],
        "code_challenge": [s256(verifier)],
        "code_challenge_method": ["S256"],
        "access_type": ["offline"],
    }
    assert verifier not in url
    assert "shh" not in url


@pytest.mark.parametrize(
    ("delimiter", "raw", "decoded"),
    [
        ("space", "scope=read+write", "read write"),
        ("comma", "scope=read%2Cwrite", "read,write"),
        ("plus", "scope=read%2Bwrite", "read+write"),
    ],
)
def test_scope_delimiters(delimiter: str, raw: str, decoded: str) -> None:
    url = authorization_url(
        _service(scope_delimiter=SCOPE_DELIMITERS[delimiter]),
        redirect_uri=REDIRECT_URI,
        state="s",
        code_verifier=new_code_verifier(),
        scopes=["read", "write"],
    )
    query = urlsplit(url).query
    assert raw in query.split("&")
    assert parse_qs(query)["scope"] == [decoded]


def test_dropbox_extra_params_and_no_scope() -> None:
    url = authorization_url(
        _service(kind="dropbox", extra_authorize_params={"token_access_type": "offline"}),
        redirect_uri=REDIRECT_URI,
        state="s",
        code_verifier=new_code_verifier(),
        scopes=[],
    )
    query = parse_qs(urlsplit(url).query)
    assert query["token_access_type"] == ["offline"]
    assert "scope" not in query


def test_verifier_and_state_shape() -> None:
    verifiers = {new_code_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
        )
    state = new_state()
    assert len(base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))) >= 32
    assert new_state() != state
    with pytest.raises(ValueError, match="code verifier"):
        authorization_url(
            _service(), redirect_uri=REDIRECT_URI, state="s", code_verifier="short", scopes=[]
        )


def test_service_validation() -> None:
    for bad in (
        {"kind": "nosuch"},
        {"param_type": "cookie"},
        {"scope_delimiter": ";"},
        {"client_auth": "jwt"},
    ):
        with pytest.raises(ValueError):
            _service(**bad)
    assert _service().effective_refresh_url == "https://auth.example.com/token"
    assert "shh" not in repr(_service())


# -- full custom flows --------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [("basic", "header", " "), ("post", "query", ","), ("basic", "query", "+")],
    ids=["basic-header-space", "post-query-comma", "basic-query-plus"],
)
async def test_custom_code_flow(
    aiohttp_server: AiohttpServer,
    session: aiohttp.ClientSession,
    client: OAuth2Client,
    case: tuple[str, str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client_auth, param_type, delimiter = case
    caplog.set_level(logging.DEBUG)
    provider = FakeProvider(client_auth=client_auth, param_type=param_type)
    service = await start(aiohttp_server, provider, scope_delimiter=delimiter)

    code, verifier = await authorize(session, service, ["read", "write"])
    assert "tenant=acme" in provider.authorize_queries[0]
    assert provider.codes[code].scope == f"read{delimiter}write"

    tokens = await client.exchange_code(
        service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    assert tokens.access_token.reveal() in provider.access_tokens
    assert tokens.refresh_token is not None
    assert tokens.expires_at == NOW + 3600
    assert tokens.scope == "read write"
    assert tokens.account_id is None
    form = provider.token_forms[-1]
    assert form["grant_type"] == "authorization_code"
    assert form["code_verifier"] == verifier
    assert ("client_secret" in form) == (client_auth == "post")

    account = await client.fetch_account(service, tokens.access_token.reveal())
    assert account == Account(id="u-1", email="ana@example.com", name="Ana Lima")

    refreshed = await client.refresh(service, tokens.refresh_token.reveal())
    assert refreshed.refresh_token is None  # no rotation: caller keeps the old one
    assert refreshed.access_token != tokens.access_token

    await client.revoke(
        service,
        access_token=refreshed.access_token.reveal(),
        refresh_token=tokens.refresh_token.reveal(),
    )
    assert provider.revoked == [
        ("refresh_token", tokens.refresh_token.reveal()),
        ("access_token", refreshed.access_token.reveal()),
    ]
    with pytest.raises(InvalidGrant):
        await client.refresh(service, tokens.refresh_token.reveal())
    with pytest.raises(InvalidToken):
        await client.fetch_account(service, refreshed.access_token.reveal())

    # Our log lines (the provider's own access log is not ours) hold no secret.
    ours = "\n".join(
        record.getMessage() for record in caplog.records if record.name.startswith("bot.")
    )
    assert "acme" in ours
    for secret in (
        code,
        verifier,
        CLIENT_SECRET,
        tokens.access_token.reveal(),
        tokens.refresh_token.reveal(),
        refreshed.access_token.reveal(),
    ):
        assert secret not in ours
    assert tokens.access_token.reveal() not in repr(tokens)


async def test_code_is_single_use_and_not_echoed(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, client: OAuth2Client
) -> None:
    provider = FakeProvider()
    service = await start(aiohttp_server, provider)
    code, verifier = await authorize(session, service, ["read"])
    await client.exchange_code(
        service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    with pytest.raises(InvalidGrant) as info:
        await client.exchange_code(
            service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
        )
    message = str(info.value)
    assert code not in message
    assert "[redacted]" in message
    assert "doesn't exist or has expired" in message


async def test_wrong_verifier_is_invalid_grant(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, client: OAuth2Client
) -> None:
    service = await start(aiohttp_server, FakeProvider())
    code, _ = await authorize(session, service, ["read"])
    other = new_code_verifier()
    with pytest.raises(InvalidGrant, match="PKCE") as info:
        await client.exchange_code(
            service, code=code, redirect_uri=REDIRECT_URI, code_verifier=other
        )
    assert other not in str(info.value)


async def test_refresh_token_rotation(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, client: OAuth2Client
) -> None:
    provider = FakeProvider(rotate_refresh=True)
    service = await start(aiohttp_server, provider, refresh_url=None)
    code, verifier = await authorize(session, service, ["read"])
    first = await client.exchange_code(
        service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    assert first.refresh_token is not None
    second = await client.refresh(service, first.refresh_token.reveal())
    assert second.refresh_token is not None
    assert second.refresh_token != first.refresh_token
    with pytest.raises(InvalidGrant, match="refresh token is revoked"):
        await client.refresh(service, first.refresh_token.reveal())
    third = await client.refresh(service, second.refresh_token.reveal())
    assert third.refresh_token is not None


async def test_wrong_client_secret(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, client: OAuth2Client
) -> None:
    provider = FakeProvider(client_auth="post")
    service = await start(aiohttp_server, provider)
    code, verifier = await authorize(session, service, ["read"])
    wrong = replace(service, client_secret=Secret("nope-secret"))
    with pytest.raises(OAuthProviderError) as info:
        await client.exchange_code(
            wrong, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
        )
    assert (info.value.status, info.value.error) == (401, "invalid_client")
    assert "nope-secret" not in str(info.value)
    assert not isinstance(info.value, InvalidGrant)


async def test_server_errors_and_odd_bodies(
    aiohttp_server: AiohttpServer, client: OAuth2Client
) -> None:
    provider = FakeProvider()
    service = await start(aiohttp_server, provider)
    base = service.token_url.removesuffix("/token")

    with pytest.raises(ServerError) as server_error:
        await client.refresh(replace(service, refresh_url=f"{base}/broken"), "rt-x")
    assert server_error.value.status == 500

    with pytest.raises(OAuthProviderError) as html:
        await client.refresh(replace(service, refresh_url=f"{base}/html"), "rt-x")
    assert html.value.error == "invalid_response"

    tokens = await client.refresh(replace(service, refresh_url=f"{base}/form-token"), "rt-x")
    assert tokens.access_token.reveal() == "at-form"
    assert tokens.expires_at is None
    assert tokens.scope == "repo,user"  # space-delimited service: comma is part of a scope

    comma = replace(service, refresh_url=f"{base}/form-token", scope_delimiter=",")
    assert (await client.refresh(comma, "rt-x")).scope == "repo user"

    with pytest.raises(OAuthProviderError) as missing:
        await client.refresh(replace(service, refresh_url=f"{base}/nowhere"), "rt-x")
    assert missing.value.status == 404


async def test_unreachable_provider_is_server_error(
    aiohttp_server: AiohttpServer, client: OAuth2Client
) -> None:
    server = await aiohttp_server(web.Application())
    url = str(server.make_url("/token"))
    await server.close()
    service = _service(token_url=url, userinfo_url=url.replace("/token", "/userinfo"))
    with pytest.raises(ServerError, match="cannot reach") as info:
        await client.refresh(service, "rt-secret-value")
    assert "rt-secret-value" not in str(info.value)
    with pytest.raises(ServerError):
        await client.fetch_account(replace(service, param_type="query"), "at-secret-value")


async def test_expired_access_token(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, client: OAuth2Client
) -> None:
    provider = FakeProvider()
    service = await start(aiohttp_server, provider)
    code, verifier = await authorize(session, service, ["read"])
    tokens = await client.exchange_code(
        service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    provider.expired.add(tokens.access_token.reveal())
    with pytest.raises(TokenExpired):
        await client.fetch_account(service, tokens.access_token.reveal())


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (
            {"sub": "248289761001", "email": "jane@example.com", "name": "Jane Doe"},
            Account("248289761001", "jane@example.com", "Jane Doe"),
        ),
        (
            {"id": 583231, "login": "octocat", "email": None},
            Account("583231", "", "octocat"),
        ),
        (
            {"data": {"id": "2244994945", "name": "Dev", "username": "dev"}},
            Account("2244994945", "", "Dev"),
        ),
        (
            {"ok": True, "user": {"id": "U1", "name": "ana", "email": "ana@example.com"}},
            Account("U1", "ana@example.com", "ana"),
        ),
        (
            {"sub": "x", "given_name": "Ana", "family_name": "Lima"},
            Account("x", "", "Ana Lima"),
        ),
        ({"user_id": "9", "email": "only@example.com"}, Account("9", "only@example.com", "")),
    ],
)
async def test_userinfo_shapes(
    aiohttp_server: AiohttpServer,
    session: aiohttp.ClientSession,
    client: OAuth2Client,
    shape: dict[str, Any],
    expected: Account,
) -> None:
    provider = FakeProvider(userinfo=shape)
    service = await start(aiohttp_server, provider)
    code, verifier = await authorize(session, service, ["read"])
    tokens = await client.exchange_code(
        service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    account = await client.fetch_account(service, tokens.access_token.reveal())
    if expected.name == "" and expected.email:
        expected = replace(expected, name=expected.email)  # the email stands in for a name
    assert account == expected


async def test_no_userinfo_and_no_revoke_url(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, client: OAuth2Client
) -> None:
    provider = FakeProvider()
    service = await start(aiohttp_server, provider, userinfo_url=None, revoke_url=None)
    assert await client.fetch_account(service, "anything") == Account("", "", "")
    await client.revoke(service, access_token="a", refresh_token="r")
    assert provider.revoked == []


async def test_revoke_with_access_token_only(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, client: OAuth2Client
) -> None:
    provider = FakeProvider(client_auth="post")
    service = await start(aiohttp_server, provider)
    code, verifier = await authorize(session, service, ["read"])
    tokens = await client.exchange_code(
        service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    await client.revoke(service, access_token=tokens.access_token.reveal(), refresh_token=None)
    assert provider.revoked == [("access_token", tokens.access_token.reveal())]


# -- Dropbox code flow against the local stand-in ------------------------------------------

DROPBOX_KEY = "dbx-app-key"
DROPBOX_SECRET = "dbx-app-secret"
DROPBOX_SCOPES = ["account_info.read", "files.content.write"]


class _FormReader(HTMLParser):
    """Collects the consent form's action and fields, as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values.get("value", "")


async def _dropbox(
    aiohttp_server: AiohttpServer, tmp_path: Path, **overrides: Any
) -> tuple[DropboxStandin, OAuth2Service]:
    standin = DropboxStandin(tmp_path / "dropbox", apps={DROPBOX_KEY: DROPBOX_SECRET})
    standin.add_account("ana@example.com", "Ana Lima")
    server = await aiohttp_server(standin.app())
    base = str(server.make_url("")).rstrip("/")
    service = OAuth2Service(
        name="dropbox",
        kind="dropbox",
        authorize_url=f"{base}/oauth2/authorize",
        token_url=f"{base}/oauth2/token",
        revoke_url=f"{base}/2/auth/token/revoke",
        api_url=base,
        client_id=DROPBOX_KEY,
        client_secret=Secret(DROPBOX_SECRET),
        scopes=tuple(DROPBOX_SCOPES),
        extra_authorize_params={"token_access_type": "offline"},
    )
    return standin, replace(service, **overrides)


async def _dropbox_consent(
    session: aiohttp.ClientSession, service: OAuth2Service, email: str
) -> tuple[str, str]:
    """Open the authorize URL, allow on the consent page; returns (code, verifier)."""
    verifier = new_code_verifier()
    state = new_state()
    url = authorization_url(
        service,
        redirect_uri=REDIRECT_URI,
        state=state,
        code_verifier=verifier,
        scopes=DROPBOX_SCOPES,
    )
    query = parse_qs(urlsplit(url).query)
    assert query["token_access_type"] == ["offline"]
    assert query["code_challenge"] == [s256(verifier)]
    async with session.get(url) as page:
        assert page.status == 200, await page.text()
        reader = _FormReader()
        reader.feed(await page.text())
    assert reader.fields["code_challenge"] == s256(verifier)
    decide = URL(url).join(URL(reader.action))
    form = {**reader.fields, "email": email, "decision": "allow"}
    async with session.post(decide, data=form, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        location = URL(answer.headers["Location"])
    assert str(location.with_query(None)) == REDIRECT_URI
    assert location.query["state"] == state
    return location.query["code"], verifier


@pytest.mark.parametrize("client_auth", ["basic", "post"])
async def test_dropbox_code_flow_with_pkce(
    aiohttp_server: AiohttpServer,
    session: aiohttp.ClientSession,
    client: OAuth2Client,
    tmp_path: Path,
    client_auth: str,
) -> None:
    standin, service = await _dropbox(aiohttp_server, tmp_path, client_auth=client_auth)
    code, verifier = await _dropbox_consent(session, service, "ana@example.com")

    tokens = await client.exchange_code(
        service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    assert tokens.refresh_token is not None
    assert tokens.expires_at == NOW + 14400
    assert tokens.scope == "account_info.read files.content.write"
    assert tokens.account_id is not None
    assert tokens.account_id.startswith("dbid:")

    account = await client.fetch_account(service, tokens.access_token.reveal())
    assert account == Account(id=tokens.account_id, email="ana@example.com", name="Ana Lima")

    with pytest.raises(InvalidGrant, match="doesn't exist or has expired"):
        await client.exchange_code(
            service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
        )

    refreshed = await client.refresh(service, tokens.refresh_token.reveal())
    assert refreshed.refresh_token is None  # Dropbox keeps the refresh token
    assert refreshed.access_token != tokens.access_token
    assert (await client.fetch_account(service, refreshed.access_token.reveal())).id == (
        tokens.account_id
    )

    await client.revoke(
        service,
        access_token=refreshed.access_token.reveal(),
        refresh_token=tokens.refresh_token.reveal(),
    )
    assert standin.calls["/2/auth/token/revoke"] == 1
    with pytest.raises(InvalidGrant, match="invalid or revoked"):
        await client.refresh(service, tokens.refresh_token.reveal())
    with pytest.raises(InvalidToken):
        await client.fetch_account(service, refreshed.access_token.reveal())
    # Revoking again is harmless: the token is already dead.
    await client.revoke(
        service,
        access_token=refreshed.access_token.reveal(),
        refresh_token=tokens.refresh_token.reveal(),
    )


async def test_dropbox_wrong_verifier_and_expired_token(
    aiohttp_server: AiohttpServer,
    session: aiohttp.ClientSession,
    client: OAuth2Client,
    tmp_path: Path,
) -> None:
    standin, service = await _dropbox(aiohttp_server, tmp_path)
    code, _ = await _dropbox_consent(session, service, "bo@example.com")
    with pytest.raises(InvalidGrant, match="invalid code verifier"):
        await client.exchange_code(
            service, code=code, redirect_uri=REDIRECT_URI, code_verifier=new_code_verifier()
        )

    code, verifier = await _dropbox_consent(session, service, "bo@example.com")
    tokens = await client.exchange_code(
        service, code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    assert tokens.refresh_token is not None
    standin.expire_access_tokens("bo@example.com")
    with pytest.raises(TokenExpired):
        await client.fetch_account(service, tokens.access_token.reveal())
    # An expired access token is refreshed once to revoke the grant.
    await client.revoke(
        service,
        access_token=tokens.access_token.reveal(),
        refresh_token=tokens.refresh_token.reveal(),
    )
    with pytest.raises(InvalidGrant):
        await client.refresh(service, tokens.refresh_token.reveal())

    wrong = replace(service, client_secret=Secret("not-the-secret"))
    with pytest.raises(OAuthProviderError) as info:
        await client.refresh(wrong, "r.whatever")
    assert info.value.error == "invalid_client"
    assert "not-the-secret" not in str(info.value)


async def test_dropbox_token_endpoint_faults(
    aiohttp_server: AiohttpServer, client: OAuth2Client, tmp_path: Path
) -> None:
    standin, service = await _dropbox(aiohttp_server, tmp_path)
    _, refresh_token = standin.issue_tokens(DROPBOX_KEY, "ana@example.com", DROPBOX_SCOPES)
    standin.inject_fault("/oauth2/token", "503")
    with pytest.raises(ServerError) as info:
        await client.refresh(service, refresh_token)
    assert info.value.status == 503
    standin.inject_fault("/oauth2/token", "drop")
    with pytest.raises(ServerError, match="cannot reach"):
        await client.refresh(service, refresh_token)
    assert (await client.refresh(service, refresh_token)).access_token
