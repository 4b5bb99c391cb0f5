"""Kept actions (CONTRACT §10): events whose handler needed a connection the user had not got.

One document per event identity (``_id``), so keeping the same event twice keeps it once. It
holds the event as the bot encoded it (``body``, opaque here), who sent it (``user_id``: whom
the reply goes to), the connection (``link``) and whose authorization it waits for
(``credential_user``: the sender, or the owner when the switch is off), and its expiry.

States::

    waiting ──(claimed: the credential user connected)──▶ running ──▶ done
    waiting ──(expires_at passed)──▶ expired
    running ──(its holder vanished: lease lapsed)──▶ interrupted
    running ──(kept again: the handler needs another connection)──▶ waiting

A claim is one conditional update from ``waiting`` to ``running``, so of several processes
(or a callback and a housekeeping sweep) exactly one runs an action; a running action is never
claimed again (its handler runs at most once). Documents that ended (``done``, ``expired``,
``interrupted``) are dropped by a TTL index a week later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from storage.base import Database, Doc, store_call, update_and_read

__all__ = [
    "DONE",
    "EXPIRED",
    "INTERRUPTED",
    "RUNNING",
    "WAITING",
    "KeptAction",
    "KeptActions",
]

WAITING: Final = "waiting"
RUNNING: Final = "running"
DONE: Final = "done"
EXPIRED: Final = "expired"
INTERRUPTED: Final = "interrupted"

_ENDED_KEEP_SECONDS: Final = 7 * 24 * 3600


@dataclass(frozen=True)
class KeptAction:
    id: str  # the event's identity
    body: str
    summary: str  # what the user asked for, in a few words, for "it expired" messages
    user_id: str
    link: str
    credential_user: str
    state: str
    created_at: datetime
    expires_at: datetime


def _action(doc: Doc) -> KeptAction:
    return KeptAction(
        id=str(doc["_id"]),
        body=str(doc["body"]),
        summary=str(doc.get("summary", "")),
        user_id=str(doc["user_id"]),
        link=str(doc["link"]),
        credential_user=str(doc["credential_user"]),
        state=str(doc["state"]),
        created_at=doc["created_at"],
        expires_at=doc["expires_at"],
    )


class KeptActions:
    def __init__(self, db: Database) -> None:
        self._col = db["kept_actions"]

    async def ensure_indexes(self) -> None:
        await self._col.create_index([("link", 1), ("credential_user", 1), ("state", 1)])
        await self._col.create_index([("state", 1), ("expires_at", 1)])
        await self._col.create_index("ended_at", expireAfterSeconds=_ENDED_KEEP_SECONDS)

    @store_call
    async def keep(
        self,
        identity: str,
        *,
        body: str,
        summary: str,
        user_id: str,
        link: str,
        credential_user: str,
        ttl: float,
    ) -> KeptAction:
        """Keep (or keep again) the event ``identity`` waiting for ``credential_user`` to
        connect ``link``; the expiry counts from when it was first kept."""
        now = datetime.now(UTC)
        doc = await update_and_read(
            self._col,
            {"_id": identity},
            {
                "$set": {
                    "body": body,
                    "summary": summary,
                    "user_id": user_id,
                    "link": link,
                    "credential_user": credential_user,
                    "state": WAITING,
                    "lease": None,
                },
                "$unset": {"ended_at": ""},
                "$setOnInsert": {
                    "created_at": now,
                    "expires_at": now + timedelta(seconds=ttl),
                },
            },
            upsert=True,
        )
        assert doc is not None  # an upsert returning the document after it always has one
        return _action(doc)

    @store_call
    async def waiting_for(self, link: str, credential_user: str) -> list[KeptAction]:
        """The unexpired actions waiting for ``credential_user`` to connect ``link``, oldest
        first."""
        cursor = self._col.find(
            {
                "link": link,
                "credential_user": credential_user,
                "state": WAITING,
                "expires_at": {"$gt": datetime.now(UTC)},
            }
        ).sort([("created_at", 1), ("_id", 1)])
        return [_action(doc) async for doc in cursor]

    @store_call
    async def waiting(self, limit: int = 100) -> list[KeptAction]:
        """Unexpired waiting actions, oldest first (the housekeeping sweep looks at them)."""
        cursor = (
            self._col.find({"state": WAITING, "expires_at": {"$gt": datetime.now(UTC)}})
            .sort([("created_at", 1), ("_id", 1)])
            .limit(limit)
        )
        return [_action(doc) async for doc in cursor]

    @store_call
    async def claim(self, identity: str, holder: str, lease: float) -> KeptAction | None:
        """Move a waiting, unexpired action to running for ``holder``; ``None`` if it is not
        waiting any more (someone else claimed it, it expired, or it is gone)."""
        now = datetime.now(UTC)
        doc = await update_and_read(
            self._col,
            {"_id": identity, "state": WAITING, "expires_at": {"$gt": now}},
            {
                "$set": {
                    "state": RUNNING,
                    "lease": {"holder": holder, "until": now + timedelta(seconds=lease)},
                }
            },
        )
        return _action(doc) if doc is not None else None

    @store_call
    async def finish(self, identity: str, holder: str) -> bool:
        """Running → done, if ``holder`` still runs it (not if it was kept again meanwhile)."""
        result = await self._col.update_one(
            {"_id": identity, "state": RUNNING, "lease.holder": holder},
            {"$set": {"state": DONE, "lease": None, "ended_at": datetime.now(UTC)}},
        )
        return result.modified_count == 1

    @store_call
    async def end_expired(self, limit: int = 100) -> list[KeptAction]:
        """Waiting actions past their expiry, each moved to ``expired`` by this call (so one
        process tells the user)."""
        return await self._end({"state": WAITING}, "expires_at", EXPIRED, limit)

    @store_call
    async def end_interrupted(self, limit: int = 100) -> list[KeptAction]:
        """Running actions whose holder's lease lapsed (the process died mid-run), each moved
        to ``interrupted`` by this call."""
        return await self._end({"state": RUNNING}, "lease.until", INTERRUPTED, limit)

    async def _end(self, match: Doc, due: str, state: str, limit: int) -> list[KeptAction]:
        now = datetime.now(UTC)
        ended: list[KeptAction] = []
        async for doc in self._col.find({**match, due: {"$lt": now}}).limit(limit):
            taken = await update_and_read(
                self._col,
                {"_id": doc["_id"], **match, due: {"$lt": now}},
                {"$set": {"state": state, "lease": None, "ended_at": now}},
            )
            if taken is not None:
                ended.append(_action(taken))
        return ended
