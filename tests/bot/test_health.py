from __future__ import annotations

import dataclasses
import os
import signal

from bot.app import create_app
from bot.config import Settings
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
        try:
            resp = await client.get("/readyz")
            assert resp.status == 503
            assert (await resp.json())["status"] == "unavailable"
            assert (await client.get("/healthz")).status == 200
        finally:
            os.kill(store.pid, signal.SIGCONT)
        assert (await client.get("/readyz")).status == 200
        await client.close()
    finally:
        await store.stop()


async def test_metrics_is_prometheus_text(aiohttp_client, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert "# TYPE cliqbot_events_total counter" in text
    assert "# TYPE cliqbot_event_seconds histogram" in text
