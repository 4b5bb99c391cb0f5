"""Plain OAuth 2.0 revocation and account lookup: the hooks of every service without its own.

* :meth:`StandardHooks.revoke`: RFC 7009, a ``token=`` form with client authentication, the
  refresh token first (it takes its access tokens with it on most servers), then the access
  token; "unsupported_token_type" and "invalid_token" answers count as done (§2.2.1).
* :meth:`StandardHooks.fetch_account`: ``GET userinfo_url`` with the token sent per
  ``param_type``; the fields the service's ``account_fields`` name (the catalogue's entries),
  else OIDC (``sub``/``email``/``name``) and common API shapes (``id``/``login``/``email``,
  also wrapped in ``data`` or ``user``). No ``userinfo_url``: an account with empty fields.

A userinfo error answer's body is never echoed: it may quote the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from bot.errors import (
    ApiError,
    BotError,
    InvalidToken,
    OAuthProviderError,
    RateLimited,
    ServerError,
    TokenExpired,
)
from bot.providers.oauth2 import Account
from bot.providers.oauth_wire import description, parse_answer, with_client_auth
from bot.retry import retry_after

if TYPE_CHECKING:
    from bot.providers.oauth2 import OAuth2Client, OAuth2Service

__all__ = ["StandardHooks", "account_from_userinfo", "account_of", "revoke_one"]

_ID_KEYS: Final = ("sub", "id", "user_id", "account_id", "uid")
_WRAPPER_KEYS: Final = ("data", "user")
#: RFC 7009 §2.2.1: the server does not revoke this kind of token, or it is gone already.
_DONE_ALREADY: Final = frozenset({"unsupported_token_type", "invalid_token"})


class StandardHooks:
    """RFC 7009 revocation and a ``userinfo_url`` account lookup; no scopes of its own."""

    @property
    def required_scopes(self) -> tuple[str, ...]:
        return ()

    async def revoke(
        self,
        oauth: OAuth2Client,
        service: OAuth2Service,
        *,
        access_token: str | None,
        refresh_token: str | None,
    ) -> None:
        if service.revoke_url is None:
            return
        pending = [
            (token, hint)
            for token, hint in ((refresh_token, "refresh_token"), (access_token, "access_token"))
            if token
        ]
        for token, hint in pending:
            await revoke_one(oauth, service, service.revoke_url, token, hint)

    async def fetch_account(
        self, oauth: OAuth2Client, service: OAuth2Service, access_token: str
    ) -> Account:
        if service.userinfo_url is None:
            return Account(id="", email="", name="")
        headers = {"Accept": "application/json"}
        params: dict[str, str] | None = None
        if service.param_type == "query":
            params = {"access_token": access_token}
        else:
            headers["Authorization"] = f"Bearer {access_token}"
        status, response_headers, body = await oauth.request(
            service,
            "GET",
            service.userinfo_url,
            headers=headers,
            params=params,
            what="userinfo endpoint",
        )
        if not 200 <= status < 300:
            raise _userinfo_error(service, status, response_headers)
        answer = parse_answer(body, response_headers)
        if answer is None:
            raise ApiError(
                f"the userinfo endpoint of {service.name} did not answer a JSON object",
                status=status,
            )
        return account_of(service, answer)


async def revoke_one(
    oauth: OAuth2Client,
    service: OAuth2Service,
    url: str,
    token: str,
    hint: str,
    *,
    token_in_query: bool = False,
) -> None:
    """One RFC 7009 revocation; ``token_in_query``: ``token`` as a query parameter instead of
    a form field (Zoho documents it so)."""
    fields = (
        {"token_type_hint": hint} if token_in_query else {"token": token, "token_type_hint": hint}
    )
    form, request_headers = with_client_auth(service, fields)
    status, headers, body = await oauth.request(
        service,
        "POST",
        url,
        data=form,
        headers=request_headers,
        params={"token": token} if token_in_query else None,
        what="revoke endpoint",
    )
    if 200 <= status < 300:
        return
    if status >= 500:
        raise ServerError(f"the revoke endpoint of {service.name} answered {status}", status=status)
    answer = parse_answer(body, headers)
    raw_code = answer.get("error") if answer is not None else None
    code = raw_code if isinstance(raw_code, str) and raw_code else f"http_{status}"
    if code in _DONE_ALREADY:
        return
    detail = description(answer, (token, service.client_secret.reveal()))
    raise OAuthProviderError(
        f"the revoke endpoint of {service.name} answered {status} ({code})"
        + (f": {detail}" if detail else ""),
        status=status,
        error=code,
    )


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


def account_from_userinfo(answer: Mapping[str, Any]) -> Account:
    """The account a userinfo answer describes, whichever common shape it has."""
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
        name = _joined(answer, ("given_name", "family_name"))
    return Account(id=_first(answer, *_ID_KEYS), email=email, name=name or email)


def _joined(answer: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    return " ".join(part for part in (_text(answer.get(key)) for key in keys) if part)


def account_of(service: OAuth2Service, answer: Mapping[str, Any]) -> Account:
    """The account a userinfo answer describes: by the service's ``account_fields`` (the
    catalogue names them, CONTRACT §10), the common shapes filling in what they leave empty."""
    guessed = account_from_userinfo(answer)
    fields = service.account_fields
    if fields is None:
        return guessed
    name = next((n for n in (_joined(answer, keys) for keys in fields.name) if n), "")
    email = _first(answer, *fields.email) or guessed.email
    return Account(
        id=_first(answer, *fields.id) or guessed.id,
        email=email,
        name=name or guessed.name or email,
    )


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
        return RateLimited(retry_after(headers), message=f"{service.name} rate limit")
    if status >= 500:
        return ServerError(
            f"the userinfo endpoint of {service.name} answered {status}", status=status
        )
    return ApiError(f"the userinfo endpoint of {service.name} answered {status}", status=status)
