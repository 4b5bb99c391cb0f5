"""Service kinds and their OAuth hooks: the one table that names the kinds with their own ways.

A kind whose OAuth is plain (RFC 6749 + RFC 7009 + a ``userinfo_url``) needs no entry: it gets
:class:`~bot.providers.standard.StandardHooks`. A kind that differs brings its hooks from its own
module (Dropbox: :mod:`bot.destinations.dropbox`) and is listed here. Where files can land is a
separate registry, :class:`bot.destinations.base.Destinations`, built in ``create_app``.

The hooks are stateless (every call gets the OAuth client and the service), so this is a table
of constants, not a singleton.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from bot.destinations.dropbox import DropboxHooks
from bot.providers.oauth2 import OAuth2Service, OAuthHooks
from bot.providers.standard import StandardHooks

__all__ = ["oauth_hooks", "requested_scopes"]

_STANDARD: Final = StandardHooks()
_BY_KIND: Final[Mapping[str, OAuthHooks]] = {"dropbox": DropboxHooks()}


def oauth_hooks(kind: str) -> OAuthHooks:
    """The OAuth hooks of service kind ``kind`` (plain OAuth unless it has its own)."""
    return _BY_KIND.get(kind, _STANDARD)


def requested_scopes(service: OAuth2Service, scopes: Sequence[str]) -> tuple[str, ...]:
    """``scopes`` and then those the bot itself needs of the service, each once, in order."""
    extra = oauth_hooks(service.kind).required_scopes
    return tuple(dict.fromkeys((*scopes, *extra)))
