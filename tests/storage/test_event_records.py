"""The event path's records (storage/events.py): staged jobs written once with the reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storage.base import Store
from storage.events import ProcessedEvents, acknowledging, current_delivery
from storage.monitor import StoreMonitor
from storage.uploads import NewJob, UploadJobs


@pytest.fixture
async def store(mongo_uri: str, db_name: str) -> AsyncIterator[Store]:
    opened = Store.open(mongo_uri, db_name)
    yield opened
    await opened.close(5)


def job(n: int, state: str = "queued") -> NewJob:
    return NewJob("u1", f"att{n}", "team", "u1", f"f{n}.txt", f"https://x/{n}", state)


async def test_staged_jobs_go_in_one_write_carrying_the_reply(store: Store) -> None:
    ledger = ProcessedEvents(store.db, UploadJobs(store.db))
    monitor = StoreMonitor.of(store.db)
    assert monitor is not None
    kicks: list[int] = []
    with ledger.delivery("event-1") as delivery:
        assert current_delivery() is delivery and acknowledging()
        assert delivery.stage_job(job(1), lambda: kicks.append(1))
        assert delivery.stage_job(job(2), lambda: kicks.append(2))
        assert not delivery.stage_job(job(1))  # the same attachment twice in one message
        before = monitor.count("ack")
        committed = await ledger.commit(delivery, {"text": "two files"})
        assert monitor.count("ack") - before == 1
    assert not acknowledging()
    assert committed.written == ("u1:att1", "u1:att2") and committed.first_reply is None
    assert kicks == [1, 2]
    docs = [d async for d in store.db["upload_jobs"].find().sort("_id")]
    assert [(d["event"], d["reply"]["text"]) for d in docs] == [("event-1", "two files")] * 2

    with ledger.delivery("event-1") as again:  # the same event delivered again
        again.stage_job(job(1))
        again.stage_job(job(2))
        assert (await ledger.commit(again, {"text": "other"})).first_reply == {"text": "two files"}
    with ledger.delivery("event-2") as resent:  # another event, one attachment already here
        resent.stage_job(job(2))
        resent.stage_job(job(3))
        committed = await ledger.commit(resent, {"text": "optimistic"})
    assert committed.held == frozenset({"u1:att2"}) and committed.written == ("u1:att3",)


async def test_a_task_spawned_in_a_delivery_writes_on_its_own_once_it_is_committed(
    store: Store,
) -> None:
    ledger = ProcessedEvents(store.db, UploadJobs(store.db))
    later = asyncio.Event()
    seen: list[object] = []

    async def background() -> None:
        await later.wait()
        seen.append(current_delivery())
        seen.append(acknowledging())

    with ledger.delivery("event-1") as delivery:
        task = asyncio.create_task(background())  # inherits the delivery
        await ledger.commit(delivery, {"text": "done"})
    later.set()
    await task
    assert seen == [None, False]


async def test_a_text_event_record_answers_the_second_delivery(store: Store) -> None:
    ledger = ProcessedEvents(store.db)
    assert await ledger.answered("text-1") is None
    with ledger.delivery("text-1") as first:
        assert (await ledger.commit(first, {"text": "hello"})).first_reply is None
    assert await ledger.answered("text-1") == {"text": "hello"}
    with ledger.delivery("text-1") as racing:  # raced the first across processes
        assert (await ledger.commit(racing, {"text": "hi"})).first_reply == {"text": "hello"}
