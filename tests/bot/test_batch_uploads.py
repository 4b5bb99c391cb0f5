"""Many files for one account through the whole product: batched commits, prefetching.

Against the real embedded store and the Dropbox and Cliq stand-ins, over HTTP; nothing is
patched. The Dropbox stand-in refuses a commit while another of the same account is in flight
(``commit_limit``), as Dropbox's namespace lock does, so "one commit at a time" is checked by the
service itself, and it counts every file commit (a file committed twice would show).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import Settings
from bot.destinations.dropbox_wire import content_hash
from bot.keys import RUNTIME
from storage.base import Doc
from storage.monitor import StoreMonitor
from tests.conftest import ANA, World

EMAIL = "ana@dropbox.example"
BATCH = "/2/files/upload_session/finish_batch_v2"
CHECK = "/2/files/upload_session/finish_batch/check"


@pytest.fixture
def world_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, upload_concurrency=2, prefetch_after=1.0)


async def _until(check: Callable[[], Awaitable[Any] | Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` (a function or a coroutine function) until it answers something true."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


def _saved(world: World) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in world.cliq.messages_for(ANA.id):
        text = str(message.get("text", ""))
        if text.startswith("Saved "):
            name = text.removeprefix("Saved ").split(" ", 1)[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


async def _connected(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, EMAIL)


def _jobs(world: World) -> Any:
    return world.app[RUNTIME].db["upload_jobs"]


async def test_many_files_of_one_account_are_committed_together_once_each(
    world: World,
) -> None:
    await _connected(world)
    world.dropbox.commit_limit = True  # a second commit in flight would be refused (429)
    world.dropbox.batch_async = 1  # and the batch answers as an async job, to be polled
    files = world.app[RUNTIME].components.files
    await files.stop(timeout=30)  # the files queue up first, as in a backlog
    datas = {f"doc{n:02d}.txt": f"contents of file {n}\n".encode() * (n + 1) for n in range(40)}
    attachments = [world.cliq.add_file(name, data) for name, data in datas.items()]
    for start in range(0, 40, 10):
        reply = await world.chat.send_files(ANA, attachments[start : start + 10])
        assert reply.status == 200 and "started" in reply.text, reply.body
    monitor = StoreMonitor.of(world.app[RUNTIME].db)
    assert monitor is not None
    before = monitor.count("other")

    files.start(2)
    await _until(lambda: len(_saved(world)) == 40, timeout=30)
    round_trips = monitor.count("other") - before

    assert _saved(world) == dict.fromkeys(datas, 1)  # every file told once
    stored = world.dropbox.files(EMAIL)
    for name, data in datas.items():
        record = stored[f"/Cliq Uploads/{name}"]
        assert record.content_hash == content_hash(data)
        assert world.dropbox.read_file(EMAIL, record.path_display) == data
    assert len(stored) == 40 and world.dropbox.commits[EMAIL] == 40  # each committed once
    assert world.dropbox.max_parallel_commits[EMAIL] == 1
    calls = world.dropbox.calls
    assert calls["/2/files/upload"] == 0 and calls["/2/files/upload_session/start"] == 40
    assert 1 <= calls[BATCH] <= 4 and calls[CHECK] >= calls[BATCH]  # polled until complete
    # The worker's store round trips per uploaded file (claims, leases, outcomes, the commit
    # lock, the connection and the authorization): a few per batch, not several per file.
    print(f"worker store round trips: {round_trips} for 40 files")  # noqa: T201
    assert round_trips / 40 < 1.0
    assert await _jobs(world).count_documents({"state": "done"}) == 40


async def test_an_entry_that_fails_is_handled_like_a_single_upload(world: World) -> None:
    await _connected(world)
    files = world.app[RUNTIME].components.files
    await files.stop(timeout=30)
    # Contention twice (the entry waits and is committed with the next batch), and a failure
    # a single commit would also meet: the upload is postponed and tried again later.
    world.dropbox.inject_entry_failure("busy.txt", "too_many_write_operations", count=2)
    world.dropbox.inject_entry_failure("full.txt", "path/insufficient_space", count=9)
    names = ["busy.txt", "full.txt", "one.txt", "two.txt"]
    attachments = [world.cliq.add_file(name, name.encode() * 100) for name in names]
    assert (await world.chat.send_files(ANA, attachments)).status == 200
    files.start(2)
    await _until(lambda: set(_saved(world)) == {"busy.txt", "one.txt", "two.txt"})

    async def postponed() -> Doc | None:
        doc: Doc | None = await _jobs(world).find_one(
            {"name": "full.txt", "lease": None, "attempts": 1}
        )
        return doc

    full = await _until(postponed)
    assert full["state"] == "queued" and full["error"] == "ApiError"  # as a single 409 would
    assert full["not_before"] > datetime.now(UTC) + timedelta(seconds=20)
    assert set(world.dropbox.files(EMAIL)) == {
        f"/Cliq Uploads/{name}" for name in ("busy.txt", "one.txt", "two.txt")
    }
    assert world.dropbox.max_parallel_commits[EMAIL] == 1


async def test_files_a_backlog_holds_up_are_fetched_into_the_store_and_still_land(
    world: World,
) -> None:
    """The one upload slot is busy (another process holds the account's commit lock), so the
    next files wait past ``prefetch_after``: they are downloaded into the store, their URLs
    then expire, and they land from the store once the way is free."""
    await _connected(world)
    files = world.app[RUNTIME].components.files
    await files.stop(timeout=30)
    files.start(1)
    locks = world.app[RUNTIME].db["upload_locks"]
    key = f"team_dropbox:{ANA.id}"
    until = datetime.now(UTC) + timedelta(hours=1)
    await locks.insert_one({"_id": key, "holder": "another-process", "until": until})

    first = world.cliq.add_file("first.txt", b"first, and in the way")
    assert (await world.chat.send_files(ANA, [first])).status == 200
    await _until(lambda: _jobs(world).find_one({"name": "first.txt", "lease": {"$ne": None}}))
    later = [world.cliq.add_file(f"later{n}.txt", f"later {n}".encode()) for n in range(3)]
    assert (await world.chat.send_files(ANA, later)).status == 200

    async def all_kept() -> bool:
        kept = await _jobs(world).count_documents(
            {"name": {"$regex": "^later"}, "state": "queued", "kept_file": {"$ne": None}}
        )
        return kept == 3

    await _until(all_kept, timeout=15)
    for attachment in later:
        world.cliq.expire(attachment["id"])  # from now on its URL answers 403
    await locks.delete_one({"_id": key})

    await _until(lambda: len(_saved(world)) == 4)
    for n, attachment in enumerate(later):
        assert (
            world.dropbox.read_file(EMAIL, f"/Cliq Uploads/later{n}.txt") == f"later {n}".encode()
        )
        assert world.cliq.downloads[attachment["id"]] == 1  # fetched once, into the store
    assert _saved(world) == {"first.txt": 1, "later0.txt": 1, "later1.txt": 1, "later2.txt": 1}
    kept_files = world.app[RUNTIME].db["kept_files.files"]
    assert await kept_files.count_documents({}) == 0  # deleted once uploaded
