"""Durable upload jobs, per-account write locks, and kept files (GridFS).

A job's ``_id`` is ``{sender}:{attachment id}``: the same attachment delivered twice makes one
job. Jobs are claimed with a lease, so any of several ``serve`` processes can run them and none
runs one twice; a job whose holder died is claimed again once its lease lapses. Claims read a
range of the ``(state, not_before)`` index (:mod:`storage.due`), in batches of one account's
jobs; a leased job's writes (progress, finish, postpone) and kept-file deletes are coalesced
(:mod:`storage.batching`). An account's commit lock (one per credential owner of a connection)
keeps to one commit at a time per Dropbox account, across processes.

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
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Binary, ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.asynchronous.grid_file import AsyncGridOut
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from bot.errors import MalformedRecord, StoreError, StoreUnavailable
from storage.base import _UNAVAILABLE, Database, Doc, store_call, update_and_read
from storage.batching import Coalescer, InsertBatcher
from storage.due import DueWindow
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


#: Kept files: GridFS's chunk size, and how many bytes of chunks go in one insert.
_KEPT_CHUNK = 255 * 1024
_KEPT_FLUSH = 8 * 1024 * 1024


def _chunk(file_id: ObjectId, number: int, data: bytes | bytearray) -> Doc:
    return {"_id": ObjectId(), "files_id": file_id, "n": number, "data": Binary(bytes(data))}


def _due(now: datetime) -> Doc:
    """Due by ``now`` and not leased (or its lease lapsed): claimable. No top-level ``$or``:
    with one, the embedded store finds the documents by a scan instead of by ``_id``."""
    return {"not_before": {"$lte": now}, "lease.until": {"$not": {"$gte": now}}}


def _lapsed(now: datetime) -> Callable[[Doc], bool]:
    def lapsed(doc: Doc) -> bool:
        lease = doc.get("lease")
        return lease is None or (isinstance(lease, dict) and lease.get("until", now) < now)

    return lapsed


def _account(doc: Doc) -> tuple[Any, Any]:
    return doc.get("connection"), doc.get("credential_user")


@dataclass(frozen=True)
class _Write:
    """An update of a job leased by ``holder``."""

    jid: str
    holder: str
    update: Doc


@dataclass(frozen=True)
class NewJob:
    """A job to insert: what intake knows of an attachment (see :meth:`UploadJobs.insert_new`)."""

    sender_id: str
    attachment_id: str
    connection: str
    credential_user: str
    name: str
    url: str
    state: str

    @property
    def id(self) -> str:
        return job_id(self.sender_id, self.attachment_id)


class UploadJobs:
    def __init__(self, db: Database) -> None:
        self._col = db["upload_jobs"]
        self._inserts = InsertBatcher(self._col)  # new jobs, coalesced (storage/batching.py)
        self._locks = db["upload_locks"]
        self._kept = AsyncGridFSBucket(db, bucket_name="kept_files")
        self._kept_files, self._kept_chunks = db["kept_files.files"], db["kept_files.chunks"]
        self._kept_file_inserts = InsertBatcher(self._kept_files)
        self._kept_chunk_inserts = InsertBatcher(self._kept_chunks)
        self._last_seq = 0
        # The worker's writes: claims read a due range, leased jobs' updates and kept-file
        # deletes are coalesced (storage/batching.py).
        self._windows = {state: DueWindow(state) for state in (QUEUED, KEEP)}
        self._prefetch = DueWindow(QUEUED)  # queued jobs due long enough: by age
        self._deep = DueWindow(QUEUED, resets=False)  # behind the next claims: by depth
        self._writes: Coalescer[_Write, bool] = Coalescer(self._send_writes)
        self._deletes: Coalescer[Any, None] = Coalescer(self._send_deletes)

    def _next_seq(self) -> int:
        """Queue order: nanoseconds since the epoch, strictly increasing within this process (a
        message's attachments are accepted in order) and close to arrival order across
        processes, without a shared counter document (whose concurrent upsert races)."""
        self._last_seq = max(time.time_ns(), self._last_seq + 1)
        return self._last_seq

    async def ensure_indexes(self) -> None:
        # Due jobs of a state, by when they are due: every claim reads a range of it.
        await self._col.create_index([("state", 1), ("not_before", 1)])
        await self._col.create_index([("connection", 1), ("credential_user", 1), ("state", 1)])
        await self._col.create_index([("sender_id", 1), ("state", 1)])
        with contextlib.suppress(OperationFailure):  # the claim index before not_before was
            await self._col.drop_index("state_1_seq_1")
        # GridFS's own indexes for the kept files (its upload stream would make them).
        await self._kept_files.create_index([("filename", 1), ("uploadDate", 1)])
        await self._kept_chunks.create_index([("files_id", 1), ("n", 1)], unique=True)

    def _new_doc(self, job: NewJob) -> Doc:
        """The document of a new job (every insert path builds it here)."""
        now = datetime.now(UTC)
        return {
            "_id": job.id,
            "sender_id": job.sender_id,
            "connection": job.connection,
            "credential_user": job.credential_user,
            "name": job.name,
            "url": job.url,
            "state": job.state,
            "seq": self._next_seq(),
            "size": None,
            "kept_file": None,
            # Kept for its user to connect: counted by count_kept until it is uploaded.
            "kept": job.state in (KEEP, WAITING),
            "progress": {},
            "attempts": 0,
            "created_at": now,
            "not_before": now,
        }

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
        return await self.add(
            NewJob(sender_id, attachment_id, connection, credential_user, name, url, state)
        )

    @store_call
    async def add(self, job: NewJob) -> Job | None:
        """:meth:`create` of a :class:`NewJob`."""
        doc = self._new_doc(job)
        if not await self._inserts.insert(doc):
            return None
        return _job(doc)

    @store_call
    async def insert_new(
        self, jobs: Sequence[NewJob], *, event: str, reply: Mapping[str, Any]
    ) -> list[bool]:
        """Insert ``jobs`` in one coalesced write, each carrying the delivery that made it (the
        event identity and the reply it got: ``storage/events.py``); per job ``True`` if
        inserted, ``False`` if that attachment has a job already."""
        docs = [{**self._new_doc(job), "event": event, "reply": dict(reply)} for job in jobs]
        outcomes = await self._inserts.insert_many(docs)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        return [bool(outcome) for outcome in outcomes]

    @store_call
    async def deliveries_of(
        self, job_ids: Sequence[str]
    ) -> dict[str, tuple[str | None, dict[str, Any] | None]]:
        """Read only: for each existing job of ``job_ids``, the event identity that made it and
        the reply stored with it (``None`` for jobs made before jobs carried them)."""
        cursor = self._col.find({"_id": {"$in": list(job_ids)}}, {"event": 1, "reply": 1})
        return {d["_id"]: (d.get("event"), d.get("reply")) async for d in cursor}

    @store_call
    async def set_reply(self, job_ids: Sequence[str], reply: Mapping[str, Any]) -> None:
        """Replace the stored reply of ``job_ids`` (a delivery's reply, corrected)."""
        await self._col.update_many(
            {"_id": {"$in": list(job_ids)}}, {"$set": {"reply": dict(reply)}}
        )

    # -- claiming --

    @store_call
    async def claim(self, holder: str, lease: float, states: tuple[str, ...]) -> Job | None:
        """Lease the oldest due job in ``states`` (:meth:`claim_batch` of one)."""
        for state in states:
            jobs = await self.claim_batch(holder, lease, state, limit=1)
            if jobs:
                return jobs[0]
        return None

    @store_call
    async def claim_batch(self, holder: str, lease: float, state: str, *, limit: int) -> list[Job]:
        """Lease up to ``limit`` due jobs in ``state``, oldest first: for ``queued``, all of
        one account (the oldest job's), to be committed together.

        One read of the due range (:class:`~storage.due.DueWindow`, a cost that does not grow
        with the queue) and one ``update_many``. A due document that cannot be read as a job
        is set aside (``broken``) and reported as :class:`~bot.errors.MalformedRecord`."""
        now = datetime.now(UTC)
        docs = await self._windows[state].find(self._col, limit, until=now, wanted=_lapsed(now))
        if state == QUEUED and docs:
            account = _account(docs[0])
            docs = [doc for doc in docs if _account(doc) == account]
        return await self._lease(docs[:limit], state, holder, lease, now)

    @store_call
    async def claim_prefetch(
        self, holder: str, lease: float, *, older_than: float, limit: int
    ) -> list[Job]:
        """Lease up to ``limit`` queued jobs still waiting on their attachment URL although
        they have been due for ``older_than`` seconds: their files go into the store now. In a
        deep queue, those behind the jobs the last upload claim saw go first (the ones before
        them are about to go up anyway)."""
        now = datetime.now(UTC)
        lapsed = _lapsed(now)

        def wanted(doc: Doc) -> bool:
            return lapsed(doc) and doc.get("kept_file") is None and bool(doc.get("url"))

        until = now - timedelta(seconds=older_than)
        docs: list[Doc] = []
        beyond = self._windows[QUEUED].beyond
        if beyond is not None:
            # A deep queue: first the jobs behind the ones the next upload claims take (those
            # will go up before long), oldest first.
            self._deep.raise_floor(beyond)
            docs = await self._deep.find(self._col, limit, until=until, wanted=wanted)
        if not docs:  # then any, wherever it is in the queue (uploads may be held up)
            docs = await self._prefetch.find(self._col, limit, until=until, wanted=wanted)
        return await self._lease(docs[:limit], QUEUED, holder, lease, now)

    async def _lease(
        self, docs: list[Doc], state: str, holder: str, lease: float, now: datetime
    ) -> list[Job]:
        """Lease ``docs`` (still due and unleased) in one write: the jobs that were taken."""
        jobs: list[Job] = []
        for doc in docs:
            try:
                jobs.append(_job(doc))
            except (KeyError, TypeError, ValueError) as exc:
                raise await self._set_aside(doc, now, exc) from exc
        if not jobs:
            return []
        until = now + timedelta(seconds=lease)
        claim = uuid.uuid4().hex
        ids = [job.id for job in jobs]
        result = await self._col.update_many(
            {"_id": {"$in": ids}, "state": state, **_due(now)},
            {
                "$set": {
                    "lease": {"holder": holder, "until": until, "claim": claim},
                    "not_before": until,
                }
            },
        )
        if result.modified_count == len(ids):
            return jobs
        if result.modified_count == 0:
            return []
        taken = {
            d["_id"] async for d in self._col.find({"_id": {"$in": ids}, "lease.claim": claim})
        }
        return [job for job in jobs if job.id in taken]

    async def _set_aside(self, doc: Doc, now: datetime, exc: Exception) -> MalformedRecord:
        """Set aside (``broken``) a job document that cannot be read: what to report of it."""
        await self._col.update_one(
            {"_id": doc["_id"], **_due(now)},
            {"$set": {"state": BROKEN, "lease": None, "error": type(exc).__name__}},
        )
        owner, name = doc.get("sender_id"), doc.get("name")
        return MalformedRecord(
            "job",
            str(doc["_id"]),
            f"{type(exc).__name__}: {exc}",
            BROKEN,
            owner=owner if isinstance(owner, str) else "",
            label=name if isinstance(name, str) else "",
        )

    @store_call
    async def renew_leases(self, holders: Mapping[str, str], lease: float) -> int:
        """Extend the leases of jobs (by id, with their holders) in one write: how many."""
        if not holders:
            return 0
        until = datetime.now(UTC) + timedelta(seconds=lease)
        result = await self._col.update_many(
            {"_id": {"$in": list(holders)}, "lease.holder": {"$in": sorted(set(holders.values()))}},
            {"$set": {"lease.until": until, "not_before": until}},
        )
        return result.modified_count

    # -- the commit lock of an account --

    @store_call
    async def lock(self, key: str, holder: str, lease: float) -> bool:
        """Take the commit lock of account ``key`` for ``lease`` seconds, if it is free."""
        now = datetime.now(UTC)
        try:
            await self._locks.update_one(
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
    async def renew_locks(self, keys: Sequence[str], holder: str, lease: float) -> None:
        until = datetime.now(UTC) + timedelta(seconds=lease)
        await self._locks.update_many(
            {"_id": {"$in": list(keys)}, "holder": holder}, {"$set": {"until": until}}
        )

    # -- a leased job's writes, coalesced into one bulk_write while one is in flight --

    @store_call
    async def save_progress(
        self, job: Job, holder: str, progress: Mapping[str, Any], *, size: int | None = None
    ) -> None:
        """Save upload progress, and the file's size once the source has told it."""
        changes: Doc = {"progress": dict(progress)}
        if size is not None:
            changes["size"] = size
        await self._writes.submit(_Write(job.id, holder, {"$set": changes}))

    @store_call
    async def finish(self, job: Job, holder: str, state: str, **fields: Any) -> bool:
        """Move a leased job to ``state`` and drop its lease; ``False`` if the lease was no
        longer ours. Back to ``queued`` or ``keep``, it is due at once (or at ``not_before``)."""
        changes: Doc = {"state": state, "lease": None, **fields}
        if state in (KEEP, WAITING):
            changes["kept"] = True
        if state in (QUEUED, KEEP):
            due = changes.setdefault("not_before", datetime.now(UTC))
            self._windows[state].lower(due)
        return await self._writes.submit(_Write(job.id, holder, {"$set": changes}))

    @store_call
    async def postpone(self, job: Job, holder: str, seconds: float, error: str) -> None:
        await self._writes.submit(
            _Write(
                job.id,
                holder,
                {
                    "$set": {
                        "lease": None,
                        "error": error,
                        "not_before": datetime.now(UTC) + timedelta(seconds=seconds),
                    },
                    "$inc": {"attempts": 1},
                },
            )
        )

    async def _send_writes(self, writes: list[_Write]) -> list[bool | Exception]:
        """One ``bulk_write`` of leased jobs' updates: per update, whether it was applied (its
        lease still held). Each update also stamps ``write``, read back when not all applied."""
        stamp = uuid.uuid4().hex
        models = [
            UpdateOne(
                {"_id": w.jid, "lease.holder": w.holder},
                {**w.update, "$set": {**w.update.get("$set", {}), "write": f"{stamp}:{n}"}},
            )
            for n, w in enumerate(writes)
        ]
        errors: dict[int, Any] = {}
        try:
            result = await self._col.bulk_write(models, ordered=False)
            if result.modified_count == len(writes):
                return [True] * len(writes)
        except BulkWriteError as exc:
            errors = {int(e["index"]): e for e in (exc.details or {}).get("writeErrors", [])}
        cursor = self._col.find({"_id": {"$in": [w.jid for w in writes]}}, {"write": 1})
        stamped = {d["_id"]: d.get("write") async for d in cursor}
        return [
            StoreError(f"updating job {w.jid} failed ({errors[n].get('errmsg')})")
            if n in errors
            else stamped.get(w.jid) == f"{stamp}:{n}"
            for n, w in enumerate(writes)
        ]

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
        """The user's files kept for ``connection`` and not uploaded yet: waiting, still
        downloading, or queued already (a download that ended just after they connected)."""
        cursor = self._col.find(
            {
                "connection": connection,
                "credential_user": credential_user,
                "state": {"$in": [KEEP, WAITING, QUEUED]},
            },
            {"state": 1, "kept": 1},
        )
        return len([d async for d in cursor if d["state"] != QUEUED or d.get("kept") is True])

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
        doc = await update_and_read(
            self._col,
            {
                "_id": jid,
                "sender_id": sender_id,
                "state": {"$in": [*ACTIVE, FAILED]},
                "lease": None,
            },
            {"$set": {"state": CANCELLED}},
        )
        return _job(doc) if doc else None

    @store_call
    async def of_sender(self, sender_id: str, states: tuple[str, ...]) -> list[Job]:
        cursor = self._col.find({"sender_id": sender_id, "state": {"$in": list(states)}})
        return [_job(d) async for d in cursor.sort("seq", 1)]

    @store_call
    async def latest_of_sender(
        self, sender_id: str, states: tuple[str, ...], limit: int
    ) -> list[Job]:
        """Read only: the sender's ``limit`` newest jobs in ``states``, newest first (the
        connections page's recently saved files)."""
        cursor = self._col.find({"sender_id": sender_id, "state": {"$in": list(states)}})
        return [_job(d) async for d in cursor.sort("seq", -1).limit(limit)]

    @store_call
    async def count(self, connection: str, states: tuple[str, ...]) -> int:
        return await self._col.count_documents(
            {"connection": connection, "state": {"$in": list(states)}}
        )

    @store_call
    async def kept_older_than(self, cutoff: datetime) -> tuple[list[Job], list[MalformedRecord]]:
        """Kept files waiting since before ``cutoff``; a document among them that cannot be
        read is set aside (``broken``) and reported, and holds none of the others back."""
        now = datetime.now(UTC)
        cursor = self._col.find({"state": WAITING, "created_at": {"$lt": cutoff}, "lease": None})
        jobs: list[Job] = []
        malformed: list[MalformedRecord] = []
        for doc in [d async for d in cursor]:  # read first: setting aside changes the result
            try:
                jobs.append(_job(doc))
            except (KeyError, TypeError, ValueError) as exc:
                malformed.append(await self._set_aside(doc, now, exc))
        return jobs, malformed

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

        Written in GridFS's format (chunks of ``_KEPT_CHUNK`` bytes, then the ``files``
        document), read back through the driver's ``AsyncGridFSBucket``. Not through its upload
        stream: that looks for any document in both collections before every file, to decide on
        creating their indexes (created here, in :meth:`ensure_indexes`), and the embedded store
        answers such a look by reading every kept file. Chunks go in ``insert_many`` calls of
        up to ``_KEPT_FLUSH`` bytes, coalesced with other files' while one is in flight.

        Whatever fails (the pieces, e.g. a broken download, or the store), the partial file is
        removed and the error raised."""
        file_id, size, number = ObjectId(), 0, 0
        pending: list[Doc] = []
        buffer = bytearray()
        with _gridfs(f"keeping the file of job {jid}"):
            try:
                async for piece in pieces:
                    buffer += piece
                    size += len(piece)
                    while len(buffer) >= _KEPT_CHUNK:
                        pending.append(_chunk(file_id, number, buffer[:_KEPT_CHUNK]))
                        del buffer[:_KEPT_CHUNK]
                        number += 1
                    if len(pending) * _KEPT_CHUNK >= _KEPT_FLUSH:
                        await self._insert_chunks(pending)
                if buffer:
                    pending.append(_chunk(file_id, number, buffer))
                await self._insert_chunks(pending)
                await self._kept_file_inserts.insert(
                    {
                        "_id": file_id,
                        "length": size,
                        "chunkSize": _KEPT_CHUNK,
                        "uploadDate": datetime.now(UTC),
                        "filename": name,
                        "metadata": {"job": jid},
                    }
                )
            except BaseException:
                with contextlib.suppress(PyMongoError):
                    await self._kept_chunks.delete_many({"files_id": file_id})
                raise
        return file_id, size

    async def _insert_chunks(self, pending: list[Doc]) -> None:
        if not pending:
            return
        outcomes = await self._kept_chunk_inserts.insert_many(pending)
        pending.clear()
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
            if not outcome:
                raise StoreError("a chunk of a kept file was there already")

    async def delete_kept(self, file_id: ObjectId | None) -> None:
        """Delete a kept file (gone already is fine); deletes coalesce while one is in flight."""
        if file_id is None:
            return
        with _gridfs(f"deleting kept file {file_id}"):
            await self._deletes.submit(file_id)

    async def _send_deletes(self, file_ids: list[Any]) -> list[None | Exception]:
        """GridFS's delete, for many files at once: their ``files`` documents, then chunks."""
        await self._kept_files.delete_many({"_id": {"$in": file_ids}})
        await self._kept_chunks.delete_many({"files_id": {"$in": file_ids}})
        return [None] * len(file_ids)

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
