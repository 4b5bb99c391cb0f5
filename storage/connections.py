"""Custom services, connections and the admin audit log.

A connection's ``_id`` is its link name: derived from its name, unique (the primary key makes two
concurrent ``create``s of the same name impossible to both win), and never changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from bot.errors import AlreadyExists, UnknownRecord
from storage.base import Database, Doc, store_call, update_and_read
from storage.records import AuditEntry, Connection, ServiceRecord


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
    # A record stored before a field existed reads as the code behaved then: comma-joined
    # scopes, HTTP Basic, no extra authorize parameters.
    return ServiceRecord(
        name=doc["name"],
        authorize_url=doc.get("authorize_url", ""),
        token_url=doc.get("token_url", ""),
        client_id=doc["client_id"],
        client_secret_sealed=doc["client_secret"],
        refresh_url=doc.get("refresh_url"),
        revoke_url=doc.get("revoke_url"),
        userinfo_url=doc.get("userinfo_url"),
        scopes=tuple(doc.get("scopes", ())),
        param_type=doc.get("param_type", "header"),
        scope_delimiter=doc.get("scope_delimiter", ","),
        created_by=doc.get("created_by", ""),
        authorize_params=tuple((str(k), str(v)) for k, v in doc.get("authorize_params", ())),
        client_auth=doc.get("client_auth", "basic"),
        default=bool(doc.get("default", False)),
    )


_CUSTOM: Doc = {"default": {"$ne": True}}


class ServiceRecords:
    """Custom services, and the OAuth clients configured for default services of the
    catalogue (``default: true``; Dropbox's client comes from configuration)."""

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
            # pairs, not a document: parameter names may hold "." or "$"
            "authorize_params": [list(pair) for pair in record.authorize_params],
            "client_auth": record.client_auth,
            "created_by": record.created_by,
            "created_at": datetime.now(UTC),
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            raise AlreadyExists("service", record.name) from None

    @store_call
    async def configure_default(
        self, name: str, client_id: str, client_secret: Mapping[str, Any], configured_by: str
    ) -> bool:
        """Set the OAuth client of default service ``name``; ``False`` (and no change) when a
        custom service holds that name."""
        now = datetime.now(UTC)
        try:
            result = await self._col.update_one(
                {"_id": name.lower(), "default": True},
                {
                    "$set": {
                        "name": name.lower(),
                        "client_id": client_id,
                        "client_secret": dict(client_secret),
                        "configured_by": configured_by,
                        "configured_at": now,
                    },
                    "$setOnInsert": {"created_at": now},  # and default: true, from the filter
                },
                upsert=True,
            )
        except DuplicateKeyError:  # a custom service of that name exists
            return False
        return result.acknowledged

    @store_call
    async def get(self, name: str) -> ServiceRecord | None:
        """The custom service, or the configured default-service client, named ``name``."""
        doc = await self._col.find_one({"_id": name.lower()})
        return _service(doc) if doc else None

    @store_call
    async def all(self) -> list[ServiceRecord]:
        """The custom services, by name."""
        return [_service(doc) async for doc in self._col.find(_CUSTOM).sort("_id", 1)]

    @store_call
    async def configured_defaults(self) -> dict[str, ServiceRecord]:
        """The clients configured for default services, by name."""
        return {doc["_id"]: _service(doc) async for doc in self._col.find({"default": True})}

    @store_call
    async def remove(self, name: str) -> bool:
        """Remove the custom service ``name`` (never a configured default-service client)."""
        result = await self._col.delete_one({"_id": name.lower(), **_CUSTOM})
        return result.deleted_count == 1

    async def every_sealed(self) -> AsyncIterator[ServiceRecord]:
        """Every custom service and configured default-service client, for re-sealing client
        secrets under a new key."""
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
        doc = await update_and_read(
            self._col,
            {"_id": link},
            {"$set": {**changes, "updated_at": datetime.now(UTC)}},
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
    async def not_owned_by(self, user_id: str) -> list[Connection]:
        """Every connection someone else created, by link name (what an admin manages too)."""
        cursor = self._col.find({"owner_id": {"$ne": user_id}}).sort("_id")
        return [_connection(d) async for d in cursor]

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

    @store_call
    async def newest(self, limit: int) -> list[AuditEntry]:
        """The latest ``limit`` records, newest first (the connections page shows them)."""
        cursor = self._col.find().sort([("at", -1), ("_id", -1)]).limit(limit)
        return [
            AuditEntry(
                at=doc["at"],
                actor_id=str(doc.get("actor_id", "")),
                actor_email=str(doc.get("actor_email", "")),
                action=str(doc.get("action", "")),
                target=str(doc.get("target", "")),
                details=dict(doc.get("details") or {}),
            )
            async for doc in cursor
        ]
