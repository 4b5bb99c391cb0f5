"""The records that answer a repeated delivery (CONTRACT §4, §7.6), written once per delivery.

A delivery is acknowledged with **one durable write**, after its handler ran, carrying the reply:

- a file message: its **upload jobs** are its dedupe record. The handler does not write them:
  the intake *stages* each job on the open :class:`Delivery` (:meth:`Delivery.stage_job`), and
  :meth:`ProcessedEvents.commit` inserts them all, each carrying the event identity (``event``)
  and the stored reply (``reply``), in one coalesced ``insert_many`` (``storage/batching.py``).
  A job's ``_id`` is ``{sender}:{attachment id}``, so a duplicate key *is* the duplicate
  delivery: the job found tells whether it was this event (answer its stored reply: the first
  reply) or another event carrying the same attachment (a message re-sent with a new body
  timestamp: the files are "already" here; see :attr:`Committed.held`).
- any other event: one ``processed_events`` document ``{_id: identity, reply, at}`` (kept 7
  days), inserted the same coalesced way; a duplicate key means another delivery of the event
  answered first, and its reply is the answer. Such events are also looked up before the
  handler runs (:meth:`ProcessedEvents.answered`, a read), so a replay never runs a handler
  twice; a file message needs no look-up, since its jobs' keys deduplicate it.

Why after the handler, not a claim before it: a claim and its completion are two writes, and the
reply is only known at the end. What that costs: two deliveries of one text event that race
*across processes* may both run the handler (the first record written wins and both answer its
reply); within a process they are taken one at a time (:meth:`ProcessedEvents.one_at_a_time`).
A crash between the write and the reply loses nothing: the sender's retry finds the record (for
a file, the job, which any process's worker then uploads) and is answered from it. A store that
fails before the write loses nothing either: nothing was accepted, the sender gets a 503 and
retries.

The open delivery is a context variable (:func:`current_delivery`): the intake, called from the
file handler deep in the router, stages on it without every signature in between carrying it.
Outside a delivery (:func:`acknowledging` is false) the intake writes at once, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from storage.base import Database, store_call
from storage.batching import InsertBatcher
from storage.uploads import NewJob, UploadJobs

__all__ = [
    "Committed",
    "Delivery",
    "ProcessedEvents",
    "acknowledging",
    "current_delivery",
]

_KEEP_SECONDS = 7 * 24 * 3600


@dataclass
class Delivery:
    """One inbound delivery being handled: the records its reply depends on, staged by
    handlers, written by :meth:`ProcessedEvents.commit` together with the reply."""

    identity: str
    #: Job ids another event's delivery wrote already: the intake answers "already have" and
    #: stages nothing for them (set on a second dispatch, :attr:`Committed.held`).
    held: frozenset[str] = frozenset()
    jobs: list[NewJob] = field(default_factory=list)
    #: ``open`` (handlers stage), ``committing`` (the write is under way: no more staging),
    #: ``done`` (answered). A task spawned during the delivery inherits it; once it is not
    #: open such a task writes on its own, and once it is done it reads the store as any task.
    state: str = "open"
    _written_hooks: list[Callable[[], None]] = field(default_factory=list)

    def stage_job(self, job: NewJob, on_written: Callable[[], None] | None = None) -> bool:
        """Stage ``job``; ``False`` if this delivery staged that attachment already."""
        if any(staged.id == job.id for staged in self.jobs):
            return False
        self.jobs.append(job)
        if on_written is not None and on_written not in self._written_hooks:
            self._written_hooks.append(on_written)
        return True

    def written(self) -> None:
        """The staged jobs are written (some of them): run the hooks (e.g. kick the worker)."""
        for hook in self._written_hooks:
            hook()


_current: ContextVar[Delivery | None] = ContextVar("cliqbot_delivery", default=None)


def current_delivery() -> Delivery | None:
    """The delivery being acknowledged in this task, if it still takes staged records."""
    delivery = _current.get()
    return delivery if delivery is not None and delivery.state == "open" else None


def acknowledging() -> bool:
    """Whether this task is acknowledging a webhook delivery (its reads may come from memory:
    ``bot/cache.py``; its store commands count as the ``ack`` path: ``storage/monitor.py``)."""
    delivery = _current.get()
    return delivery is not None and delivery.state != "done"


@dataclass(frozen=True)
class Committed:
    """What :meth:`ProcessedEvents.commit` found."""

    #: A previous delivery of this very event stored this reply: answer it again.
    first_reply: dict[str, Any] | None = None
    #: Staged jobs whose attachment another event's delivery holds (nothing is done for them).
    held: frozenset[str] = frozenset()
    #: The jobs this commit wrote.
    written: tuple[str, ...] = ()


class ProcessedEvents:
    """The event path's records: ``processed_events`` and the upload jobs' ``event``/``reply``."""

    def __init__(self, db: Database, jobs: UploadJobs | None = None) -> None:
        self._col = db["processed_events"]
        self._jobs = jobs if jobs is not None else UploadJobs(db)
        self._inserts = InsertBatcher(self._col)
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    async def ensure_indexes(self) -> None:
        await self._col.create_index("at", expireAfterSeconds=_KEEP_SECONDS)

    @contextlib.contextmanager
    def delivery(self, identity: str, held: frozenset[str] = frozenset()) -> Iterator[Delivery]:
        """Open a delivery for the handler to stage on, for the duration of the block."""
        opened = Delivery(identity, held)
        token = _current.set(opened)
        try:
            yield opened
        finally:
            opened.state = "done"
            _current.reset(token)

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, identity: str) -> AsyncIterator[None]:
        """Deliveries of one event in this process are handled one after the other, so the
        second finds the first's record instead of running the handler beside it."""
        lock, users = self._turns.get(identity) or (asyncio.Lock(), 0)
        self._turns[identity] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[identity]
            if users <= 1:
                del self._turns[identity]
            else:
                self._turns[identity] = (lock, users - 1)

    @store_call
    async def answered(self, identity: str) -> dict[str, Any] | None:
        """The reply a previous delivery of this event stored, if any."""
        doc = await self._col.find_one({"_id": identity}, {"reply": 1})
        reply = doc.get("reply") if doc else None
        return reply if isinstance(reply, dict) else None

    @store_call
    async def commit(self, delivery: Delivery, reply: dict[str, Any]) -> Committed:
        """Write what ``delivery`` staged (or, if nothing, its event record) with ``reply``."""
        delivery.state = "committing"
        if not delivery.jobs:
            return Committed(first_reply=await self._record(delivery.identity, reply))
        outcomes = await self._jobs.insert_new(delivery.jobs, event=delivery.identity, reply=reply)
        written = tuple(job.id for job, new in zip(delivery.jobs, outcomes, strict=True) if new)
        if written:
            delivery.written()
        taken = [job.id for job, new in zip(delivery.jobs, outcomes, strict=True) if not new]
        if not taken:
            return Committed(written=written)
        owners = await self._jobs.deliveries_of(taken)
        for jid in taken:
            event, stored = owners.get(jid, (None, None))
            if event == delivery.identity and isinstance(stored, dict):
                return Committed(first_reply=stored, written=written)
        return Committed(held=frozenset(taken), written=written)

    @store_call
    async def amend(self, job_ids: Sequence[str], reply: dict[str, Any]) -> None:
        """Store ``reply`` on jobs a commit wrote with a reply that turned out not to be it."""
        await self._jobs.set_reply(job_ids, reply)

    async def _record(self, identity: str, reply: dict[str, Any]) -> dict[str, Any] | None:
        """Insert the event record; ``None`` if this was the first, else the first reply."""
        if await self._inserts.insert({"_id": identity, "at": datetime.now(UTC), "reply": reply}):
            return None
        doc = await self._col.find_one({"_id": identity}, {"reply": 1})
        stored = doc.get("reply") if doc else None
        if isinstance(stored, dict):
            return stored
        # A claim left by an older version (no reply): this delivery's reply becomes the record.
        await self._col.update_one({"_id": identity, "reply": None}, {"$set": {"reply": reply}})
        return None
