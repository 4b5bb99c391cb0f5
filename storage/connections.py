"""Custom services, connections and the admin audit log.

A connection's ``_id`` is its link name: derived from its name, unique (the primary key makes two
concurrent ``create``s of the same name impossible to both win), and never changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from bot.errors import AlreadyExists, UnknownRecord
from storage.base import Database, Doc, store_call
from storage.records import Connection, ServiceRecord


def _connection(doc: Doc) -> Connection:
    return Connection(
        link=doc["_id"],
        name=doc["name"],
        service=doc["service"],
        scopes=tuple(doc.get("scopes", ())),
        login_user_credentials=bool(doc.get("login_user_credentials", True)),
        owner_id=doc["owner_id"],
        owner_email=doc.get("owner_email", ""),
        published=bool(doc.get("published", False)),
        created_at=doc.get("created_at") or datetime.now(UTC),
    )


def _service(doc: Doc) -> ServiceRecord:
    return ServiceRecord(
        name=doc["name"],
        authorize_url=doc["authorize_url"],
        token_url=doc["token_url"],
        client_id=doc["client_id"],
        client_secret_sealed=doc["client_secret"],
        refresh_url=doc.get("refresh_url"),
        revoke_url=doc.get("revoke_url"),
        userinfo_url=doc.get("userinfo_url"),
        scopes=tuple(doc.get("scopes", ())),
        param_type=doc.get("param_type", "header"),
        scope_delimiter=doc.get("scope_delimiter", ","),
        created_by=doc.get("created_by", ""),
    )


class ServiceRecords:
    """Custom services (the default Dropbox service comes from configuration)."""

    def __init__(self, db: Database) -> None:
        self._col = db["services"]

    async def ensure_indexes(self) -> None:
        return None  # _id is the lowercased name

    @store_call
    async def add(self, record: ServiceRecord) -> None:
        doc: Doc = {
            "_id": record.key,
            "name": record.name,
            "authorize_url": record.authorize_url,
            "token_url": record.token_url,
            "client_id": record.client_id,
            "client_secret": dict(record.client_secret_sealed),
            "refresh_url": record.refresh_url,
            "revoke_url": record.revoke_url,
            "userinfo_url": record.userinfo_url,
            "scopes": list(record.scopes),
            "param_type": record.param_type,
            "scope_delimiter": record.scope_delimiter,
            "created_by": record.created_by,
            "created_at": datetime.now(UTC),
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            raise AlreadyExists("service", record.name) from None

    @store_call
    async def get(self, name: str) -> ServiceRecord | None:
        doc = await self._col.find_one({"_id": name.lower()})
        return _service(doc) if doc else None

    @store_call
    async def all(self) -> list[ServiceRecord]:
        return [_service(doc) async for doc in self._col.find().sort("_id", 1)]

    @store_call
    async def remove(self, name: str) -> bool:
        result = await self._col.delete_one({"_id": name.lower()})
        return result.deleted_count == 1

    async def every_sealed(self) -> AsyncIterator[ServiceRecord]:
        """Every custom service, for re-sealing client secrets under a new key."""
        async for doc in self._col.find():
            yield _service(doc)

    @store_call
    async def replace_secret(self, name: str, client_secret: Mapping[str, Any]) -> None:
        await self._col.update_one(
            {"_id": name.lower()}, {"$set": {"client_secret": dict(client_secret)}}
        )


class Connections:
    def __init__(self, db: Database) -> None:
        self._col = db["connections"]

    async def ensure_indexes(self) -> None:
        await self._col.create_index("owner_id")
        await self._col.create_index("service")
        await self._col.create_index("published")

    @store_call
    async def create(self, conn: Connection) -> None:
        try:
            await self._col.insert_one(
                {
                    "_id": conn.link,
                    "name": conn.name,
                    "service": conn.service,
                    "scopes": list(conn.scopes),
                    "login_user_credentials": conn.login_user_credentials,
                    "owner_id": conn.owner_id,
                    "owner_email": conn.owner_email,
                    "published": False,
                    "created_at": conn.created_at,
                }
            )
        except DuplicateKeyError:
            raise AlreadyExists("connection", conn.link) from None

    @store_call
    async def get(self, link: str) -> Connection | None:
        doc = await self._col.find_one({"_id": link})
        return _connection(doc) if doc else None

    async def require(self, link: str) -> Connection:
        conn = await self.get(link)
        if conn is None:
            raise UnknownRecord("connection", link)
        return conn

    @store_call
    async def update(self, link: str, changes: Mapping[str, Any]) -> Connection:
        doc = await self._col.find_one_and_update(
            {"_id": link},
            {"$set": {**changes, "updated_at": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise UnknownRecord("connection", link)
        return _connection(doc)

    @store_call
    async def publish(self, link: str) -> list[str]:
        """Make ``link`` the published connection; returns links that were unpublished for it."""
        previous = [
            doc["_id"]
            async for doc in self._col.find({"published": True, "_id": {"$ne": link}}, {"_id": 1})
        ]
        await self._col.update_many({"_id": {"$in": previous}}, {"$set": {"published": False}})
        await self._col.update_one({"_id": link}, {"$set": {"published": True}})
        return previous

    @store_call
    async def published(self) -> Connection | None:
        doc = await self._col.find_one({"published": True}, sort=[("created_at", 1)])
        return _connection(doc) if doc else None

    @store_call
    async def owned_by(self, user_id: str) -> list[Connection]:
        return [_connection(d) async for d in self._col.find({"owner_id": user_id}).sort("_id")]

    @store_call
    async def by_links(self, links: Sequence[str]) -> list[Connection]:
        return [_connection(d) async for d in self._col.find({"_id": {"$in": list(links)}})]

    @store_call
    async def using_service(self, service: str) -> list[str]:
        return [d["_id"] async for d in self._col.find({"service": service.lower()}, {"_id": 1})]

    @store_call
    async def delete(self, link: str) -> bool:
        result = await self._col.delete_one({"_id": link, "published": False})
        return result.deleted_count == 1


class AuditLog:
    """Who changed what, when: one document per admin change."""

    def __init__(self, db: Database) -> None:
        self._col = db["audit"]

    async def ensure_indexes(self) -> None:
        await self._col.create_index([("at", -1)])

    @store_call
    async def record(
        self, actor_id: str, actor_email: str, action: str, target: str, **details: Any
    ) -> None:
        await self._col.insert_one(
            {
                "at": datetime.now(UTC),
                "actor_id": actor_id,
                "actor_email": actor_email,
                "action": action,
                "target": target,
                "details": details,
            }
        )
