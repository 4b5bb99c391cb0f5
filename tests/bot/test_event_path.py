"""The acknowledgement path at scale (issue 14): one durable write per event, duplicates and
crashes answered from it, reads from memory with a bounded staleness, admission control.

Store round trips are counted by the bot's own command listener (storage/monitor.py): commands
sent while a delivery is acknowledged are the ``ack`` path. Second applications on the same
database stand for other ``serve`` processes (each its own client, caches and worker).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from bot.app import create_app
from bot.config import load_settings
from bot.errors import ConfigError
from bot.keys import RUNTIME
from bot.sandbox.driver import ChatDriver, ChatUser
from storage.monitor import StoreMonitor
from tests.bot.test_webhook import dumps, signed
from tests.conftest import ADMIN, ANA, WEBHOOK_SECRET, World

DROPBOX_ANA = "ana@dropbox.example"


@dataclasses.dataclass
class Peer:
    """Another ``serve`` process on the same database, in this test's loop."""

    app: Any
    server: Any
    url: str
    chat: ChatDriver


async def peer(world: World, aiohttp_server: Any, **changes: Any) -> Peer:
    app = create_app(dataclasses.replace(world.settings, **changes))
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    app[RUNTIME].public_url = url
    return Peer(app, server, url, ChatDriver(world.chat.http, url, WEBHOOK_SECRET))


def monitor(app: Any) -> StoreMonitor:
    found = StoreMonitor.of(app[RUNTIME].db)
    assert found is not None
    return found


async def post(
    http: aiohttp.ClientSession, url: str, raw: bytes, headers: Mapping[str, str]
) -> tuple[int, Any, Mapping[str, str]]:
    async with http.post(f"{url}/cliq/webhook", data=raw, headers=dict(headers)) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def jobs(world: World) -> list[dict[str, Any]]:
    return [d async for d in world.app[RUNTIME].db["upload_jobs"].find()]


async def connected_ana(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, DROPBOX_ANA)


def file_body(world: World, user: ChatUser, name: str, data: bytes) -> dict[str, Any]:
    return world.chat.message(user, "", [world.cliq.add_file(name, data)])


# -- one durable write ------------------------------------------------------------------------


async def test_a_file_event_costs_one_store_round_trip_on_the_ack_path(world: World) -> None:
    await connected_ana(world)
    counts = monitor(world.app)
    trips = []
    for i in range(5):  # each event's reads warm the memory for the next (≤ 1 s)
        before, inserts = counts.count("ack"), counts.count("ack", "insert")
        reply = await world.chat.send_files(ANA, [world.cliq.add_file(f"f{i}.txt", b"one")])
        assert "started" in reply.text, reply.text
        assert counts.count("ack", "insert") - inserts == 1  # always exactly one write
        trips.append(counts.count("ack") - before)
        job = next(j for j in await jobs(world) if j["name"] == f"f{i}.txt")
        assert job["reply"] == reply.output  # the reply is stored on the job itself
        if trips[-1] == 1:
            break
    assert trips[-1] == 1, f"store round trips per event: {trips}"  # no read went to the store
    await world.messages_for(ANA, f"Saved f{len(trips) - 1}.txt")


async def test_a_text_event_writes_once(world: World) -> None:
    counts = monitor(world.app)
    writes = ("insert", "update", "delete", "findAndModify")
    before = sum(counts.count("ack", w) for w in writes)
    reply = await world.chat.say(ANA, "help")
    assert reply.status == 200 and reply.text
    assert sum(counts.count("ack", w) for w in writes) - before == 1
    assert await world.app[RUNTIME].db["processed_events"].count_documents({}) == 1


# -- duplicates and crashes -------------------------------------------------------------------


async def test_a_duplicate_file_delivery_gets_the_first_reply_and_one_job(world: World) -> None:
    await connected_ana(world)
    raw = dumps(file_body(world, ANA, "twice.txt", b"only once"))
    first_headers = signed(raw, int(time.time()) - 5)
    status, first, _ = await post(world.chat.http, world.bot_url, raw, first_headers)
    assert status == 200 and "started" in first["output"]["text"], first
    # The same request again (same signature), then re-signed with a new timestamp.
    for headers in (first_headers, signed(raw)):
        status, again, _ = await post(world.chat.http, world.bot_url, raw, headers)
        assert status == 200 and again == first
    await world.messages_for(ANA, "Saved twice.txt")
    assert [j["name"] for j in await jobs(world)] == ["twice.txt"]
    assert list(world.dropbox.files(DROPBOX_ANA)) == ["/Cliq Uploads/twice.txt"]


async def test_the_same_message_re_sent_is_saved_once(world: World) -> None:
    """A new body timestamp is another event identity (CONTRACT §7.6): one job, and the
    reply says the file is here already."""
    await connected_ana(world)
    body = file_body(world, ANA, "resent.txt", b"resent")
    first = await world.chat.post(body)
    assert "started" in first.text
    again = await world.chat.post({**body, "timestamp": body["timestamp"] + 1000})
    assert again.status == 200 and "already" in again.text, again.text
    await world.messages_for(ANA, "Saved resent.txt")
    assert len(await jobs(world)) == 1
    assert list(world.dropbox.files(DROPBOX_ANA)) == ["/Cliq Uploads/resent.txt"]


async def test_a_re_sent_message_with_one_more_file_saves_only_the_new_one(world: World) -> None:
    await connected_ana(world)
    old = world.cliq.add_file("old.txt", b"old")
    first = await world.chat.send_files(ANA, [old])
    assert "started" in first.text
    again = await world.chat.send_files(ANA, [old, world.cliq.add_file("new.txt", b"new")])
    assert "old.txt: I have this file already" in again.text, again.text
    assert "new.txt: upload" in again.text and "started" in again.text, again.text
    stored = {j["name"]: j["reply"] for j in await jobs(world)}
    assert stored == {"old.txt": first.output, "new.txt": again.output}  # each its reply
    await world.messages_for(ANA, "Saved new.txt")
    assert sorted(world.dropbox.files(DROPBOX_ANA)) == [
        "/Cliq Uploads/new.txt",
        "/Cliq Uploads/old.txt",
    ]


async def test_a_crash_between_the_write_and_the_reply_loses_nothing(
    world: World, aiohttp_server: Any
) -> None:
    """The process that wrote the job dies before its reply reaches Cliq and before its worker
    takes the job (``upload_concurrency=0``); Cliq's retry reaches another process."""
    await connected_ana(world)
    doomed = await peer(world, aiohttp_server, upload_concurrency=0)
    raw = dumps(file_body(world, ANA, "crash.txt", b"survives"))
    status, lost_reply, _ = await post(world.chat.http, doomed.url, raw, signed(raw))
    assert status == 200  # written and answered, but the answer never arrives
    await doomed.server.close()
    status, retried, _ = await post(world.chat.http, world.bot_url, raw, signed(raw))
    assert status == 200 and retried == lost_reply
    await world.messages_for(ANA, "Saved crash.txt")
    assert len(await jobs(world)) == 1
    assert list(world.dropbox.files(DROPBOX_ANA)) == ["/Cliq Uploads/crash.txt"]


# -- reads from memory ------------------------------------------------------------------------


async def welcome_says(chat: ChatDriver) -> str:
    return (await chat.post(chat.welcome(ANA))).text


async def seen_within_a_second(chat: ChatDriver, phrase: str, present: bool) -> None:
    """Every delivery that starts more than 1 s after the change (made before this is called)
    sees it: the staleness bound, whatever each delivery's own latency."""
    changed = time.monotonic()
    while True:
        started = time.monotonic()
        if (phrase in await welcome_says(chat)) == present:
            return
        assert started - changed < 1.0 + 0.02, "a delivery more than 1 s after it read the old"
        await asyncio.sleep(0.02)


async def test_another_process_sees_a_publish_and_unpublish_within_a_second(
    world: World, aiohttp_server: Any
) -> None:
    await world.setup_connection(switch="on")
    other = await peer(world, aiohttp_server)
    unpublished = "No connection is published"
    assert unpublished not in await welcome_says(other.chat)  # its cache holds "published"
    assert unpublished not in await welcome_says(other.chat)
    conns = other.app[RUNTIME].components.context.connections
    assert conns.cache.hits >= 1

    reply = await world.chat.run(ADMIN, "unpublish team_dropbox")
    assert "npublished" in reply.text, reply.text
    assert unpublished in await welcome_says(world.chat)  # the process that changed it: at once
    await seen_within_a_second(other.chat, unpublished, True)

    reply = await world.chat.run(ADMIN, "publish team_dropbox")
    assert "Published" in reply.text, reply.text
    assert unpublished not in await welcome_says(world.chat)
    await seen_within_a_second(other.chat, unpublished, False)


async def test_a_stale_read_letting_a_file_through_keeps_it_and_prompts(
    world: World, aiohttp_server: Any
) -> None:
    """Ana disconnects through one process while another still holds her authorization as
    connected (≤ 1 s): her next file there is queued, the worker finds no token, and the file
    is kept with a connect prompt — the path of a token that stopped working."""
    await world.setup_connection(switch="on")
    other = await peer(world, aiohttp_server)
    for attempt in range(3):  # the window is 1 s: on a loaded machine, try again
        await world.connect(ANA, DROPBOX_ANA)
        status = await other.chat.say(ANA, "status")  # reads her authorization into memory
        assert "connected" in status.text, status.text
        reply = await world.chat.say(ANA, "disconnect")
        assert "Disconnected" in reply.text, reply.text
        name = f"late-{attempt}.txt"
        late = await other.chat.send_files(ANA, [world.cliq.add_file(name, b"kept, not lost")])
        if "started" in late.text:
            break
    assert "started" in late.text, f"the read was never stale: {late.text}"
    prompt = await world.messages_for(ANA, f"{name}: your Dropbox connection no longer works")
    assert prompt.get("buttons"), prompt
    for _ in range(100):
        job = next(j for j in await jobs(world) if j["name"] == name)
        if job["state"] == "waiting" and job["lease"] is None:
            break
        await asyncio.sleep(0.1)
    assert job["state"] == "waiting" and job["kept_file"] is not None, job
    assert world.dropbox.files(DROPBOX_ANA) == {}


# -- admission control ------------------------------------------------------------------------


async def test_past_the_bound_deliveries_get_503_and_nothing_accepted_is_lost(
    world: World, aiohttp_server: Any
) -> None:
    await connected_ana(world)
    narrow = await peer(world, aiohttp_server, max_events_in_flight=1)
    bodies = [dumps(file_body(world, ANA, f"burst-{i}.txt", b"%d" % i)) for i in range(20)]
    answers = await asyncio.gather(
        *(post(world.chat.http, narrow.url, raw, signed(raw)) for raw in bodies)
    )
    shed = [raw for raw, (status, _, _) in zip(bodies, answers, strict=True) if status == 503]
    assert shed and len(shed) < len(bodies), [a[0] for a in answers]
    assert all(a[0] in (200, 503) for a in answers)
    assert all(headers.get("Retry-After") for status, _, headers in answers if status == 503)
    assert len(await jobs(world)) == len(bodies) - len(shed)  # a 503 accepted nothing
    for raw in shed:  # the sender retries
        status, _, _ = await post(world.chat.http, narrow.url, raw, signed(raw))
        assert status == 200
    for i in range(20):
        await world.messages_for(ANA, f"Saved burst-{i}.txt")
    assert len(await jobs(world)) == 20
    assert sorted(world.dropbox.files(DROPBOX_ANA)) == sorted(
        f"/Cliq Uploads/burst-{i}.txt" for i in range(20)
    )


async def test_concurrent_file_events_share_store_writes(world: World) -> None:
    await connected_ana(world)
    counts = monitor(world.app)
    before = counts.count("ack", "insert")
    replies = await asyncio.gather(
        *(world.chat.send_files(ANA, [world.cliq.add_file(f"c{i}.txt", b"c")]) for i in range(30))
    )
    assert all("started" in r.text for r in replies)
    assert len(await jobs(world)) == 30
    assert counts.count("ack", "insert") - before < 30


def test_the_bound_of_deliveries_in_flight_is_a_setting() -> None:
    assert load_settings({}).max_events_in_flight == 256
    assert load_settings({"BOT_MAX_EVENTS_IN_FLIGHT": "32"}).max_events_in_flight == 32
    with pytest.raises(ConfigError) as info:
        load_settings({"BOT_MAX_EVENTS_IN_FLIGHT": "0"})
    assert [p.split(":")[0] for p in info.value.problems] == ["BOT_MAX_EVENTS_IN_FLIGHT"]
