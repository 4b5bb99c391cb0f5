"""The embedded store runs ``--standalone``, which holds only while nothing needs a replica set."""

from __future__ import annotations

import re
from pathlib import Path

from pymongo import AsyncMongoClient

from storage.embedded import EmbeddedStore
from tests.sources import lines_matching

# What only a replica set gives: sessions for transactions, transactions, change streams.
_NEEDS_A_REPLICA_SET = re.compile(r"start_session|with_transaction|start_transaction|\.watch\(")


def test_no_code_needs_a_replica_set() -> None:
    found = lines_matching(_NEEDS_A_REPLICA_SET)
    assert found == [], "the embedded store is standalone (storage/embedded.py):\n" + "\n".join(
        found
    )


async def test_the_embedded_store_is_a_standalone_server(tmp_path: Path) -> None:
    async with EmbeddedStore(storage_dir=tmp_path) as store:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(store.uri)
        try:
            hello = await client.admin.command("hello")
            assert "setName" not in hello and hello.get("isWritablePrimary") is True, hello
            await client["d"]["c"].insert_one({"_id": 1})  # and it takes writes
        finally:
            await client.close()
