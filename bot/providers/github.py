"""GitHub's OAuth hooks (service kind ``github``, the catalogue's entry; CONTRACT §10).

GitHub differs from plain OAuth in two places (sources in :mod:`bot.catalogue`):

* the account: ``GET /user`` gives ``id``, ``login`` and ``name``, but ``email`` only when the
  user made an address public; otherwise the primary verified address of ``GET /user/emails``
  (which needs the ``user:email`` scope the catalogue asks for) is used. That list failing
  leaves the email empty rather than failing the connect;
* revocation: no RFC 7009 endpoint. ``DELETE /applications/{client_id}/token`` with the
  client's HTTP Basic credentials and ``{"access_token": ...}`` revokes the token; 404 means
  GitHub no longer knows it, which is what revoking wanted.

The token endpoint answers form-encoded unless asked for JSON: every token request sends
``Accept: application/json`` (:func:`bot.providers.oauth_wire.with_client_auth`), and
form-encoded answers are read too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from bot.errors import OAuthProviderError, ServerError
from bot.providers.oauth2 import Account
from bot.providers.oauth_wire import basic_authorization
from bot.providers.standard import StandardHooks

if TYPE_CHECKING:
    from bot.providers.oauth2 import OAuth2Client, OAuth2Service

__all__ = ["GitHubHooks"]

logger = logging.getLogger(__name__)

_ACCEPT: Final = "application/vnd.github+json"
_DEFAULT_API: Final = "https://api.github.com"


class GitHubHooks(StandardHooks):
    """``/user`` plus ``/user/emails`` for the account; the Applications API to revoke."""

    async def fetch_account(
        self, oauth: OAuth2Client, service: OAuth2Service, access_token: str
    ) -> Account:
        account = await super().fetch_account(oauth, service, access_token)
        if account.email:
            return account
        email = await _primary_email(oauth, service, access_token)
        return replace(account, email=email, name=account.name or email) if email else account

    async def revoke(
        self,
        oauth: OAuth2Client,
        service: OAuth2Service,
        *,
        access_token: str | None,
        refresh_token: str | None,
    ) -> None:
        if service.revoke_url is None or access_token is None:
            return  # the Applications API revokes access tokens only
        headers = {
            "Accept": _ACCEPT,
            "Authorization": basic_authorization(service),
            "Content-Type": "application/json",
        }
        body = json.dumps({"access_token": access_token}).encode()
        status, _, _ = await oauth.request(
            service, "DELETE", service.revoke_url, data=body, headers=headers, what="revoke API"
        )
        if 200 <= status < 300 or status == 404:
            return
        if status >= 500:
            raise ServerError(f"the revoke API of {service.name} answered {status}", status=status)
        raise OAuthProviderError(
            f"the revoke API of {service.name} answered {status}",
            status=status,
            error=f"http_{status}",
        )


async def _primary_email(oauth: OAuth2Client, service: OAuth2Service, access_token: str) -> str:
    """The primary verified address (else the first verified one), or "" if none is readable."""
    url = f"{service.api_url or _DEFAULT_API}/user/emails"
    headers = {"Accept": _ACCEPT, "Authorization": f"Bearer {access_token}"}
    status, _, body = await oauth.request(service, "GET", url, headers=headers, what="emails API")
    if status != 200:
        logger.info("service %s: /user/emails answered %s; no email", service.name, status)
        return ""
    try:
        listed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    verified = [
        item
        for item in (listed if isinstance(listed, list) else [])
        if isinstance(item, dict)
        and item.get("verified") is True
        and isinstance(item.get("email"), str)
    ]
    primary = [item for item in verified if item.get("primary") is True]
    chosen = (primary or verified)[:1]
    return str(chosen[0]["email"]) if chosen else ""
