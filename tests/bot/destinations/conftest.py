"""Fixtures for the Dropbox destination and relay tests: the local stand-in over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.destinations.dropbox import DropboxDestination
from bot.sandbox.dropbox_standin import DropboxStandin

APP_KEY = "test-app-key"
APP_SECRET = "test-app-secret"
EMAIL = "ana@example.com"
SCOPES = ("account_info.read", "files.content.write")


@dataclass
class Dropbox:
    standin: DropboxStandin
    base_url: str
    session: aiohttp.ClientSession
    destination: DropboxDestination
    access_token: str
    refresh_token: str


@pytest.fixture
async def dropbox(
    aiohttp_server: Callable[..., Awaitable[Any]], tmp_path: Path
) -> AsyncIterator[Dropbox]:
    standin = DropboxStandin(tmp_path / "dropbox", apps={APP_KEY: APP_SECRET})
    server = await aiohttp_server(standin.app())
    base_url = str(server.make_url("")).rstrip("/")
    access, refresh = standin.issue_tokens(APP_KEY, EMAIL, SCOPES)
    async with aiohttp.ClientSession() as session:
        destination = DropboxDestination(session, base_url, base_url)
        yield Dropbox(standin, base_url, session, destination, access, refresh)
