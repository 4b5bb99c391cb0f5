"""Commits of one account, one at a time, many files per commit (rclone's Dropbox batcher).

Dropbox serialises the writes of an account (its namespace lock) and refuses the overflow with
``too_many_write_operations``; its advice for many files is to upload their contents in
parallel, each through its own session closed on its last call, and to commit them together
with ``upload_session/finish_batch_v2``. :class:`AccountCommits` is that for one account in this
process:

- :meth:`AccountCommits.exclusive` is the account's commit turn: an in-process lock, then the
  cross-process one it was built with (the store's commit lock). Every commit takes it, so at
  most one commit of the account is in flight, across processes.
- :meth:`AccountCommits.upload` hands one upload its :class:`~bot.destinations.relay.Commits`.
  ``commit`` queues the upload's closed session; the queue goes as one ``finish_batch`` when
  the account's turn comes. While a commit is in flight the next entries gather (group commit:
  no timer when idle). Uploads announced with ``expect=True`` are waited for before a commit
  starts, so a batch of files claimed together is committed together, but never longer than
  ``max_hold`` after the first entry queued, nor past ``max_batch`` entries.
- Each entry's result goes back to its own upload: its metadata, or the error of its entry
  (raised as the same failure of a single commit would be, so the relay retries it the same
  way), or the error of the whole call.

:class:`CommitGroups` keeps one :class:`AccountCommits` per account while uploads use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Final

from bot.destinations.base import BatchEntry, FileDestination, FileMetadata
from bot.errors import ServerError

__all__ = ["AccountCommits", "CommitGroups"]

log = logging.getLogger(__name__)

#: The longest an entry waits for the files announced with it before its commit goes.
MAX_HOLD: Final = 1.0

Lock = Callable[[], AbstractAsyncContextManager[None]]


@dataclass(eq=False)
class _Pending:
    token: str
    entry: BatchEntry
    future: asyncio.Future[FileMetadata]
    at: float


class _Upload:
    """One upload's view of its account's commits (a :class:`~bot.destinations.relay.Commits`)."""

    def __init__(self, group: AccountCommits, *, expect: bool) -> None:
        self._group = group
        self._expected = expect
        if expect:
            group._expected += 1

    def withdraw(self) -> None:
        """This upload will queue no entry (any more): a commit need not wait for it."""
        if self._expected:
            self._expected = False
            self._group._expected -= 1
            self._group._changed.set()

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        self.withdraw()  # a commit of its own: the group's next commit must not wait for it
        return self._group.exclusive()

    async def commit(self, access_token: str, entry: BatchEntry) -> FileMetadata:
        self.withdraw()
        return await self._group.submit(access_token, entry)


@dataclass(eq=False)
class AccountCommits:
    """The commits of one account in this process; see the module doc."""

    destination: FileDestination
    lock: Lock
    max_hold: float = MAX_HOLD
    clock: Callable[[], float] = time.monotonic
    _mutex: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _queue: list[_Pending] = field(default_factory=list, init=False)
    _expected: int = field(default=0, init=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _flusher: asyncio.Task[None] | None = field(default=None, init=False)
    #: Batch commits sent, and the entries they carried (for tests and benchmarks).
    calls: int = field(default=0, init=False)
    entries: int = field(default=0, init=False)

    @property
    def idle(self) -> bool:
        return not self._queue and self._flusher is None and not self._mutex.locked()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """The account's commit turn, in this process and (through ``lock``) across them."""
        async with self._mutex, self.lock():
            yield

    @contextlib.contextmanager
    def upload(self, *, expect: bool) -> Iterator[_Upload]:
        """The commits of one upload; ``expect``: a commit waits for its entry (see above)."""
        view = _Upload(self, expect=expect)
        try:
            yield view
        finally:
            view.withdraw()

    async def submit(self, access_token: str, entry: BatchEntry) -> FileMetadata:
        """Queue ``entry`` for the account's next batch commit: its metadata, or its error."""
        future: asyncio.Future[FileMetadata] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(access_token, entry, future, self.clock()))
        self._changed.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="batch-commit")
        return await future

    async def close(self) -> None:
        """Stop a commit loop still running (shutdown); its waiting uploads get an error."""
        flusher = self._flusher
        if flusher is not None:
            flusher.cancel()
            await asyncio.wait({flusher})

    # -- the commit loop --

    async def _flush(self) -> None:
        batch: list[_Pending] = []
        try:
            while self._queue:
                await self._gather()
                batch = self._take()
                if batch:
                    await self._send(batch)
                batch = []
        finally:
            self._flusher = None
            stopped = ServerError("the batch commit was stopped")
            for pending in [*batch, *self._queue]:
                if not pending.future.done():
                    pending.future.set_exception(stopped)
            self._queue = [p for p in self._queue if not p.future.done()]

    async def _gather(self) -> None:
        """Wait for announced entries, up to ``max_hold`` after the oldest queued one."""
        limit = self.destination.max_batch
        while self._queue and self._expected > 0 and len(self._queue) < limit:
            left = self._queue[0].at + self.max_hold - self.clock()
            if left <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def _take(self) -> list[_Pending]:
        """The next batch: queued entries sent with the oldest one's token, up to the limit."""
        self._queue = [p for p in self._queue if not p.future.done()]  # callers that left
        if not self._queue:
            return []
        token = self._queue[0].token
        batch = [p for p in self._queue if p.token == token][: self.destination.max_batch]
        taken = {id(p) for p in batch}
        self._queue = [p for p in self._queue if id(p) not in taken]
        return batch

    async def _send(self, batch: list[_Pending]) -> None:
        try:
            async with self.exclusive():
                self.calls += 1
                self.entries += len(batch)
                results = await self.destination.finish_batch(
                    batch[0].token, [p.entry for p in batch]
                )
        except Exception as exc:  # the whole call: each upload decides (refresh, wait, ...)
            log.info("a batch commit of %s files failed: %s", len(batch), type(exc).__name__)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, FileMetadata):
                pending.future.set_result(result)
            else:
                pending.future.set_exception(result)


@dataclass(eq=False)
class CommitGroups:
    """One :class:`AccountCommits` per account key while uploads use it.

    ``lock(key)`` is the cross-process commit lock of account ``key``.
    """

    lock: Callable[[str], AbstractAsyncContextManager[None]]
    max_hold: float = MAX_HOLD
    _groups: dict[str, AccountCommits] = field(default_factory=dict, init=False)
    _users: dict[str, int] = field(default_factory=dict, init=False)

    @contextlib.contextmanager
    def using(self, key: str, destination: FileDestination) -> Iterator[AccountCommits]:
        group = self._groups.get(key)
        if group is None:
            group = AccountCommits(destination, lambda: self.lock(key), max_hold=self.max_hold)
            self._groups[key] = group
        self._users[key] = self._users.get(key, 0) + 1
        try:
            yield group
        finally:
            self._users[key] -= 1
            if self._users[key] == 0 and group.idle:
                del self._users[key]
                del self._groups[key]

    async def close(self) -> None:
        for group in list(self._groups.values()):
            await group.close()
