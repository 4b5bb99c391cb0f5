"""One-document writes by ``_id`` as the repositories send them, against ``findAndModify``.

Run from the repository root: ``.venv/bin/python -m benchmarks.bench_writes [--calls 40]``.

On its own embedded store, for a collection of 2,000 and of 20,000 documents, the mean time of
one call of:

* ``find_one_and_update({_id})`` returning the document after (what the repositories sent
  before), and :func:`storage.base.update_and_read` (an ``update_one`` and a read by ``_id``);
* the refresh lease: ``find_one_and_update`` with the old ``$or`` ("no lease, or one that
  lapsed"), and :meth:`storage.authorizations.Authorizations.take_lease` now.

Target: a call costs the same whatever the collection's size (ratio 20,000 / 2,000 near 1).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pymongo import ReturnDocument

from storage.authorizations import Authorizations
from storage.base import Store, update_and_read
from storage.embedded import EmbeddedStore
from storage.records import auth_id

SIZES = (2_000, 20_000)


async def _mean_ms(calls: int, call: Callable[[int], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for n in range(calls):
        await call(n)
    return (time.perf_counter() - started) / calls * 1000


async def measure(store: Store, size: int, calls: int) -> dict[str, float]:
    """On ``store`` (a database of its own), ``size`` authorization-shaped documents."""
    col = store.db["authorizations"]
    auths = Authorizations(store.db)  # the same documents, through the repository's own code
    for start in range(0, size, 5_000):
        docs = [{"_id": auth_id("link", str(i)), "n": i} for i in range(start, start + 5_000)]
        await col.insert_many(docs[: size - start])

    def lapsed() -> dict[str, object]:
        return {"$set": {"lease": {"holder": "x", "until": datetime.now(UTC) - timedelta(1)}}}

    async def old_read(n: int) -> object:
        return await col.find_one_and_update(
            {"_id": auth_id("link", str(n))},
            {"$inc": {"n": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def new_read(n: int) -> object:
        return await update_and_read(col, {"_id": auth_id("link", str(n))}, {"$inc": {"n": 1}})

    async def old_lease(n: int) -> object:
        now = datetime.now(UTC)
        return await col.find_one_and_update(
            {
                "_id": auth_id("link", str(n)),
                "$or": [{"lease": {"$exists": False}}, {"lease.until": {"$lt": now}}],
            },
            lapsed(),
        )

    async def new_lease(n: int) -> object:
        return await auths.take_lease("link", str(n + calls), "bench", -1.0)

    return {
        "findAndModify by _id": await _mean_ms(calls, old_read),
        "update_and_read": await _mean_ms(calls, new_read),
        "lease, findAndModify + $or": await _mean_ms(calls, old_lease),
        "lease, take_lease now": await _mean_ms(calls, new_lease),
    }


async def main(calls: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp:
        async with EmbeddedStore(storage_dir=Path(tmp)) as embedded:
            results = {}
            for size in SIZES:
                store = Store.open(embedded.uri, f"bench_writes_{size}")
                try:
                    results[size] = await measure(store, size, calls)
                finally:
                    await store.close(10)
    print(f"mean ms per call, {calls} calls each, embedded store (SecantusDB --standalone)")
    print(f"{'operation':<28} | " + " | ".join(f"{s:>7,} docs" for s in SIZES) + " | ratio")
    for name in results[SIZES[0]]:
        small, large = results[SIZES[0]][name], results[SIZES[-1]][name]
        print(f"{name:<28} | {small:>12.2f} | {large:>12.2f} | {large / small:5.1f}")
    print("target: a call costs the same whatever the collection's size (ratio near 1)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    raise SystemExit(asyncio.run(main(parser.parse_args().calls)))
