from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from pathlib import Path

from bot.app import create_app
from bot.config import Settings
from bot.keys import METRICS
from bot.secret import Secret
from storage.embedded import EmbeddedStore


async def test_healthz_and_readyz(aiohttp_client, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/healthz")
    assert resp.status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["mongodb"] == "ok"


async def test_readyz_503_while_mongodb_does_not_answer(
    aiohttp_client, settings: Settings, tmp_path
) -> None:
    store = EmbeddedStore(storage_dir=tmp_path / "own-store")
    await store.start()
    assert store.pid is not None
    try:
        app = create_app(dataclasses.replace(settings, mongodb_uri=Secret(store.uri)))
        client = await aiohttp_client(app)
        assert (await client.get("/readyz")).status == 200
        os.kill(store.pid, signal.SIGSTOP)  # the server hangs: no answers, no closed sockets
        await _stopped(store.pid)
        try:
            resp = await client.get("/readyz")
            assert resp.status == 503
            body = await resp.json()
            assert body["status"] == "unavailable"
            assert body["mongodb"]  # the driver error's name, e.g. NetworkTimeout
            assert (await client.get("/healthz")).status == 200
        finally:
            os.kill(store.pid, signal.SIGCONT)
        assert (await client.get("/readyz")).status == 200
        await client.close()
    finally:
        await store.stop()


async def _stopped(pid: int, within: float = 10.0) -> None:
    """Wait until every thread of ``pid`` is stopped: ``kill`` returns before they all are."""
    states = _thread_states(pid)
    for _ in range(int(within / 0.01)):
        if states <= {"T", "t"}:  # also when there is no /proc to read: the signal is all
            return
        await asyncio.sleep(0.01)
        states = _thread_states(pid)
    raise AssertionError(f"process {pid} did not stop: thread states {states}")


def _thread_states(pid: int) -> set[str]:
    states: set[str] = set()
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(OSError, IndexError):  # a thread that is gone: not answering
            states.add(stat.read_text().rsplit(")", 1)[1].split()[0])
    return states


async def test_metrics_is_prometheus_text(aiohttp_client, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert "# TYPE cliqbot_events_total counter" in text
    assert "# TYPE cliqbot_event_seconds histogram" in text


async def test_metrics_has_process_and_gc_metrics(aiohttp_client, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/metrics")
    assert resp.content_type == "text/plain"
    text = await resp.text()
    for family in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "python_gc_collections_total",
    ):
        assert f"# TYPE {family} " in text, family


def test_every_app_has_its_own_registry(settings: Settings) -> None:
    one, two = create_app(settings), create_app(settings)
    one[METRICS].uploads.inc(outcome="ok")
    one[METRICS].bytes_uploaded.inc(5)
    one[METRICS].event_latency.observe(0.02, handler="message_handler")
    first, second = one[METRICS].render(), two[METRICS].render()
    assert 'cliqbot_uploads_total{outcome="ok"} 1.0' in first
    assert "cliqbot_uploaded_bytes_total 5.0" in first
    assert 'cliqbot_event_seconds_count{handler="message_handler"} 1.0' in first
    assert "cliqbot_uploads_total{" not in second
    assert "cliqbot_uploaded_bytes_total 0.0" in second
