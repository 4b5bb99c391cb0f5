"""The web layer (``bot/web/``): above storage, and its cross-cutting work done once.

It reaches the database only through the objects on the Runtime (the store, the repositories of
the components), so importing it loads no driver; request logging and error mapping are the
app-wide middlewares, registered by ``create_app``.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import create_app
from bot.config import Settings
from bot.web import webhook
from bot.web.middleware import error_middleware, logging_middleware

ROOT = Path(__file__).resolve().parents[2]

_IMPORT_EVERY_WEB_MODULE = """
import importlib, json, pkgutil, sys
import bot.web
names = [f"bot.web.{m.name}" for m in pkgutil.iter_modules(bot.web.__path__)]
for name in names:
    importlib.import_module(name)
drivers = sorted(n for n in sys.modules if n.split(".")[0] in ("pymongo", "gridfs", "bson"))
print(json.dumps({"imported": names, "drivers": drivers}))
"""


def test_importing_every_web_module_loads_no_driver() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERY_WEB_MODULE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert {"bot.web.webhook", "bot.web.health", "bot.web.middleware"} <= set(report["imported"])
    assert report["drivers"] == []


def test_the_app_wide_middlewares_are_registered_outermost_first(settings: Settings) -> None:
    app = create_app(settings)
    assert list(app.middlewares) == [logging_middleware, error_middleware]
    assert app._client_max_size == webhook.MAX_BODY  # one limit, the webhook's (CONTRACT §4)


async def test_an_unsigned_delivery_is_mapped_logged_and_counted(
    aiohttp_client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.access")
    client = await aiohttp_client(create_app(settings))
    resp = await client.post("/cliq/webhook", data=b'{"type": "bot"}')
    assert resp.status == 401
    assert (await resp.json())["error"] == "the request is not signed"
    assert any(
        r.name == "bot.access" and r.getMessage().startswith("POST /cliq/webhook 401 ")
        for r in caplog.records
    )
    metrics = await (await client.get("/metrics")).text()
    assert 'cliqbot_events_total{handler="unknown",outcome="http_401"} 1.0' in metrics


async def test_a_body_over_the_limit_is_413_naming_the_limit(
    aiohttp_client, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.post("/cliq/webhook", data=io.BytesIO(b"x" * (webhook.MAX_BODY + 1)))
    assert resp.status == 413
    assert (await resp.json())["error"] == "the body is larger than 1 MiB"
