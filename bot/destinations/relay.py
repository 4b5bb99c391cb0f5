"""Relay a file of unknown size into a file destination: resumable, retrying, memory-bounded.

:func:`relay_upload` reads a :class:`ByteSource` once, front to back, and writes it through a
:class:`~bot.destinations.base.FileDestination` (Dropbox: :mod:`bot.destinations.dropbox`):

* It reads up to ``single_upload_limit + 1`` bytes. A file that ends within the limit goes up in
  one ``upload`` request (Dropbox ``/2/files/upload``), retried as a unit.
* Anything larger goes through an upload session. ``start`` carries the first chunk, every
  ``append`` carries exactly ``chunk_size`` bytes (a multiple of the destination's
  ``block_size``: 4 MiB for Dropbox), and ``finish`` carries the rest (possibly nothing). Each
  call sends the content hash of its own bytes (that is what Dropbox checks on upload-session
  calls); the hash of the whole file is computed on the way and compared with the one in the
  returned metadata. The relay is pipelined: while chunk *n* goes up, chunk *n + 1* is read
  from the source, so at most two chunks (plus one source piece) are in memory. Hashing a large
  buffer runs in a worker thread (``hashlib`` releases the GIL there), not on the event loop.
* Many files for one account (``batch_limit`` and ``commits`` given): a file that ends within
  ``batch_limit`` goes up through its own session closed on that one call (``start`` with
  ``close``) and is committed with the account's other files by ``commits.commit``
  (:class:`Commits`, :mod:`bot.destinations.batch`: one ``finish_batch`` for many files). An
  entry's failure is handled as the same failure of a single commit would be (a 429 waits, a
  lost session starts over).
* ``commits.exclusive()`` is held around every other commit (``upload``, ``finish``): commits of
  one account go one at a time, while content calls (``start``, ``append``) need not.
* After every committed chunk, :class:`UploadProgress` (session id, offset, and the digest of
  each block before the offset) is updated and handed to ``save_progress``, which runs while
  the next chunk goes up (one save at a time, in order, each awaited before the next and before
  the commit; a failed save stops the upload). A new process passes the saved progress back
  in: the source is re-opened at the offset, hashing resumes from the block digests, and the
  same session continues (reading on to where the destination says it stands).

Retries, per request:

* :class:`~bot.errors.TokenExpired`: ``tokens.refreshed_token(rejected)`` once, then the same
  request again; an expiry straight after a refresh is raised.
* :class:`~bot.errors.RateLimited`: wait ``retry_after`` (capped at
  ``RetryPolicy.max_retry_after``) and retry. These waits do not use up the 5xx attempts; they
  have their own budget of ``2 * max_attempts`` per request, since a 429 is the service telling
  us exactly when to come back rather than a sign that something is broken.
* :class:`~bot.errors.ServerError` (5xx, lost connection, timeout): exponential backoff with full
  jitter (:func:`bot.retry.backoff`), at most ``max_attempts`` attempts, then the last error is
  raised.
* :class:`~bot.errors.IncorrectOffset`: the destination holds ``correct_offset`` bytes of the
  session (typically a chunk whose reply was lost did arrive). The relay moves to that offset,
  keeping the hash right: from the chunk still in memory when it can, by reading on (hashing,
  not sending) when the offset lies further ahead, otherwise (behind us) by re-opening the
  source at the last block boundary it has a digest for and re-hashing up to
  ``correct_offset``.
* A session the destination no longer knows (``FileDestination.session_gone``; Dropbox:
  ``not_found``, e.g. expired after 7 days, or ``closed``): start over with a new session from
  offset 0.
* Anything else (``InvalidToken``, ``ApiError``, ``ContentHashMismatch``, ``SourceError``,
  ``FileTooLarge``) is raised.

The metadata the destination returns is checked: its ``content_hash`` and ``size`` must be ours,
else
:class:`~bot.errors.ContentHashMismatch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

from bot.destinations.base import BatchEntry, ContentHasher, FileDestination, FileMetadata
from bot.errors import (
    ApiError,
    ContentHashMismatch,
    FileTooLarge,
    IncorrectOffset,
    RateLimited,
    ServerError,
    SourceError,
    TokenExpired,
)
from bot.retry import backoff

__all__ = [
    "ByteSource",
    "Commits",
    "RetryPolicy",
    "SharedTokens",
    "TokenSource",
    "UploadProgress",
    "relay_upload",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How many times one upload may start over with a new session before giving up.
_MAX_SESSION_RESTARTS: Final = 3
#: How many ``incorrect_offset`` corrections in a row (without a chunk committed in between).
_MAX_OFFSET_CORRECTIONS: Final = 3
#: Buffers at least this large are hashed in a worker thread; smaller ones on the loop.
_THREAD_HASH_BYTES: Final = 1024 * 1024


class TokenSource(Protocol):
    """The access token of one authorization."""

    async def access_token(self) -> str:
        """The current access token (may refresh proactively)."""
        ...

    async def refreshed_token(self, rejected: str) -> str:
        """A fresh token after ``rejected`` came back expired.

        Raises :class:`~bot.errors.InvalidGrant` or :class:`~bot.errors.NotAuthorized` when no
        fresh token can be had.
        """
        ...


class SharedTokens:
    """One authorization's :class:`TokenSource` for many uploads at once (a batch of files).

    The access token is read once and shared; when it comes back expired, one refresh serves
    every upload that was using it (the others get the refreshed token). A token that stops
    working is then met by each upload as it would be alone.
    """

    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def access_token(self) -> str:
        async with self._lock:
            if self._token is None:
                self._token = await self._tokens.access_token()
            return self._token

    async def refreshed_token(self, rejected: str) -> str:
        async with self._lock:
            if self._token is None or self._token == rejected:
                self._token = await self._tokens.refreshed_token(rejected)
            return self._token


class Commits(Protocol):
    """Where an upload's commits go: those of one account one at a time."""

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        """Held around a commit made alone (``upload``, ``finish``)."""
        ...

    async def commit(self, access_token: str, entry: BatchEntry) -> FileMetadata:
        """Commit a closed session with the account's other files: its metadata, or the
        error of its entry (or of the whole call) raised."""
        ...


class ByteSource(Protocol):
    """A re-openable file: ``open(offset)`` yields its bytes from ``offset`` in any piece sizes.

    May raise :class:`~bot.errors.SourceError`.
    """

    def open(self, offset: int) -> AbstractAsyncContextManager[AsyncIterator[bytes]]: ...


@dataclass
class UploadProgress:
    """Where an upload session stands; stored (``to_dict``) so another process can resume it."""

    session_id: str | None = None
    #: Bytes the destination has committed in the session.
    offset: int = 0
    #: Hex digest of each complete block before ``offset`` (Dropbox: SHA-256 of 4 MiB).
    block_digests: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "offset": self.offset,
            "block_digests": list(self.block_digests),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadProgress:
        session_id = data.get("session_id")
        offset = data.get("offset", 0)
        digests = data.get("block_digests", [])
        if session_id is not None and not isinstance(session_id, str):
            raise ValueError("session_id must be a string or None")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError("offset must be a non-negative integer")
        if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
            raise ValueError("block_digests must be a list of hex strings")
        return cls(session_id=session_id, offset=offset, block_digests=list(digests))


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per request for 5xx/lost connections, and how long to wait between them."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt + 1``: exponential with full jitter."""
        return backoff(attempt, base=self.base_delay, cap=self.max_delay, jitter=1.0)


async def relay_upload(
    destination: FileDestination,
    tokens: TokenSource,
    source: ByteSource,
    path: str,
    *,
    progress: UploadProgress | None = None,
    save_progress: Callable[[UploadProgress], Awaitable[None]] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    max_bytes: int | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so sharing it is safe
    chunk_size: int = 8 * 1024 * 1024,
    single_upload_limit: int = 32 * 1024 * 1024,
    commits: Commits | None = None,
    batch_limit: int = 0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> FileMetadata:
    """Upload ``source`` to ``path`` (``mode=add``, ``autorename=true``); see the module doc.

    ``progress`` is updated in place after every committed chunk, and a copy of it goes to
    ``save_progress`` (which runs beside the next chunk's append: one save at a time, in
    order); pass a saved one back to resume its session. ``on_bytes`` gets the total
    bytes committed so far. ``max_bytes`` is enforced while reading, before more is sent.
    ``commits`` serialises the account's commits; with ``batch_limit``, files up to that size
    are committed together through it.
    """
    block = destination.block_size
    if chunk_size <= 0 or chunk_size % block:
        raise ValueError(f"chunk_size must be a positive multiple of {block}")
    if single_upload_limit < 0:
        raise ValueError("single_upload_limit must not be negative")
    if batch_limit < 0 or (batch_limit and commits is None):
        raise ValueError("batch_limit needs commits, and must not be negative")
    if policy.max_attempts < 1:
        raise ValueError("policy.max_attempts must be at least 1")
    relay = _Relay(
        destination=destination,
        tokens=tokens,
        source=source,
        path=path,
        progress=progress if progress is not None else UploadProgress(),
        save_progress=save_progress,
        on_bytes=on_bytes,
        max_bytes=max_bytes,
        policy=policy,
        chunk_size=chunk_size,
        single_upload_limit=single_upload_limit,
        commits=commits,
        batch_limit=batch_limit,
        sleep=sleep,
    )
    try:
        return await relay.run()
    finally:
        await relay.close()


class _Reader:
    """Reads exact amounts from a source iterator; knows its absolute position."""

    def __init__(self, pieces: AsyncIterator[bytes], position: int, max_bytes: int | None) -> None:
        self._pieces = pieces
        self._pending: deque[memoryview] = deque()
        self._pending_len = 0
        self._fetched_to = position  # absolute offset just past the last byte taken from _pieces
        self._max_bytes = max_bytes
        self._eof = False
        self.position = position  # absolute offset of the next byte read() returns

    async def _fetch(self) -> bool:
        """Pull one more piece into ``_pending``; False at the end of the source."""
        if self._eof:
            return False
        while True:
            try:
                piece = await anext(self._pieces)
            except StopAsyncIteration:
                self._eof = True
                return False
            if piece:
                break
        self._fetched_to += len(piece)
        if self._max_bytes is not None and self._fetched_to > self._max_bytes:
            raise FileTooLarge(self._max_bytes)
        self._pending.append(memoryview(piece).cast("B"))
        self._pending_len += len(piece)
        return True

    def _take(self, n: int) -> list[memoryview]:
        taken: list[memoryview] = []
        while n > 0 and self._pending:
            head = self._pending[0]
            if len(head) <= n:
                taken.append(self._pending.popleft())
                n -= len(head)
            else:
                taken.append(head[:n])
                self._pending[0] = head[n:]
                n = 0
        got = sum(len(view) for view in taken)
        self._pending_len -= got
        self.position += got
        return taken

    async def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer only at the end of the source."""
        while self._pending_len < n and await self._fetch():
            pass
        taken = self._take(n)
        if len(taken) == 1:
            whole = taken[0].obj
            if isinstance(whole, bytes) and len(whole) == len(taken[0]):
                return whole  # a whole piece from the source: no copy
        return b"".join(taken)

    async def peek_ends_within(self, limit: int) -> bool:
        """Buffer up to ``limit + 1`` bytes; True if the source ends within ``limit``."""
        while self._pending_len <= limit:
            if not await self._fetch():
                return True
        return False

    async def hash_through(self, n: int, hasher: ContentHasher, title: str) -> None:
        """Read ``n`` bytes into ``hasher`` without keeping them (``title`` holds them)."""
        while n > 0:
            if not self._pending and not await self._fetch():
                raise SourceError(
                    f"the file ended before the offset {title} reports; did it change?"
                )
            for view in self._take(min(n, len(self._pending[0]))):
                hasher.update(view)
                n -= len(view)

    def unread(self, data: bytes) -> None:
        """Put ``data`` (the bytes just before ``position``) back in front."""
        if data:
            self._pending.appendleft(memoryview(data).cast("B"))
            self._pending_len += len(data)
            self.position -= len(data)


class _SessionGone(Exception):
    """The destination no longer knows the upload session (expired, closed): start over."""

    def __init__(self, error: ApiError) -> None:
        self.error = error
        super().__init__(str(error))


@dataclass(eq=False)
class _Relay:
    """One upload: what :func:`relay_upload` was given, and where the upload stands."""

    destination: FileDestination
    tokens: TokenSource
    source: ByteSource
    path: str
    progress: UploadProgress
    save_progress: Callable[[UploadProgress], Awaitable[None]] | None
    on_bytes: Callable[[int], None] | None
    max_bytes: int | None
    policy: RetryPolicy
    chunk_size: int
    single_upload_limit: int
    commits: Commits | None
    batch_limit: int
    sleep: Callable[[float], Awaitable[None]]
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack, init=False)
    _reader: _Reader | None = field(default=None, init=False)
    #: The save of the last committed chunk's progress, while it runs beside the next append.
    _saving: asyncio.Future[None] | None = field(default=None, init=False)
    #: The whole file's hash, up to ``progress.offset`` (or what is being tried beyond it).
    _hasher: ContentHasher = field(init=False)

    def __post_init__(self) -> None:
        self._hasher = self.destination.hasher()

    async def close(self) -> None:
        self._reader = None
        await self._stack.aclose()
        saving, self._saving = self._saving, None
        if saving is not None:  # an error is on its way already; let the write end, not cut it
            await asyncio.wait({saving})
            if not saving.cancelled():
                saving.exception()

    async def _open(self, offset: int) -> _Reader:
        await self.close()
        self._stack = AsyncExitStack()
        pieces = await self._stack.enter_async_context(self.source.open(offset))
        self._reader = _Reader(pieces, offset, self.max_bytes)
        return self._reader

    async def run(self) -> FileMetadata:
        if self.progress.session_id is not None:
            logger.info(
                "resuming upload session at offset %s (%s blocks hashed)",
                self.progress.offset,
                len(self.progress.block_digests),
            )
            await self._reposition(self.progress.offset)
            return await self._upload_session()
        reader = await self._open(0)
        if self.batch_limit and await reader.peek_ends_within(self.batch_limit):
            return await self._upload_batched(await reader.read(self.batch_limit))
        if await reader.peek_ends_within(self.single_upload_limit):
            return await self._upload_single(await reader.read(self.single_upload_limit))
        return await self._upload_session()

    # -- single request ------------------------------------------------------------------------

    async def _upload_single(self, data: bytes) -> FileMetadata:
        expected = await self._hash_of(data)
        path = self.path

        def upload(token: str) -> Awaitable[FileMetadata]:
            return self.destination.upload(token, path, data, content_hash=expected)

        async with self._exclusive():
            meta = await self._call("upload", upload)
        self._check(meta, expected, len(data))
        self._report(len(data))
        return meta

    # -- one of many files, committed together ---------------------------------------------------

    async def _upload_batched(self, data: bytes) -> FileMetadata:
        """The whole file in a session closed on its one call, committed by ``commits``.

        Once the bytes are up, the source is closed and the bytes dropped while the commit is
        waited for (a batch may wait for many files); a lost session reads them again.
        """
        commits = self.commits
        assert commits is not None
        size, expected = len(data), await self._hash_of(data)
        restarts = 0
        while True:
            entry = BatchEntry(await self._start_closed(data, expected), size, self.path)
            await self.close()
            del data

            def commit(token: str, entry: BatchEntry = entry) -> Awaitable[FileMetadata]:
                return commits.commit(token, entry)

            try:
                meta = await self._call_in_session("upload_session/finish_batch", commit)
            except _SessionGone as gone:
                restarts += 1
                if restarts > _MAX_SESSION_RESTARTS:
                    raise gone.error from None
                logger.warning("a batch commit lost its session (%s); again", gone.error.summary)
                data = await (await self._open(0)).read(size + 1)
                continue
            self._check(meta, expected, size)
            self._report(size)
            return meta

    async def _start_closed(self, data: bytes, content_hash: str) -> str:
        """A session holding all of ``data``, closed: its id."""

        def start(token: str) -> Awaitable[str]:
            return self.destination.start(token, data, content_hash=content_hash, close=True)

        return await self._call("upload_session/start", start)

    # -- upload session --------------------------------------------------------------------------

    async def _upload_session(self) -> FileMetadata:
        restarts = 0
        while True:
            try:
                return await self._session_pass()
            except _SessionGone as gone:
                restarts += 1
                if restarts > _MAX_SESSION_RESTARTS:
                    raise gone.error from None
                logger.warning(
                    "upload session is gone (%s); starting over (%s of %s)",
                    gone.error.summary,
                    restarts,
                    _MAX_SESSION_RESTARTS,
                )
                self.progress.session_id = None
                self.progress.offset = 0
                self.progress.block_digests = []
                self._hasher = self.destination.hasher()
                await self._open(0)
                await self._save()

    async def _session_pass(self) -> FileMetadata:
        """Send chunks from the current offset to the end; ``_SessionGone`` to start over.

        Pipelined: while a chunk is sent, the next one is read and hashed (``ahead``), and the
        progress of the chunk before is saved; a correction puts what was read ahead back into
        the reader first.
        """
        ahead: asyncio.Task[tuple[bytes, ContentHasher]] | None = None
        try:
            corrections = 0
            while True:
                reader = self._reader
                assert reader is not None
                offset = self.progress.offset
                # Up to the next multiple of chunk_size: exactly chunk_size unless an offset
                # correction left us off the grid, in which case this re-aligns.
                want = self.chunk_size - offset % self.chunk_size
                if ahead is not None:
                    (chunk, chunk_hasher), ahead = await ahead, None
                else:
                    chunk, chunk_hasher = await self._read_hashed(reader, want)
                last = len(chunk) < want
                if not last:  # the next chunk starts on the grid: read it while this one goes
                    ahead = asyncio.create_task(self._read_hashed(reader, self.chunk_size))
                try:
                    if last:
                        return await self._finish(offset, chunk, chunk_hasher)
                    await self._append(offset, chunk, chunk_hasher)
                except IncorrectOffset as exc:
                    corrections += 1
                    if corrections > _MAX_OFFSET_CORRECTIONS:
                        raise
                    if ahead is not None:
                        reader.unread((await ahead)[0])
                        ahead = None
                    await self._correct(offset, chunk, exc.correct_offset)
                    continue
                corrections = 0
                await self._commit(offset + len(chunk))
        finally:
            if ahead is not None:  # a read no longer wanted: stopped, its outcome dropped
                ahead.cancel()
                await asyncio.wait({ahead})
                if not ahead.cancelled():
                    ahead.exception()

    async def _read_hashed(self, reader: _Reader, want: int) -> tuple[bytes, ContentHasher]:
        """The next ``want`` bytes (fewer at the end), and the hash of them alone."""
        chunk = await reader.read(want)
        chunk_hasher = self.destination.hasher()
        await _update(chunk_hasher, chunk)
        return chunk, chunk_hasher

    async def _append(self, offset: int, chunk: bytes, chunk_hasher: ContentHasher) -> None:
        """Send ``chunk`` at ``offset`` (starting the session if needed); hash it in on success.
        ``chunk_hasher`` holds the hash of ``chunk`` alone."""
        progress = self.progress
        session_id = progress.session_id
        chunk_hash = chunk_hasher.hexdigest()
        if session_id is None:

            def start(token: str) -> Awaitable[str]:
                return self.destination.start(token, chunk, content_hash=chunk_hash)

            progress.session_id = await self._call("upload_session/start", start)
            logger.debug("started an upload session")
        else:

            def append(token: str) -> Awaitable[None]:
                return self.destination.append(
                    token, session_id, offset, chunk, content_hash=chunk_hash
                )

            await self._call_in_session("upload_session/append_v2", append)
        await self._hash_in(chunk, chunk_hasher)

    async def _hash_in(self, chunk: bytes, chunk_hasher: ContentHasher) -> None:
        """Add a sent chunk to the whole file's hash, reusing its block digests when aligned."""
        block = self.destination.block_size
        if self._hasher.size % block == 0 and len(chunk) % block == 0:
            digests = self._hasher.block_digests() + chunk_hasher.block_digests()
            self._hasher = self.destination.hasher(digests)
        else:
            await _update(self._hasher, chunk)

    async def _finish(self, offset: int, chunk: bytes, own: ContentHasher) -> FileMetadata:
        """Commit the session with ``chunk`` (hashed alone in ``own``) as its last bytes."""
        progress = self.progress
        if progress.session_id is None:
            # The whole file is shorter than one chunk (only with a tiny single_upload_limit).
            await self._append(0, b"", self.destination.hasher())
        session_id = progress.session_id
        assert session_id is not None
        await self._saved()  # the progress before: a save that failed stops us here
        whole = self._hasher.copy()  # self._hasher stays at `offset` in case of a correction
        await _update(whole, chunk)
        # The destination checks the finish call's content_hash against the bytes of that call;
        # the whole file's hash comes back in the metadata, checked below.
        expected, chunk_hash = whole.hexdigest(), own.hexdigest()
        total = offset + len(chunk)
        path = self.path

        def finish(token: str) -> Awaitable[FileMetadata]:
            return self.destination.finish(
                token, session_id, offset, chunk, path=path, content_hash=chunk_hash
            )

        async with self._exclusive():
            meta = await self._call_in_session("upload_session/finish", finish)
        self._check(meta, expected, total)
        self._report(total)
        return meta

    async def _commit(self, offset: int) -> None:
        """The destination holds ``offset`` bytes: save it, beside the next append.

        One save at a time, in order: the one before must have ended (its error is raised
        here). So the saved progress is at most two chunks behind what the destination holds,
        which a resumed upload reaches by reading on (:meth:`_correct`).
        """
        progress = self.progress
        progress.offset = offset
        progress.block_digests = self._hasher.block_digests()
        self._report(offset)
        await self._saved()
        if self.save_progress is not None:
            snapshot = UploadProgress(progress.session_id, offset, list(progress.block_digests))
            self._saving = asyncio.ensure_future(self.save_progress(snapshot))

    async def _saved(self) -> None:
        """Wait for the save still running, if any; raise its error."""
        saving, self._saving = self._saving, None
        if saving is not None:
            await saving

    async def _correct(self, offset: int, chunk: bytes, target: int) -> None:
        """Move to ``target``, the offset the destination holds, with the hash kept right."""
        logger.warning(
            "%s holds %s bytes of the session, not %s; continuing",
            self.destination.title,
            target,
            offset,
        )
        reader = self._reader
        assert reader is not None
        if offset < target <= offset + len(chunk):
            # The common case: the chunk arrived but its reply was lost (or a resumed upload's
            # progress was saved a chunk late). Those bytes are still in memory.
            await _update(self._hasher, memoryview(chunk)[: target - offset])
            reader.unread(chunk[target - offset :])
            await self._commit(target)
            return
        if target > offset + len(chunk):
            # Further on (progress saved two chunks late): read on to there, hashing.
            await _update(self._hasher, chunk)
            await reader.hash_through(
                target - offset - len(chunk), self._hasher, self.destination.title
            )
            await self._commit(target)
            return
        await self._reposition(target)
        await self._save()

    async def _reposition(self, target: int) -> None:
        """Re-open the source so that the hasher covers ``[0, target)`` and reading goes on there.

        Hashing resumes from the last saved block digest at or before ``target``; the bytes from
        there up to ``target`` are read again and hashed, not sent.
        """
        progress = self.progress
        block = self.destination.block_size
        blocks = min(len(progress.block_digests), target // block)
        start = blocks * block
        self._hasher = self.destination.hasher(progress.block_digests[:blocks])
        reader = await self._open(start)
        await reader.hash_through(target - start, self._hasher, self.destination.title)
        progress.offset = target
        progress.block_digests = self._hasher.block_digests()
        self._report(target)

    # -- plumbing ----------------------------------------------------------------------------------

    def _exclusive(self) -> AbstractAsyncContextManager[None]:
        """The account's commit turn (``commits.exclusive()``), or nothing to wait for."""
        if self.commits is None:
            return contextlib.nullcontext()
        return self.commits.exclusive()

    async def _save(self) -> None:
        """Save the progress now (after the save still running, if any)."""
        await self._saved()
        if self.save_progress is not None:
            await self.save_progress(self.progress)

    def _report(self, committed: int) -> None:
        if self.on_bytes is not None:
            self.on_bytes(committed)

    async def _hash_of(self, data: bytes) -> str:
        hasher = self.destination.hasher()
        await _update(hasher, data)
        return hasher.hexdigest()

    def _check(self, meta: FileMetadata, expected: str, size: int) -> None:
        title = self.destination.title
        if meta.content_hash != expected:
            raise ContentHashMismatch(
                f"{title} stored content_hash {meta.content_hash}, expected {expected}"
            )
        if meta.size != size:
            raise ContentHashMismatch(f"{title} stored {meta.size} bytes, expected {size}")

    async def _call_in_session(self, what: str, op: Callable[[str], Awaitable[T]]) -> T:
        try:
            return await self._call(what, op)
        except ApiError as exc:
            if self.destination.session_gone(exc):
                raise _SessionGone(exc) from exc
            raise

    async def _call(self, what: str, op: Callable[[str], Awaitable[T]]) -> T:
        """One request with the retry rules of the module doc."""
        policy = self.policy
        server_attempts = 0
        rate_limited = 0
        just_refreshed = False
        token = await self.tokens.access_token()
        while True:
            try:
                return await op(token)
            except TokenExpired:
                if just_refreshed:
                    raise
                logger.info("%s: access token expired; refreshing", what)
                token = await self.tokens.refreshed_token(token)
                just_refreshed = True
                continue
            except RateLimited as exc:
                rate_limited += 1
                if rate_limited > 2 * policy.max_attempts:
                    raise
                delay = min(max(exc.retry_after, 0.0), policy.max_retry_after)
                logger.warning("%s: rate limited; retrying in %.1f s", what, delay)
            except ServerError as exc:
                server_attempts += 1
                if server_attempts >= policy.max_attempts:
                    raise
                delay = policy.backoff(server_attempts - 1)
                logger.warning(
                    "%s: %s; retry %s of %s in %.2f s",
                    what,
                    exc,
                    server_attempts,
                    policy.max_attempts - 1,
                    delay,
                )
            just_refreshed = False
            await self.sleep(delay)


async def _update(hasher: ContentHasher, data: bytes | memoryview) -> None:
    """``hasher.update(data)``; a large buffer in a worker thread (``hashlib`` drops the GIL)."""
    if len(data) >= _THREAD_HASH_BYTES:
        await asyncio.to_thread(hasher.update, data)
    else:
        hasher.update(data)
