"""Reads from memory (bot/cache.py) against the real store: this process's writes at once,
another client's within the time to live, one read for many."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.cache import STALE_SECONDS, ReadCache
from storage.base import Store
from storage.monitor import StoreMonitor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(mongo_uri: str, db_name: str) -> AsyncIterator[Store]:
    opened = Store.open(mongo_uri, db_name)
    yield opened
    await opened.close(5)


@pytest.fixture
async def elsewhere(mongo_uri: str, db_name: str) -> AsyncIterator[Store]:
    """Another process's client on the same database."""
    opened = Store.open(mongo_uri, db_name)
    yield opened
    await opened.close(5)


def reader(store: Store) -> Any:
    async def load() -> Any:
        doc = await store.db["things"].find_one({"_id": "k"})
        return doc["v"] if doc else None

    return load


async def test_this_process_reads_its_own_write_at_once(store: Store) -> None:
    cache: ReadCache[Any] = ReadCache(store.db, "things", clock=Clock())
    await store.db["things"].insert_one({"_id": "k", "v": 1})
    assert await cache.get("k", reader(store)) == 1
    assert await cache.get("k", reader(store)) == 1 and cache.hits == 1
    await store.db["things"].update_one({"_id": "k"}, {"$set": {"v": 2}})
    assert await cache.get("k", reader(store)) == 2  # no time has passed on its clock


async def test_another_clients_write_is_seen_once_the_value_is_a_second_old(
    store: Store, elsewhere: Store
) -> None:
    clock = Clock()
    cache: ReadCache[Any] = ReadCache(store.db, "things", clock=clock)
    await store.db["things"].insert_one({"_id": "k", "v": 1})
    assert await cache.get("k", reader(store)) == 1
    await elsewhere.db["things"].update_one({"_id": "k"}, {"$set": {"v": 2}})
    clock.now += STALE_SECONDS - 0.01
    assert await cache.get("k", reader(store)) == 1  # stale, within the bound
    clock.now += 0.01
    assert await cache.get("k", reader(store)) == 2


async def test_concurrent_misses_share_one_read(store: Store) -> None:
    cache: ReadCache[Any] = ReadCache(store.db, "things", clock=Clock())
    await store.db["things"].insert_one({"_id": "k", "v": 7})
    monitor = StoreMonitor.of(store.db)
    assert monitor is not None
    finds = monitor.count(command="find")
    values = await asyncio.gather(*(cache.get("k", reader(store)) for _ in range(20)))
    assert values == [7] * 20
    assert monitor.count(command="find") - finds == 1 and cache.loads == 1


async def test_a_read_in_flight_while_this_process_writes_is_not_kept(store: Store) -> None:
    cache: ReadCache[Any] = ReadCache(store.db, "things", clock=Clock())
    await store.db["things"].insert_one({"_id": "k", "v": 1})

    async def read_then_write() -> Any:
        value = await reader(store)()
        await store.db["things"].update_one({"_id": "k"}, {"$set": {"v": 2}})
        return value  # the old value, returned after the write went

    assert await cache.get("k", read_then_write) == 1
    assert await cache.get("k", reader(store)) == 2 and cache.loads == 2


async def test_a_time_to_live_over_the_bound_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="ttl"):
        ReadCache(store.db, "things", ttl=STALE_SECONDS * 2)
