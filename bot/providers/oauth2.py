"""OAuth 2.0 authorization-code flow with PKCE, for every service kind.

authlib supplies the protocol pieces (code challenge, grant URI); aiohttp carries the requests
over the one shared :class:`aiohttp.ClientSession`.

* :func:`authorization_url` builds the authorize redirect (RFC 6749 §4.1.1 + RFC 7636 S256).
* :class:`OAuth2Client` exchanges codes and refresh tokens (RFC 6749 §4.1.3, §6), revokes and
  looks up the account behind a token.
* :class:`OAuthHooks` is what a kind of service does its own way: revocation, the account
  lookup, the scopes the bot always needs. The client asks ``hooks(service.kind)``
  (:func:`bot.providers.kinds.oauth_hooks`): plain OAuth is
  :class:`~bot.providers.standard.StandardHooks` (RFC 7009, ``userinfo_url``); Dropbox's are
  :class:`~bot.destinations.dropbox.DropboxHooks`. The client has no branch for any kind.

Errors follow :mod:`bot.errors`: a rejected code or refresh token is :class:`InvalidGrant`;
any other error answer of the token endpoint is :class:`OAuthProviderError`; 5xx answers and
lost connections are :class:`ServerError`; an access token refused by an API is
:class:`InvalidToken` (:class:`TokenExpired` when it has merely expired). No token, code,
client secret or code verifier ever appears in a log line or an error message: descriptions
that providers send back are shortened and scrubbed of every secret the request carried.

Scope delimiters: scopes are joined with the service's delimiter and the whole ``scope``
parameter is form-encoded, so a space travels as ``+`` (decoded back to a space) and a literal
``+`` delimiter travels as ``%2B`` (decoded to ``+`` by the provider: ``a+b`` stays ``a+b``).
Scopes in token answers are normalised to space-separated text.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from bot.catalogue import CATALOGUE_KINDS, AccountFields
from bot.errors import InvalidGrant, OAuthProviderError, RateLimited, ServerError
from bot.providers.oauth_wire import description, normalise_scope, parse_answer, with_client_auth
from bot.retry import retry_after
from bot.secret import Secret

__all__ = [
    "CLIENT_AUTH_METHODS",
    "PARAM_TYPES",
    "RESERVED_AUTHORIZE_PARAMS",
    "SCOPE_DELIMITERS",
    "SERVICE_KINDS",
    "Account",
    "OAuth2Client",
    "OAuth2Service",
    "OAuthHooks",
    "TokenSet",
    "authorization_url",
    "new_code_verifier",
    "new_state",
]

logger = logging.getLogger(__name__)

#: ``dropbox``, ``custom`` (``/connection service add``) and the default services' kinds.
SERVICE_KINDS: Final = frozenset({"dropbox", "custom"}) | CATALOGUE_KINDS
PARAM_TYPES: Final = frozenset({"header", "query"})
#: ``basic``: HTTP Basic (RFC 6749 §2.3.1); ``post``: ``client_id``/``client_secret`` in the body.
CLIENT_AUTH_METHODS: Final = frozenset({"basic", "post"})
#: ``/connection service add ... scope_delimiter=NAME`` names → the delimiter itself.
SCOPE_DELIMITERS: Final[Mapping[str, str]] = {"space": " ", "comma": ",", "plus": "+"}

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_VERIFIER_LENGTH: Final = 64
_STATE_BYTES: Final = 32
_DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30)
# Parameters the authorize URL sets itself; extra_authorize_params cannot override them.
RESERVED_AUTHORIZE_PARAMS: Final = frozenset(
    {
        "client_id",
        "response_type",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
)


@dataclass(frozen=True)
class OAuth2Service:
    """Where and how to run OAuth 2.0 against one service; ``kind`` picks its hooks.

    ``default_scopes`` are asked for on every connect besides the connection's own (what the
    account lookup needs); ``account_fields`` say which userinfo fields name the account
    (``None``: common shapes are guessed); ``granted_scope_delimiter`` is how the token endpoint
    joins the scopes it granted when that differs from ``scope_delimiter`` (GitHub: commas).
    """

    name: str
    kind: str
    authorize_url: str
    token_url: str
    client_id: str
    client_secret: Secret
    refresh_url: str | None = None
    revoke_url: str | None = None
    userinfo_url: str | None = None
    api_url: str | None = None
    scopes: tuple[str, ...] = ()
    param_type: str = "header"
    scope_delimiter: str = " "
    client_auth: str = "basic"
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    default_scopes: tuple[str, ...] = ()
    account_fields: AccountFields | None = None
    granted_scope_delimiter: str | None = None
    #: Origins (``https://host``) of the service's other data centres: a callback that names
    #: one (Zoho's ``accounts-server``) is exchanged, refreshed and revoked there.
    regional_servers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in SERVICE_KINDS:
            raise ValueError(f"service kind must be one of {sorted(SERVICE_KINDS)}")
        if self.param_type not in PARAM_TYPES:
            raise ValueError(f"param_type must be one of {sorted(PARAM_TYPES)}")
        if self.scope_delimiter not in SCOPE_DELIMITERS.values():
            raise ValueError("scope_delimiter must be a space, a comma or a plus")
        if self.client_auth not in CLIENT_AUTH_METHODS:
            raise ValueError(f"client_auth must be one of {sorted(CLIENT_AUTH_METHODS)}")

    @property
    def effective_refresh_url(self) -> str:
        return self.refresh_url or self.token_url

    @property
    def origin(self) -> str:
        """The data centre serving the tokens: its token endpoint's ``scheme://host[:port]``."""
        return _origin(self.token_url)

    def at_server(self, server: str | None) -> OAuth2Service:
        """The service as the data centre ``server`` (an origin) serves it: its token, refresh,
        revoke and userinfo endpoints moved there, paths kept.

        ``server`` empty, ``None``, or this service's own: the service itself. A service with no
        :attr:`regional_servers` has no other data centre, so it ignores ``server`` (a standard
        provider never sends one). Any other origin raises :class:`ValueError`: the sign-in
        answer names a server this service does not have, and no code or token may go there.
        """
        own = self.origin
        if not server or not self.regional_servers:
            return self
        wanted = server.rstrip("/").lower()
        if wanted == own:
            return self
        if wanted not in {s.rstrip("/").lower() for s in self.regional_servers}:
            raise ValueError(f"{server} is not one of the servers of {self.name}")

        def moved(url: str | None) -> str | None:
            if url is None or _origin(url) != own:
                return url
            return wanted + url[len(own) :]

        return replace(
            self,
            token_url=moved(self.token_url) or self.token_url,
            refresh_url=moved(self.refresh_url),
            revoke_url=moved(self.revoke_url),
            userinfo_url=moved(self.userinfo_url),
        )


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lowercased."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted. ``scope`` is space-separated ("" if not stated);
    ``lifetime`` is the access token's ``expires_in`` in seconds (``None`` if not stated)."""

    access_token: Secret
    refresh_token: Secret | None
    expires_at: float | None
    scope: str
    account_id: str | None
    lifetime: float | None = None


@dataclass(frozen=True)
class Account:
    """The account behind an access token ("" where the service does not say)."""

    id: str
    email: str
    name: str


class OAuthHooks(Protocol):
    """What one kind of service does its own way; looked up by ``OAuth2Service.kind``."""

    @property
    def required_scopes(self) -> tuple[str, ...]:
        """Scopes the bot itself needs, whatever a connection lists (added when connecting)."""
        ...

    async def revoke(
        self,
        oauth: OAuth2Client,
        service: OAuth2Service,
        *,
        access_token: str | None,
        refresh_token: str | None,
    ) -> None:
        """Revoke the grant; a token the provider no longer knows is success."""
        ...

    async def fetch_account(
        self, oauth: OAuth2Client, service: OAuth2Service, access_token: str
    ) -> Account:
        """The account behind ``access_token``."""
        ...


def new_code_verifier() -> str:
    """A fresh PKCE code verifier: 64 characters of the RFC 7636 unreserved set."""
    return str(generate_token(_VERIFIER_LENGTH))


def new_state() -> str:
    """A fresh, URL-safe ``state`` with 256 bits of entropy."""
    return secrets.token_urlsafe(_STATE_BYTES)


def authorization_url(
    service: OAuth2Service,
    *,
    redirect_uri: str,
    state: str,
    code_verifier: str,
    scopes: Sequence[str],
) -> str:
    """The service's authorize URL for an authorization-code request with PKCE (S256).

    Query parameters already in ``service.authorize_url`` are kept; the service's
    ``extra_authorize_params`` (Dropbox: ``token_access_type=offline``) are appended.
    """
    if not _VERIFIER.fullmatch(code_verifier):
        raise ValueError("a PKCE code verifier is 43-128 characters of [A-Za-z0-9-._~]")
    extra = {
        key: value
        for key, value in service.extra_authorize_params.items()
        if key not in RESERVED_AUTHORIZE_PARAMS
    }
    scope = service.scope_delimiter.join(scopes) if scopes else None
    url = prepare_grant_uri(
        service.authorize_url,
        service.client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        code_challenge=create_s256_code_challenge(code_verifier),
        code_challenge_method="S256",
        **extra,
    )
    return str(url)


def _lifetime(expires_in: object) -> float | None:
    """``expires_in`` in seconds; ``None`` when missing or nonsense."""
    seconds: float | None = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        seconds = float(expires_in)
    elif isinstance(expires_in, str):  # some providers send "3599"
        try:
            seconds = float(expires_in)
        except ValueError:
            seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


class OAuth2Client:
    """Talks OAuth 2.0 to services over one shared :class:`aiohttp.ClientSession`.

    ``hooks`` gives each service kind's :class:`OAuthHooks`
    (:func:`bot.providers.kinds.oauth_hooks`).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        hooks: Callable[[str], OAuthHooks],
        now: Callable[[], float] = time.time,
        timeout: aiohttp.ClientTimeout = _DEFAULT_TIMEOUT,
    ) -> None:
        self._session = session
        self._hooks = hooks
        self._now = now
        self._timeout = timeout

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared HTTP session (hooks that call a service's own API use it)."""
        return self._session

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        return self._timeout

    def hooks(self, service: OAuth2Service) -> OAuthHooks:
        return self._hooks(service.kind)

    # -- token endpoint -------------------------------------------------------------------

    async def exchange_code(
        self, service: OAuth2Service, *, code: str, redirect_uri: str, code_verifier: str
    ) -> TokenSet:
        """Trade an authorization code (and its PKCE verifier) for tokens."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        answer = await self._token_request(
            service, service.token_url, form, secrets_sent=(code, code_verifier)
        )
        tokens = self._token_set(service, answer)
        logger.info("exchanged an authorization code with service %s", service.name)
        return tokens

    async def refresh(self, service: OAuth2Service, refresh_token: str) -> TokenSet:
        """New tokens for ``refresh_token``.

        ``refresh_token`` of the result is ``None`` when the provider sent no new one (Dropbox
        never does); the caller keeps the old one then. A provider that rotates refresh tokens
        sends a new one, which replaces the old.
        """
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        answer = await self._token_request(
            service, service.effective_refresh_url, form, secrets_sent=(refresh_token,)
        )
        tokens = self._token_set(service, answer)
        logger.info(
            "refreshed a token with service %s (new refresh token: %s)",
            service.name,
            "yes" if tokens.refresh_token is not None else "no",
        )
        return tokens

    async def _token_request(
        self,
        service: OAuth2Service,
        url: str,
        form: dict[str, str],
        *,
        secrets_sent: Iterable[str],
    ) -> dict[str, Any]:
        secret = service.client_secret.reveal()
        scrub = (*secrets_sent, secret)
        form, headers = with_client_auth(service, form)
        status, response_headers, body = await self.request(
            service, "POST", url, data=form, headers=headers, what="token endpoint"
        )
        answer = parse_answer(body, response_headers)
        error = answer.get("error") if answer is not None else None
        if 200 <= status < 300 and answer is not None and error is None:
            return answer
        if status == 429:
            raise RateLimited(retry_after(response_headers), message="token endpoint busy")
        if status >= 500:
            raise ServerError(
                f"the token endpoint of {service.name} answered {status}", status=status
            )
        code = error if isinstance(error, str) and error else ""
        said = description(answer, scrub)
        detail = f": {said}" if said else ""
        if code == "invalid_grant":
            logger.info("service %s rejected a grant (status %s)", service.name, status)
            raise InvalidGrant(f"{service.name} rejected the grant{detail}")
        if not code:
            code = "invalid_response" if 200 <= status < 300 else f"http_{status}"
        logger.warning(
            "the token endpoint of %s answered %s with error %s", service.name, status, code
        )
        raise OAuthProviderError(
            f"the token endpoint of {service.name} answered {status} ({code}){detail}",
            status=status,
            error=code,
        )

    def _token_set(self, service: OAuth2Service, answer: Mapping[str, Any]) -> TokenSet:
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise OAuthProviderError(
                f"the token endpoint of {service.name} sent no access_token",
                status=200,
                error="invalid_response",
            )
        refresh = answer.get("refresh_token")
        account_id = answer.get("account_id")
        lifetime = _lifetime(answer.get("expires_in"))
        granted = service.granted_scope_delimiter or service.scope_delimiter
        return TokenSet(
            access_token=Secret(access),
            refresh_token=Secret(refresh) if isinstance(refresh, str) and refresh else None,
            expires_at=self._now() + lifetime if lifetime is not None else None,
            scope=normalise_scope(answer.get("scope"), granted),
            account_id=account_id if isinstance(account_id, str) and account_id else None,
            lifetime=lifetime,
        )

    # -- revocation and the account: the service kind's hooks -----------------------------

    async def revoke(
        self, service: OAuth2Service, *, access_token: str | None, refresh_token: str | None
    ) -> None:
        """Revoke the authorization at the provider; a token it no longer knows is success.

        No ``revoke_url``: nothing to do. Otherwise the service kind's hooks revoke (plain
        OAuth: RFC 7009 with the refresh token first, then the access token).
        """
        if service.revoke_url is None:
            logger.info("service %s has no revoke URL; nothing to revoke", service.name)
            return
        await self.hooks(service).revoke(
            self, service, access_token=access_token, refresh_token=refresh_token
        )
        logger.info("revoked an authorization with service %s", service.name)

    async def fetch_account(self, service: OAuth2Service, access_token: str) -> Account:
        """The account behind ``access_token``, as the service kind's hooks look it up."""
        return await self.hooks(service).fetch_account(self, service, access_token)

    # -- transport ------------------------------------------------------------------------

    async def request(
        self,
        service: OAuth2Service,
        method: str,
        url: str,
        *,
        what: str,
        data: Mapping[str, str] | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request; ``(status, headers, body)``. Lost connections become ServerError.

        ``what`` names the endpoint in messages ("token endpoint"); the URL never appears.
        """
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                params=params,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                body = await response.read()
                return response.status, response.headers, body
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The exception text may quote the URL, and a query may carry the token: name the
            # exception type only.
            logger.warning("cannot reach the %s of %s: %s", what, service.name, type(exc).__name__)
            raise ServerError(
                f"cannot reach the {what} of {service.name} ({type(exc).__name__})"
            ) from None
