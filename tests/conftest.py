"""Shared fixtures: one real MongoDB-compatible server for the run, one database per test.

The server is the embedded SecantusDB child (the same code ``serve`` uses), or the MongoDB named
by ``MONGODB_URI`` when the environment sets one. No database mocks.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from bot.config import Settings
from bot.secret import Secret
from storage.embedded import EmbeddedStore

WEBHOOK_SECRET = "test-webhook-secret"


class _LoopThread:
    """An event loop in a thread, to own the session-wide embedded server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout=120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MONGODB_URI")
    if external:
        yield external
        return
    runner = _LoopThread()
    store = EmbeddedStore(storage_dir=tmp_path_factory.mktemp("store"))
    runner.run(store.start())
    try:
        yield store.uri
    finally:
        runner.run(store.stop())
        runner.close()


@pytest.fixture(scope="session")
def sync_mongo(mongo_uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    yield client
    client.close()


@pytest.fixture
def db_name(sync_mongo: MongoClient[dict[str, Any]]) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    sync_mongo.drop_database(name)


def make_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


@pytest.fixture
def settings(mongo_uri: str, db_name: str, tmp_path: Path) -> Settings:
    return Settings(
        port=0,
        data_dir=tmp_path / "data",
        mongodb_uri=Secret(mongo_uri),
        mongodb_db=db_name,
        encryption_keys=(Secret(make_key()),),
        webhook_secret=Secret(WEBHOOK_SECRET),
        admins=frozenset({"admin@example.com"}),
        cliq_bot_name="filesbot",
        cliq_webhook_token=Secret("zapi-test-token"),
        dropbox_app_key="test-app-key",
        dropbox_app_secret=Secret("test-app-secret"),
    )


# -- the whole product wired to local stand-ins ---------------------------------------------

import dataclasses  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402

import aiohttp  # noqa: E402

from bot.app import create_app  # noqa: E402
from bot.keys import RUNTIME  # noqa: E402
from bot.sandbox.cliq_standin import CliqStandin  # noqa: E402
from bot.sandbox.driver import ChatDriver, ChatUser  # noqa: E402
from bot.sandbox.dropbox_standin import DropboxStandin  # noqa: E402

ADMIN = ChatUser("1001", "admin@example.com", "Ada", "Admin")
ANA = ChatUser("55501", "ana@example.com", "Ana", "Lima")
BEN = ChatUser("55502", "ben@example.com", "Ben", "Okafor")


@dataclasses.dataclass
class World:
    settings: Settings
    app: Any
    bot_url: str
    dropbox: DropboxStandin
    cliq: CliqStandin
    chat: ChatDriver

    async def messages_for(self, user: ChatUser, contains: str, timeout: float = 15.0) -> dict:
        return await self.cliq.wait_for_message(
            user.id, lambda m: contains in str(m.get("text", "")), timeout=timeout
        )

    async def connect(self, user: ChatUser, email: str, link: str = "") -> str:
        reply = await self.chat.run(user, f"connect {link}".strip())
        url = reply.button_url()
        assert url, reply.text
        status, page = await self.chat.consent(url, email)
        assert status == 200, page
        return page

    async def setup_connection(self, *, switch: str = "on", owner_email: str = "") -> None:
        reply = await self.chat.run(
            ADMIN,
            f'create "Team Dropbox" service=dropbox scopes=account_info.read,files.content.write'
            f" login_user_credentials={switch}",
        )
        assert "team_dropbox" in reply.text, reply.text
        if owner_email:
            await self.connect(ADMIN, owner_email, "team_dropbox")
        reply = await self.chat.run(ADMIN, "publish team_dropbox")
        assert "Published" in reply.text, reply.text


@pytest.fixture
def world_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
async def world(
    aiohttp_server: Any, world_settings: Settings, tmp_path: Path
) -> AsyncIterator[World]:
    dropbox = DropboxStandin(tmp_path / "dropbox", apps={"test-app-key": "test-app-secret"})
    dbx = await aiohttp_server(dropbox.app())
    dbx_url = str(dbx.make_url("")).rstrip("/")
    cliq = CliqStandin(bot_name="filesbot", webhook_token="zapi-test-token")
    cliq_server = await aiohttp_server(cliq.app())
    cliq.base_url = str(cliq_server.make_url("")).rstrip("/")
    s = dataclasses.replace(
        world_settings,
        dropbox_authorize_url=f"{dbx_url}/oauth2/authorize",
        dropbox_api_url=dbx_url,
        dropbox_content_url=dbx_url,
        cliq_api_base=cliq.api_base,
        worker_poll_seconds=0.1,
        job_lease_seconds=5.0,
    )
    app = create_app(s)
    server = await aiohttp_server(app)
    bot_url = str(server.make_url("")).rstrip("/")
    app[RUNTIME].public_url = bot_url
    async with aiohttp.ClientSession() as http:
        yield World(s, app, bot_url, dropbox, cliq, ChatDriver(http, bot_url, WEBHOOK_SECRET))
