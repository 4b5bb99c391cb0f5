"""``cliqbot rotate-keys`` as an operator runs it: it re-seals secrets and does nothing else.

A maintenance command must not do product work: no upload worker (a kept file stays kept, a file
still to download is not fetched), no housekeeping (an expired linking check is not revoked at
the provider, an old kept file does not expire), and no HTTP request to any provider or to Cliq.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pymongo import AsyncMongoClient

from bot.vault import Vault, parse_keys
from storage.authorizations import Authorizations
from storage.base import Database
from storage.connections import Connections
from storage.records import KEEP, PENDING, WAITING, Connection
from storage.uploads import UploadJobs
from tests.conftest import ANA, BEN, make_key

LINK = "team_dropbox"
_ENV_KEEP = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")


class Recorder:
    """A stand-in for every outside service (Dropbox, Cliq, attachment URLs): it answers
    everything and remembers each request, so the test can say none came."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        return app

    async def _any(self, request: web.Request) -> web.Response:
        self.requests.append(f"{request.method} {request.path}")
        return web.json_response({})


@pytest.fixture
async def db(mongo_uri: str, db_name: str) -> AsyncIterator[Database]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        yield client[db_name]
    finally:
        await client.close()


async def _one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_rotate_keys_does_no_product_work(
    tmp_path: Path, mongo_uri: str, db_name: str, db: Database, aiohttp_server: Any
) -> None:
    recorder = Recorder()
    outside = str((await aiohttp_server(recorder.app())).make_url("")).rstrip("/")
    old_key, new_key = make_key(), make_key()
    old_vault = Vault(parse_keys(old_key))

    await Connections(db).create(
        Connection(
            link=LINK,
            name="Team Dropbox",
            service="dropbox",
            scopes=("files.content.write",),
            login_user_credentials=True,
            owner_id="1001",
            owner_email="admin@example.com",
        )
    )
    # A linking check nobody finished, expired a minute ago: housekeeping would revoke it at
    # Dropbox and delete it.
    sealed = {
        part: old_vault.seal(f"{part}-token", aad=f"authorization:{LINK}:{ANA.id}:{part}")
        for part in ("a", "r")
    }
    await Authorizations(db).save(
        LINK,
        ANA.id,
        user_email=ANA.email,
        status=PENDING,
        account={"id": "dbid:ana", "email": "ana@dropbox.example", "name": "Ana"},
        access=sealed["a"].to_doc(),
        refresh=sealed["r"].to_doc(),
        expires_at=time.time() + 3600,
        scope="files.content.write",
        pending={"code_hash": "x", "expires_at": time.time() - 60, "tries": 0},
    )
    # A kept file, older than BOT_KEPT_FILE_TTL: housekeeping would expire and delete it.
    jobs = UploadJobs(db)
    kept = await jobs.create(
        sender_id=BEN.id,
        attachment_id="old",
        connection=LINK,
        credential_user=BEN.id,
        name="old.txt",
        url=f"{outside}/files/old",
        state=WAITING,
    )
    assert kept is not None
    file_id, size = await jobs.save_kept(kept.id, kept.name, _one_piece(b"kept bytes"))
    a_month_ago = datetime.now(UTC) - timedelta(days=30)
    await db["upload_jobs"].update_one(
        {"_id": kept.id},
        {"$set": {"kept_file": file_id, "size": size, "created_at": a_month_ago}},
    )
    # A file still to download: the worker would fetch it from its URL.
    fetch = await jobs.create(
        sender_id=BEN.id,
        attachment_id="new",
        connection=LINK,
        credential_user=BEN.id,
        name="new.txt",
        url=f"{outside}/files/new",
        state=KEEP,
    )
    assert fetch is not None
    before = {d["_id"]: d async for d in db["upload_jobs"].find()}

    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
    env.update(
        {
            "BOT_DATA_DIR": str(tmp_path / "data"),
            "MONGODB_URI": mongo_uri,
            "MONGODB_DB": db_name,
            "BOT_ENCRYPTION_KEYS": f"{new_key},{old_key}",
            "BOT_KEPT_FILE_TTL": "60",
            "BOT_WEBHOOK_SECRET": "s3cr3t",
            "CLIQ_API_BASE": f"{outside}/api/v2",
            "CLIQ_BOT_NAME": "filesbot",
            "CLIQ_WEBHOOK_TOKEN": "zapi-test-token",
            "DROPBOX_APP_KEY": "test-app-key",
            "DROPBOX_APP_SECRET": "test-app-secret",
            "DROPBOX_AUTHORIZE_URL": f"{outside}/oauth2/authorize",
            "DROPBOX_API_URL": outside,
            "DROPBOX_CONTENT_URL": outside,
        }
    )
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "rotate-keys",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "re-encrypted 1 record(s)" in out.decode(), out.decode()
    assert time.monotonic() - started < 20  # no drain of a worker it should not have started

    assert recorder.requests == []
    # The linking check is still there, still pending, now sealed under the new key.
    auth = await Authorizations(db).get(LINK, ANA.id)
    assert auth is not None and auth.status == PENDING
    assert auth.pending is not None and auth.pending["tries"] == 0
    assert auth.access is not None and auth.access["kid"] != sealed["a"].kid
    # The jobs are exactly as they were, and the kept bytes are still there.
    after = {d["_id"]: d async for d in db["upload_jobs"].find()}
    assert after == before
    async with jobs.read_kept(file_id, 0) as pieces:
        assert b"".join([p async for p in pieces]) == b"kept bytes"
