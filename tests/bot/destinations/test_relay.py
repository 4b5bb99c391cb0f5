"""relay_upload against the local Dropbox stand-in, over real HTTP, with faults injected there."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from bot.destinations.base import ContentHasher, FileMetadata
from bot.destinations.dropbox import DropboxDestination
from bot.destinations.dropbox_wire import BLOCK_SIZE, content_hash
from bot.destinations.relay import RetryPolicy, UploadProgress, relay_upload
from bot.errors import (
    ApiError,
    ContentHashMismatch,
    FileTooLarge,
    InvalidGrant,
    InvalidToken,
    RateLimited,
    ServerError,
    SourceError,
    TokenExpired,
)
from tests.bot.destinations.conftest import APP_KEY, APP_SECRET, EMAIL, Dropbox

MiB = 1024 * 1024
UPLOAD = "/2/files/upload"
START = "/2/files/upload_session/start"
APPEND = "/2/files/upload_session/append_v2"
FINISH = "/2/files/upload_session/finish"
# Small enough that a few MiB go through a session; chunks of one 4 MiB block.
SESSION: dict[str, Any] = {"chunk_size": 4 * MiB, "single_upload_limit": 1 * MiB}
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


class BytesSource:
    """A ByteSource over bytes, in odd-sized pieces; records where it was opened."""

    def __init__(self, data: bytes, piece: int = 100_003, fail_at: int | None = None) -> None:
        self.data = data
        self.piece = piece
        self.fail_at = fail_at
        self.opens: list[int] = []

    @asynccontextmanager
    async def open(self, offset: int) -> AsyncIterator[AsyncIterator[bytes]]:
        self.opens.append(offset)

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(offset, len(self.data), self.piece):
                if self.fail_at is not None and start >= self.fail_at:
                    raise SourceError("the attachment URL expired")
                yield self.data[start : start + self.piece]

        yield pieces()


class Tokens:
    """A TokenSource that refreshes through the stand-in's real token endpoint."""

    def __init__(self, dropbox: Dropbox) -> None:
        self._dropbox = dropbox
        self.current = dropbox.access_token
        self.refreshes: list[str] = []

    async def access_token(self) -> str:
        return self.current

    async def refreshed_token(self, rejected: str) -> str:
        self.refreshes.append(rejected)
        async with self._dropbox.session.post(
            self._dropbox.base_url + "/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": self._dropbox.refresh_token,
                "client_id": APP_KEY,
                "client_secret": APP_SECRET,
            },
        ) as resp:
            body: dict[str, Any] = await resp.json()
        if resp.status != 200:
            raise InvalidGrant(str(body.get("error")))
        self.current = str(body["access_token"])
        return self.current


class Sleeps:
    """Records requested delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def relay(
    dropbox: Dropbox,
    data: bytes,
    path: str = "/Cliq Uploads/f.bin",
    *,
    tokens: Tokens | None = None,
    sleeps: Sleeps | None = None,
    source: BytesSource | None = None,
    **kwargs: Any,
) -> FileMetadata:
    kwargs.setdefault("policy", FAST)
    return await relay_upload(
        dropbox.destination,
        tokens or Tokens(dropbox),
        source or BytesSource(data),
        path,
        sleep=sleeps or Sleeps(),
        **kwargs,
    )


async def started(
    dropbox: Dropbox, data: bytes, sent: int, offset: int, blocks: int
) -> UploadProgress:
    """A session begun by hand with ``data[:sent]``; progress that says ``offset`` and carries
    the digests of the first ``blocks`` blocks (what a process that died would have saved)."""
    session_id = await dropbox.destination.start(dropbox.access_token, data[:sent])
    digests = [
        hashlib.sha256(data[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE]).hexdigest()
        for i in range(blocks)
    ]
    return UploadProgress(session_id=session_id, offset=offset, block_digests=digests)


async def resumed(dropbox: Dropbox, data: bytes, progress: UploadProgress) -> list[int]:
    """Relay ``data`` on from ``progress``; it must land. Where the source was opened."""
    source = BytesSource(data)
    meta = await relay(dropbox, data, source=source, progress=progress, **SESSION)
    assert_landed(dropbox, meta, data)
    return source.opens


def assert_landed(dropbox: Dropbox, meta: FileMetadata, data: bytes) -> None:
    assert meta.size == len(data)
    assert meta.content_hash == content_hash(data)
    assert dropbox.standin.read_file(EMAIL, meta.path_display) == data
    assert len(dropbox.standin.files(EMAIL)) == 1


# ----------------------------------------------------------------------------- the happy paths


async def test_small_file_is_one_upload_request(dropbox: Dropbox) -> None:
    data = os.urandom(300_000)
    seen: list[int] = []
    meta = await relay(dropbox, data, on_bytes=seen.append)
    assert_landed(dropbox, meta, data)
    assert meta.path_display == "/Cliq Uploads/f.bin"
    assert dropbox.standin.calls[UPLOAD] == 1
    assert dropbox.standin.calls[START] == 0
    assert seen == [len(data)]


async def test_empty_file(dropbox: Dropbox) -> None:
    meta = await relay(dropbox, b"", **SESSION)
    assert_landed(dropbox, meta, b"")
    assert dropbox.standin.calls[UPLOAD] == 1


async def test_file_at_the_single_upload_limit_is_one_request(dropbox: Dropbox) -> None:
    data = os.urandom(1 * MiB)
    meta = await relay(dropbox, data, **SESSION)
    assert_landed(dropbox, meta, data)
    assert dropbox.standin.calls[UPLOAD] == 1


@pytest.mark.parametrize(
    ("size", "appends"),
    [
        (10 * MiB + 12_345, 1),  # start 4 MiB, append 4 MiB, finish the rest
        (8 * MiB, 1),  # ends on a chunk boundary: the finish carries nothing
        (1 * MiB + 1, 0),  # just over the limit: start carries nothing, finish everything
    ],
)
async def test_large_file_goes_through_a_session(dropbox: Dropbox, size: int, appends: int) -> None:
    data = os.urandom(size)
    seen: list[int] = []
    saved: list[dict[str, Any]] = []

    async def save(progress: UploadProgress) -> None:
        saved.append(progress.to_dict())

    meta = await relay(dropbox, data, on_bytes=seen.append, save_progress=save, **SESSION)
    assert_landed(dropbox, meta, data)
    calls = dropbox.standin.calls
    assert (calls[UPLOAD], calls[START], calls[APPEND], calls[FINISH]) == (0, 1, appends, 1)
    assert seen[-1] == size
    assert all(entry["offset"] % (4 * MiB) == 0 for entry in saved)
    for entry in saved:  # the saved digests are those of the blocks before the offset
        blocks = [
            hashlib.sha256(data[i : i + BLOCK_SIZE]).hexdigest()
            for i in range(0, entry["offset"], BLOCK_SIZE)
        ]
        assert entry["block_digests"] == blocks


async def test_appends_are_chunk_size(dropbox: Dropbox) -> None:
    data = os.urandom(17 * MiB)
    saved: list[int] = []

    async def save(progress: UploadProgress) -> None:
        saved.append(progress.offset)

    meta = await relay(
        dropbox, data, save_progress=save, chunk_size=8 * MiB, single_upload_limit=2 * MiB
    )
    assert_landed(dropbox, meta, data)
    assert saved == [8 * MiB, 16 * MiB]


async def test_non_ascii_name_lands_exactly(dropbox: Dropbox) -> None:
    for path, data in [
        ("/Cliq Uploads/Relatório 🚀\x7f.pdf", b"%PDF-1.7 small"),
        ("/Cliq Uploads/Relatório 🚀\x7f grande.pdf", os.urandom(5 * MiB)),  # via a session
    ]:
        meta = await relay(dropbox, data, path, **SESSION)
        assert meta.path_display == path
        assert dropbox.standin.read_file(EMAIL, path) == data


def test_progress_round_trips_through_a_dict() -> None:
    progress = UploadProgress(session_id="pid:x", offset=4 * MiB, block_digests=["00" * 32])
    assert UploadProgress.from_dict(progress.to_dict()) == progress
    with pytest.raises(ValueError, match="offset"):
        UploadProgress.from_dict({"session_id": None, "offset": -1})


async def test_invalid_chunk_size_is_refused(dropbox: Dropbox) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        await relay(dropbox, b"x", chunk_size=5 * MiB)


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    for attempt in range(12):
        for _ in range(20):
            assert 0 <= policy.backoff(attempt) <= min(10.0, 2.0**attempt)


# ---------------------------------------------------------------------------------- resuming


class Crash(Exception):
    pass


@pytest.mark.parametrize("saved_before_crash", [True, False])
async def test_resume_after_a_crash(dropbox: Dropbox, saved_before_crash: bool) -> None:
    """The process dies right after the 2nd chunk; a new one resumes from what was stored."""
    data = os.urandom(14 * MiB + 777)
    stored: dict[str, Any] = {}
    saves = 0

    async def crashing_save(progress: UploadProgress) -> None:
        nonlocal saves
        saves += 1
        if saves < 2 or saved_before_crash:
            stored.update(progress.to_dict())
        if saves == 2:
            raise Crash

    with pytest.raises(Crash):
        await relay(dropbox, data, save_progress=crashing_save, **SESSION)
    assert dropbox.standin.files(EMAIL) == {}
    assert stored["offset"] == (8 if saved_before_crash else 4) * MiB

    async def save(progress: UploadProgress) -> None:
        stored.update(progress.to_dict())

    resumed_at = stored["offset"]
    source = BytesSource(data)
    meta = await relay(
        dropbox,
        data,
        source=source,
        progress=UploadProgress.from_dict(stored),
        save_progress=save,
        **SESSION,
    )
    assert_landed(dropbox, meta, data)
    assert dropbox.standin.calls[START] == 1  # the same session went on
    # Opened at the saved offset; when the save was lost, Dropbox's offset is one chunk on,
    # which the relay reaches by reading (and hashing) on from there.
    assert source.opens == [resumed_at]


async def test_expired_session_starts_over(dropbox: Dropbox) -> None:
    data = os.urandom(9 * MiB)
    progress = UploadProgress(
        session_id="pid_upload_session:gone",
        offset=4 * MiB,
        block_digests=[hashlib.sha256(data[:BLOCK_SIZE]).hexdigest()],
    )
    assert await resumed(dropbox, data, progress) == [4 * MiB, 0]
    assert progress.offset == 8 * MiB  # the new session's progress


async def test_resume_from_an_unaligned_offset_rehashes_from_the_block_before(
    dropbox: Dropbox,
) -> None:
    """Progress off the 4 MiB grid (Dropbox reported such an offset) still hashes right."""
    data = os.urandom(9 * MiB)
    progress = await started(dropbox, data, sent=5 * MiB, offset=5 * MiB, blocks=1)
    assert await resumed(dropbox, data, progress) == [4 * MiB]


# ---------------------------------------------------------------------------------- retrying


async def test_rate_limit_waits_retry_after(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(UPLOAD, "429", retry_after=7)
    sleeps = Sleeps()
    meta = await relay(dropbox, b"hello", sleeps=sleeps)
    assert_landed(dropbox, meta, b"hello")
    assert sleeps.delays == [7]
    assert dropbox.standin.calls[UPLOAD] == 2


async def test_rate_limit_retry_after_is_capped(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(UPLOAD, "429", retry_after=5000)
    sleeps = Sleeps()
    await relay(dropbox, b"hello", sleeps=sleeps, policy=RetryPolicy(max_retry_after=60))
    assert sleeps.delays == [60]


async def test_rate_limit_in_body_only(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(APPEND, "429")  # no header: the body says retry_after 1
    sleeps = Sleeps()
    data = os.urandom(9 * MiB)
    meta = await relay(dropbox, data, sleeps=sleeps, **SESSION)
    assert_landed(dropbox, meta, data)
    assert sleeps.delays == [1]


async def test_rate_limit_text_body_uses_the_default(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(UPLOAD, "429_text")
    sleeps = Sleeps()
    await relay(dropbox, b"hello", sleeps=sleeps)
    assert sleeps.delays == [5.0]


async def test_rate_limits_have_their_own_budget(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(UPLOAD, "429", count=2 * FAST.max_attempts, retry_after=0)
    meta = await relay(dropbox, b"hello")
    assert_landed(dropbox, meta, b"hello")
    dropbox.standin.inject_fault(UPLOAD, "429", count=100, retry_after=0)
    with pytest.raises(RateLimited):
        await relay(dropbox, b"other")
    assert dropbox.standin.calls[UPLOAD] == 2 * FAST.max_attempts + 1 + 2 * FAST.max_attempts + 1


@pytest.mark.parametrize("kind", ["500", "503", "drop", "drop_after"])
@pytest.mark.parametrize("endpoint", [UPLOAD, START, APPEND, FINISH])
async def test_server_errors_are_retried(dropbox: Dropbox, kind: str, endpoint: str) -> None:
    dropbox.standin.inject_fault(endpoint, kind, count=2)
    sleeps = Sleeps()
    data = os.urandom(9 * MiB if endpoint != UPLOAD else 1000)
    meta = await relay(dropbox, data, sleeps=sleeps, **SESSION)
    assert_landed(dropbox, meta, data)
    assert len(sleeps.delays) >= 1
    assert all(0 <= delay <= FAST.max_delay for delay in sleeps.delays)


async def test_persistent_server_error_gives_up(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(UPLOAD, "500", count=100)
    sleeps = Sleeps()
    with pytest.raises(ServerError) as info:
        await relay(dropbox, b"hello", sleeps=sleeps)
    assert info.value.status == 500
    assert dropbox.standin.calls[UPLOAD] == FAST.max_attempts
    assert len(sleeps.delays) == FAST.max_attempts - 1


async def test_persistent_drops_in_a_session_give_up(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(APPEND, "drop", count=100)
    with pytest.raises(ServerError) as info:
        await relay(dropbox, os.urandom(9 * MiB), **SESSION)
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    assert dropbox.standin.calls[APPEND] == FAST.max_attempts


async def test_expired_token_is_refreshed_once(
    dropbox: Dropbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot")
    dropbox.standin.expire_access_tokens(EMAIL)
    tokens = Tokens(dropbox)
    old = tokens.current
    meta = await relay(dropbox, b"hello", tokens=tokens)
    assert_landed(dropbox, meta, b"hello")
    assert tokens.refreshes == [old]
    assert dropbox.standin.calls["token:refresh_token"] == 1
    assert "refreshing" in caplog.text
    assert old not in caplog.text
    assert tokens.current not in caplog.text


async def test_token_expiring_mid_session_is_refreshed_once(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(APPEND, "expired_token")
    tokens = Tokens(dropbox)
    data = os.urandom(13 * MiB)
    meta = await relay(dropbox, data, tokens=tokens, **SESSION)
    assert_landed(dropbox, meta, data)
    assert len(tokens.refreshes) == 1


async def test_expired_again_after_a_refresh_is_raised(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(UPLOAD, "expired_token", count=2)
    tokens = Tokens(dropbox)
    with pytest.raises(TokenExpired):
        await relay(dropbox, b"hello", tokens=tokens)
    assert len(tokens.refreshes) == 1


async def test_refresh_rejected_is_raised(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(UPLOAD, "expired_token")
    dropbox.standin.inject_fault("/oauth2/token", "invalid_grant")
    with pytest.raises(InvalidGrant):
        await relay(dropbox, b"hello")


async def test_revoked_token_is_raised_without_a_refresh(dropbox: Dropbox) -> None:
    dropbox.standin.revoke_all(EMAIL)
    tokens = Tokens(dropbox)
    with pytest.raises(InvalidToken):
        await relay(dropbox, b"hello", tokens=tokens)
    assert tokens.refreshes == []


async def test_incorrect_offset_from_a_lost_reply_is_recovered(dropbox: Dropbox) -> None:
    """The append lands but its reply is lost; the retry hears incorrect_offset."""
    dropbox.standin.inject_fault(APPEND, "drop_after")
    data = os.urandom(13 * MiB)
    source = BytesSource(data)
    offsets: list[int] = []

    async def save(progress: UploadProgress) -> None:
        offsets.append(progress.offset)

    meta = await relay(dropbox, data, source=source, save_progress=save, **SESSION)
    assert_landed(dropbox, meta, data)
    assert source.opens == [0]  # recovered from the chunk in memory
    assert offsets == [4 * MiB, 8 * MiB, 12 * MiB]
    assert dropbox.standin.calls[APPEND] == 3  # 2 appends + 1 retry


async def test_progress_two_chunks_behind_is_read_on_not_reopened(dropbox: Dropbox) -> None:
    """Saves run beside the next append, so a process that dies may leave progress two chunks
    behind Dropbox: the resumed upload reads on to Dropbox's offset, hashing, from one open."""
    data = os.urandom(13 * MiB)
    progress = await started(dropbox, data, sent=12 * MiB, offset=4 * MiB, blocks=1)
    assert await resumed(dropbox, data, progress) == [4 * MiB]
    assert dropbox.standin.calls[APPEND] == 1  # the one refused with incorrect_offset


async def test_incorrect_offset_behind_us_resends(dropbox: Dropbox) -> None:
    """Saved progress claims more than Dropbox holds: send again from Dropbox's offset."""
    data = os.urandom(13 * MiB)
    progress = await started(dropbox, data, sent=4 * MiB, offset=8 * MiB, blocks=2)
    assert await resumed(dropbox, data, progress) == [8 * MiB, 4 * MiB]


async def test_incorrect_offset_on_finish(dropbox: Dropbox) -> None:
    """Dropbox holds part of what we were about to finish with (progress saved late)."""
    data = os.urandom(6 * MiB)
    progress = await started(dropbox, data, sent=5 * MiB, offset=4 * MiB, blocks=1)
    assert await resumed(dropbox, data, progress) == [4 * MiB]
    assert dropbox.standin.calls[FINISH] == 2


# --------------------------------------------------------------------------- refusing and raising


async def test_whole_file_hash_is_checked(dropbox: Dropbox) -> None:
    """Saved digests that do not match what Dropbox holds: the stored file's hash is not ours."""
    data = os.urandom(9 * MiB)
    progress = await started(dropbox, data, sent=4 * MiB, offset=4 * MiB, blocks=0)
    progress.block_digests = ["ab" * 32]
    with pytest.raises(ContentHashMismatch, match="content_hash"):
        await relay(dropbox, data, progress=progress, **SESSION)


async def test_returned_metadata_is_checked(dropbox: Dropbox) -> None:
    """Metadata that does not describe what we sent is refused (a provider that misbehaves)."""

    class Liar(DropboxDestination):
        async def upload(
            self, access_token: str, path: str, data: bytes, *, content_hash: str
        ) -> FileMetadata:
            meta = await super().upload(access_token, path, data, content_hash=content_hash)
            return FileMetadata(
                meta.name, meta.path_display, meta.id, meta.size + 1, meta.content_hash, meta.rev
            )

    liar = Liar(dropbox.session, dropbox.base_url, dropbox.base_url)
    with pytest.raises(ContentHashMismatch, match="bytes"):
        await relay_upload(liar, Tokens(dropbox), BytesSource(b"third"), "/t", sleep=Sleeps())


@pytest.mark.parametrize("size", [2000, 9 * MiB])
async def test_max_bytes(dropbox: Dropbox, size: int) -> None:
    data = os.urandom(size)
    with pytest.raises(FileTooLarge) as info:
        await relay(dropbox, data, max_bytes=size - 1, **SESSION)
    assert info.value.limit == size - 1
    assert dropbox.standin.files(EMAIL) == {}
    meta = await relay(dropbox, data, max_bytes=size, **SESSION)
    assert_landed(dropbox, meta, data)


async def test_too_large_is_refused_before_sending_more(dropbox: Dropbox) -> None:
    with pytest.raises(FileTooLarge):
        await relay(dropbox, os.urandom(13 * MiB), max_bytes=9 * MiB, **SESSION)
    # 4 MiB in the start, 4 MiB appended; the chunk crossing 9 MiB is never sent.
    assert dropbox.standin.calls[START] == 1
    assert dropbox.standin.calls[APPEND] == 1
    assert dropbox.standin.calls[FINISH] == 0


async def test_source_errors_are_raised(dropbox: Dropbox) -> None:
    data = os.urandom(9 * MiB)
    with pytest.raises(SourceError):
        await relay(dropbox, data, source=BytesSource(data, fail_at=6 * MiB), **SESSION)
    assert dropbox.standin.files(EMAIL) == {}


async def test_api_errors_are_not_retried(dropbox: Dropbox) -> None:
    sleeps = Sleeps()
    with pytest.raises(ApiError) as info:
        await relay(dropbox, b"x", "/bad/../path", sleeps=sleeps)
    assert info.value.status == 409
    assert sleeps.delays == []
    assert dropbox.standin.calls[UPLOAD] == 1


# ---------------------------------------------------------------------------------- pipelining


class Traced(DropboxDestination):
    """Dropbox, recording when each append starts and ends and which threads hash."""

    def __init__(self, dropbox: Dropbox, events: list[tuple[str, int]]) -> None:
        super().__init__(dropbox.session, dropbox.base_url, dropbox.base_url)
        self.events = events
        self.hash_threads: set[str] = set()

    async def append(self, *args: Any, **kwargs: Any) -> None:
        offset = args[2]  # (access token, session id, offset, data)
        self.events.append(("append", offset))
        await super().append(*args, **kwargs)
        self.events.append(("appended", offset))

    def hasher(self, block_digests: Sequence[str] = ()) -> ContentHasher:
        inner = super().hasher(block_digests)
        threads = self.hash_threads

        class Seen:
            size = property(lambda _: inner.size)

            def update(self, data: bytes | bytearray | memoryview) -> None:
                if len(data) >= MiB:
                    threads.add(threading.current_thread().name)
                inner.update(data)

            def copy(self) -> ContentHasher:
                return inner.copy()

            def block_digests(self) -> list[str]:
                return inner.block_digests()

            def hexdigest(self) -> str:
                return inner.hexdigest()

        return Seen()


class TracedSource(BytesSource):
    """Records the position reached after every piece it yields."""

    def __init__(self, data: bytes, events: list[tuple[str, int]]) -> None:
        super().__init__(data)
        self.events = events

    @asynccontextmanager
    async def open(self, offset: int) -> AsyncIterator[AsyncIterator[bytes]]:
        async with super().open(offset) as pieces:

            async def traced() -> AsyncIterator[bytes]:
                position = offset
                async for piece in pieces:
                    position += len(piece)
                    self.events.append(("read", position))
                    yield piece

            yield traced()


async def test_the_next_chunk_is_read_while_this_one_goes_up(dropbox: Dropbox) -> None:
    """Pipelined: chunk n + 1 is read before the append of chunk n has returned, never more
    than two chunks ahead of what Dropbox holds; large buffers are hashed off the loop."""
    chunk = SESSION["chunk_size"]
    data = os.urandom(5 * chunk + 12345)
    events: list[tuple[str, int]] = []
    destination = Traced(dropbox, events)
    source = TracedSource(data, events)
    meta = await relay_upload(
        destination,
        Tokens(dropbox),
        source,
        "/Cliq Uploads/piped.bin",
        policy=FAST,
        sleep=Sleeps(),
        **SESSION,
    )
    assert_landed(dropbox, meta, data)
    for offset in (chunk, 2 * chunk, 3 * chunk):  # the appends with a chunk after them
        returned = events.index(("appended", offset))
        read_next = next(
            i for i, (kind, at) in enumerate(events) if kind == "read" and at > offset + chunk
        )
        assert read_next < returned, (offset, events)
    # Memory: what was read never ran more than two chunks (and a piece) ahead of Dropbox.
    held = 0
    for kind, at in events:
        if kind == "appended":
            held = max(held, at)  # the append at `at` returned: Dropbox holds at + chunk
        elif kind == "read":
            assert at - held <= 3 * chunk + source.piece, (at, held)
    assert destination.hash_threads and "MainThread" not in destination.hash_threads
