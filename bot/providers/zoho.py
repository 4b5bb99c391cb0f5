"""Zoho's OAuth hooks (service kind ``zoho``: every regional entry of :mod:`bot.catalogue`).

Zoho documents revocation as ``POST {accounts server}/oauth/v2/token/revoke?token=<token>``
(https://zoho.com/accounts/protocol/oauth/revoke-refresh-token.html): the token travels as a
query parameter, and revoking a refresh token revokes every access token made with it. So only
the refresh token is revoked when there is one (the access token otherwise). The account comes
from ``/oauth/user/info`` by the catalogue's field names, like any userinfo endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.providers.standard import StandardHooks, revoke_one

if TYPE_CHECKING:
    from bot.providers.oauth2 import OAuth2Client, OAuth2Service

__all__ = ["ZohoHooks"]


class ZohoHooks(StandardHooks):
    """Revocation as Zoho documents it; everything else plain OAuth."""

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
        if refresh_token:
            token, hint = refresh_token, "refresh_token"
        elif access_token:
            token, hint = access_token, "access_token"
        else:
            return
        await revoke_one(oauth, service, service.revoke_url, token, hint, token_in_query=True)
