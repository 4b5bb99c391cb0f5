"""Group commit for a store whose round trip is expensive (STYLE: "Smart batching").

While one write to a collection is in flight, the next ones queue; when it returns, everything
queued goes together as one call — ``insert_many(ordered=False)`` (:class:`InsertBatcher`) or
``bulk_write(ordered=False)`` (:class:`BulkBatcher`). There is no timer: on an idle collection a
write is sent at once by its own caller, so nothing is added to its latency; under load the
number of calls per second stays about one per round trip whatever the arrival rate.

How a batch is sent (:class:`Coalescer`): the caller that finds the collection idle becomes the
*leader* and sends its write at once. Callers that arrive meanwhile wait in a queue. When the
call returns, the leader delivers each result and hands the lead to the first caller still
waiting, which sends everything queued by then (at most ``max_batch``) as the next call, and so
on until the queue is empty. Each call runs in its leader's task, so under the leader's deadline
(``pymongo.timeout``, :meth:`storage.base.Store.deadline`): no background task, nothing to stop.

Results go to each caller on its own: a duplicate key is the answer of the caller whose document
it was (``False`` from :meth:`InsertBatcher.insert`), another per-document error is raised to
that caller only (:class:`pymongo.errors.WriteError`). A failure of the whole call — the store
does not answer, the leader was cancelled — is raised to every caller of that batch; as with a
single write that times out, the write may or may not have happened, so callers must be able to
try again (every write of the event path is keyed, so trying again is safe).

``ordered=False`` means the writes of one batch may be applied in any order: do not batch two
writes to one document whose order matters.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, WriteError
from pymongo.operations import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne

from bot.errors import StoreUnavailable

__all__ = ["BulkBatcher", "Coalescer", "InsertBatcher", "WriteModel"]

T = TypeVar("T")
R = TypeVar("R")

#: What one call returns: one result (or the error of that operation alone) per operation.
Send = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]
WriteModel = InsertOne[Any] | UpdateOne | UpdateMany | ReplaceOne[Any] | DeleteOne | DeleteMany

_DUPLICATE_KEY = 11000
_MAX_BATCH = 500
_LEAD: Any = object()  # the "your turn to send" token a waiting caller receives


class _Entry(Generic[T]):
    __slots__ = ("future", "ops")

    def __init__(self, ops: list[T], future: asyncio.Future[Any]) -> None:
        self.ops = ops
        self.future = future


class Coalescer(Generic[T, R]):
    """Operations submitted while a call is in flight go together as the next call."""

    def __init__(self, send: Send[T, R], *, max_batch: int = _MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._send = send
        self._max = max_batch
        self._queue: deque[_Entry[T]] = deque()
        self._busy = False
        #: Calls sent and operations submitted so far (for tests and benchmarks).
        self.calls = 0
        self.submitted = 0

    async def submit(self, op: T) -> R:
        """Send ``op`` with whatever else is waiting; its own result, or its own error."""
        (result,) = await self.submit_many([op])
        if isinstance(result, Exception):
            raise result
        return result

    async def submit_many(self, ops: Sequence[T]) -> list[R | Exception]:
        """Send ``ops`` together (in one call, unless they are more than ``max_batch``), with
        whatever else is waiting; one result or error per operation, in order."""
        if not ops:
            return []
        entry: _Entry[T] = _Entry(list(ops), asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        self.submitted += len(entry.ops)
        if self._busy:
            try:
                got = await entry.future
            except asyncio.CancelledError:
                self._left(entry)
                raise
            if got is not _LEAD:
                results: list[R | Exception] = got
                return results
        self._busy = True
        return await self._lead(entry)

    def _take_batch(self, me: _Entry[T]) -> list[_Entry[T]]:
        batch: list[_Entry[T]] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0].ops) <= self._max):
            entry = self._queue.popleft()
            if entry is me or not entry.future.done():  # skip callers cancelled while waiting
                batch.append(entry)
                size += len(entry.ops)
        return batch

    async def _lead(self, me: _Entry[T]) -> list[R | Exception]:
        batch = self._take_batch(me)
        ops = [op for entry in batch for op in entry.ops]
        self.calls += 1
        try:
            results = list(await self._send(ops))
            if len(results) != len(ops):
                raise RuntimeError(f"{len(results)} results for a batch of {len(ops)}")
        except BaseException as exc:
            for entry in batch:
                if entry is not me and not entry.future.done():
                    entry.future.set_exception(_for_the_others(exc))
            self._hand_off()
            raise
        mine: list[R | Exception] = []
        start = 0
        for entry in batch:
            part, start = results[start : start + len(entry.ops)], start + len(entry.ops)
            if entry is me:
                mine = part
            elif not entry.future.done():
                entry.future.set_result(part)
        self._hand_off()
        return mine

    def _hand_off(self) -> None:
        """The next caller still waiting sends the next batch; none waiting: idle again."""
        while self._queue:
            entry = self._queue[0]
            if entry.future.done():  # cancelled while waiting
                self._queue.popleft()
                continue
            entry.future.set_result(_LEAD)
            return
        self._busy = False

    def _left(self, entry: _Entry[T]) -> None:
        """A waiting caller was cancelled: if the lead had just been handed to it, pass it on."""
        future = entry.future
        if future.cancelled() or not future.done() or future.exception() is not None:
            return
        if future.result() is _LEAD:
            self._queue.remove(entry)
            self._hand_off()


def _for_the_others(exc: BaseException) -> Exception:
    """What the other callers of a failed batch get: the store's error, or — when the leader's
    task was cancelled — :class:`~bot.errors.StoreUnavailable` (the write's fate is unknown)."""
    if isinstance(exc, Exception):
        return exc
    return StoreUnavailable("the batched write it went with was cancelled")


def _per_operation(count: int, exc: BulkWriteError) -> dict[int, dict[str, Any]]:
    """The write errors of a bulk call by operation index; write-concern errors (none under
    the default ``w:1``) are the whole call's, so the call's exception is raised."""
    details = exc.details or {}
    if details.get("writeConcernErrors"):
        raise exc
    errors = {int(err["index"]): err for err in details.get("writeErrors", [])}
    if any(index >= count for index in errors):
        raise exc
    return errors


def _write_error(err: dict[str, Any]) -> WriteError:
    return WriteError(str(err.get("errmsg", "write error")), err.get("code"), err)


class InsertBatcher:
    """Coalesced ``insert_many(ordered=False)`` into one collection.

    :meth:`insert` answers ``True`` (inserted) or ``False`` (a document with that ``_id`` or
    unique key exists already); any other error of that document is raised to its caller.
    """

    def __init__(
        self, collection: AsyncCollection[dict[str, Any]], *, max_batch: int = _MAX_BATCH
    ) -> None:
        self._col = collection
        self.coalescer: Coalescer[dict[str, Any], bool] = Coalescer(self._send, max_batch=max_batch)

    async def insert(self, doc: dict[str, Any]) -> bool:
        return await self.coalescer.submit(doc)

    async def insert_many(self, docs: Sequence[dict[str, Any]]) -> list[bool | Exception]:
        """``docs`` in one call (with whatever else waits): per document ``True``, ``False``
        (duplicate key) or that document's own error, in order."""
        return await self.coalescer.submit_many(docs)

    async def _send(self, docs: list[dict[str, Any]]) -> list[bool | Exception]:
        try:
            await self._col.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = _per_operation(len(docs), exc)
            results: list[bool | Exception] = []
            for index in range(len(docs)):
                err = errors.get(index)
                if err is None:
                    results.append(True)
                elif err.get("code") == _DUPLICATE_KEY:
                    results.append(False)
                else:
                    results.append(_write_error(err))
            return results
        return [True] * len(docs)


class BulkBatcher:
    """Coalesced ``bulk_write(ordered=False)`` of write models (``UpdateOne``, ...) into one
    collection. :meth:`write` returns once its operation is applied, or raises that operation's
    own error. The server's bulk answer counts matches for the whole call only, so a caller
    that needs to know whether *its* filter matched must write on its own.
    """

    def __init__(
        self, collection: AsyncCollection[dict[str, Any]], *, max_batch: int = _MAX_BATCH
    ) -> None:
        self._col = collection
        self.coalescer: Coalescer[WriteModel, None] = Coalescer(self._send, max_batch=max_batch)

    async def write(self, op: WriteModel) -> None:
        await self.coalescer.submit(op)

    async def _send(self, ops: list[WriteModel]) -> list[None | Exception]:
        try:
            await self._col.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = _per_operation(len(ops), exc)
            return [
                _write_error(errors[index]) if index in errors else None
                for index in range(len(ops))
            ]
        return [None] * len(ops)
