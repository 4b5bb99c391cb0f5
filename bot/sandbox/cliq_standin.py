"""A local stand-in for Zoho Cliq, for tests, the demo and benchmarks.

It plays the two parts of Cliq the bot talks to:

* **attachment downloads** — ``GET /files/{id}?exp=<unix>&sig=<hmac>``: time-limited signed URLs
  like Cliq's. Bytes are streamed (from memory, from disk, or generated on the fly), a single
  ``Range: bytes=N-`` / ``bytes=N-M`` / ``bytes=-K`` is answered with **206** so an interrupted
  upload can re-read from an offset, an expired or tampered URL is **403**, an unknown id **404**;
  :meth:`CliqStandin.expire` makes a file's URLs expire at once, and ``downloads`` counts the
  downloads of each file;
* **the bot message API** — ``POST /api/v2/bots/{bot}/message?zapikey=..``: **401** for a missing
  or wrong ``zapikey``, **404** for another bot, **400** without ``text`` or recipients, else the
  message is recorded and answered **204 No Content** (what Cliq answers a bot message).
  :meth:`CliqStandin.inject_fault` makes the next calls fail with ``429`` (``Retry-After: 0``),
  ``500`` or a dropped connection.

For out-of-process use (the demo page, ``cliqbot demo``, benchmarks):

* ``GET /_standin/messages[?userid=U]`` — recorded messages as a JSON list;
* ``POST /_standin/files`` — multipart ``file`` (+ optional ``name``, ``ttl``, ``content_type``
  fields) → the attachment dict ``{"name", "id", "url", "contenttype"}``.

The chat emulator (``cliqbot demo``), once :meth:`CliqStandin.connect_bot` has told the stand-in
where the bot is and the webhook secret:

* ``GET /`` (also ``/emulator``) — the emulator page, static files from ``bot/sandbox/static/``
  under ``/static/``;
* ``GET /_standin/config`` — the bot's name, the command, the chat users and extra links;
* ``POST /_standin/send`` — JSON ``{"user_id", "kind": "message"|"command"|"button"|"welcome",
  "text", "attachments", "data"}`` (a button's ``data`` is its ``key`` and ``label``): the
  stand-in builds the Cliq event (as :class:`~bot.sandbox.driver.ChatDriver` does), signs it
  with the secret the page never sees, posts it to the bot and answers ``{"status", "body"}``
  with the bot's reply.

URLs handed out are built from :attr:`CliqStandin.base_url`, the server's real ``http://host:port``:
:meth:`CliqStandin.start` sets it; a caller that serves :meth:`CliqStandin.app` itself (e.g. with
pytest-aiohttp) sets it once the server listens. Within a request it defaults to the request's
own origin.

Run standalone::

    python -m bot.sandbox.cliq_standin --port 0 --bot-name filesbot --webhook-token T

prints ``READY http://127.0.0.1:<port>`` once listening and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import hmac
import io
import logging
import math
import pathlib
import re
import secrets
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from aiohttp import BodyPartReader, web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from bot.sandbox.driver import ChatDriver, ChatUser
from bot.sandbox.serving import serve

__all__ = [
    "FAULT_KINDS",
    "CliqStandin",
    "PostedMessage",
    "generated_bytes",
    "main",
]

logger = logging.getLogger(__name__)

FAULT_KINDS: Final = frozenset({"429", "500", "drop"})
GENERATED_BLOCK: Final = 64 * 1024
_READ_CHUNK: Final = 256 * 1024
_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")
STATIC_DIR: Final = pathlib.Path(__file__).parent / "static"
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(?:html|css|js|svg|png)$")
_SEND_KINDS: Final = frozenset({"message", "command", "button", "welcome"})


def generated_bytes(size: int, seed: int = 0, offset: int = 0) -> Iterator[bytes]:
    """The deterministic pseudo-random content of a generated file, from ``offset`` to ``size``.

    Block ``i`` (64 KiB) is the ChaCha20 keystream under key ``SHA-256("cliq-standin:{seed}")``
    and nonce ``i``: about 2 GB/s, and any offset is reproduced without what comes before it.
    """
    if size < 0 or offset < 0:
        raise ValueError("size and offset must not be negative")
    key = hashlib.sha256(f"cliq-standin:{seed}".encode()).digest()
    zeros = bytes(GENERATED_BLOCK)
    position = offset
    while position < size:
        index, skip = divmod(position, GENERATED_BLOCK)
        nonce = bytes(4) + index.to_bytes(12, "little")
        block = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor().update(zeros)
        chunk = block[skip : skip + (size - position)]
        position += len(chunk)
        yield chunk


@dataclass(frozen=True)
class PostedMessage:
    bot_name: str
    userids: list[str]
    payload: dict[str, Any]
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "bot_name": self.bot_name,
            "userids": list(self.userids),
            "payload": self.payload,
            "received_at": self.received_at,
        }


@dataclass
class _File:
    id: str
    name: str
    content_type: str
    size: int
    data: bytes | None = None
    path: pathlib.Path | None = None
    seed: int | None = None


@dataclass(frozen=True)
class _BotLink:
    """Where the emulator's events go: the bot's URL, its webhook secret and the chat users."""

    bot_url: str
    secret: str
    users: tuple[ChatUser, ...]
    command: str
    links: tuple[tuple[str, str], ...]


@dataclass
class _Waiters:
    futures: set[asyncio.Future[None]] = field(default_factory=set)

    def wake(self) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_result(None)
        self.futures.clear()


class CliqStandin:
    """A local Cliq: signed expiring attachment URLs and the bot message API."""

    def __init__(
        self,
        *,
        bot_name: str,
        webhook_token: str,
        file_dir: pathlib.Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot_name = bot_name
        self._token = webhook_token
        self._file_dir = file_dir
        self._clock = clock
        self._url_key = secrets.token_bytes(32)
        self._files: dict[str, _File] = {}
        self._faults: deque[str] = deque()
        self._waiters = _Waiters()
        self._runner: web.AppRunner | None = None
        self._bot: _BotLink | None = None
        self._http: aiohttp.ClientSession | None = None
        self.base_url: str | None = None
        self.messages: list[PostedMessage] = []
        #: Downloads started per file id (knob for tests: who fetched what, how often).
        self.downloads: collections.Counter[str] = collections.Counter()
        self._expired: set[str] = set()

    # --- setup -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_cors])
        app.router.add_get("/files/{id}", self._get_file)
        app.router.add_post("/api/v2/bots/{bot}/message", self._post_message)
        app.router.add_get("/_standin/messages", self._list_messages)
        app.router.add_post("/_standin/files", self._upload_file)
        app.router.add_route("OPTIONS", "/_standin/{tail:.*}", self._preflight)
        app.router.add_get("/", self._emulator_page)
        app.router.add_get("/emulator", self._emulator_page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/_standin/config", self._config)
        app.router.add_post("/_standin/send", self._send)
        app.on_cleanup.append(self._close_http)
        return app

    def connect_bot(
        self,
        bot_url: str,
        secret: str,
        users: Sequence[ChatUser],
        *,
        command: str = "connection",
        links: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Let the emulator page talk to the bot at ``bot_url``, as one of ``users``.

        ``secret`` is the bot's ``BOT_WEBHOOK_SECRET``: events from the page are signed here.
        ``links`` are ``(label, url)`` pairs the page shows (e.g. the Dropbox stand-in).
        """
        if not users:
            raise ValueError("the emulator needs at least one chat user")
        self._bot = _BotLink(bot_url.rstrip("/"), secret, tuple(users), command, tuple(links))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); sets and returns :attr:`base_url`."""
        if self._runner is not None:
            raise RuntimeError("the Cliq stand-in is already running")
        self._runner, self.base_url = await serve(self.app(), host, port)
        logger.info("Cliq stand-in listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def api_base(self) -> str:
        """What ``CLIQ_API_BASE`` should be to post messages here."""
        return f"{self._base()}/api/v2"

    # --- files -------------------------------------------------------------------------------

    def add_file(
        self,
        name: str,
        content: bytes | pathlib.Path,
        *,
        content_type: str = "application/octet-stream",
        ttl: float = 300.0,
    ) -> dict[str, str]:
        """Offer ``content`` for download; returns the attachment dict of a Cliq event."""
        if isinstance(content, pathlib.Path):
            stored = _File(_new_id(), name, content_type, content.stat().st_size, path=content)
        else:
            stored = _File(_new_id(), name, content_type, len(content), data=bytes(content))
        return self._register(stored, ttl)

    def add_generated_file(
        self,
        name: str,
        size: int,
        *,
        seed: int = 0,
        ttl: float = 3600.0,
        content_type: str = "application/octet-stream",
    ) -> dict[str, str]:
        """Offer ``size`` bytes of :func:`generated_bytes` (``seed``), produced while streaming."""
        if size < 0:
            raise ValueError("size must not be negative")
        return self._register(_File(_new_id(), name, content_type, size, seed=seed), ttl)

    def file_url(self, file_id: str, ttl: float = 300.0, *, base: str | None = None) -> str:
        """A fresh signed URL for an offered file, valid for ``ttl`` seconds."""
        if file_id not in self._files:
            raise KeyError(file_id)
        exp = math.ceil(self._clock() + ttl)
        sig = self._sign(file_id, exp)
        return f"{base or self._base()}/files/{file_id}?exp={exp}&sig={sig}"

    def expire(self, file_id: str) -> None:
        """Every URL handed out for ``file_id`` has expired from now on (403), as Cliq's do."""
        if file_id not in self._files:
            raise KeyError(file_id)
        self._expired.add(file_id)

    def _register(self, stored: _File, ttl: float, base: str | None = None) -> dict[str, str]:
        self._files[stored.id] = stored
        return {
            "name": stored.name,
            "id": stored.id,
            "url": self.file_url(stored.id, ttl, base=base),
            "contenttype": stored.content_type,
        }

    def _sign(self, file_id: str, exp: int) -> str:
        return hmac.new(self._url_key, f"{file_id}:{exp}".encode(), hashlib.sha256).hexdigest()

    def _base(self) -> str:
        if self.base_url is None:
            raise RuntimeError("set CliqStandin.base_url (or call start()) before handing out URLs")
        return self.base_url.rstrip("/")

    # --- messages ----------------------------------------------------------------------------

    def inject_fault(self, kind: str, count: int = 1) -> None:
        """Make the next ``count`` message posts fail: ``"429"``, ``"500"`` or ``"drop"``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        self._faults.extend([kind] * count)

    def messages_for(self, userid: str) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages if userid in m.userids]

    async def wait_for_message(
        self,
        userid: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda m: True,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """The first message (already received or arriving) to ``userid`` that matches."""
        seen = 0
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for posted in self.messages[seen:]:
                        if userid in posted.userids and predicate(posted.payload):
                            return posted.payload
                    seen = len(self.messages)
                    fut: asyncio.Future[None] = loop.create_future()
                    self._waiters.futures.add(fut)
                    try:
                        await fut
                    finally:
                        self._waiters.futures.discard(fut)
        except TimeoutError:
            texts = [str(p.get("text", ""))[:80] for p in self.messages_for(userid)]
            raise TimeoutError(
                f"no matching message to {userid} within {timeout} s; it received {texts}"
            ) from None

    # --- handlers ----------------------------------------------------------------------------

    async def _get_file(self, request: web.Request) -> web.StreamResponse:
        stored = self._files.get(request.match_info["id"])
        if stored is None:
            raise web.HTTPNotFound(text="no such file")
        exp_text = request.query.get("exp", "")
        sig = request.query.get("sig", "")
        if not exp_text.isascii() or not exp_text.isdigit() or len(exp_text) > 12:
            raise web.HTTPForbidden(text="invalid link")
        exp = int(exp_text)
        expected = self._sign(stored.id, exp).encode("ascii")
        if not hmac.compare_digest(expected, sig.encode("utf-8", "replace")):
            raise web.HTTPForbidden(text="invalid link")
        if self._clock() > exp or stored.id in self._expired:
            raise web.HTTPForbidden(text="link expired")
        self.downloads[stored.id] += 1

        start, end = 0, stored.size - 1
        status = 200
        range_header = request.headers.get("Range")
        if range_header is not None:
            parsed = _parse_range(range_header, stored.size)
            if parsed is not None:
                start, end = parsed
                status = 206
        length = max(0, end - start + 1)
        resp = web.StreamResponse(status=status)
        resp.content_type = stored.content_type
        resp.content_length = length
        resp.headers["Accept-Ranges"] = "bytes"
        resp.headers["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(stored.name, safe='')}"
        )
        if status == 206:
            resp.headers["Content-Range"] = f"bytes {start}-{end}/{stored.size}"
        await resp.prepare(request)
        if request.method != "HEAD" and length:
            try:
                async with contextlib.aclosing(self._read(stored, start, length)) as chunks:
                    async for chunk in chunks:
                        await resp.write(chunk)
            except ConnectionResetError:  # the downloader hung up mid-file: its choice
                logger.debug("download of %s stopped by the client", stored.id)
                return resp
        await resp.write_eof()
        return resp

    async def _read(self, stored: _File, start: int, length: int) -> AsyncGenerator[bytes, None]:
        if stored.data is not None:
            view = memoryview(stored.data)[start : start + length]
            for pos in range(0, length, _READ_CHUNK):
                yield bytes(view[pos : pos + _READ_CHUNK])
        elif stored.path is not None:
            loop = asyncio.get_running_loop()
            fh = await loop.run_in_executor(None, stored.path.open, "rb")
            try:
                await loop.run_in_executor(None, fh.seek, start)
                remaining = length
                while remaining > 0:
                    chunk = await loop.run_in_executor(None, fh.read, min(_READ_CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    yield chunk
            finally:
                fh.close()  # closing a file opened for reading does not block
        else:
            assert stored.seed is not None
            for chunk in generated_bytes(start + length, stored.seed, start):
                yield chunk

    async def _post_message(self, request: web.Request) -> web.StreamResponse:
        if self._faults:
            return self._fault(request, self._faults.popleft())
        zapikey = request.query.get("zapikey", "")
        if not zapikey or not hmac.compare_digest(
            zapikey.encode("utf-8", "replace"), self._token.encode("utf-8")
        ):
            return _error(401, "invalid_zapikey", "the webhook token is missing or wrong")
        bot = request.match_info["bot"]
        if bot != self.bot_name:
            return _error(404, "bot_not_found", f"no bot named {bot}")
        try:
            payload = await request.json()
        except ValueError:
            return _error(400, "invalid_json", "the body is not JSON")
        if not isinstance(payload, dict):
            return _error(400, "invalid_json", "the body must be a JSON object")
        text = payload.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "input_missing", "text is required")
        raw_ids = payload.get("userids")
        if isinstance(raw_ids, str):
            userids = [u.strip() for u in raw_ids.split(",") if u.strip()]
        elif isinstance(raw_ids, list) and all(isinstance(u, str) for u in raw_ids):
            userids = [u for u in raw_ids if u]
        else:
            userids = []
        if not userids and payload.get("broadcast") is not True:
            return _error(400, "input_missing", "userids or broadcast is required")
        self.messages.append(PostedMessage(bot, userids, payload, self._clock()))
        self._waiters.wake()
        return web.Response(status=204)

    @staticmethod
    def _fault(request: web.Request, kind: str) -> web.StreamResponse:
        logger.info("Cliq stand-in: injected fault %s", kind)
        if kind == "429":
            return _error(429, "too_many_requests", "slow down", headers={"Retry-After": "0"})
        if kind == "drop" and request.transport is not None:
            request.transport.close()
        return _error(500, "internal_error", "injected failure")

    async def _list_messages(self, request: web.Request) -> web.Response:
        userid = request.query.get("userid")
        found = [m.to_dict() for m in self.messages if userid is None or userid in m.userids]
        return web.json_response(found)

    async def _upload_file(self, request: web.Request) -> web.Response:
        if request.content_type != "multipart/form-data":
            return _error(400, "invalid_body", "send multipart/form-data with a file field")
        reader = await request.multipart()
        fields: dict[str, str] = {}
        stored: _File | None = None
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" and stored is None:
                stored = await self._receive(part)
            elif part.name in ("name", "ttl", "content_type"):
                fields[part.name] = (await part.text())[:1000]
        if stored is None:
            return _error(400, "input_missing", "a multipart field named file is required")
        try:
            ttl = float(fields.get("ttl", "300"))
        except ValueError:
            return _error(400, "invalid_ttl", "ttl must be a number of seconds")
        stored.name = fields.get("name") or stored.name
        stored.content_type = fields.get("content_type") or stored.content_type
        base = self.base_url.rstrip("/") if self.base_url else str(request.url.origin())
        return web.json_response(self._register(stored, ttl, base=base))

    async def _receive(self, part: BodyPartReader) -> _File:
        file_id = _new_id()
        name = part.filename or "file"
        content_type = part.headers.get("Content-Type", "application/octet-stream")
        if self._file_dir is None:
            buffer = io.BytesIO()
            while chunk := await part.read_chunk(_READ_CHUNK):
                buffer.write(chunk)
            data = buffer.getvalue()
            return _File(file_id, name, content_type, len(data), data=data)
        loop = asyncio.get_running_loop()
        file_dir = self._file_dir
        await loop.run_in_executor(None, lambda: file_dir.mkdir(parents=True, exist_ok=True))
        path = file_dir / file_id
        fh = await loop.run_in_executor(None, path.open, "wb")
        size = 0
        try:
            while chunk := await part.read_chunk(_READ_CHUNK):
                await loop.run_in_executor(None, fh.write, chunk)
                size += len(chunk)
        finally:
            await loop.run_in_executor(None, fh.close)
        return _File(file_id, name, content_type, size, path=path)

    @staticmethod
    async def _preflight(request: web.Request) -> web.Response:
        return web.Response(status=204)

    # --- the chat emulator -------------------------------------------------------------------

    @staticmethod
    async def _emulator_page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    @staticmethod
    async def _static(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        if not _STATIC_NAME.fullmatch(name) or not (STATIC_DIR / name).is_file():
            raise web.HTTPNotFound(text="no such file")
        return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-store"})

    async def _config(self, request: web.Request) -> web.Response:
        bot = self._bot
        return web.json_response(
            {
                "bot_name": self.bot_name,
                "connected": bot is not None,
                "command": bot.command if bot else "connection",
                "users": [
                    {
                        "id": u.id,
                        "email": u.email,
                        "name": f"{u.first_name} {u.last_name}".strip(),
                        "admin": u.admin,
                    }
                    for u in (bot.users if bot else ())
                ],
                "links": [
                    {"label": label, "url": url} for label, url in (bot.links if bot else ())
                ],
            }
        )

    async def _send(self, request: web.Request) -> web.Response:
        bot = self._bot
        if bot is None:
            return _error(409, "no_bot", "no bot is connected to this stand-in")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_json", "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid_json", "the body must be a JSON object")
        user = next((u for u in bot.users if u.id == body.get("user_id")), None)
        if user is None:
            return _error(400, "unknown_user", "user_id names none of the chat users")
        kind = body.get("kind")
        if kind not in _SEND_KINDS:
            return _error(400, "invalid_kind", f"kind is one of {sorted(_SEND_KINDS)}")
        text = body.get("text", "")
        attachments = body.get("attachments", [])
        data = body.get("data", {})
        if not isinstance(text, str) or not _str_maps(attachments) or not _str_map(data):
            return _error(
                400,
                "invalid_body",
                "text is a string, attachments a list of objects of strings, data an object",
            )
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        driver = ChatDriver(
            self._http, bot.bot_url, bot.secret, bot_name=self.bot_name, command=bot.command
        )
        if kind == "message":
            event = driver.message(user, text, attachments)
        elif kind == "command":
            event = driver.command_event(user, text)
        elif kind == "welcome":
            event = driver.welcome(user)
        else:
            event = driver.button(user, data.get("key", ""), label=data.get("label", ""))
        logger.info("emulator: %s event from user %s", kind, user.id)
        try:
            reply = await driver.post(event)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("emulator: the bot did not answer (%s)", type(exc).__name__)
            return _error(502, "bot_unreachable", f"the bot did not answer ({type(exc).__name__})")
        return web.json_response({"status": reply.status, "body": reply.body})

    async def _close_http(self, app: web.Application) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()


# --- helpers ---------------------------------------------------------------------------------


def _str_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _str_maps(value: object) -> bool:
    return isinstance(value, list) and all(_str_map(item) for item in value)


def _new_id() -> str:
    return "f-" + uuid.uuid4().hex[:20]


def _error(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as ``(start, end)`` inclusive, or None to ignore the header.

    Raises 416 when the range starts at or after the end of the file.
    """
    unsatisfiable = web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored, the whole file is served
    if start >= size:
        raise unsatisfiable
    end = min(int(last), size - 1) if last else size - 1
    return start, end


@web.middleware
async def _cors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Let a page on another loopback origin (the demo's chat page) use ``/_standin/``."""
    resp = await handler(request)
    if request.path.startswith("/_standin/") and not resp.prepared:
        resp.headers["Access-Control-Allow-Origin"] = "*"
        resp.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return resp


# --- command line ----------------------------------------------------------------------------


async def _serve(standin: CliqStandin, host: str, port: int) -> int:
    base = await standin.start(host, port)
    sys.stdout.write(f"READY {base}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)
        await standin.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox.cliq_standin", description="A local stand-in for Zoho Cliq."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--bot-name", required=True)
    parser.add_argument("--webhook-token", required=True)
    parser.add_argument("--file-dir", type=pathlib.Path, default=None)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    standin = CliqStandin(
        bot_name=args.bot_name, webhook_token=args.webhook_token, file_dir=args.file_dir
    )
    return asyncio.run(_serve(standin, args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
