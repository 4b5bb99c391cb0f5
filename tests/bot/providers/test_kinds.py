"""Service kinds: which OAuth hooks each has, the scopes it adds, and that the client asks them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest

from bot.destinations.dropbox import DropboxHooks
from bot.providers.kinds import oauth_hooks, requested_scopes
from bot.providers.oauth2 import Account, OAuth2Client, OAuth2Service
from bot.providers.standard import StandardHooks
from bot.secret import Secret


def _service(kind: str, revoke_url: str | None = None) -> OAuth2Service:
    return OAuth2Service(
        name=kind,
        kind=kind,
        authorize_url="https://auth.example.com/authorize",
        token_url="https://auth.example.com/token",
        client_id="cid",
        client_secret=Secret("shh"),
        revoke_url=revoke_url,
    )


def test_dropbox_has_its_own_hooks_and_everything_else_plain_oauth() -> None:
    assert isinstance(oauth_hooks("dropbox"), DropboxHooks)
    assert isinstance(oauth_hooks("custom"), StandardHooks)
    assert isinstance(oauth_hooks("anything-else"), StandardHooks)


def test_requested_scopes_add_what_the_bot_needs_once_in_order() -> None:
    dropbox = _service("dropbox")
    assert requested_scopes(dropbox, ("sharing.read", "files.content.write")) == (
        "sharing.read",
        "files.content.write",
        "account_info.read",
    )
    assert requested_scopes(dropbox, ()) == ("account_info.read", "files.content.write")
    assert requested_scopes(_service("custom"), ("read", "read", "write")) == ("read", "write")


@dataclass
class Recording:
    """Hooks that record what the client asked of them."""

    revoked: list[tuple[str | None, str | None]] = field(default_factory=list)

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
        self.revoked.append((access_token, refresh_token))

    async def fetch_account(
        self, oauth: OAuth2Client, service: OAuth2Service, access_token: str
    ) -> Account:
        return Account(id=f"{service.kind}:{access_token}", email="", name="")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def test_the_client_asks_the_hooks_of_the_services_kind(
    session: aiohttp.ClientSession,
) -> None:
    recording = Recording()
    asked: list[str] = []

    def hooks(kind: str) -> Recording:
        asked.append(kind)
        return recording

    client = OAuth2Client(session, hooks=hooks)
    service = _service("custom", revoke_url="https://auth.example.com/revoke")
    assert (await client.fetch_account(service, "at")).id == "custom:at"
    await client.revoke(service, access_token="at", refresh_token="rt")
    assert recording.revoked == [("at", "rt")]
    # No revoke URL: nothing to revoke, whatever the kind.
    await client.revoke(_service("dropbox"), access_token="at", refresh_token=None)
    assert recording.revoked == [("at", "rt")]
    assert asked == ["custom", "custom"]
