"""Claiming upload jobs (storage/uploads.py, storage/due.py) against the real store.

The claim reads a range of the ``(state, not_before)`` index, so what it reads does not grow with
the queue: shown with the store's own ``explain`` at 10 and at 10,000 queued jobs (keys and
documents examined, the index used). Timings are printed, not asserted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storage.base import Database, Store
from storage.records import KEEP, QUEUED, WAITING
from storage.uploads import UploadJobs


@pytest.fixture
async def db(mongo_uri: str, db_name: str) -> AsyncIterator[Database]:
    """The test's database, through a client opened as the bot opens its own."""
    store = Store.open(mongo_uri, db_name)
    yield store.db
    assert await store.close(10.0)


def _doc(n: int, due: datetime, *, account: str = "55501", state: str = QUEUED) -> dict[str, Any]:
    return {
        "_id": f"{account}:a{n}",
        "sender_id": account,
        "connection": "team_dropbox",
        "credential_user": account,
        "name": f"f{n}.txt",
        "url": f"http://files.example/{n}",
        "state": state,
        "seq": n,
        "size": None,
        "kept_file": None,
        "progress": {},
        "attempts": 0,
        "created_at": due,
        "not_before": due,
        "lease": None,
    }


async def _queue(db: Database, count: int, **kwargs: Any) -> UploadJobs:
    jobs = UploadJobs(db)
    await jobs.ensure_indexes()
    start = datetime.now(UTC) - timedelta(seconds=120)
    docs = [_doc(n, start + timedelta(milliseconds=10 * n), **kwargs) for n in range(count)]
    await db["upload_jobs"].insert_many(docs)
    return jobs


async def _examined(db: Database, jobs: UploadJobs) -> dict[str, Any]:
    """``explain`` of the range the last claim read: what the store examined for it."""
    window = jobs._windows[QUEUED]
    assert window.last_range is not None
    low, high = window.last_range
    query = {"state": QUEUED, "not_before": {"$gte": low, "$lte": high}}
    plan = await db["upload_jobs"].find(query).sort("not_before", 1).limit(64).explain()
    stats = plan["executionStats"]
    stage = plan["queryPlanner"]["winningPlan"]
    while "inputStage" in stage and stage.get("stage") != "IXSCAN":
        stage = stage["inputStage"]
    return {
        "keys": stats.get("totalKeysExamined"),
        "docs": stats.get("totalDocsExamined"),
        "index": stage.get("indexName"),
    }


async def test_claiming_reads_the_same_whatever_the_queue_length(db: Database) -> None:
    seen: dict[int, dict[str, Any]] = {}
    for count in (10, 10_000):
        await db["upload_jobs"].delete_many({})
        jobs = await _queue(db, count)
        await jobs.claim_batch("warm-up", 30.0, QUEUED, limit=1)  # the process's first floor
        started = time.perf_counter()
        claimed = await jobs.claim_batch("slot", 30.0, QUEUED, limit=5)
        took = time.perf_counter() - started
        assert [job.name for job in claimed] == [f"f{n}.txt" for n in range(1, 6)]
        seen[count] = {**await _examined(db, jobs), "ms": round(1000 * took, 1)}
    print("claim of 10 at 10 vs 10,000 queued jobs:", seen)  # noqa: T201
    for stats in seen.values():
        assert stats["index"] == "state_1_not_before_1"
        assert stats["keys"] <= 64 and stats["docs"] <= 64
    # Not a timed assertion: what the store examined is the measure.


async def test_a_claim_takes_one_accounts_oldest_jobs_and_leases_them(db: Database) -> None:
    jobs = UploadJobs(db)
    await jobs.ensure_indexes()
    start = datetime.now(UTC) - timedelta(seconds=60)
    docs = [
        _doc(n, start + timedelta(milliseconds=n), account="ana" if n % 3 else "ben")
        for n in range(9)
    ]
    await db["upload_jobs"].insert_many(docs)
    first = await jobs.claim_batch("slot-1", 30.0, QUEUED, limit=4)
    assert [job.id for job in first] == ["ben:a0", "ben:a3", "ben:a6"]  # the oldest's account
    second = await jobs.claim_batch("slot-2", 30.0, QUEUED, limit=4)
    assert [job.id for job in second] == ["ana:a1", "ana:a2", "ana:a4", "ana:a5"]
    assert [job.id for job in await jobs.claim_batch("slot-3", 30.0, QUEUED, limit=4)] == [
        "ana:a7",
        "ana:a8",
    ]
    assert await jobs.claim_batch("slot-4", 30.0, QUEUED, limit=4) == []  # all leased
    leased = await db["upload_jobs"].find_one({"_id": "ben:a3"})
    assert leased["lease"]["holder"] == "slot-1"
    assert leased["not_before"] == leased["lease"]["until"]  # due again when the lease lapses

    # Renewed in one write for all; finished back to the queue, a job is due at once.
    assert await jobs.renew_leases({j.id: "slot-1" for j in first}, 60.0) == 3
    assert await jobs.finish(first[0], "slot-1", QUEUED)
    assert not await jobs.finish(first[1], "someone-else", QUEUED)  # not its lease
    again = await jobs.claim_batch("slot-5", 30.0, QUEUED, limit=4)
    assert [job.id for job in again] == ["ben:a0"]


async def test_a_job_due_below_the_floor_is_found(db: Database) -> None:
    """A job made due in the past (a prefetched one keeps its place; another process's clock
    behind) is claimed, not skipped for ever."""
    jobs = await _queue(db, 3)
    claimed = await jobs.claim_batch("slot", 30.0, QUEUED, limit=3)
    assert len(claimed) == 3
    assert await jobs.claim_batch("slot", 30.0, QUEUED, limit=3) == []  # the floor moves up
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    # Written by "another process", below this one's floor: found by the periodic look below.
    await db["upload_jobs"].insert_one(_doc(99, long_ago))
    jobs._windows[QUEUED].reset_at = 0.0  # the reset interval has passed
    assert [job.id for job in await jobs.claim_batch("slot", 30.0, QUEUED, limit=3)] == [
        "55501:a99"
    ]
    # Finished back to the queue at an old time by this process: its floor is lowered.
    assert await jobs.finish(claimed[0], "slot", QUEUED, not_before=long_ago)
    assert [job.id for job in await jobs.claim_batch("slot", 30.0, QUEUED, limit=3)] == [
        claimed[0].id
    ]


async def test_prefetch_claims_only_jobs_waiting_on_their_url_too_long(db: Database) -> None:
    jobs = UploadJobs(db)
    await jobs.ensure_indexes()
    now = datetime.now(UTC)
    docs = [
        _doc(0, now - timedelta(seconds=30)),  # due 30 s ago, still on its URL: fetch it
        {**_doc(1, now - timedelta(seconds=30)), "kept_file": "in-the-store-already"},
        _doc(2, now - timedelta(seconds=1)),  # due just now: its upload will start soon
        _doc(3, now - timedelta(seconds=30), state=KEEP),
        _doc(4, now - timedelta(seconds=30), state=WAITING),
    ]
    await db["upload_jobs"].insert_many(docs)
    fetched = await jobs.claim_prefetch("fetch", 30.0, older_than=10.0, limit=10)
    assert [job.id for job in fetched] == ["55501:a0"]
    assert await jobs.claim_prefetch("fetch", 30.0, older_than=10.0, limit=10) == []
    kept = await jobs.claim_batch("fetch", 30.0, KEEP, limit=10)
    assert [job.id for job in kept] == ["55501:a3"]
