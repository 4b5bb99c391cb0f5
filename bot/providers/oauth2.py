"""OAuth 2.0 authorization-code flow with PKCE, for Dropbox and custom services.

authlib supplies the protocol pieces (code challenge, grant URI); aiohttp carries the requests
over the one shared :class:`aiohttp.ClientSession`.

* :func:`authorization_url` builds the authorize redirect (RFC 6749 §4.1.1 + RFC 7636 S256).
* :class:`OAuth2Client` exchanges codes and refresh tokens (RFC 6749 §4.1.3, §6), revokes
  (Dropbox ``/2/auth/token/revoke``; RFC 7009 for custom services) and looks up the account
  (Dropbox ``/2/users/get_current_account``; a custom service's ``userinfo_url``).

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

import base64
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, quote

import aiohttp
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from bot.errors import (
    ApiError,
    BotError,
    InvalidGrant,
    InvalidToken,
    OAuthProviderError,
    RateLimited,
    ServerError,
    TokenExpired,
)
from bot.providers.dropbox_wire import DEFAULT_RETRY_AFTER, error_from_response
from bot.secret import Secret

__all__ = [
    "CLIENT_AUTH_METHODS",
    "DEFAULT_DROPBOX_API_URL",
    "PARAM_TYPES",
    "SCOPE_DELIMITERS",
    "SERVICE_KINDS",
    "Account",
    "OAuth2Client",
    "OAuth2Service",
    "TokenSet",
    "authorization_url",
    "new_code_verifier",
    "new_state",
]

logger = logging.getLogger(__name__)

SERVICE_KINDS: Final = frozenset({"dropbox", "custom"})
PARAM_TYPES: Final = frozenset({"header", "query"})
CLIENT_AUTH_METHODS: Final = frozenset({"basic", "body"})
#: ``/connection service add ... scope_delimiter=NAME`` names → the delimiter itself.
SCOPE_DELIMITERS: Final[Mapping[str, str]] = {"space": " ", "comma": ",", "plus": "+"}
DEFAULT_DROPBOX_API_URL: Final = "https://api.dropboxapi.com"

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_VERIFIER_LENGTH: Final = 64
_STATE_BYTES: Final = 32
_DESCRIPTION_LIMIT: Final = 200
_DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30)
# Parameters the authorize URL sets itself; extra_authorize_params cannot override them.
_RESERVED_AUTHORIZE_PARAMS: Final = frozenset(
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
    """Where and how to run OAuth 2.0 against one service (Dropbox or a custom one)."""

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


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted. ``scope`` is space-separated ("" if not stated)."""

    access_token: Secret
    refresh_token: Secret | None
    expires_at: float | None
    scope: str
    account_id: str | None


@dataclass(frozen=True)
class Account:
    """The account behind an access token ("" where the service does not say)."""

    id: str
    email: str
    name: str


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
        if key not in _RESERVED_AUTHORIZE_PARAMS
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


class OAuth2Client:
    """Talks OAuth 2.0 to services over one shared :class:`aiohttp.ClientSession`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        now: Callable[[], float] = time.time,
        timeout: aiohttp.ClientTimeout = _DEFAULT_TIMEOUT,
    ) -> None:
        self._session = session
        self._now = now
        self._timeout = timeout

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
        form, headers = _with_client_auth(service, form)
        status, response_headers, body = await self._send(
            service, "POST", url, data=form, headers=headers, what="token endpoint"
        )
        answer = _parse_answer(body, response_headers)
        error = answer.get("error") if answer is not None else None
        if 200 <= status < 300 and answer is not None and error is None:
            return answer
        if status == 429:
            raise RateLimited(_retry_after(response_headers), message="token endpoint busy")
        if status >= 500:
            raise ServerError(
                f"the token endpoint of {service.name} answered {status}", status=status
            )
        code = error if isinstance(error, str) and error else ""
        description = _description(answer, scrub)
        detail = f": {description}" if description else ""
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
        return TokenSet(
            access_token=Secret(access),
            refresh_token=Secret(refresh) if isinstance(refresh, str) and refresh else None,
            expires_at=self._expires_at(answer.get("expires_in")),
            scope=_normalise_scope(answer.get("scope"), service.scope_delimiter),
            account_id=account_id if isinstance(account_id, str) and account_id else None,
        )

    def _expires_at(self, expires_in: object) -> float | None:
        seconds: float | None = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            seconds = float(expires_in)
        elif isinstance(expires_in, str):  # some providers send "3599"
            try:
                seconds = float(expires_in)
            except ValueError:
                seconds = None
        if seconds is None or not math.isfinite(seconds) or seconds <= 0:  # missing, nonsense
            return None
        return self._now() + seconds

    # -- revocation -----------------------------------------------------------------------

    async def revoke(
        self, service: OAuth2Service, *, access_token: str | None, refresh_token: str | None
    ) -> None:
        """Revoke the authorization at the provider; a token it no longer knows is success.

        Dropbox (``kind="dropbox"``): ``POST revoke_url`` with the access token as Bearer and
        no body, which also kills the refresh token; with only a refresh token (or an expired
        access token) one is refreshed first. Custom services: RFC 7009, ``token=`` form with
        client authentication, the refresh token first (it takes its access tokens with it on
        most servers), then the access token. No ``revoke_url``: nothing to do.
        """
        if service.revoke_url is None:
            logger.info("service %s has no revoke URL; nothing to revoke", service.name)
            return
        if service.kind == "dropbox":
            await self._revoke_dropbox(service, service.revoke_url, access_token, refresh_token)
        else:
            await self._revoke_rfc7009(service, service.revoke_url, access_token, refresh_token)
        logger.info("revoked an authorization with service %s", service.name)

    async def _revoke_dropbox(
        self,
        service: OAuth2Service,
        url: str,
        access_token: str | None,
        refresh_token: str | None,
    ) -> None:
        if access_token is None:
            access_token = await self._access_for_revoke(service, refresh_token)
            if access_token is None:
                return
        status, headers, body = await self._send(
            service,
            "POST",
            url,
            headers={"Authorization": f"Bearer {access_token}"},
            what="revoke endpoint",
        )
        if 200 <= status < 300:
            return
        error = error_from_response(status, headers, body)
        if isinstance(error, TokenExpired) and refresh_token is not None:
            fresh = await self._access_for_revoke(service, refresh_token)
            if fresh is not None:
                await self._revoke_dropbox(service, url, fresh, None)
            return
        if isinstance(error, TokenExpired):
            # Without a refresh token there is nothing left to revoke with; the grant ends
            # when the provider drops it.
            logger.info("service %s: the access token expired before revoking", service.name)
            return
        if isinstance(error, InvalidToken):
            return  # the token is dead already: what revoking wanted
        raise error

    async def _access_for_revoke(
        self, service: OAuth2Service, refresh_token: str | None
    ) -> str | None:
        """An access token to revoke with, or ``None`` if the grant is gone already."""
        if refresh_token is None:
            return None
        try:
            tokens = await self.refresh(service, refresh_token)
        except InvalidGrant:
            return None
        return tokens.access_token.reveal()

    async def _revoke_rfc7009(
        self,
        service: OAuth2Service,
        url: str,
        access_token: str | None,
        refresh_token: str | None,
    ) -> None:
        pending = [
            (token, hint)
            for token, hint in ((refresh_token, "refresh_token"), (access_token, "access_token"))
            if token
        ]
        secret = service.client_secret.reveal()
        for token, hint in pending:
            form, request_headers = _with_client_auth(
                service, {"token": token, "token_type_hint": hint}
            )
            status, headers, body = await self._send(
                service, "POST", url, data=form, headers=request_headers, what="revoke endpoint"
            )
            if 200 <= status < 300:
                continue
            if status >= 500:
                raise ServerError(
                    f"the revoke endpoint of {service.name} answered {status}", status=status
                )
            answer = _parse_answer(body, headers)
            raw_code = answer.get("error") if answer is not None else None
            code = raw_code if isinstance(raw_code, str) and raw_code else f"http_{status}"
            if code in {"unsupported_token_type", "invalid_token"}:
                # RFC 7009 §2.2.1: the server does not revoke this kind, or it is gone already.
                continue
            description = _description(answer, (token, secret))
            detail = f": {description}" if description else ""
            raise OAuthProviderError(
                f"the revoke endpoint of {service.name} answered {status} ({code}){detail}",
                status=status,
                error=code,
            )

    # -- account --------------------------------------------------------------------------

    async def fetch_account(self, service: OAuth2Service, access_token: str) -> Account:
        """The account behind ``access_token``.

        Dropbox: ``POST {api_url}/2/users/get_current_account``. Custom services: ``GET
        userinfo_url`` with the token sent per ``param_type``; OIDC (``sub``/``email``/
        ``name``) and common API shapes (``id``/``login``/``email``, also wrapped in ``data``
        or ``user``) are understood. No ``userinfo_url``: an account with empty fields.
        """
        if service.kind == "dropbox":
            return await self._dropbox_account(service, access_token)
        if service.userinfo_url is None:
            return Account(id="", email="", name="")
        url = service.userinfo_url
        headers = {"Accept": "application/json"}
        params: dict[str, str] | None = None
        if service.param_type == "query":
            params = {"access_token": access_token}
        else:
            headers["Authorization"] = f"Bearer {access_token}"
        status, response_headers, body = await self._send(
            service, "GET", url, headers=headers, params=params, what="userinfo endpoint"
        )
        if not 200 <= status < 300:
            raise _userinfo_error(service, status, response_headers)
        answer = _parse_answer(body, response_headers)
        if answer is None:
            raise ApiError(
                f"the userinfo endpoint of {service.name} did not answer a JSON object",
                status=status,
            )
        return _account_from_userinfo(answer)

    async def _dropbox_account(self, service: OAuth2Service, access_token: str) -> Account:
        base = (service.api_url or DEFAULT_DROPBOX_API_URL).rstrip("/")
        status, headers, body = await self._send(
            service,
            "POST",
            f"{base}/2/users/get_current_account",
            data=b"null",
            headers={"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"},
            what="account endpoint",
        )
        if not 200 <= status < 300:
            raise error_from_response(status, headers, body)
        answer = _parse_answer(body, headers)
        if answer is None:
            raise ApiError("Dropbox sent an account that is not a JSON object", status=status)
        name = answer.get("name")
        display = name.get("display_name") if isinstance(name, dict) else None
        return Account(
            id=_text(answer.get("account_id")),
            email=_text(answer.get("email")),
            name=_text(display),
        )

    # -- transport ------------------------------------------------------------------------

    async def _send(
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
        """One request; ``(status, headers, body)``. Lost connections become ServerError."""
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


# -- helpers ------------------------------------------------------------------------------


def _with_client_auth(
    service: OAuth2Service, form: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """``(form, headers)`` of a token or revoke request, with the client authenticated.

    ``basic``: RFC 6749 §2.3.1, id and secret each form-encoded, then HTTP Basic. ``body``:
    ``client_id`` and ``client_secret`` in the form.
    """
    secret = service.client_secret.reveal()
    headers = {"Accept": "application/json"}
    if service.client_auth == "body":
        return {**form, "client_id": service.client_id, "client_secret": secret}, headers
    pair = f"{quote(service.client_id, safe='')}:{quote(secret, safe='')}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return dict(form), headers


def _parse_answer(body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """A JSON object, or a form-encoded answer (old providers), else ``None``."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    content_type = headers.get("Content-Type", "")
    if parsed is None and content_type.startswith("application/x-www-form-urlencoded"):
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            return None
        return dict(pairs) if pairs else None
    return None


def _description(answer: Mapping[str, Any] | None, scrub: Iterable[str]) -> str:
    """The provider's ``error_description``, shortened and with every secret we sent removed."""
    if answer is None:
        return ""
    raw = answer.get("error_description")
    if not isinstance(raw, str):
        return ""
    text = " ".join(raw.split())
    for secret in scrub:
        if secret:
            text = text.replace(secret, "[redacted]")
    if len(text) > _DESCRIPTION_LIMIT:
        text = text[:_DESCRIPTION_LIMIT] + "..."
    return text


def _retry_after(headers: Mapping[str, str]) -> float:
    value = headers.get("Retry-After")
    if value is not None:
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            return seconds
    return DEFAULT_RETRY_AFTER


def _normalise_scope(scope: object, delimiter: str) -> str:
    if isinstance(scope, list):
        parts = [item for item in scope if isinstance(item, str)]
    elif isinstance(scope, str):
        parts = scope.split(delimiter) if delimiter != " " else scope.split()
    else:
        return ""
    return " ".join(part.strip() for part in parts if part.strip())


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _first(answer: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = _text(answer.get(key))
        if value:
            return value
    return ""


_ID_KEYS: Final = ("sub", "id", "user_id", "account_id", "uid")
_WRAPPER_KEYS: Final = ("data", "user")


def _account_from_userinfo(answer: Mapping[str, Any]) -> Account:
    if not _first(answer, *_ID_KEYS):
        for key in _WRAPPER_KEYS:  # {"data": {...}} (Twitter), {"user": {...}} (Slack)
            inner = answer.get(key)
            if isinstance(inner, dict) and _first(inner, *_ID_KEYS):
                answer = inner
                break
    email = _first(answer, "email", "mail", "email_address")
    raw_name = answer.get("name")
    name = _text(raw_name)
    if not name and isinstance(raw_name, dict):
        name = _first(raw_name, "display_name", "formatted", "full_name")
    if not name:
        name = _first(answer, "display_name", "preferred_username", "login", "username")
    if not name:
        name = " ".join(
            part
            for part in (_text(answer.get("given_name")), _text(answer.get("family_name")))
            if part
        )
    return Account(id=_first(answer, *_ID_KEYS), email=email, name=name or email)


def _userinfo_error(service: OAuth2Service, status: int, headers: Mapping[str, str]) -> BotError:
    """The error for a non-2xx userinfo answer; its body is never echoed (it may quote tokens)."""
    challenge = headers.get("WWW-Authenticate", "")
    if status == 401:
        if "expired" in challenge.lower():
            return TokenExpired(f"{service.name} says the access token has expired")
        return InvalidToken(f"{service.name} rejected the access token")
    if status == 403 and "insufficient_scope" in challenge:
        return InvalidToken(f"{service.name} says the access token lacks a scope")
    if status == 429:
        return RateLimited(_retry_after(headers), message=f"{service.name} rate limit")
    if status >= 500:
        return ServerError(
            f"the userinfo endpoint of {service.name} answered {status}", status=status
        )
    return ApiError(f"the userinfo endpoint of {service.name} answered {status}", status=status)
