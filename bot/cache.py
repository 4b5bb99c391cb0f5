"""Reads that rarely change, served from memory on the acknowledgement path.

Acknowledging a file costs a store round trip for every read it makes, and the store's round
trip is what limits the event rate. The published connection, the services and an
authorization's state change rarely (an admin publishes, a user connects), so while a webhook
delivery is acknowledged (:func:`storage.events.acknowledging`) they are read through a
:class:`ReadCache`:

- **staleness**: a value is served for at most :data:`STALE_SECONDS` (1 s) after the read that
  fetched it *started*, so another process's change is seen within 1 s;
- **this process's writes at once**: any write this process sends to the collection (whatever
  code sends it) bumps that collection's generation in :class:`storage.monitor.StoreMonitor`,
  which drops every value read before it — including a read in flight while it was written;
- **one read for many**: concurrent misses of one key wait for the same read.

Everything else — the upload worker, token refreshes, OAuth callbacks, housekeeping — reads the
store as before (the views below pass through outside a delivery): the worker's re-read of an
authorization after keeping a file, and the re-read after taking a refresh lease, stay exact.

A stale read can let a file through that the store would have kept: a user's authorization
revoked in another process in the last second still reads as connected. The job is then queued
instead of kept; the worker finds no usable token (``NotAuthorized``) and takes the path a
token that stopped working always takes: the file is kept and the user prompted to connect
(``bot/files/worker.py``). The reverse (just connected, read as not) keeps the file; the worker
re-reads the authorization after downloading it and uploads it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bot.errors import StoreUnavailable
from storage.authorizations import Authorizations
from storage.base import Database
from storage.connections import Connections, ServiceRecords
from storage.events import acknowledging
from storage.monitor import StoreMonitor
from storage.records import Authorization, Connection, ServiceRecord

__all__ = [
    "STALE_SECONDS",
    "CachedAuthorizations",
    "CachedConnections",
    "CachedServiceRecords",
    "ReadCache",
]

#: The longest a value read from the store is served from memory (CONTRACT-visible staleness).
STALE_SECONDS = 1.0
_MAX_ENTRIES = 10_000

V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    generation: int
    until: float


@dataclass(frozen=True)
class _Loading(Generic[V]):
    generation: int
    future: asyncio.Future[V]


class ReadCache(Generic[V]):
    """Values of one collection by key: at most ``ttl`` s old, dropped when this process
    writes to the collection. Without a :class:`StoreMonitor` (a client opened elsewhere) it
    caches nothing, since it could not see this process's writes."""

    def __init__(
        self,
        db: Database,
        collection: str,
        *,
        ttl: float = STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= ttl <= STALE_SECONDS:
            raise ValueError(f"ttl must be from 0 to {STALE_SECONDS} s")
        self._monitor = StoreMonitor.of(db)
        self._namespace = f"{db.name}.{collection}"
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[Hashable, _Entry[V]] = {}
        self._loading: dict[Hashable, _Loading[V]] = {}
        #: Reads served from memory and reads sent to the store (for tests and benchmarks).
        self.hits = 0
        self.loads = 0

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        if self._monitor is None or self._ttl == 0:
            return await load()
        generation = self._monitor.generation(self._namespace)
        entry = self._entries.get(key)
        if entry is not None and entry.generation == generation and self._clock() < entry.until:
            self.hits += 1
            return entry.value
        loading = self._loading.get(key)
        if loading is not None and loading.generation == generation:
            self.hits += 1
            return await asyncio.shield(loading.future)
        return await self._load(key, load, generation)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[V]], generation: int) -> V:
        assert self._monitor is not None
        started = self._clock()
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = _Loading(generation, future)
        self.loads += 1
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(
                exc if isinstance(exc, Exception) else StoreUnavailable("the read was cancelled")
            )
            future.exception()  # those waiting get it; nobody waiting is fine too
            raise
        else:
            future.set_result(value)
        finally:
            if self._loading.get(key) is not None and self._loading[key].future is future:
                del self._loading[key]
        if self._monitor.generation(self._namespace) == generation:  # no write of ours meanwhile
            self._remember(key, _Entry(value, generation, started + self._ttl))
        return value

    def _remember(self, key: Hashable, entry: _Entry[V]) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            now = self._clock()
            self._entries = {k: e for k, e in self._entries.items() if e.until > now}
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
        self._entries[key] = entry


class CachedConnections(Connections):
    """:class:`~storage.connections.Connections` whose ``published()`` is read from memory on
    the acknowledgement path."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.cache: ReadCache[Connection | None] = ReadCache(db, "connections")

    async def published(self) -> Connection | None:
        if not acknowledging():
            return await super().published()
        return await self.cache.get("published", super().published)


class CachedServiceRecords(ServiceRecords):
    """:class:`~storage.connections.ServiceRecords` whose ``get`` and ``all`` are read from
    memory on the acknowledgement path."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.cache: ReadCache[Any] = ReadCache(db, "services")

    async def get(self, name: str) -> ServiceRecord | None:
        if not acknowledging():
            return await super().get(name)
        found: ServiceRecord | None = await self.cache.get(
            ("get", name.lower()), lambda: super(CachedServiceRecords, self).get(name)
        )
        return found

    async def all(self) -> list[ServiceRecord]:
        if not acknowledging():
            return await super().all()
        found: list[ServiceRecord] = await self.cache.get(("all",), super().all)
        return list(found)


class CachedAuthorizations(Authorizations):
    """:class:`~storage.authorizations.Authorizations` whose ``get`` is read from memory on the
    acknowledgement path (everything else, and ``get`` elsewhere, reads the store)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.cache: ReadCache[Authorization | None] = ReadCache(db, "authorizations")

    async def get(self, link: str, user_id: str) -> Authorization | None:
        if not acknowledging():
            return await super().get(link, user_id)
        return await self.cache.get(
            (link, user_id), lambda: super(CachedAuthorizations, self).get(link, user_id)
        )
