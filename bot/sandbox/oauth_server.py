"""A local OAuth 2 authorization server and protected API, built on authlib's server classes.

It stands in for the provider behind a custom service (``/connection service add``, CONTRACT
§5, §8) and for the API a plugin calls with ``ctx.invoke`` (§10). The protocol is authlib's, not
ours: :class:`authlib.oauth2.rfc6749.AuthorizationServer` with a thin aiohttp adapter (authlib
has no aiohttp integration), ``AuthorizationCodeGrant`` with PKCE (``CodeChallenge``, S256 only
and always required), ``RefreshTokenGrant`` with rotation (the used refresh token is revoked),
``RevocationEndpoint`` (RFC 7009) and a ``ResourceProtector`` with a ``BearerTokenValidator``
(RFC 6750). Clients, codes and tokens live in memory for the life of the object.

Endpoints (``base_url`` + path):

``GET /authorize``                 consent page: one button per known account (field ``email``),
                                   a text field ``email_other`` for any other address, ``Deny``
                                   (``decision=deny``); the request's parameters ride along as
                                   hidden fields. It posts to ``POST /oauth2/authorize/decide``,
                                   the shape of the Dropbox stand-in's page, so
                                   :meth:`bot.sandbox.driver.ChatDriver.consent` drives both. The
                                   decision redirects to ``redirect_uri`` with ``code`` and
                                   ``state`` (or ``error=access_denied``).
``POST /token``                    ``authorization_code`` and ``refresh_token``; client auth
                                   ``client_secret_basic`` and/or ``client_secret_post`` per
                                   client (``none`` for public clients).
``POST /revoke``                   RFC 7009. A refresh token revokes its whole grant (every access
                                   and refresh token issued from the same code); an access token
                                   only itself.
``GET /userinfo``                  ``{"sub", "email", "name"}`` (OpenID Connect style).
``GET /api/whoami``                the token's user, scopes, client and how the token came.
``GET /api/items``                 a few items of the token's user.
``GET /api/slow?seconds=N``        answers after N seconds (at most 60).
``GET /api/limited``               429 with ``Retry-After: 1`` the first time per access token,
                                   then 200.
``GET /api/big?mib=N[&chunked=1]`` streams N MiB (``Content-Length`` unless ``chunked=1``).

Every ``/userinfo`` and ``/api/*`` call takes the token as ``Authorization: Bearer`` or as the
query parameter ``access_token`` (RFC 6750 §2.3; switch off with ``accept_query_token=False``);
both at once is a 400. An unknown, expired or revoked token is **401** with
``WWW-Authenticate: Bearer error="invalid_token", error_description="..."``; no token at all is
401 with a bare ``WWW-Authenticate: Bearer``; a scope listed in :attr:`OAuthServer.require_scope`
and missing from the token is **403** ``insufficient_scope``.

Knobs (constructor arguments, then plain attributes): ``expires_in`` (access token lifetime, s),
``offline_access_requires_consent`` (refresh tokens only when the scope has ``offline_access``
and the authorize request had ``prompt=consent``, as OpenID providers do), ``scope_delimiter``
(``" "`` by default: ``a,b`` is then one unknown scope and refused with ``invalid_scope``; ``","``
or ``"+"`` also split on that character), ``accept_query_token``, ``code_lifetime``,
``retry_after``, ``clock``; :attr:`OAuthServer.authorize_error` makes the consent decision
redirect with that ``error`` / ``error_description`` instead of a code;
:attr:`OAuthServer.calls` counts requests (``"/authorize"``, ``"/oauth2/authorize/decide"``,
``"token:authorization_code"``, ``"token:refresh_token"``, ``"/revoke"``, ``"/userinfo"``,
``"/api/whoami"``, ...); :meth:`OAuthServer.revoke_account` revokes everything an account granted
(the user removing the app at the provider); :meth:`OAuthServer.expire_access_tokens` expires
access tokens now; :attr:`OAuthServer.send_to` and :attr:`OAuthServer.location` play Zoho's data
centres (a user sent on to another server, and sent back with its ``accounts-server``).
"""

from __future__ import annotations

import asyncio
import collections
import html
import json
import logging
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from authlib.common.security import generate_token
from authlib.oauth2 import OAuth2Error, ResourceProtector
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    AuthorizationCodeMixin,
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    InvalidScopeError,
    JsonPayload,
    JsonRequest,
    MissingAuthorizationError,
    OAuth2Payload,
    OAuth2Request,
    RefreshTokenGrant,
    TokenMixin,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6750 import (
    BearerTokenGenerator,
    BearerTokenValidator,
    InsufficientScopeError,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from multidict import CIMultiDict, MultiDict, MultiDictProxy

from bot.sandbox.serving import serve

__all__ = [
    "DEFAULT_SCOPES",
    "Account",
    "AuthorizationCode",
    "Client",
    "OAuthServer",
    "Token",
]

log = logging.getLogger(__name__)

DEFAULT_SCOPES = frozenset(
    {"openid", "email", "profile", "offline_access", "items.read", "items.write"}
)
ALL_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
DECIDE_PATH = "/oauth2/authorize/decide"  # the path ChatDriver.consent posts to
MiB = 1024 * 1024
MAX_SLOW_SECONDS = 60.0
MAX_BIG_MIB = 1024.0
_STREAM_CHUNK = bytes(range(256)) * 256  # 64 KiB
_FORM_ONLY = frozenset({"email", "email_other", "decision"})
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


# ----------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Account:
    """A test account (resource owner)."""

    sub: str
    email: str
    name: str

    def userinfo(self) -> dict[str, object]:
        return {"sub": self.sub, "email": self.email, "email_verified": True, "name": self.name}


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """A registered OAuth client (authlib ``ClientMixin``)."""

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    auth_methods: frozenset[str]
    scopes: frozenset[str]
    grant_types: frozenset[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        return str(list_to_scope([s for s in scope_to_list(scope) if s in self.scopes]))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # No registered URI: any http(s) URI (tests whose bot listens on a random port).
        if not self.redirect_uris:
            return redirect_uri.startswith(("http://", "https://"))
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret is None:
            return False
        return secrets.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """An issued code (authlib ``AuthorizationCodeMixin``); single use."""

    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    user: Account
    code_challenge: str | None
    code_challenge_method: str | None
    offline: bool
    expires_at: float
    used: bool = False

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    """An access token and its refresh token (authlib ``TokenMixin``).

    ``grant`` names the authorization the token descends from (the code, kept through refresh
    rotations): revoking a refresh token, or reusing a code, revokes the whole grant.
    """

    access_token: str
    refresh_token: str | None
    client: Client
    user: Account
    scope: str
    expires_in: int
    expires_at: float
    grant: str
    clock: Callable[[], float] = field(repr=False)
    access_revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return bool(self.client.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return self.clock() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.access_revoked

    def get_user(self) -> Account:
        return self.user

    def get_client(self) -> Client:
        return self.client


# ---------------------------------------------------------------------------- aiohttp adapter


@dataclass(frozen=True)
class _Incoming:
    """An aiohttp request whose body has been read (authlib is synchronous)."""

    request: web.Request
    form: MultiDict[str]
    body: bytes = b""


def _first_values(multi: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in multi:
        out.setdefault(key, value)
    return out


def _split_scope(scope: str, delimiter: str) -> str:
    """``scope`` as authlib wants it (space-separated), split on the server's delimiter."""
    if delimiter == " ":
        return scope
    parts = re.split(f"[{re.escape(delimiter)}\\s]+", scope)
    return " ".join(part for part in parts if part)


class _Payload(OAuth2Payload):  # type: ignore[misc]
    """Query and form parameters, like Flask's ``request.values`` (query first)."""

    def __init__(self, items: Sequence[tuple[str, str]], delimiter: str) -> None:
        if delimiter != " ":
            items = [(k, _split_scope(v, delimiter) if k == "scope" else v) for k, v in items]
        self._data = _first_values(items)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _AiohttpOAuth2Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, incoming: _Incoming, delimiter: str) -> None:
        request = incoming.request
        super().__init__(method=request.method, uri=str(request.url), headers=request.headers)
        self._args = _first_values(request.query.items())
        self._form = _first_values(incoming.form.items())
        self.payload = _Payload([*request.query.items(), *incoming.form.items()], delimiter)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: object) -> None:
        self._data = data

    @property
    def data(self) -> object:
        return self._data


class _AiohttpJsonRequest(JsonRequest):  # type: ignore[misc]
    def __init__(self, incoming: _Incoming, body: object) -> None:
        request = incoming.request
        super().__init__(request.method, str(request.url), request.headers)
        self.payload = _JsonPayload(body)


# ------------------------------------------------------------------------------ authlib glue


class _S256Challenge(CodeChallenge):  # type: ignore[misc]
    """RFC 7636, S256 only, and every authorization request must carry a challenge."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [*ALL_AUTH_METHODS, "none"]

    @property
    def owner(self) -> OAuthServer:
        owner: OAuthServer = self.server.owner
        return owner

    def save_authorization_code(self, code: str, request: Any) -> None:
        owner = self.owner
        data = request.payload.data
        scope = request.scope or ""
        prompts = str(data.get("prompt") or "").split()
        owner.codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri,
            scope=scope,
            user=request.user,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            offline="offline_access" in scope.split() and "consent" in prompts,
            expires_at=owner.clock() + owner.code_lifetime,
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        owner = self.owner
        item = owner.codes.get(code)
        if item is None or item.client_id != client.get_client_id():
            return None
        if item.used:  # RFC 6749 §4.1.2: deny, and revoke what the code gave
            owner.revoke_grant(item.code)
            return None
        item.used = True  # spent by this attempt, whether it succeeds or not
        if owner.clock() >= item.expires_at:
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        authorization_code.used = True

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Account:
        return authorization_code.user

    def generate_token(
        self,
        user: Any = None,
        scope: Any = None,
        grant_type: Any = None,
        expires_in: Any = None,
        include_refresh_token: bool = True,
    ) -> Any:
        code: AuthorizationCode | None = self.request.authorization_code
        if self.owner.offline_access_requires_consent and not (code is not None and code.offline):
            include_refresh_token = False
        return super().generate_token(
            user=user,
            scope=scope,
            grant_type=grant_type,
            expires_in=expires_in,
            include_refresh_token=include_refresh_token,
        )


class _RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [*ALL_AUTH_METHODS, "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        owner: OAuthServer = self.server.owner
        token = owner.by_refresh.get(refresh_token)
        if token is None or token.refresh_revoked:
            return None
        return token

    def authenticate_user(self, refresh_token: Token) -> Account:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        refresh_token.refresh_revoked = True


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = [*ALL_AUTH_METHODS, "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        owner: OAuthServer = self.server.owner
        lookups = [owner.by_access, owner.by_refresh]
        if token_type_hint == "refresh_token":
            lookups.reverse()
        for table in lookups:  # RFC 7009 §2.1: the hint is only a hint
            token = table.get(token_string)
            if token is not None:
                return token
        return None

    def revoke_token(self, token: Token, request: Any) -> None:
        owner: OAuthServer = self.server.owner
        if request.form.get("token") == token.refresh_token:
            owner.revoke_grant(token.grant)  # RFC 7009 §2.1: the access tokens go too
        else:
            token.access_revoked = True


class _Server(AuthorizationServer):  # type: ignore[misc]
    """authlib's generic authorization server, over aiohttp."""

    def __init__(self, owner: OAuthServer) -> None:
        super().__init__()
        self.owner = owner
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: generate_token(42),
                refresh_token_generator=lambda **_: generate_token(48),
                expires_generator=lambda client, grant_type: owner.expires_in,
            ),
        )
        self.register_grant(_CodeGrant, [_S256Challenge(required=True)])
        self.register_grant(_RefreshGrant)
        self.register_endpoint(_Revocation)

    def query_client(self, client_id: str) -> Client | None:
        return self.owner.clients.get(client_id)

    def save_token(self, token: Mapping[str, Any], request: Any) -> None:
        previous: Token | None = request.refresh_token
        code: AuthorizationCode | None = request.authorization_code
        if previous is not None:
            grant = previous.grant
        elif code is not None:
            grant = code.code
        else:
            grant = generate_token(16)
        self.owner.store_token(token, request.client, request.user, grant)

    def validate_requested_scope(self, scope: str | None) -> None:
        unknown = [s for s in scope_to_list(scope) or () if s not in self.owner.scopes]
        if unknown:
            raise InvalidScopeError(f"Unknown scope: {' '.join(repr(s) for s in unknown)}")

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        log.debug("oauth server signal %s", name)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        if isinstance(request, _Incoming):
            return _AiohttpOAuth2Request(request, self.owner.scope_delimiter)
        raise TypeError(f"not a request this adapter knows: {type(request).__name__}")

    def create_json_request(self, request: Any) -> JsonRequest:
        if not isinstance(request, _Incoming):
            raise TypeError(f"not a request this adapter knows: {type(request).__name__}")
        try:
            body = json.loads(request.body) if request.body else None
        except ValueError:
            body = None
        return _AiohttpJsonRequest(request, body)

    def handle_response(
        self, status: int, body: object, headers: Iterable[tuple[str, str]]
    ) -> web.Response:
        out: CIMultiDict[str] = CIMultiDict(headers)
        if isinstance(body, dict):
            delimiter = self.owner.scope_delimiter
            if delimiter != " " and isinstance(body.get("scope"), str) and "access_token" in body:
                body = {**body, "scope": delimiter.join(body["scope"].split())}
            out.setdefault("Content-Type", "application/json")
            return web.Response(status=status, body=json.dumps(body).encode(), headers=out)
        return web.Response(status=status, text=str(body or ""), headers=out)


class _BearerValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, owner: OAuthServer) -> None:
        super().__init__()
        self.owner = owner

    def authenticate_token(self, token_string: str) -> Token | None:
        return self.owner.by_access.get(token_string)


class _Protector(ResourceProtector):  # type: ignore[misc]
    """authlib's resource protector, also reading the token from the query (RFC 6750 §2.3)."""

    def __init__(self, owner: OAuthServer) -> None:
        super().__init__()
        self.owner = owner
        self.register_token_validator(_BearerValidator(owner))

    def parse_request_authorization(self, request: Any) -> tuple[Any, str]:
        query_token = request.args.get("access_token") if self.owner.accept_query_token else None
        if query_token is None:
            parsed: tuple[Any, str] = super().parse_request_authorization(request)
            return parsed
        if request.headers.get("Authorization"):
            raise InvalidRequestError("The access token came by more than one method.")
        return self.get_token_validator("bearer"), query_token


# ------------------------------------------------------------------------------- the server


class OAuthServer:
    """A local OAuth 2 provider with a protected API, for tests and the demo."""

    def __init__(
        self,
        *,
        expires_in: int = 3600,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        scope_delimiter: str = " ",
        offline_access_requires_consent: bool = False,
        accept_query_token: bool = True,
        code_lifetime: float = 600.0,
        retry_after: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if scope_delimiter not in (" ", ",", "+"):
            raise ValueError('scope_delimiter is " ", "," or "+"')
        self.expires_in = expires_in
        self.scopes = frozenset(scopes)
        self.scope_delimiter = scope_delimiter
        self.offline_access_requires_consent = offline_access_requires_consent
        self.accept_query_token = accept_query_token
        self.code_lifetime = code_lifetime
        self.retry_after = retry_after
        self.clock = clock
        #: ``(error, error_description)``: the consent decision redirects with it, not a code.
        #: The description must be printable ASCII without ``"`` or ``\\`` (RFC 6749 §4.1.2.1).
        self.authorize_error: tuple[str, str] | None = None
        #: Zoho's data centres (https://zoho.com/accounts/protocol/oauth/multi-dc/
        #: client-authorization.html): with ``send_to`` (another server's base URL), ``GET
        #: /authorize`` sends the user on to that server's with the same query; with
        #: ``location`` (e.g. ``"eu"``), the decision's redirect carries ``location`` and
        #: ``accounts-server`` (this server's base URL), where the code is to be exchanged.
        self.send_to: str | None = None
        self.location: str | None = None
        #: path → scope a token needs there (else 403 ``insufficient_scope``).
        self.require_scope: dict[str, str] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.clients: dict[str, Client] = {}
        self.accounts: dict[str, Account] = {}  # by lowercased email
        self.codes: dict[str, AuthorizationCode] = {}
        self.by_access: dict[str, Token] = {}
        self.by_refresh: dict[str, Token] = {}
        self.base_url: str | None = None
        self._limited: set[str] = set()
        self._server = _Server(self)
        self._protector = _Protector(self)
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ in-process API

    def add_client(
        self,
        client_id: str,
        client_secret: str | None,
        redirect_uris: Sequence[str] = (),
        *,
        auth_methods: Iterable[str] = ALL_AUTH_METHODS,
        refresh_tokens: bool = True,
        scopes: Iterable[str] | None = None,
    ) -> Client:
        """Register a client. No ``redirect_uris``: any http(s) redirect URI is accepted.

        ``client_secret=None`` makes a public client (``auth_methods`` becomes ``none``);
        ``refresh_tokens=False`` a client that is never issued refresh tokens.
        """
        methods = frozenset(auth_methods) if client_secret is not None else frozenset({"none"})
        unknown = methods - {*ALL_AUTH_METHODS, "none"}
        if unknown:
            raise ValueError(f"unknown client auth methods: {sorted(unknown)}")
        grant_types = {"authorization_code"} | ({"refresh_token"} if refresh_tokens else set())
        client = Client(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=tuple(redirect_uris),
            auth_methods=methods,
            scopes=self.scopes if scopes is None else frozenset(scopes),
            grant_types=frozenset(grant_types),
        )
        self.clients[client_id] = client
        return client

    def add_account(self, email: str, name: str | None = None) -> Account:
        """The account for ``email``, created on first use (the consent page does this too)."""
        key = email.strip().lower()
        if not key:
            raise ValueError("an account needs an email")
        account = self.accounts.get(key)
        if account is None:
            local = email.strip().split("@", 1)[0]
            words = [w.capitalize() for w in re.split(r"[._+\-]+", local) if w]
            account = Account(
                sub=secrets.token_hex(12),
                email=email.strip(),
                name=name or " ".join(words) or email.strip(),
            )
            self.accounts[key] = account
        return account

    def issue_tokens(
        self, client_id: str, email: str, scope: str = "", *, refresh: bool = True
    ) -> dict[str, Any]:
        """A token answer as ``/token`` would give it, without the browser part."""
        client = self.clients[client_id]
        user = self.add_account(email)
        self._server.validate_requested_scope(scope)
        token: dict[str, Any] = self._server.generate_token(
            grant_type="authorization_code",
            client=client,
            user=user,
            scope=scope,
            include_refresh_token=refresh and client.check_grant_type("refresh_token"),
        )
        self.store_token(token, client, user, generate_token(16))
        return token

    def store_token(
        self, token: Mapping[str, Any], client: Client, user: Account, grant: str
    ) -> Token:
        expires_in = int(token.get("expires_in") or self.expires_in)
        record = Token(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            client=client,
            user=user,
            scope=str(token.get("scope") or ""),
            expires_in=expires_in,
            expires_at=self.clock() + expires_in,
            grant=grant,
            clock=self.clock,
        )
        self.by_access[record.access_token] = record
        if record.refresh_token is not None:
            self.by_refresh[record.refresh_token] = record
        return record

    def tokens_of(self, email: str) -> list[Token]:
        key = email.strip().lower()
        return [t for t in self.by_access.values() if t.user.email.lower() == key]

    def revoke_grant(self, grant: str) -> None:
        for token in self.by_access.values():
            if token.grant == grant:
                token.access_revoked = token.refresh_revoked = True

    def revoke_account(self, email: str, *, access_tokens: bool = True) -> int:
        """Revoke every refresh token of ``email`` (and its access tokens unless told not to),
        as when the user removes the app at the provider. Returns how many refresh tokens."""
        count = 0
        for token in self.tokens_of(email):
            if token.refresh_token is not None and not token.refresh_revoked:
                count += 1
            token.refresh_revoked = True
            if access_tokens:
                token.access_revoked = True
        return count

    def expire_access_tokens(self, email: str | None = None) -> None:
        now = self.clock()
        tokens = self.by_access.values() if email is None else self.tokens_of(email)
        for token in tokens:
            token.expires_at = min(token.expires_at, now)

    # ------------------------------------------------------------------ serving

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post(DECIDE_PATH, self._decide)
        app.router.add_post("/token", self._token)
        app.router.add_post("/revoke", self._revoke)
        app.router.add_get("/userinfo", self._userinfo)
        app.router.add_get("/api/whoami", self._whoami)
        app.router.add_get("/api/items", self._items)
        app.router.add_get("/api/slow", self._slow)
        app.router.add_get("/api/limited", self._limited_call)
        app.router.add_get("/api/big", self._big)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); sets and returns :attr:`base_url`."""
        if self._runner is not None:
            raise RuntimeError("the OAuth server is already running")
        self._runner, self.base_url = await serve(self.app(), host, port)
        log.info("OAuth server listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def url(self, path: str) -> str:
        if self.base_url is None:
            raise RuntimeError("the OAuth server is not started (or base_url not set)")
        return self.base_url + path

    @property
    def authorize_url(self) -> str:
        return self.url("/authorize")

    @property
    def token_url(self) -> str:
        return self.url("/token")

    @property
    def revoke_url(self) -> str:
        return self.url("/revoke")

    @property
    def userinfo_url(self) -> str:
        return self.url("/userinfo")

    def service_args(self, name: str, client_id: str, **extra: str) -> str:
        """The arguments of ``/connection service add`` for this server and client."""
        client = self.clients[client_id]
        parts = [
            name,
            f"authorize_url={self.authorize_url}",
            f"token_url={self.token_url}",
            f"client_id={client.client_id}",
            f"client_secret={client.client_secret or ''}",
            f"revoke_url={self.revoke_url}",
            f"userinfo_url={self.userinfo_url}",
        ]
        if "client_secret_basic" not in client.auth_methods:
            parts.append("client_auth=post")
        delimiters = {",": "comma", "+": "plus"}
        if self.scope_delimiter in delimiters:
            parts.append(f"scope_delimiter={delimiters[self.scope_delimiter]}")
        parts.extend(f"{key}={value}" for key, value in extra.items())
        return " ".join(parts)

    # ------------------------------------------------------------------ authorization

    async def _authorize(self, request: web.Request) -> web.Response:
        self.calls["/authorize"] += 1
        if self.send_to is not None:
            raise web.HTTPFound(f"{self.send_to}/authorize?{request.query_string}")
        incoming = _Incoming(request, MultiDict())
        try:
            grant = self._server.get_consent_grant(incoming, end_user=None)
        except OAuth2Error as error:
            response: web.Response = self._server.handle_error_response(None, error)
            return response
        return _html_response(self._consent_page(request, grant))

    def _consent_page(self, request: web.Request, grant: Any) -> str:
        esc = html.escape
        hidden = "\n".join(
            f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'
            for name, value in request.query.items()
            if name not in _FORM_ONLY
        )
        buttons = "\n".join(
            f'<li><button type="submit" name="email" value="{esc(a.email)}">'
            f"Continue as {esc(a.name)} ({esc(a.email)})</button></li>"
            for a in sorted(self.accounts.values(), key=lambda a: a.email.lower())
        )
        accounts = (
            f"<h2>Choose an account</h2><ul>{buttons}</ul>"
            if buttons
            else "<p>No test accounts yet: type an email address.</p>"
        )
        scopes = "".join(f"<li>{esc(s)}</li>" for s in scope_to_list(grant.request.scope) or ())
        client = esc(grant.client.get_client_id())
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OAuth server: authorize {client}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main>
<h1>{client} wants to access your account</h1>
<p>This is the local OAuth 2 test server. Afterwards you go back to
<strong>{esc(str(grant.redirect_uri))}</strong>.</p>
<h2>Requested permissions</h2>
<ul>{scopes or "<li>(none)</li>"}</ul>
<form method="post" action="{DECIDE_PATH}">
{hidden}
{accounts}
<p><label for="email_other">Or sign in with another email address</label>
<input type="email" id="email_other" name="email_other" autocomplete="email">
<button type="submit" name="decision" value="allow">Allow</button></p>
<p><button type="submit" name="decision" value="deny">Deny</button></p>
</form>
</main></body></html>
"""

    async def _decide(self, request: web.Request) -> web.Response:
        self.calls[DECIDE_PATH] += 1
        incoming = _Incoming(request, await _read_form(request))
        server = self._server
        try:
            grant = server.get_consent_grant(incoming, end_user=None)
        except OAuth2Error as error:
            refused: web.Response = server.handle_error_response(None, error)
            return refused
        form = incoming.form
        state = grant.request.payload.state
        if self.authorize_error is not None:
            code, description = self.authorize_error
            override = OAuth2Error(
                description=description, redirect_uri=grant.redirect_uri, state=state, error=code
            )
            overridden: web.Response = server.handle_error_response(grant.request, override)
            return overridden
        decision = form.get("decision", "allow")
        user: Account | None = None
        if decision == "allow":
            email = (form.get("email_other", "").strip() or form.get("email", "")).strip()
            if not _EMAIL.fullmatch(email):
                return _text_response("Choose an account or type a valid email address.\n")
            user = self.add_account(email)
        elif decision != "deny":
            return _text_response('decision must be "allow" or "deny"\n')
        response: web.Response = server.create_authorization_response(
            grant.request, grant_user=user, grant=grant
        )
        target = response.headers.get("Location")
        if self.location is not None and target is not None and self.base_url is not None:
            there = urlencode({"location": self.location, "accounts-server": self.base_url})
            response.headers["Location"] = f"{target}&{there}"
        return response

    async def _token(self, request: web.Request) -> web.Response:
        form = await _read_form(request)
        self.calls[f"token:{form.get('grant_type', '')}"] += 1
        response: web.Response = self._server.create_token_response(_Incoming(request, form))
        return response

    async def _revoke(self, request: web.Request) -> web.Response:
        self.calls["/revoke"] += 1
        form = await _read_form(request)
        response: web.Response = self._server.create_endpoint_response(
            _Revocation.ENDPOINT_NAME, _Incoming(request, form)
        )
        return response

    # ------------------------------------------------------------------ protected resources

    def _protect(self, request: web.Request) -> Token | web.Response:
        path = request.path
        self.calls[path] += 1
        scope = self.require_scope.get(path)
        try:
            oauth_request = self._server.create_oauth2_request(_Incoming(request, MultiDict()))
            token: Token = self._protector.validate_request(
                [scope] if scope else None, oauth_request
            )
        except OAuth2Error as error:
            return self._resource_error(error, scope)
        return token

    def _resource_error(self, error: OAuth2Error, scope: str | None) -> web.Response:
        status, body, headers = error()
        kept = [(k, v) for k, v in headers if k.lower() != "www-authenticate"]
        if isinstance(error, MissingAuthorizationError):
            challenge = "Bearer"  # RFC 6750 §3.1: no error code without credentials
        else:
            challenge = f'Bearer error="{error.error}"'
            if error.description:
                challenge += f', error_description="{error.description}"'
            if isinstance(error, InsufficientScopeError) and scope:
                challenge += f', scope="{scope}"'
        kept.append(("WWW-Authenticate", challenge))
        response: web.Response = self._server.handle_response(status, body, kept)
        return response

    @staticmethod
    def _ok(request: web.Request, payload: object, status: int = 200) -> web.Response:
        headers = {"Cache-Control": "private"} if "access_token" in request.query else None
        return web.json_response(payload, status=status, headers=headers)

    async def _userinfo(self, request: web.Request) -> web.Response:
        token = self._protect(request)
        if isinstance(token, web.Response):
            return token
        return self._ok(request, token.user.userinfo())

    async def _whoami(self, request: web.Request) -> web.Response:
        token = self._protect(request)
        if isinstance(token, web.Response):
            return token
        user = token.user
        return self._ok(
            request,
            {
                "sub": user.sub,
                "email": user.email,
                "name": user.name,
                "scopes": scope_to_list(token.scope) or [],
                "client_id": token.client.client_id,
                "token_via": "query" if "access_token" in request.query else "header",
            },
        )

    async def _items(self, request: web.Request) -> web.Response:
        token = self._protect(request)
        if isinstance(token, web.Response):
            return token
        items = [
            {"id": f"{token.user.sub}-{n}", "name": f"Item {n} of {token.user.name}"}
            for n in (1, 2, 3)
        ]
        return self._ok(request, {"owner": token.user.email, "items": items})

    async def _slow(self, request: web.Request) -> web.Response:
        token = self._protect(request)
        if isinstance(token, web.Response):
            return token
        seconds = _number(request.query.get("seconds", "1"), MAX_SLOW_SECONDS)
        if seconds is None:
            return _json_error("invalid_request", f"seconds: 0..{MAX_SLOW_SECONDS:g}")
        await asyncio.sleep(seconds)
        return self._ok(request, {"slept": seconds})

    async def _limited_call(self, request: web.Request) -> web.Response:
        token = self._protect(request)
        if isinstance(token, web.Response):
            return token
        if token.access_token not in self._limited:
            self._limited.add(token.access_token)
            return web.json_response(
                {"error": "rate_limited", "error_description": "Slow down."},
                status=429,
                headers={"Retry-After": str(self.retry_after)},
            )
        return self._ok(request, {"ok": True})

    async def _big(self, request: web.Request) -> web.StreamResponse:
        token = self._protect(request)
        if isinstance(token, web.Response):
            return token
        mib = _number(request.query.get("mib", "1"), MAX_BIG_MIB)
        if mib is None:
            return _json_error("invalid_request", f"mib: 0..{MAX_BIG_MIB:g}")
        size = int(mib * MiB)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if request.query.get("chunked") not in ("1", "true"):
            response.content_length = size
        await response.prepare(request)
        remaining = size
        try:
            while remaining > 0:
                part = _STREAM_CHUNK[: min(remaining, len(_STREAM_CHUNK))]
                await response.write(part)
                remaining -= len(part)
            await response.write_eof()
        except ConnectionResetError:
            log.debug("client went away during /api/big")
        return response


async def _read_form(request: web.Request) -> MultiDict[str]:
    form: MultiDictProxy[Any] = await request.post()
    return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))


def _number(raw: str, maximum: float) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    if not 0 <= value <= maximum:
        return None
    return value


def _json_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _text_response(text: str, status: int = 400) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain")


def _html_response(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html")
