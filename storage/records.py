"""The records repositories return: plain frozen dataclasses and the states they move through.

This module imports no driver: everything above ``storage/`` (the chat layer, the web layer, the
worker) uses these types without importing ``pymongo``; the repositories that read and write them
live beside it (``connections.py``, ``authorizations.py``, ``uploads.py``, ``events.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# -- custom services and connections -------------------------------------------------------------

_LINK_RE = re.compile(r"[^a-z0-9]+")


def link_name(name: str) -> str:
    """``"Team Dropbox"`` → ``team_dropbox``: lowercase, runs of other characters become ``_``."""
    return _LINK_RE.sub("_", name.lower()).strip("_")


@dataclass(frozen=True)
class ServiceRecord:
    """A custom OAuth2 service as stored; the client secret is sealed by the vault.

    ``default=True``: the OAuth client configured for a default service of the catalogue
    (``/connection service configure``); only ``name``, ``client_id`` and the sealed secret are
    stored then, the endpoints come from ``bot.catalogue``.
    """

    name: str
    authorize_url: str
    token_url: str
    client_id: str
    client_secret_sealed: Mapping[str, Any]
    refresh_url: str | None = None
    revoke_url: str | None = None
    userinfo_url: str | None = None
    scopes: tuple[str, ...] = ()
    param_type: str = "header"
    scope_delimiter: str = ","
    created_by: str = ""
    authorize_params: tuple[tuple[str, str], ...] = ()
    client_auth: str = "basic"
    default: bool = False

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Connection:
    link: str
    name: str
    service: str
    scopes: tuple[str, ...]
    login_user_credentials: bool
    owner_id: str
    owner_email: str
    published: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


# -- authorizations, connect links, OAuth states -------------------------------------------------

CONNECTED = "connected"
DISCONNECTED = "disconnected"
PENDING = "pending"


def auth_id(link: str, user_id: str) -> str:
    return f"{link}:{user_id}"


@dataclass(frozen=True)
class Authorization:
    link: str
    user_id: str
    user_email: str
    status: str
    account_id: str
    account_email: str
    account_name: str
    access: Mapping[str, Any] | None
    refresh: Mapping[str, Any] | None
    expires_at: float | None
    version: int
    pending: Mapping[str, Any] | None = None
    lifetime: float | None = None  # the access token's lifetime (expires_in), if stated
    #: The data centre (an origin) that issued the tokens, when not the service's own (Zoho's
    #: ``accounts-server``): refreshes and revocation go there.
    server: str | None = None

    @property
    def connected(self) -> bool:
        return self.status == CONNECTED and self.access is not None


@dataclass(frozen=True)
class ConnectLink:
    """A single-use connect link (its opaque ``id`` is in the URL) for one chat user and the
    connection whose link name is ``connection``."""

    id: str
    connection: str
    user_id: str
    user_email: str


@dataclass(frozen=True)
class OAuthState:
    """A server-side OAuth ``state``: who is signing in to which connection (its link name)."""

    state: str
    connection: str
    user_id: str
    user_email: str
    verifier: Mapping[str, Any]


# -- upload jobs ---------------------------------------------------------------------------------

KEEP = "keep"
WAITING = "waiting"
QUEUED = "queued"
DONE = "done"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
BROKEN = "broken"
ACTIVE = (KEEP, WAITING, QUEUED)


def job_id(sender_id: str, attachment_id: str) -> str:
    return f"{sender_id}:{attachment_id}"


@dataclass(frozen=True)
class Job:
    id: str
    sender_id: str
    connection: str
    credential_user: str
    name: str
    url: str
    state: str
    seq: int
    size: int | None
    kept_file: Any  # the kept file's id in the store, opaque above it
    progress: Mapping[str, Any]
    attempts: int
    created_at: datetime
    result: Mapping[str, Any] | None
    error: str

    @property
    def account_key(self) -> str:
        return f"{self.connection}:{self.credential_user}"


# -- processed deliveries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    key: str
    reply: dict[str, Any] | None


# -- the audit log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor_id: str
    actor_email: str
    action: str
    target: str
    details: dict[str, Any]
