"""The default-service catalogue (CONTRACT §10): OAuth 2 providers preconfigured from their docs.

Each :class:`CatalogueEntry` holds what a provider's own public documentation says about its
authorization-code flow: the authorize, token, revoke and userinfo endpoints, how scopes are
joined, how the access token is sent, the scopes the bot always asks for (those the account
lookup needs), extra authorize parameters, how the client authenticates at the token endpoint,
and which userinfo fields name the account. The research behind every value, with quotes, is
``docs/catalogue-sources.md``; the comment beside each entry names the page it came from, and
says so where the only source is secondary or nothing was found (*unverified*).

An entry becomes usable once its OAuth client is configured: ``SERVICE_<NAME>_CLIENT_ID`` /
``SERVICE_<NAME>_CLIENT_SECRET`` (:mod:`bot.config`) or ``/connection service configure NAME``
(:mod:`bot.services` stores it, the secret sealed). Dropbox is not in this table: its client
and endpoints come from the ``DROPBOX_*`` variables.

This module is data only (no HTTP, no store): configuration, the CLI's ``check`` and the
service catalogue all read it. PKCE (``S256``) is sent to every provider; a server that does not
know it ignores the parameters (RFC 6749 §3.1: unrecognised request parameters are ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = [
    "CATALOGUE",
    "CATALOGUE_KINDS",
    "AccountFields",
    "CatalogueEntry",
    "client_variables",
    "entry",
]


@dataclass(frozen=True)
class AccountFields:
    """Which userinfo fields name the account, each a list of alternatives tried in order.

    A ``name`` alternative of several keys joins their values with a space (``First_Name``,
    ``Last_Name``). Whatever these do not find, the generic reading of common shapes fills in
    (:func:`bot.providers.standard.account_from_userinfo`).
    """

    id: tuple[str, ...]
    email: tuple[str, ...]
    name: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CatalogueEntry:
    """One default service. ``revoke_url`` may hold ``{client_id}`` (GitHub's does)."""

    name: str  # as typed in chat and in SERVICE_<NAME>_*: lowercase letters, digits, "_"
    title: str
    kind: str  # picks the OAuth hooks (bot.providers.kinds)
    authorize_url: str
    token_url: str
    revoke_url: str | None
    userinfo_url: str | None
    scope_delimiter: str
    default_scopes: tuple[str, ...]
    account: AccountFields
    param_type: str = "header"
    client_auth: str = "post"  # "basic" (HTTP Basic) or "post" (in the form body)
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    api_url: str | None = None  # the API host a kind's hooks call besides userinfo
    #: How the token endpoint joins the scopes it granted, when not like requests (GitHub).
    granted_scope_delimiter: str | None = None
    note: str = ""  # shown by `/connection services`
    #: The provider's other data centres (origins) a sign-in may come back from (Zoho).
    regional_servers: tuple[str, ...] = ()

    def endpoints(self, client_id: str) -> dict[str, str]:
        """Every endpoint URL by what it is, ``{client_id}`` filled in (for ``check``)."""
        found = named_endpoints(
            authorize_url=self.authorize_url,
            token_url=self.token_url,
            revoke_url=self.revoke_url,
            userinfo_url=self.userinfo_url,
        )
        return {what: url.replace("{client_id}", client_id) for what, url in found.items()}


def named_endpoints(**urls: str | None) -> dict[str, str]:
    """The URLs given as ``token_url=…`` by what they are (``"token endpoint"``), in order;
    unset ones left out."""
    return {f"{key.removesuffix('_url')} endpoint": url for key, url in urls.items() if url}


def client_variables(name: str) -> tuple[str, str]:
    """The variables that configure default service ``name``'s OAuth client."""
    prefix = f"SERVICE_{name.upper()}_CLIENT"
    return f"{prefix}_ID", f"{prefix}_SECRET"


_OIDC: Final = AccountFields(id=("sub",), email=("email",), name=(("name",),))

# Google: endpoints, claims, PKCE methods and token-endpoint auth methods are from a captured
# copy of Google's discovery document https://accounts.google.com/.well-known/openid-configuration
# (github panva/wellknown issuers/google/google.mjs) -- *secondary*; the discovery URL itself is
# named by https://developers.google.com/identity/openid-connect/reference. Space delimiter:
# https://developers.google.cn/identity/oauth2/web/reference/js-reference.md.txt (verified).
# access_type=offline: https://cloud.google.com/nodejs/docs/reference/google-auth-library/7.4.1/
# google-auth-library/generateauthurlopts (verified); prompt=consent, so a refresh token comes on
# every connect, not only the first: https://stackoverflow.com/questions/10827920/ -- *secondary*.
# Bearer header: https://developers.google.com/accounts/docs/OAuth (verified).
GOOGLE: Final = CatalogueEntry(
    name="google",
    title="Google",
    kind="google",
    authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://oauth2.googleapis.com/token",
    revoke_url="https://oauth2.googleapis.com/revoke",  # POST form token= (secondary)
    userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
    scope_delimiter=" ",
    default_scopes=("openid", "email", "profile"),
    account=_OIDC,
    client_auth="post",  # client_secret_post and client_secret_basic both listed (secondary)
    authorize_params={"access_type": "offline", "prompt": "consent"},
)

# Microsoft Entra ID v2.0, `common` tenant: https://learn.microsoft.com/entra/identity-platform/
# v2-app-types (endpoints) and .../v2-oauth2-auth-code-flow (space delimiter, offline_access for
# a refresh token, PKCE S256, client_secret in the body or Basic, Bearer), userinfo and its
# claims: https://learn.microsoft.com/entra/identity-platform/userinfo (all verified). There is
# no token revocation endpoint (the discovery document has none; Graph revokeSignInSessions
# needs admin consent): https://learn.microsoft.com/en-us/answers/questions/1158831/ -- so
# disconnecting deletes the stored tokens only. User.Read: https://LEARN.MICROSOFT.COM/en-us/
# graph/api/user-get. `sub` is pairwise (per app) -- secondary (panva/wellknown entra-common).
MICROSOFT: Final = CatalogueEntry(
    name="microsoft",
    title="Microsoft",
    kind="microsoft",
    authorize_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",
    revoke_url=None,
    userinfo_url="https://graph.microsoft.com/oidc/userinfo",
    scope_delimiter=" ",
    default_scopes=("openid", "email", "profile", "offline_access", "User.Read"),
    account=_OIDC,
    client_auth="post",
    note="no revocation endpoint: disconnecting deletes the stored tokens",
)

# Box: authorize https://developer.box.com/reference/get-authorize/, token (form body with
# client_id/client_secret) https://developer.box.com/reference/post-oauth2-token, revoke
# https://developer.box.com/en/reference/post-oauth2-revoke/, users/me and its fields (id,
# login, name) https://developer.box.com/reference/get-users-me/, space delimiter and scopes
# defaulting to the app's configured ones https://developer.box.com/ja/reference/get-authorize
# (all verified). PKCE and HTTP Basic at the token endpoint: not documented -- *unverified*.
BOX: Final = CatalogueEntry(
    name="box",
    title="Box",
    kind="box",
    authorize_url="https://account.box.com/api/oauth2/authorize",
    token_url="https://api.box.com/oauth2/token",
    revoke_url="https://api.box.com/oauth2/revoke",
    userinfo_url="https://api.box.com/2.0/users/me",
    scope_delimiter=" ",
    default_scopes=(),  # none: the scopes configured for the Box app apply
    account=AccountFields(id=("id",), email=("login",), name=(("name",),)),
    client_auth="post",
)

# GitHub (OAuth app): authorize/token URLs, space delimiter, Bearer, code lifetime: github/docs
# authorizing-oauth-apps.md (https://docs.github.com/enterprise/2.1/developer/v3/oauth); the token
# answer is form-encoded unless `Accept: application/json` is sent (bot.providers.oauth_wire sends
# it) and its `scope` is comma-separated; scopes read:user and user:email: github/docs
# scopes-for-oauth-apps.md; /user: https://docs.github.com/rest/users/users; /user/emails (needs
# user:email; `email` of /user is only the public one): https://docs.github.com/enterprise-server@
# 3.16/rest/users/emails (all verified). PKCE S256: https://github.blog/changelog/2025-07-14-pkce-
# support-for-oauth-and-github-app-authentication (verified). Revocation: no RFC 7009 endpoint;
# DELETE /applications/{client_id}/token with Basic and a JSON body -- from code generated from
# GitHub's OpenAPI (https://docs.rs/crate/jinxapi-github/latest/source/src/v1_1_4/request/
# apps_delete_token.rs) and https://docs.github.com/pt/enterprise-server@3.9/rest/apps/
# oauth-applications -- partly *secondary*. Basic at the token endpoint: *unverified* (post used).
GITHUB: Final = CatalogueEntry(
    name="github",
    title="GitHub",
    kind="github",
    authorize_url="https://github.com/login/oauth/authorize",
    token_url="https://github.com/login/oauth/access_token",
    revoke_url="https://api.github.com/applications/{client_id}/token",
    userinfo_url="https://api.github.com/user",
    scope_delimiter=" ",
    default_scopes=("read:user", "user:email"),
    account=AccountFields(id=("id",), email=("email",), name=(("name",), ("login",))),
    client_auth="post",
    api_url="https://api.github.com",
    granted_scope_delimiter=",",
)

# Zoho: {accounts server}/oauth/v2/auth https://zoho.com/accounts/protocol/oauth/web-apps/
# authorization.html, /oauth/v2/token (client_id/client_secret as parameters) .../web-apps/
# access-token.html, /oauth/v2/token/revoke?token= https://zoho.com/accounts/protocol/oauth/
# revoke-refresh-token.html, /oauth/user/info https://www.zoho.com/accounts/protocol/oauth/
# use-access-token.html (Accounts takes `Bearer`; Zoho's product APIs document
# `Zoho-oauthtoken`), access_type=offline and prompt=consent https://zoho.com/meeting/
# api-integration/authentication.html, comma delimiter https://www.zoho.com/commerce/api/
# step-2-generating-grant-tokens.html (all verified). The userinfo fields (ZUID, Email,
# Display_Name, First_Name, Last_Name) and the scope AaaServer.profile.Read: next-auth's Zoho
# provider https://app.unpkg.com/next-auth@4.24.11/files/providers/zoho.js -- *secondary*. PKCE
# for server-based clients: *unverified*. A user in another data centre is sent back with an
# `accounts-server` parameter (https://zoho.com/accounts/protocol/oauth/multi-dc/
# client-authorization.html); each region below is its own service, and each follows the
# `accounts-server` a sign-in comes back with to any of the others.
_ZOHO_ACCOUNT: Final = AccountFields(
    id=("ZUID",),
    email=("Email",),
    name=(("Display_Name",), ("First_Name", "Last_Name")),
)
#: Zoho's accounts servers: https://zoho.com/accounts/protocol/oauth/multi-dc.html (US, EU, IN,
#: AU, JP, CA = zohocloud.ca, SA, UK listed; verified). UK's host is cut off there and comes from
#: https://www.manageengine.com/products/desktop-central/oauth-authentication-endpoint-domain.html
#: -- *secondary*. CN: https://www.zoho.com/crm/developer/docs/api/v8/multi-dc.html (Zoho product
#: docs). UAE (accounts.zoho.ae) is seen only in third-party code -- *unverified*, left out.
ZOHO_SERVERS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "zoho": ("US", "https://accounts.zoho.com"),
        "zoho_eu": ("EU", "https://accounts.zoho.eu"),
        "zoho_in": ("India", "https://accounts.zoho.in"),
        "zoho_au": ("Australia", "https://accounts.zoho.com.au"),
        "zoho_jp": ("Japan", "https://accounts.zoho.jp"),
        "zoho_ca": ("Canada", "https://accounts.zohocloud.ca"),
        "zoho_sa": ("Saudi Arabia", "https://accounts.zoho.sa"),
        "zoho_uk": ("United Kingdom", "https://accounts.zoho.uk"),
        "zoho_cn": ("China", "https://accounts.zoho.com.cn"),
    }
)


def _zoho(name: str, region: str, server: str) -> CatalogueEntry:
    return CatalogueEntry(
        name=name,
        title=f"Zoho ({region})",
        kind="zoho",
        authorize_url=f"{server}/oauth/v2/auth",
        token_url=f"{server}/oauth/v2/token",
        revoke_url=f"{server}/oauth/v2/token/revoke",
        userinfo_url=f"{server}/oauth/user/info",
        scope_delimiter=",",
        default_scopes=("AaaServer.profile.Read",),
        account=_ZOHO_ACCOUNT,
        client_auth="post",
        authorize_params={"access_type": "offline", "prompt": "consent"},
        # A user of another data centre comes back with its `accounts-server`: the code, the
        # refreshes and the revocation go there (bot.providers.oauth2.OAuth2Service.at_server).
        regional_servers=tuple(url for _, url in ZOHO_SERVERS.values()),
    )


CATALOGUE: Final[Mapping[str, CatalogueEntry]] = MappingProxyType(
    {
        e.name: e
        for e in (
            GOOGLE,
            MICROSOFT,
            BOX,
            GITHUB,
            *(_zoho(name, region, url) for name, (region, url) in ZOHO_SERVERS.items()),
        )
    }
)
#: The hook kinds the catalogue uses (bot.providers.kinds maps those with their own ways).
CATALOGUE_KINDS: Final = frozenset(e.kind for e in CATALOGUE.values())


def entry(name: str) -> CatalogueEntry | None:
    """The default service ``name`` (any case), or ``None``."""
    return CATALOGUE.get(name.lower())
