"""The FileDestination seam: the relay and the registry work with a destination that is not
Dropbox (its own block size, its own hash, its own idea of a lost session)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.destinations.base import ContentHasher, Destinations, FileDestination, FileMetadata
from bot.destinations.relay import RetryPolicy, UploadProgress, relay_upload
from bot.errors import ApiError, ContentHashMismatch, IncorrectOffset, ServerError
from bot.providers.oauth2 import Account

KiB = 1024
BLOCK = 256 * KiB  # Google Drive's resumable uploads take multiples of 256 KiB
FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)


class Md5Blocks:
    """A block-list hash unlike Dropbox's: MD5 of each block, MD5 of their digests."""

    def __init__(self, digests: Sequence[str] = ()) -> None:
        self._digests = [bytes.fromhex(d) for d in digests]
        self._block = hashlib.md5()
        self._len = 0

    @property
    def size(self) -> int:
        return len(self._digests) * BLOCK + self._len

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            take = min(BLOCK - self._len, len(view))
            self._block.update(view[:take])
            self._len += take
            view = view[take:]
            if self._len == BLOCK:
                self._digests.append(self._block.digest())
                self._block, self._len = hashlib.md5(), 0

    def copy(self) -> ContentHasher:
        twin = Md5Blocks(self.block_digests())
        twin._block, twin._len = self._block.copy(), self._len
        return twin

    def block_digests(self) -> list[str]:
        return [d.hex() for d in self._digests]

    def hexdigest(self) -> str:
        whole = hashlib.md5(b"".join(self._digests))
        if self._len:
            whole.update(self._block.digest())
        return whole.hexdigest()


def md5_blocks(data: bytes) -> str:
    hasher = Md5Blocks()
    hasher.update(data)
    return hasher.hexdigest()


@dataclass
class MemoryDestination:
    """Files land in a dict; sessions can be made to vanish or to lose a reply."""

    files: dict[str, bytes] = field(default_factory=dict)
    sessions: dict[str, bytearray] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    forget_sessions: int = 0
    lose_reply_once: bool = False

    @property
    def title(self) -> str:
        return "Memory Drive"

    @property
    def block_size(self) -> int:
        return BLOCK

    def hasher(self, block_digests: Sequence[str] = ()) -> ContentHasher:
        return Md5Blocks(block_digests)

    async def account(self, access_token: str) -> Account:
        return Account(id="m-1", email="ana@memory.example", name="Ana")

    async def upload(
        self, access_token: str, path: str, data: bytes, *, content_hash: str
    ) -> FileMetadata:
        self.calls.append(("upload", len(data)))
        assert content_hash == md5_blocks(data)
        return self._store(path, data)

    async def start(
        self, access_token: str, data: bytes, *, content_hash: str | None = None
    ) -> str:
        self.calls.append(("start", len(data)))
        session_id = f"s{len(self.sessions)}"
        self.sessions[session_id] = bytearray(data)
        return session_id

    async def append(
        self,
        access_token: str,
        session_id: str,
        offset: int,
        data: bytes,
        *,
        content_hash: str | None = None,
    ) -> None:
        self.calls.append(("append", len(data)))
        held = self._session(session_id, offset)
        assert len(data) % BLOCK == 0
        assert content_hash == md5_blocks(data)
        held += data
        if self.lose_reply_once:
            self.lose_reply_once = False
            raise ServerError("the reply was lost")

    async def finish(
        self,
        access_token: str,
        session_id: str,
        offset: int,
        data: bytes,
        *,
        path: str,
        content_hash: str,
    ) -> FileMetadata:
        self.calls.append(("finish", len(data)))
        held = self._session(session_id, offset)
        return self._store(path, bytes(held + data))

    def session_gone(self, error: ApiError) -> bool:
        return error.summary == "gone"

    def _session(self, session_id: str, offset: int) -> bytearray:
        if self.forget_sessions:
            self.forget_sessions -= 1
            self.sessions.pop(session_id, None)
        if session_id not in self.sessions:
            raise ApiError("no such session", status=404, summary="gone")
        held = self.sessions[session_id]
        if offset != len(held):
            raise IncorrectOffset(len(held))
        return held

    def _store(self, path: str, data: bytes) -> FileMetadata:
        self.files[path] = data
        return FileMetadata(
            path.rsplit("/", 1)[-1], path, f"id:{len(self.files)}", len(data), md5_blocks(data), "1"
        )


class Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    @asynccontextmanager
    async def open(self, offset: int) -> AsyncIterator[AsyncIterator[bytes]]:
        async def pieces() -> AsyncIterator[bytes]:
            for start in range(offset, len(self.data), 100_000):
                yield self.data[start : start + 100_000]

        yield pieces()


class Token:
    async def access_token(self) -> str:
        return "t"

    async def refreshed_token(self, rejected: str) -> str:
        return "t2"


async def _nap(delay: float) -> None:
    return None


async def send(dest: FileDestination, data: bytes, **kwargs: Any) -> FileMetadata:
    return await relay_upload(
        dest,
        Token(),
        Bytes(data),
        "/in/f.bin",
        policy=FAST,
        sleep=_nap,
        chunk_size=2 * BLOCK,
        single_upload_limit=3 * BLOCK,
        **kwargs,
    )


async def test_a_small_file_is_one_upload_with_the_destinations_hash() -> None:
    dest = MemoryDestination()
    data = os.urandom(BLOCK + 5)
    meta = await send(dest, data)
    assert dest.files["/in/f.bin"] == data
    assert meta.content_hash == md5_blocks(data)
    assert dest.calls == [("upload", len(data))]


async def test_a_large_file_goes_in_chunks_of_the_destinations_blocks() -> None:
    dest = MemoryDestination()
    data = os.urandom(7 * BLOCK + 123)
    saved: list[int] = []

    async def save(progress: UploadProgress) -> None:
        saved.append(progress.offset)
        assert len(progress.block_digests) == progress.offset // BLOCK

    await send(dest, data, save_progress=save)
    assert dest.files["/in/f.bin"] == data
    assert dest.calls == [
        ("start", 2 * BLOCK),
        ("append", 2 * BLOCK),
        ("append", 2 * BLOCK),
        ("finish", BLOCK + 123),
    ]
    assert saved == [2 * BLOCK, 4 * BLOCK, 6 * BLOCK]


async def test_a_lost_reply_and_a_lost_session_are_the_destinations_to_say() -> None:
    dest = MemoryDestination(lose_reply_once=True)
    data = os.urandom(5 * BLOCK)
    await send(dest, data)  # the append arrived: IncorrectOffset moves the relay on
    assert dest.files["/in/f.bin"] == data

    dest = MemoryDestination(forget_sessions=1)
    await send(dest, data)  # session_gone: a new session from the start
    assert dest.files["/in/f.bin"] == data
    assert [name for name, _ in dest.calls].count("start") == 2


async def test_chunks_must_fit_the_destinations_blocks() -> None:
    with pytest.raises(ValueError, match=str(BLOCK)):
        await relay_upload(
            MemoryDestination(), Token(), Bytes(b"x"), "/f", chunk_size=BLOCK + 1, sleep=_nap
        )


async def test_a_wrong_hash_names_the_destination() -> None:
    class Liar(MemoryDestination):
        def _store(self, path: str, data: bytes) -> FileMetadata:
            meta = super()._store(path, data)
            return FileMetadata(meta.name, path, meta.id, meta.size, "0" * 32, meta.rev)

    with pytest.raises(ContentHashMismatch, match="Memory Drive stored content_hash"):
        await send(Liar(), b"abc")


def test_the_registry_says_which_kinds_receive_files() -> None:
    memory = MemoryDestination()
    registry = Destinations({"memory": memory})
    assert registry.kinds == frozenset({"memory"})
    assert "custom" not in registry.kinds
    assert registry.get("memory") is memory
    assert registry.get("custom") is None
