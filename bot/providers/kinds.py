"""Service kinds and their OAuth hooks: the one table that names the kinds with their own ways.

A kind whose OAuth is plain (RFC 6749 + RFC 7009 + a ``userinfo_url``) needs no entry: it gets
:class:`~bot.providers.standard.StandardHooks` (custom services, and the catalogue's Google,
Microsoft and Box). A kind that differs brings its hooks from its own module (Dropbox:
:mod:`bot.destinations.dropbox`; GitHub: :mod:`bot.providers.github`; Zoho:
:mod:`bot.providers.zoho`) and is listed here. Where files can land is a
separate registry, :class:`bot.destinations.base.Destinations`, built in ``create_app``.

The hooks are stateless (every call gets the OAuth client and the service), so this is a table
of constants, not a singleton.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from bot.destinations.dropbox import DropboxHooks
from bot.providers.github import GitHubHooks
from bot.providers.oauth2 import OAuth2Service, OAuthHooks
from bot.providers.standard import StandardHooks
from bot.providers.zoho import ZohoHooks

__all__ = ["oauth_hooks", "requested_scopes"]

_STANDARD: Final = StandardHooks()
_BY_KIND: Final[Mapping[str, OAuthHooks]] = {
    "dropbox": DropboxHooks(),
    "github": GitHubHooks(),  # /user + /user/emails; the Applications API revokes
    "zoho": ZohoHooks(),  # the token to revoke goes in the query, as Zoho documents
}


def oauth_hooks(kind: str) -> OAuthHooks:
    """The OAuth hooks of service kind ``kind`` (plain OAuth unless it has its own)."""
    return _BY_KIND.get(kind, _STANDARD)


def requested_scopes(service: OAuth2Service, scopes: Sequence[str]) -> tuple[str, ...]:
    """``scopes``, then the service's default scopes (a catalogue entry's), then those the bot
    itself needs of the kind; each once, in order."""
    extra = oauth_hooks(service.kind).required_scopes
    return tuple(dict.fromkeys((*scopes, *service.default_scopes, *extra)))
