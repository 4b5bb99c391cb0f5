"""Per-user authorizations of connections, connect links and OAuth ``state``s.

Token fields are stored as vault-sealed documents (ciphertext plus key id); this module never sees
plaintext. One authorization per (connection, chat user): the owner's record doubles as the
connection's own authorization when "use credentials of login user" is off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.base import Database, Doc, store_call, update_and_read
from storage.records import (
    CONNECTED,
    DISCONNECTED,
    PENDING,
    Authorization,
    ConnectLink,
    OAuthState,
    auth_id,
)


def _authorization(doc: Doc) -> Authorization:
    account = doc.get("account") or {}
    return Authorization(
        link=doc["connection"],
        user_id=doc["user_id"],
        user_email=doc.get("user_email", ""),
        status=doc.get("status", DISCONNECTED),
        account_id=account.get("id", ""),
        account_email=account.get("email", ""),
        account_name=account.get("name", ""),
        access=doc.get("access"),
        refresh=doc.get("refresh"),
        expires_at=doc.get("expires_at"),
        version=int(doc.get("version", 0)),
        pending=doc.get("pending"),
        lifetime=doc.get("lifetime"),
        server=doc.get("server") or None,
    )


class Authorizations:
    def __init__(self, db: Database) -> None:
        self._col = db["authorizations"]

    async def ensure_indexes(self) -> None:
        await self._col.create_index([("user_id", 1), ("status", 1)])
        await self._col.create_index([("connection", 1), ("status", 1)])

    @store_call
    async def get(self, link: str, user_id: str) -> Authorization | None:
        doc = await self._col.find_one({"_id": auth_id(link, user_id)})
        return _authorization(doc) if doc else None

    @store_call
    async def save(
        self,
        link: str,
        user_id: str,
        *,
        user_email: str,
        status: str,
        account: Mapping[str, str],
        access: Mapping[str, Any],
        refresh: Mapping[str, Any] | None,
        expires_at: float | None,
        scope: str,
        pending: Mapping[str, Any] | None = None,
        lifetime: float | None = None,
        server: str | None = None,
    ) -> Authorization:
        now = datetime.now(UTC)
        doc = await update_and_read(
            self._col,
            {"_id": auth_id(link, user_id)},
            {
                "$set": {
                    "connection": link,
                    "user_id": user_id,
                    "user_email": user_email,
                    "status": status,
                    "account": dict(account),
                    "access": dict(access),
                    "refresh": dict(refresh) if refresh is not None else None,
                    "expires_at": expires_at,
                    "lifetime": lifetime,
                    "scope": scope,
                    "pending": dict(pending) if pending is not None else None,
                    "server": server,
                    "updated_at": now,
                },
                "$inc": {"version": 1},
                "$unset": {"lease": ""},
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
        )
        assert doc is not None
        return _authorization(doc)

    @store_call
    async def mark_disconnected(self, link: str, user_id: str) -> None:
        """Keep the record (status shows ``disconnected``) but drop every token."""
        await self._col.update_one(
            {"_id": auth_id(link, user_id)},
            {
                "$set": {
                    "status": DISCONNECTED,
                    "access": None,
                    "refresh": None,
                    "pending": None,
                    "updated_at": datetime.now(UTC),
                },
                "$inc": {"version": 1},
                "$unset": {"lease": ""},
            },
        )

    @store_call
    async def delete(self, link: str, user_id: str) -> bool:
        result = await self._col.delete_one({"_id": auth_id(link, user_id)})
        return result.deleted_count == 1

    @store_call
    async def of_user(self, user_id: str) -> list[Authorization]:
        return [_authorization(d) async for d in self._col.find({"user_id": user_id})]

    @store_call
    async def of_connection(self, link: str) -> list[Authorization]:
        return [_authorization(d) async for d in self._col.find({"connection": link})]

    @store_call
    async def count_connected(self, link: str) -> int:
        return await self._col.count_documents({"connection": link, "status": CONNECTED})

    # -- the refresh lease: one refresh per authorization at a time, across every process --

    @store_call
    async def take_lease(self, link: str, user_id: str, holder: str, seconds: float) -> bool:
        now = datetime.now(UTC)
        result = await self._col.update_one(
            # No lease, or one that lapsed ("not until a time still to come"): one indexed
            # condition, where an ``$or`` of the two made SecantusDB scan the collection.
            {"_id": auth_id(link, user_id), "lease.until": {"$not": {"$gte": now}}},
            {"$set": {"lease": {"holder": holder, "until": now + timedelta(seconds=seconds)}}},
        )
        return result.matched_count == 1

    @store_call
    async def release_lease(self, link: str, user_id: str, holder: str) -> None:
        await self._col.update_one(
            {"_id": auth_id(link, user_id), "lease.holder": holder}, {"$unset": {"lease": ""}}
        )

    @store_call
    async def store_refreshed(
        self,
        link: str,
        user_id: str,
        holder: str,
        *,
        access: Mapping[str, Any],
        refresh: Mapping[str, Any] | None,
        expires_at: float | None,
        lifetime: float | None = None,
    ) -> bool:
        """Write refreshed tokens if ``holder`` still holds the lease; releases it."""
        changes: Doc = {"access": dict(access), "expires_at": expires_at, "lifetime": lifetime}
        if refresh is not None:
            changes["refresh"] = dict(refresh)
        result = await self._col.update_one(
            {"_id": auth_id(link, user_id), "lease.holder": holder, "status": CONNECTED},
            {"$set": changes, "$inc": {"version": 1}, "$unset": {"lease": ""}},
        )
        return result.modified_count == 1

    # -- linking check --

    @store_call
    async def count_try(self, link: str, user_id: str) -> int:
        doc = await update_and_read(
            self._col,
            {"_id": auth_id(link, user_id), "status": PENDING},
            {"$inc": {"pending.tries": 1}},
        )
        return int(doc["pending"]["tries"]) if doc else 0

    @store_call
    async def activate(self, link: str, user_id: str) -> bool:
        result = await self._col.update_one(
            {"_id": auth_id(link, user_id), "status": PENDING},
            {"$set": {"status": CONNECTED, "pending": None}, "$inc": {"version": 1}},
        )
        return result.modified_count == 1

    @store_call
    async def pending_of_user(self, user_id: str) -> list[Authorization]:
        return [
            _authorization(d) async for d in self._col.find({"user_id": user_id, "status": PENDING})
        ]

    @store_call
    async def expired_pending(self, now: float) -> list[Authorization]:
        query = {"status": PENDING, "pending.expires_at": {"$lt": now}}
        return [_authorization(d) async for d in self._col.find(query)]

    async def every_sealed(self) -> AsyncIterator[Authorization]:
        async for doc in self._col.find({"access": {"$ne": None}}):
            yield _authorization(doc)

    @store_call
    async def replace_sealed(
        self,
        link: str,
        user_id: str,
        version: int,
        access: Mapping[str, Any],
        refresh: Mapping[str, Any] | None,
    ) -> bool:
        result = await self._col.update_one(
            {"_id": auth_id(link, user_id), "version": version},
            {"$set": {"access": dict(access), "refresh": dict(refresh) if refresh else None}},
        )
        return result.modified_count == 1


class ConnectLinks:
    """Single-use, expiring links bound to one chat user and one connection."""

    def __init__(self, db: Database) -> None:
        self._col = db["connect_links"]

    async def ensure_indexes(self) -> None:
        await self._col.create_index("expires_at", expireAfterSeconds=0)

    @store_call
    async def create(
        self, link_id: str, connection: str, user_id: str, user_email: str, ttl: float
    ) -> None:
        await self._col.insert_one(
            {
                "_id": link_id,
                "connection": connection,
                "user_id": user_id,
                "user_email": user_email,
                "used": False,
                "expires_at": datetime.now(UTC) + timedelta(seconds=ttl),
            }
        )

    @store_call
    async def consume(self, link_id: str) -> ConnectLink | None:
        """Mark the link used and return it, if it exists, is unused and has not expired."""
        doc = await update_and_read(
            self._col,
            {"_id": link_id, "used": False, "expires_at": {"$gt": datetime.now(UTC)}},
            {"$set": {"used": True}},
        )
        if doc is None:
            return None
        return ConnectLink(doc["_id"], doc["connection"], doc["user_id"], doc["user_email"])


class OAuthStates:
    """Server-side, single-use ``state`` values holding the sealed PKCE verifier."""

    def __init__(self, db: Database) -> None:
        self._col = db["oauth_states"]

    async def ensure_indexes(self) -> None:
        await self._col.create_index("expires_at", expireAfterSeconds=0)

    @store_call
    async def create(
        self,
        state: str,
        connection: str,
        user_id: str,
        user_email: str,
        verifier: Mapping[str, Any],
        ttl: float,
    ) -> None:
        await self._col.insert_one(
            {
                "_id": state,
                "connection": connection,
                "user_id": user_id,
                "user_email": user_email,
                "verifier": dict(verifier),
                "expires_at": datetime.now(UTC) + timedelta(seconds=ttl),
            }
        )

    @store_call
    async def consume(self, state: str) -> OAuthState | None:
        # A read, then a delete of what was read (a findAndModify scans on SecantusDB:
        # storage/base.py update_and_read): of two callbacks with one state, one deletes it.
        query = {"_id": state, "expires_at": {"$gt": datetime.now(UTC)}}
        doc = await self._col.find_one(query)
        if doc is None or (await self._col.delete_one(query)).deleted_count != 1:
            return None
        return OAuthState(
            doc["_id"], doc["connection"], doc["user_id"], doc["user_email"], doc["verifier"]
        )
