"""The connections page's way in (CONTRACT §11): sign-in links and browser sessions; and the
audit log as the page reads it.

A sign-in link is single use, expires, and is bound to one chat user: the user as the verified
chat payload that asked for it described them (id, email, names, the ``admin`` flag). Opening it
makes a session bound to that same user, with an expiry, a CSRF token and, between a change and
the page that shows it, one notice (``flash``).

Neither a link id nor a session id is stored: documents are keyed by their SHA-256, so a copy of
the database opens no session. Both collections have TTL indexes on ``expires_at``, and every
read checks the expiry too (the TTL monitor runs only once a minute).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.cliq.events import CliqUser
from storage.base import Database, Doc, store_call, update_and_read

__all__ = ["PageSession", "Sessions", "SignInLinks"]


def _key(opaque: str) -> str:
    return hashlib.sha256(opaque.encode()).hexdigest()


def _user_doc(user: CliqUser) -> Doc:
    return {
        "id": user.id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "admin": user.admin,
    }


def _user(doc: Doc) -> CliqUser:
    return CliqUser(
        id=str(doc["id"]),
        email=str(doc.get("email", "")),
        first_name=str(doc.get("first_name", "")),
        last_name=str(doc.get("last_name", "")),
        admin=bool(doc.get("admin", False)),
    )


@dataclass(frozen=True)
class PageSession:
    """A signed-in browser: whose it is, its CSRF token, when it ends, a notice to show once."""

    user: CliqUser
    csrf: str
    expires_at: datetime
    flash: str = ""


class SignInLinks:
    """Single-use, expiring sign-in links, each bound to one chat user."""

    def __init__(self, db: Database) -> None:
        self._col = db["signin_links"]

    async def ensure_indexes(self) -> None:
        await self._col.create_index("expires_at", expireAfterSeconds=0)

    @store_call
    async def create(self, link_id: str, user: CliqUser, ttl: float) -> None:
        await self._col.insert_one(
            {
                "_id": _key(link_id),
                "user": _user_doc(user),
                "used": False,
                "expires_at": datetime.now(UTC) + timedelta(seconds=ttl),
            }
        )

    @store_call
    async def consume(self, link_id: str) -> CliqUser | None:
        """The link's user, once: ``None`` if it is unknown, used already or expired."""
        doc = await update_and_read(
            self._col,
            {"_id": _key(link_id), "used": False, "expires_at": {"$gt": datetime.now(UTC)}},
            {"$set": {"used": True}},
        )
        return _user(doc["user"]) if doc is not None else None


class Sessions:
    """Server-side sessions of the connections page."""

    def __init__(self, db: Database) -> None:
        self._col = db["page_sessions"]

    async def ensure_indexes(self) -> None:
        await self._col.create_index("expires_at", expireAfterSeconds=0)

    @store_call
    async def create(self, session_id: str, user: CliqUser, csrf: str, ttl: float) -> None:
        await self._col.insert_one(
            {
                "_id": _key(session_id),
                "user": _user_doc(user),
                "csrf": csrf,
                "flash": "",
                "created_at": datetime.now(UTC),
                "expires_at": datetime.now(UTC) + timedelta(seconds=ttl),
            }
        )

    @store_call
    async def get(self, session_id: str) -> PageSession | None:
        """The session, while it lasts."""
        doc = await self._col.find_one(
            {"_id": _key(session_id), "expires_at": {"$gt": datetime.now(UTC)}}
        )
        if doc is None:
            return None
        return PageSession(
            _user(doc["user"]), str(doc["csrf"]), doc["expires_at"], str(doc.get("flash", ""))
        )

    @store_call
    async def take_flash(self, session_id: str) -> str:
        """The notice to show once, cleared as it is handed out."""
        key = _key(session_id)
        doc = await self._col.find_one({"_id": key, "flash": {"$ne": ""}}, {"flash": 1})
        if doc is None:
            return ""
        notice = doc.get("flash", "")
        # Cleared only if it is still the notice read: one that came meanwhile is kept.
        cleared = await self._col.update_one({"_id": key, "flash": notice}, {"$set": {"flash": ""}})
        return str(notice) if cleared.matched_count else ""

    @store_call
    async def set_flash(self, session_id: str, notice: str) -> None:
        await self._col.update_one({"_id": _key(session_id)}, {"$set": {"flash": notice}})

    @store_call
    async def delete(self, session_id: str) -> bool:
        result = await self._col.delete_one({"_id": _key(session_id)})
        return result.deleted_count == 1
