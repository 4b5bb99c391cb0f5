"""Durable upload jobs, per-account write locks, and kept files (GridFS).

A job's ``_id`` is ``{sender}:{attachment id}``: the same attachment delivered twice makes one
job. Jobs are claimed with a lease, so any of several ``serve`` processes can run them and none
runs one twice; a job whose holder died is claimed again once its lease lapses. An account lock
(one per credential owner of a connection) keeps to one write at a time per Dropbox account.

States::

    keep ──(downloaded into the store)──▶ waiting ──(user connects)──▶ queued
    queued ──▶ done | failed | keep (authorization lost: file kept, user prompted)
    waiting ──(BOT_KEPT_FILE_TTL)──▶ expired          any ──▶ cancelled
    queued | keep ──(claimed, but the document cannot be read as a job)──▶ broken

A broken job is set aside (no query of the flow looks at that state) so that it neither fails
every claim nor holds up the later files of its account.

Kept files live in the ``kept_files`` GridFS bucket, reached only through this repository
(:meth:`UploadJobs.save_kept`, :meth:`~UploadJobs.read_kept`, :meth:`~UploadJobs.delete_kept`),
whose GridFS driver errors become :class:`~bot.errors.StoreUnavailable` (the store does not
answer) or :class:`~bot.errors.StoreError` (it answered no: a missing or corrupt file).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.asynchronous.grid_file import AsyncGridOut
from gridfs.errors import NoFile
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from bot.errors import MalformedRecord, StoreError, StoreUnavailable
from storage.base import _UNAVAILABLE, Database, Doc, store_call
from storage.records import (
    ACTIVE,
    BROKEN,
    CANCELLED,
    EXPIRED,
    FAILED,
    KEEP,
    QUEUED,
    WAITING,
    Job,
    job_id,
)


@contextlib.contextmanager
def _gridfs(what: str) -> Iterator[None]:
    """GridFS calls translate driver errors as :func:`~storage.base.store_call` does, and also
    the ones that mean the store answered no (``NoFile``, ``CorruptGridFile``, ...)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(type(exc).__name__) from exc
    except PyMongoError as exc:
        raise StoreError(f"{what} failed ({type(exc).__name__})") from exc


def _job(doc: Doc) -> Job:
    return Job(
        id=doc["_id"],
        sender_id=doc["sender_id"],
        connection=doc["connection"],
        credential_user=doc["credential_user"],
        name=doc["name"],
        url=doc.get("url", ""),
        state=doc["state"],
        seq=int(doc.get("seq", 0)),
        size=doc.get("size"),
        kept_file=doc.get("kept_file"),
        progress=doc.get("progress") or {},
        attempts=int(doc.get("attempts", 0)),
        created_at=doc["created_at"],
        result=doc.get("result"),
        error=doc.get("error", ""),
    )


class UploadJobs:
    def __init__(self, db: Database) -> None:
        self._col = db["upload_jobs"]
        self._locks = db["upload_locks"]
        self._kept = AsyncGridFSBucket(db, bucket_name="kept_files")
        self._last_seq = 0

    def _next_seq(self) -> int:
        """Queue order: nanoseconds since the epoch, strictly increasing within this process (a
        message's attachments are accepted in order) and close to arrival order across
        processes, without a shared counter document (whose concurrent upsert races)."""
        self._last_seq = max(time.time_ns(), self._last_seq + 1)
        return self._last_seq

    async def ensure_indexes(self) -> None:
        await self._col.create_index([("state", 1), ("seq", 1)])
        await self._col.create_index([("connection", 1), ("credential_user", 1), ("state", 1)])
        await self._col.create_index([("sender_id", 1), ("state", 1)])

    @store_call
    async def create(
        self,
        *,
        sender_id: str,
        attachment_id: str,
        connection: str,
        credential_user: str,
        name: str,
        url: str,
        state: str,
    ) -> Job | None:
        """The new job, or ``None`` if this attachment already has one."""
        doc: Doc = {
            "_id": job_id(sender_id, attachment_id),
            "sender_id": sender_id,
            "connection": connection,
            "credential_user": credential_user,
            "name": name,
            "url": url,
            "state": state,
            "seq": self._next_seq(),
            "size": None,
            "kept_file": None,
            "progress": {},
            "attempts": 0,
            "created_at": datetime.now(UTC),
            "not_before": datetime.now(UTC),
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            return None
        return _job(doc)

    # -- claiming --

    @store_call
    async def claim(self, holder: str, lease: float, states: tuple[str, ...]) -> Job | None:
        """Lease the oldest runnable job in ``states`` whose account is free; lock the account.

        A claimed document that cannot be read as a job is set aside (``broken``, lease and
        lock dropped) and reported as :class:`~bot.errors.MalformedRecord`."""
        now = datetime.now(UTC)
        runnable = {
            "state": {"$in": list(states)},
            "not_before": {"$lte": now},
            "$or": [{"lease": None}, {"lease.until": {"$lt": now}}],
        }
        tried: set[str] = set()
        async for doc in self._col.find(runnable).sort("seq", 1).limit(50):
            key = f"{doc['connection']}:{doc['credential_user']}"
            if key in tried:
                continue  # only an account's oldest job may go first
            tried.add(key)
            if doc["state"] == QUEUED and not await self._lock(key, holder, lease):
                continue
            claimed = await self._col.find_one_and_update(
                {"_id": doc["_id"], **runnable},
                {"$set": {"lease": {"holder": holder, "until": now + timedelta(seconds=lease)}}},
                return_document=ReturnDocument.AFTER,
            )
            if claimed is not None:
                try:
                    return _job(claimed)
                except (KeyError, TypeError, ValueError) as exc:
                    await self._set_aside(claimed["_id"], key, holder, exc)
                    raise MalformedRecord(
                        "job", str(claimed["_id"]), f"{type(exc).__name__}: {exc}", BROKEN
                    ) from exc
            if doc["state"] == QUEUED:
                await self.unlock(key, holder)
        return None

    async def _set_aside(self, jid: Any, key: str, holder: str, exc: Exception) -> None:
        await self._col.update_one(
            {"_id": jid, "lease.holder": holder},
            {"$set": {"state": BROKEN, "lease": None, "error": type(exc).__name__}},
        )
        await self.unlock(key, holder)

    async def _lock(self, key: str, holder: str, lease: float) -> bool:
        now = datetime.now(UTC)
        try:
            await self._locks.find_one_and_update(
                {"_id": key, "until": {"$lt": now}},
                {"$set": {"holder": holder, "until": now + timedelta(seconds=lease)}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # someone else holds a live lock on this account
        return True

    @store_call
    async def unlock(self, key: str, holder: str) -> None:
        await self._locks.delete_one({"_id": key, "holder": holder})

    @store_call
    async def renew(self, job: Job, holder: str, lease: float) -> bool:
        until = datetime.now(UTC) + timedelta(seconds=lease)
        result = await self._col.update_one(
            {"_id": job.id, "lease.holder": holder}, {"$set": {"lease.until": until}}
        )
        await self._locks.update_one(
            {"_id": job.account_key, "holder": holder}, {"$set": {"until": until}}
        )
        return result.modified_count == 1

    @store_call
    async def save_progress(
        self, job: Job, holder: str, progress: Mapping[str, Any], *, size: int | None = None
    ) -> None:
        """Save upload progress, and the file's size once the source has told it."""
        changes: Doc = {"progress": dict(progress)}
        if size is not None:
            changes["size"] = size
        await self._col.update_one({"_id": job.id, "lease.holder": holder}, {"$set": changes})

    @store_call
    async def finish(self, job: Job, holder: str, state: str, **fields: Any) -> bool:
        """Move a leased job to ``state``, drop its lease and its account lock."""
        result = await self._col.update_one(
            {"_id": job.id, "lease.holder": holder},
            {"$set": {"state": state, "lease": None, **fields}},
        )
        await self.unlock(job.account_key, holder)
        return result.modified_count == 1

    @store_call
    async def postpone(self, job: Job, holder: str, seconds: float, error: str) -> None:
        await self._col.update_one(
            {"_id": job.id, "lease.holder": holder},
            {
                "$set": {
                    "lease": None,
                    "error": error,
                    "not_before": datetime.now(UTC) + timedelta(seconds=seconds),
                },
                "$inc": {"attempts": 1},
            },
        )
        await self.unlock(job.account_key, holder)

    # -- user-facing transitions --

    @store_call
    async def release_waiting(self, connection: str, credential_user: str) -> int:
        """The credential owner connected: every waiting file of theirs goes to the queue."""
        result = await self._col.update_many(
            {"connection": connection, "credential_user": credential_user, "state": WAITING},
            {"$set": {"state": QUEUED, "not_before": datetime.now(UTC), "attempts": 0}},
        )
        return result.modified_count

    @store_call
    async def count_kept(self, connection: str, credential_user: str) -> int:
        return await self._col.count_documents(
            {
                "connection": connection,
                "credential_user": credential_user,
                "state": {"$in": [KEEP, WAITING]},
            }
        )

    @store_call
    async def requeue(self, jid: str, sender_id: str) -> bool:
        result = await self._col.update_one(
            {"_id": jid, "sender_id": sender_id, "state": FAILED},
            {
                "$set": {
                    "state": QUEUED,
                    "not_before": datetime.now(UTC),
                    "attempts": 0,
                    "progress": {},
                }
            },
        )
        return result.modified_count == 1

    @store_call
    async def cancel(self, jid: str, sender_id: str) -> Job | None:
        doc = await self._col.find_one_and_update(
            {
                "_id": jid,
                "sender_id": sender_id,
                "state": {"$in": [*ACTIVE, FAILED]},
                "lease": None,
            },
            {"$set": {"state": CANCELLED}},
            return_document=ReturnDocument.AFTER,
        )
        return _job(doc) if doc else None

    @store_call
    async def of_sender(self, sender_id: str, states: tuple[str, ...]) -> list[Job]:
        cursor = self._col.find({"sender_id": sender_id, "state": {"$in": list(states)}})
        return [_job(d) async for d in cursor.sort("seq", 1)]

    @store_call
    async def count(self, connection: str, states: tuple[str, ...]) -> int:
        return await self._col.count_documents(
            {"connection": connection, "state": {"$in": list(states)}}
        )

    @store_call
    async def kept_older_than(self, cutoff: datetime) -> list[Job]:
        cursor = self._col.find({"state": WAITING, "created_at": {"$lt": cutoff}, "lease": None})
        return [_job(d) async for d in cursor]

    @store_call
    async def expire(self, job: Job) -> bool:
        result = await self._col.update_one(
            {"_id": job.id, "state": WAITING, "lease": None}, {"$set": {"state": EXPIRED}}
        )
        return result.modified_count == 1

    # -- kept bytes --

    async def save_kept(
        self, jid: str, name: str, pieces: AsyncIterable[bytes]
    ) -> tuple[ObjectId, int]:
        """Store ``pieces`` as a new kept file of job ``jid``: its id and size.

        Whatever fails (the pieces, e.g. a broken download, or the store), the partial file is
        removed and the error raised."""
        with _gridfs(f"keeping the file of job {jid}"):
            upload = self._kept.open_upload_stream(name, metadata={"job": jid})
            size = 0
            try:
                async for piece in pieces:
                    await upload.write(piece)
                    size += len(piece)
                await upload.close()
            except Exception:
                with contextlib.suppress(PyMongoError):
                    await upload.abort()
                raise
            file_id: ObjectId = upload._id
            return file_id, size

    async def delete_kept(self, file_id: ObjectId | None) -> None:
        if file_id is None:
            return
        with _gridfs(f"deleting kept file {file_id}"), contextlib.suppress(NoFile):
            await self._kept.delete(file_id)

    @contextlib.asynccontextmanager
    async def read_kept(
        self, file_id: ObjectId, offset: int
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The kept file's bytes from ``offset``, readable while the context is open."""
        what = f"reading kept file {file_id}"
        with _gridfs(what):
            stream = await self._kept.open_download_stream(file_id)
        try:
            with _gridfs(what):
                await stream.seek(offset)
            yield _chunks(stream, what)
        finally:
            with contextlib.suppress(PyMongoError):
                await stream.close()


async def _chunks(stream: AsyncGridOut, what: str) -> AsyncIterator[bytes]:
    while True:
        with _gridfs(what):
            chunk = await stream.readchunk()
        if not chunk:
            return
        yield chunk
