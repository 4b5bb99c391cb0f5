"""The coalescer (storage/batching.py) against the real store: fewer calls, per-caller results.

Round trips are counted by the store client's own command listener (storage/monitor.py), i.e.
what actually went over the wire, not by the coalescer's bookkeeping alone.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import ServerSelectionTimeoutError, WriteError

from storage.base import Store
from storage.batching import BulkBatcher, InsertBatcher
from storage.monitor import StoreMonitor


@pytest.fixture
async def store(mongo_uri: str, db_name: str) -> AsyncIterator[Store]:
    opened = Store.open(mongo_uri, db_name)
    await opened.ping(5)
    yield opened
    await opened.close(5)


def sent(store: Store, command: str) -> int:
    monitor = StoreMonitor.of(store.db)
    assert monitor is not None
    return monitor.count(command=command)


async def test_concurrent_inserts_go_in_fewer_calls(store: Store) -> None:
    batcher = InsertBatcher(store.db["c"])
    before = sent(store, "insert")
    results = await asyncio.gather(*(batcher.insert({"_id": i, "n": i}) for i in range(200)))
    assert results == [True] * 200
    calls = sent(store, "insert") - before
    # The first goes alone at once; the 199 that queued behind it go as the next call.
    assert calls == batcher.coalescer.calls == 2
    assert await store.db["c"].count_documents({}) == 200


async def test_each_caller_gets_its_own_duplicate_key(store: Store) -> None:
    col = store.db["c"]
    await col.insert_one({"_id": "taken"})
    batcher = InsertBatcher(col)
    leader = asyncio.create_task(batcher.insert({"_id": "first"}))
    await asyncio.sleep(0)  # the leader's call is in flight: the rest queue behind it
    docs = [{"_id": "taken"}, {"_id": "a"}, {"_id": "same", "by": 1}, {"_id": "same", "by": 2}]
    results = await asyncio.gather(*(batcher.insert(doc) for doc in docs))
    assert await leader is True
    assert results[0] is False  # the document that was there already
    assert results[1] is True
    assert sorted(results[2:]) == [False, True]  # two callers, one key: exactly one wins
    winner = 1 if results[2] else 2
    assert (await col.find_one({"_id": "same"}) or {})["by"] == winner
    assert batcher.coalescer.calls == 2


async def test_a_group_goes_in_one_call_with_per_document_results(store: Store) -> None:
    col = store.db["c"]
    await col.insert_one({"_id": 2})
    batcher = InsertBatcher(col)
    before = sent(store, "insert")
    assert await batcher.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3}]) == [True, False, True]
    assert sent(store, "insert") - before == 1


async def test_an_idle_write_is_sent_at_once(store: Store) -> None:
    """No timer: one write at a time costs what a plain ``insert_one`` costs."""
    col = store.db["c"]
    batcher = InsertBatcher(col)
    await col.insert_one({"_id": "warm"})
    await batcher.insert({"_id": "warm-batcher"})
    plain: list[float] = []
    batched: list[float] = []
    before = sent(store, "insert")
    for i in range(30):  # interleaved, so that the machine's load weighs on both alike
        started = time.perf_counter()
        await col.insert_one({"_id": f"plain-{i}"})
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert await batcher.insert({"_id": f"batched-{i}"})
        batched.append(time.perf_counter() - started)
    assert sent(store, "insert") - before == 60  # each its own call: nothing was waited for
    assert statistics.median(batched) < 2 * statistics.median(plain) + 0.002, (batched, plain)


async def test_a_store_that_does_not_answer_fails_every_caller_of_the_batch(
    db_name: str, tmp_path: Path
) -> None:
    # A Unix socket that does not exist: refused at once, with no await between the driver's
    # socket and its close. (A TCP address leaves a window in which closing the client cancels
    # the monitor mid-connect and PyMongo drops the socket unclosed: a ResourceWarning that
    # lands on whichever test runs next.)
    missing = quote(str(tmp_path / "no-server.sock"), safe="")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://{missing}/", serverSelectionTimeoutMS=300
    )
    dead = Store(client, db_name)
    try:
        batcher = InsertBatcher(dead.db["c"])
        results = await asyncio.gather(
            *(batcher.insert({"_id": i}) for i in range(5)), return_exceptions=True
        )
        # The first went alone; the four queued behind it went as one call and all got its error.
        assert batcher.coalescer.calls == 2
        assert all(isinstance(r, ServerSelectionTimeoutError) for r in results), results
    finally:
        await dead.close(5)


async def test_a_caller_cancelled_while_queued_is_not_sent(store: Store) -> None:
    col = store.db["c"]
    batcher = InsertBatcher(col)
    first = asyncio.create_task(batcher.insert({"_id": "first"}))
    await asyncio.sleep(0)
    gone = asyncio.create_task(batcher.insert({"_id": "gone"}))
    kept = asyncio.create_task(batcher.insert({"_id": "kept"}))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first is True and await kept is True
    assert await col.find_one({"_id": "gone"}) is None


async def test_bulk_writes_coalesce_and_report_their_own_errors(store: Store) -> None:
    col = store.db["c"]
    await col.insert_many([{"_id": i, "n": 0} for i in range(10)] + [{"_id": "s", "n": "text"}])
    batcher = BulkBatcher(col)
    before = sent(store, "update")
    ops = [UpdateOne({"_id": i}, {"$inc": {"n": i}}) for i in range(10)]
    ops.append(UpdateOne({"_id": "s"}, {"$inc": {"n": 1}}))  # $inc on a string: that op fails
    results = await asyncio.gather(*(batcher.write(op) for op in ops), return_exceptions=True)
    assert results[:10] == [None] * 10
    assert isinstance(results[10], WriteError)
    assert sent(store, "update") - before == batcher.coalescer.calls == 2
    assert [d["n"] async for d in col.find({"_id": {"$ne": "s"}}).sort("_id")] == list(range(10))
