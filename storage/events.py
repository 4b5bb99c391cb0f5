"""Processed inbound deliveries, for answering a repeated delivery without doing the work twice."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from storage.base import Database, store_call
from storage.records import Delivery

_KEEP_SECONDS = 7 * 24 * 3600
_STALE_SECONDS = 60


class ProcessedEvents:
    """One document per event identity; the first delivery claims it, later ones read its reply."""

    def __init__(self, db: Database) -> None:
        self._col = db["processed_events"]

    async def ensure_indexes(self) -> None:
        await self._col.create_index("at", expireAfterSeconds=_KEEP_SECONDS)

    @store_call
    async def claim(self, key: str) -> Delivery | None:
        """Claim ``key``; ``None`` if this is the first delivery, else what the first one stored."""
        try:
            await self._col.insert_one({"_id": key, "at": datetime.now(UTC), "reply": None})
        except DuplicateKeyError:
            now = datetime.now(UTC)
            # A claim whose processing died long ago (no reply) is taken over, not waited on.
            taken = await self._col.find_one_and_update(
                {"_id": key, "reply": None, "at": {"$lt": now - timedelta(seconds=_STALE_SECONDS)}},
                {"$set": {"at": now}},
            )
            if taken is not None:
                return None
            doc = await self._col.find_one({"_id": key})
            return Delivery(key, doc.get("reply") if doc else None)
        return None

    @store_call
    async def complete(self, key: str, reply: dict[str, Any]) -> None:
        await self._col.update_one({"_id": key}, {"$set": {"reply": reply}})

    @store_call
    async def release(self, key: str) -> None:
        """Forget a claim whose processing failed, so the sender's retry is processed afresh."""
        await self._col.delete_one({"_id": key, "reply": None})

    async def wait_reply(self, key: str, timeout: float) -> dict[str, Any] | None:
        """The first delivery's reply, waiting up to ``timeout`` s while it is still in flight."""
        deadline = time.monotonic() + timeout
        while True:
            doc = await self._find(key)
            if doc is not None and doc.get("reply") is not None:
                reply: dict[str, Any] = doc["reply"]
                return reply
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)

    @store_call
    async def _find(self, key: str) -> dict[str, Any] | None:
        return await self._col.find_one({"_id": key})
