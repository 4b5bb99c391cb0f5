"""Real-process drill harness: ``serve`` child processes wired to in-process stand-ins.

Only ``serve`` runs as a separate process (``sys.executable -m bot serve``), configured purely by
environment variables, exactly as an operator runs it. The Dropbox and Cliq stand-ins run inside
the test's event loop (so a test can read ``calls``, files and messages directly), and MongoDB is
the embedded store. Everything listens on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.cliq_standin import CliqStandin
from bot.sandbox.driver import ChatDriver, ChatUser, Reply
from bot.sandbox.dropbox_standin import DropboxStandin

WEBHOOK_SECRET = "drill-webhook-secret"
APP_KEY = "drill-app-key"
APP_SECRET = "drill-app-secret"
BOT_NAME = "filesbot"
ZAPIKEY = "drill-zapikey"
ADMIN = ChatUser("1001", "admin@example.com", "Ada", "Admin")
LINK = "team_dropbox"
_LISTENING = re.compile(r"listening on (http://[0-9.]+:\d+)")
_REPO = Path(__file__).resolve().parents[2]


def user(n: int) -> ChatUser:
    return ChatUser(str(60000 + n), f"user{n}@example.com", f"User{n}", "Drill")


def dropbox_email(u: ChatUser) -> str:
    return f"{u.first_name.lower()}@dropbox.example"


async def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        await asyncio.sleep(interval)


@dataclass
class BotProcess:
    """One ``cliqbot serve`` child. Its log (stderr) goes to a file we poll."""

    env: dict[str, str]
    log_path: Path
    cwd: Path
    proc: asyncio.subprocess.Process | None = None
    url: str = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 30.0) -> str:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                env=self.env,
                cwd=str(self.cwd),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            match = _LISTENING.search(text)
            if match:
                self.url = match.group(1)
                return self.url
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start (rc={self.proc.returncode}):\n{text}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """``kill -9``: no draining, no cleanup."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), 10)

    async def stop(self, timeout: float = 40.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Sandbox:
    """Stand-ins in this loop, a database on the shared store, and any number of bots."""

    tmp: Path
    mongo_uri: str
    http: aiohttp.ClientSession
    dropbox: DropboxStandin
    cliq: CliqStandin
    dropbox_url: str
    db_name: str = field(default_factory=lambda: f"drill_{uuid.uuid4().hex[:10]}")
    key: str = field(
        default_factory=lambda: base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    )
    bots: list[BotProcess] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Called for every request the Dropbox stand-in receives, before it is handled.
    hooks: list[Callable[[web.Request], None]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "CLIQ_", "DROP"))}
        env.update(
            {
                "PYTHONPATH": str(_REPO),
                "BOT_HOST": "127.0.0.1",
                "BOT_PORT": "0",
                "BOT_DATA_DIR": str(self.tmp / "data"),
                "MONGODB_URI": self.mongo_uri,
                "MONGODB_DB": self.db_name,
                "BOT_ENCRYPTION_KEYS": self.key,
                "BOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "BOT_ADMINS": ADMIN.email,
                "CLIQ_API_BASE": self.cliq.api_base,
                "CLIQ_BOT_NAME": BOT_NAME,
                "CLIQ_WEBHOOK_TOKEN": ZAPIKEY,
                "DROPBOX_APP_KEY": APP_KEY,
                "DROPBOX_APP_SECRET": APP_SECRET,
                "DROPBOX_AUTHORIZE_URL": f"{self.dropbox_url}/oauth2/authorize",
                "DROPBOX_API_URL": self.dropbox_url,
                "DROPBOX_CONTENT_URL": self.dropbox_url,
                "BOT_JOB_LEASE_SECONDS": "3",
                "BOT_LOG_LEVEL": "INFO",
            }
        )
        env.update(self.extra_env)
        return env

    async def start_bot(self) -> BotProcess:
        index = len(self.bots)
        bot = BotProcess(self.env(), self.tmp / f"serve-{index}.log", self.tmp)
        self.bots.append(bot)
        await bot.start()
        return bot

    def driver(self, bot: BotProcess) -> ChatDriver:
        return ChatDriver(self.http, bot.url, WEBHOOK_SECRET, bot_name=BOT_NAME)

    async def setup_connection(self, bot: BotProcess) -> None:
        chat = self.driver(bot)
        reply = await chat.run(
            ADMIN,
            'create "Team Dropbox" service=dropbox'
            " scopes=account_info.read,files.content.write login_user_credentials=on",
        )
        assert LINK in reply.text, reply.text
        reply = await chat.run(ADMIN, f"publish {LINK}")
        assert "Published" in reply.text, reply.text

    async def connect(self, bot: BotProcess, u: ChatUser, email: str | None = None) -> None:
        """The real product path: ``connect`` in chat, then the browser's consent round trip."""
        chat = self.driver(bot)
        reply = await chat.run(u, f"connect {LINK}")
        url = reply.button_url()
        assert url, reply.text
        status, page = await chat.consent(url, email or dropbox_email(u))
        assert status == 200 and "Connected" in page, page[:300]

    async def send(self, bot: BotProcess, u: ChatUser, attachment: dict[str, str]) -> Reply:
        return await self.driver(bot).send_files(u, [attachment])

    async def saved(self, u: ChatUser, name: str, timeout: float = 60.0) -> dict[str, Any]:
        return await self.cliq.wait_for_message(
            u.id, lambda m: f"Saved {name}" in str(m.get("text", "")), timeout=timeout
        )

    async def files_json(self, email: str) -> list[dict[str, Any]]:
        url = f"{self.dropbox_url}/_standin/accounts/{email}/files.json"
        async with self.http.get(url) as resp:
            assert resp.status == 200, await resp.text()
            data: list[dict[str, Any]] = await resp.json()
            return data

    async def stats(self) -> dict[str, Any]:
        async with self.http.get(f"{self.dropbox_url}/_standin/stats") as resp:
            data: dict[str, Any] = await resp.json()
            return data

    async def control(self, path: str, body: dict[str, Any]) -> None:
        async with self.http.post(f"{self.dropbox_url}/_standin/{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()

    async def close(self) -> None:
        await asyncio.gather(*(bot.stop() for bot in self.bots))


@contextlib.asynccontextmanager
async def sandbox(tmp: Path, mongo_uri: str) -> AsyncIterator[Sandbox]:
    dropbox = DropboxStandin(tmp / "dropbox", apps={APP_KEY: APP_SECRET})
    hooks: list[Callable[[web.Request], None]] = []

    @web.middleware
    async def run_hooks(request: web.Request, handler: Any) -> web.StreamResponse:
        for hook in hooks:
            hook(request)
        response: web.StreamResponse = await handler(request)
        return response

    app = dropbox.app()
    app.middlewares.append(run_hooks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    dropbox_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    cliq = CliqStandin(bot_name=BOT_NAME, webhook_token=ZAPIKEY)
    await cliq.start("127.0.0.1", 0)
    timeout = aiohttp.ClientTimeout(total=60)
    box: Sandbox | None = None
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            box = Sandbox(tmp, mongo_uri, http, dropbox, cliq, dropbox_url, hooks=hooks)
            try:
                yield box
            finally:
                await box.close()
    finally:
        await cliq.stop()
        await runner.cleanup()
        if box is not None:
            await drop_database(mongo_uri, box.db_name)


async def drop_database(mongo_uri: str, name: str) -> None:
    from pymongo import AsyncMongoClient
    from pymongo.errors import PyMongoError

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, serverSelectionTimeoutMS=2000
    )
    try:
        await client.drop_database(name)
    except PyMongoError:
        pass  # the store may be the one a drill stopped; the database dies with it
    finally:
        await client.close()


def expected_hash(size: int, seed: int = 0) -> str:
    """Dropbox ``content_hash`` of the Cliq stand-in's generated bytes."""
    from bot.destinations.dropbox_wire import ContentHasher
    from bot.sandbox.cliq_standin import generated_bytes

    hasher = ContentHasher()
    for piece in generated_bytes(size, seed):
        hasher.update(piece)
    return hasher.hexdigest()
