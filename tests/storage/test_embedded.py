from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from bot.errors import EmbeddedStoreError
from storage.embedded import EmbeddedStore


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_data_survives_a_restart_and_no_child_is_left(tmp_path: Path) -> None:
    store = EmbeddedStore(storage_dir=tmp_path)
    await store.start()
    pid = store.pid
    assert pid is not None
    client: AsyncMongoClient = AsyncMongoClient(store.uri)
    await client["d"]["c"].insert_one({"_id": "kept", "v": 1})
    await client.close()
    await store.stop()
    assert not _alive(pid)

    again = EmbeddedStore(storage_dir=tmp_path)
    await again.start()
    try:
        client = AsyncMongoClient(again.uri)
        assert await client["d"]["c"].find_one({"_id": "kept"}) == {"_id": "kept", "v": 1}
        await client.close()
    finally:
        await again.stop()


async def test_a_crashed_child_is_reported(tmp_path: Path) -> None:
    store = EmbeddedStore(storage_dir=tmp_path)
    await store.start()
    assert store.pid is not None
    os.kill(store.pid, signal.SIGKILL)
    assert store._proc is not None
    await store._proc.wait()
    assert store.crashed() == -signal.SIGKILL
    await store.stop()


async def test_a_child_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    blocker = tmp_path / "store"
    blocker.mkdir()
    (blocker / "db").write_text("a file where the store wants its folder")
    store = EmbeddedStore(storage_dir=blocker)
    with pytest.raises(EmbeddedStoreError, match="exited with code"):
        await store.start(timeout=30)
    assert store.pid is None
