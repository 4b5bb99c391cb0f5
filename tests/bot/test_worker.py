"""The upload worker under faults (CONTRACT §7, §9): supervised slots, an owned task.

Everything runs against the real embedded store and the Dropbox and Cliq stand-ins; faults come
from real data (job documents of a wrong shape written straight into the store, a kept file that
is not there), never from patching the code under test. One slot (``BOT_UPLOAD_CONCURRENCY=1``)
so that a later file landing shows the very slot that met the error carried on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from bot.config import Settings
from bot.errors import StoreError
from bot.keys import RUNTIME
from storage.base import Doc
from storage.records import BROKEN, FAILED, QUEUED, WAITING
from storage.uploads import UploadJobs
from tests.conftest import ADMIN, ANA, World

LINK = "team_dropbox"


@pytest.fixture
def world_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, upload_concurrency=1)


def _jobs(world: World) -> Any:
    return world.app[RUNTIME].db["upload_jobs"]


async def _insert_job(world: World, name: str, **fields: Any) -> str:
    """A job document written straight into the store, as a buggy or older process might."""
    now = datetime.now(UTC)
    doc: Doc = {
        "_id": f"{ANA.id}:{name}",
        "sender_id": ANA.id,
        "connection": LINK,
        "credential_user": ANA.id,
        "name": name,
        "url": f"{world.bot_url}/nowhere/{name}",
        "state": QUEUED,
        "seq": time.time_ns(),
        "size": None,
        "kept_file": None,
        "progress": {},
        "attempts": 0,
        "created_at": now,
        "not_before": now,
        "lease": None,
    }
    doc.update(fields)
    await _jobs(world).insert_one(doc)
    return str(doc["_id"])


async def _until(check: Callable[[], Awaitable[Doc | None]], timeout: float = 10.0) -> Doc:
    deadline = time.monotonic() + timeout
    while (found := await check()) is None:
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)
    return found


def _job_where(world: World, jid: str, **match: Any) -> Callable[[], Awaitable[Doc | None]]:
    async def check() -> Doc | None:
        doc: Doc | None = await _jobs(world).find_one({"_id": jid, "lease": None, **match})
        return doc

    return check


async def _fast_forward(world: World, jid: str) -> None:
    """Time passes: the postponed job's pause is over."""
    await _jobs(world).update_one({"_id": jid}, {"$set": {"not_before": datetime.now(UTC)}})


async def _metrics(world: World) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{world.bot_url}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def _lands(world: World, name: str, data: bytes) -> None:
    await world.chat.send_files(ANA, [world.cliq.add_file(name, data)])
    await world.messages_for(ANA, f"Saved {name} ")
    assert world.dropbox.read_file("ana@dropbox.example", f"/Cliq Uploads/{name}") == data


async def test_a_job_with_an_unexpected_error_is_retried_then_failed_and_the_slot_goes_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.files")
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    # Stored progress of a shape UploadProgress.from_dict refuses (ValueError): not a BotError.
    bad = await _insert_job(world, "bad.txt", progress={"session_id": ["x"], "offset": 5})

    first = await _until(_job_where(world, bad, state=QUEUED, attempts=1))
    assert first["error"] == "internal error (ValueError)"
    assert first["not_before"] > datetime.now(UTC) + timedelta(seconds=3)  # about 5 s later
    await _lands(world, "good.txt", b"lands anyway")  # the same single slot carried on

    await _fast_forward(world, bad)
    second = await _until(_job_where(world, bad, state=QUEUED, attempts=2))
    assert second["not_before"] > datetime.now(UTC) + timedelta(seconds=20)  # about 30 s later
    await _fast_forward(world, bad)
    await _until(_job_where(world, bad, state=FAILED))

    told = await world.messages_for(ANA, "bad.txt: the upload failed on my side")
    assert "(internal error); send it again or press Retry" in told["text"]
    assert [b.get("key") for b in told["buttons"]] == [f"retry:{bad}", f"cancel:{bad}"]
    assert world.dropbox.files("ana@dropbox.example").keys() == {"/Cliq Uploads/good.txt"}

    crashes = [r for r in caplog.records if r.levelno == logging.ERROR and bad in r.getMessage()]
    assert len(crashes) == 3
    assert all(r.exc_info is not None and r.exc_info[0] is ValueError for r in crashes)
    assert "zapi-test-token" not in caplog.text and "test-app-secret" not in caplog.text
    assert 'cliqbot_worker_errors_total{stage="upload"} 3' in await _metrics(world)

    # Retry works on the failed job (the data is still bad, so it is postponed again).
    # Retry runs it afresh (progress reset): this time its URL is what fails, as it would.
    # The click carries only the key the bot sent, as Cliq sends it.
    assert all(
        b["action"] == {"type": "invoke.function", "data": {"name": "cliqbot"}}
        for b in told["buttons"]
    )
    reply = await world.chat.post(world.chat.button(ANA, told["buttons"][0]["key"]))
    assert "Trying that file again" in reply.text
    await world.messages_for(ANA, "bad.txt: the file could not be downloaded")


async def test_a_missing_kept_file_is_a_store_error_and_the_slot_goes_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = UploadJobs(world.app[RUNTIME].db)
    with pytest.raises(StoreError, match="NoFile"):
        async with jobs.read_kept(ObjectId(), 0):
            pass
    await jobs.delete_kept(ObjectId())  # deleting what is gone is not an error

    caplog.set_level(logging.INFO, logger="bot.files")
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    gone = await _insert_job(world, "gone.txt", kept_file=ObjectId(), size=10)
    postponed = await _until(_job_where(world, gone, state=QUEUED, attempts=1))
    assert postponed["error"] == "internal error (StoreError)"
    await _lands(world, "after.txt", b"the slot is alive")
    assert any(
        r.exc_info is not None and r.exc_info[0] is StoreError and gone in r.getMessage()
        for r in caplog.records
    )
    assert 'cliqbot_worker_errors_total{stage="upload"} 1' in await _metrics(world)


async def test_malformed_documents_are_set_aside_reported_and_hold_nothing_back(
    world: World,
) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    # A queued job without a name cannot be read back once claimed; a kept one without a name
    # cannot be expired. Each is set aside and its sender told; nothing else waits on them.
    nameless = await _insert_job(world, "nameless", state=QUEUED)
    await _jobs(world).update_one({"_id": nameless}, {"$unset": {"name": ""}})
    old = datetime.now(UTC) - timedelta(days=30)
    stale = await _insert_job(world, "stale", state=WAITING, created_at=old, account="x")
    await _jobs(world).update_one({"_id": stale}, {"$unset": {"name": ""}})
    expiring = await _insert_job(world, "old-plan.txt", state=WAITING, created_at=old)

    async def set_aside() -> Doc | None:
        docs = {d["_id"]: d["state"] async for d in _jobs(world).find({})}
        done = docs.get(nameless) == docs.get(stale) == BROKEN and docs[expiring] == "expired"
        return docs if done else None

    await _until(set_aside)
    await _lands(world, "fine.txt", b"still uploading")  # the nameless job did not hold it up
    assert (await _jobs(world).find_one({"_id": nameless}))["lease"] is None
    told = [m for m in world.cliq.messages_for(ANA.id) if "set it aside" in str(m.get("text"))]
    assert len(told) == 2, told  # one per unreadable job, named as well as it can be
    assert all(str(m["text"]).startswith("A file you sent: ") for m in told), told
    await world.messages_for(ANA, "old-plan.txt waited")  # the readable one expired as usual
    text = await _metrics(world)
    for stage in ("claim", "housekeeping"):
        assert f'cliqbot_worker_errors_total{{stage="{stage}"}} 1.0' in text, stage


async def test_stop_before_the_first_step_returns_at_once_and_twice_is_safe(
    world: World,
) -> None:
    files = world.app[RUNTIME].components.files
    started = time.monotonic()
    await files.stop(timeout=30)  # the running worker, idle: no drain to wait out
    assert time.monotonic() - started < 2

    files.start(2)
    started = time.monotonic()
    await files.stop(timeout=30)  # before the new task took a single step
    await files.stop(timeout=30)
    assert time.monotonic() - started < 2

    files.start(1)  # and it starts again, and works
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    await _lands(world, "restarted.txt", b"after a restart")


async def test_a_job_for_a_service_files_cannot_land_in_fails_with_a_message(
    world: World,
) -> None:
    """The worker picks the destination by the connection's service kind; a kind without one
    (a custom OAuth service) fails the job at once, with a clear word to the sender."""
    reply = await world.chat.run(
        ADMIN,
        "service add acme authorize_url=https://acme.example/a token_url=https://acme.example/t"
        " client_id=acme client_secret=acme-secret",
    )
    assert "Added" in reply.text, reply.text
    reply = await world.chat.run(ADMIN, 'create "Acme Files" service=acme scopes=read')
    assert "acme_files" in reply.text, reply.text
    jid = await _insert_job(world, "elsewhere.txt", connection="acme_files")

    failed = await _until(_job_where(world, jid, state=FAILED))
    assert failed["error"] == "Conflict"
    told = await world.messages_for(ANA, "elsewhere.txt: the upload failed")
    assert "files cannot land in acme" in told["text"]
    assert [b.get("key") for b in told["buttons"]] == [f"retry:{jid}", f"cancel:{jid}"]
