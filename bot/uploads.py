"""The file flow (CONTRACT §7): intake of attachments, and the worker that keeps and uploads them.

Intake answers at once (the webhook must reply well under 3 s): it records a durable job and
kicks the worker. The worker, running in every ``serve`` process, claims jobs with a lease:

- ``keep`` jobs download the attachment into the store (its URL expires) and then wait for the
  credential owner to connect;
- ``queued`` jobs stream to Dropbox through :func:`~bot.providers.relay.relay_upload`, one at a
  time per account, saving progress so a restarted process resumes the same upload session.

Each outcome is posted to the sender through Cliq.

The worker is supervised: an error a job does not handle itself (a bug, malformed data, a store
that answers no) is logged with its traceback, counted (``cliqbot_worker_errors_total`` by
stage), and the job is tried again after a growing pause, then failed with a message to the
sender; the slot carries on with the next job. A store that does not answer pauses the job (its
lease lapses and it is claimed again). Housekeeping errors are logged and counted the same way
and never end its loop. :meth:`FileService.start` and :meth:`FileService.stop` own the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.accounts import AccountService
from bot.cliq.events import Attachment, CliqUser, Event
from bot.cliq.messages import MAX_KEY, Button, Message, text
from bot.config import Settings
from bot.context import Intake, Notifier
from bot.durations import words
from bot.errors import (
    BotError,
    ChatError,
    ContentHashMismatch,
    FileTooLarge,
    InvalidToken,
    NotAuthorized,
    ProviderError,
    SourceError,
    StoreError,
    StoreUnavailable,
)
from bot.metrics import Metrics
from bot.providers.dropbox import DropboxClient
from bot.providers.relay import RetryPolicy, UploadProgress, relay_upload
from storage.authorizations import Authorizations
from storage.connections import Connections
from storage.records import ACTIVE, DONE, FAILED, KEEP, QUEUED, WAITING, Connection, Job
from storage.uploads import UploadJobs

log = logging.getLogger(__name__)

_DEFAULT_NAME = "file"
_MAX_NAME = 200
_PIECE = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_JOB_ATTEMPTS = 3
#: Pause before a job runs again after an unexpected error, by the number of attempts so far.
_ERROR_BACKOFF = (5.0, 30.0, 120.0)
#: Longest pause of a slot whose claims keep failing unexpectedly.
_MAX_CLAIM_BACKOFF = 60.0


def clean_name(name: str, fallback: str = _DEFAULT_NAME) -> str:
    """A safe single path component: no separators or control characters, Unicode kept."""
    name = unicodedata.normalize("NFC", name)
    name = _CONTROL.sub("", name).replace("/", "_").replace("\\", "_")
    name = name.strip().strip(".").strip()
    if not name.strip("_ ."):
        return fallback  # only separators, dots and control characters: nothing left of it
    if len(name.encode()) > _MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        keep = ext if dot and stem and len(ext.encode()) <= 32 else ""
        budget = _MAX_NAME - (len(keep.encode()) + 1 if keep else 0)
        base = (stem if keep else name).encode()[:budget].decode(errors="ignore").rstrip()
        name = f"{base}.{keep}" if keep else base
    return name or fallback


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


class HttpSource:
    """An attachment URL as a ``ByteSource``: a plain GET, ``Range`` to resume at an offset."""

    def __init__(self, session: aiohttp.ClientSession, url: str, max_bytes: int) -> None:
        self._session = session
        self._url = url
        self._max = max_bytes
        self.total: int | None = None

    @asynccontextmanager
    async def open(self, offset: int) -> AsyncIterator[AsyncIterator[bytes]]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            resp = await self._session.get(self._url, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceError(f"the file could not be downloaded ({type(exc).__name__})") from exc
        try:
            if resp.status not in (200, 206):
                raise SourceError(
                    f"the file could not be downloaded (HTTP {resp.status});"
                    " its link may have expired"
                )
            length = resp.content_length
            if length is not None:
                self.total = length + (offset if resp.status == 206 else 0)
                if self.total > self._max:
                    raise FileTooLarge(self._max)
            skip = offset if resp.status == 200 else 0
            yield self._pieces(resp, skip)
        finally:
            resp.release()

    async def _pieces(self, resp: aiohttp.ClientResponse, skip: int) -> AsyncIterator[bytes]:
        try:
            async for piece in resp.content.iter_chunked(_PIECE):
                if skip >= len(piece):
                    skip -= len(piece)
                    continue
                yield piece[skip:] if skip else piece
                skip = 0
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceError(f"the download broke off ({type(exc).__name__})") from exc


class KeptSource:
    """A file kept in the store (GridFS) as a ``ByteSource``; may raise ``StoreError``."""

    def __init__(self, jobs: UploadJobs, file_id: Any) -> None:
        self._jobs = jobs
        self._id = file_id

    @asynccontextmanager
    async def open(self, offset: int) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._jobs.read_kept(self._id, offset) as pieces:
            yield pieces


async def _at_most(pieces: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """``pieces``, raising :class:`FileTooLarge` once they add up to more than ``limit``."""
    size = 0
    async for piece in pieces:
        size += len(piece)
        if size > limit:
            raise FileTooLarge(limit)
        yield piece


class FileService:
    """Implements ``bot.context.Files`` and runs the upload worker."""

    def __init__(
        self,
        *,
        settings: Settings,
        jobs: UploadJobs,
        connections: Connections,
        authorizations: Authorizations,
        accounts: AccountService,
        dropbox: DropboxClient,
        http: aiohttp.ClientSession,
        notifier: Notifier,
        metrics: Metrics,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._connections = connections
        self._auths = authorizations
        self._accounts = accounts
        self._dropbox = dropbox
        self._http = http
        self._notifier = notifier
        self._metrics = metrics
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._retry = retry or RetryPolicy()
        self._holder = f"worker-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._live: dict[str, int] = {}
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        accounts.on_connected.append(self.resume)

    # -- intake (handlers call these) --

    async def accept(
        self, event: Event, attachment: Attachment, conn: Any, credential_user: str
    ) -> Intake:
        name = clean_name(attachment.name)
        auth = await self._auths.get(conn.link, credential_user)
        authorized = auth is not None and auth.connected
        job = await self._jobs.create(
            sender_id=event.user.id,
            attachment_id=attachment.id,
            connection=conn.link,
            credential_user=credential_user,
            name=name,
            url=attachment.url,
            state=QUEUED if authorized else KEEP,
        )
        if job is None:
            return Intake(f"{name}: I have this file already; it is saved only once.")
        self._wake.set()
        if authorized:
            where = "your Dropbox" if credential_user == event.user.id else "the shared Dropbox"
            return Intake(f"{name}: upload to {where} started; I will tell you when it is saved.")
        ttl = words(self._settings.kept_file_ttl)
        return Intake(f"{name}: I kept it for you (for {ttl}).", needs_connect=True)

    async def status_lines(self, user_id: str) -> list[str]:
        lines = []
        for job in await self._jobs.of_sender(user_id, ACTIVE):
            if job.state == QUEUED:
                done = self._live.get(job.id, int(job.progress.get("offset", 0)))
                pct = f"{100 * done // job.size}%" if job.size else f"{human_size(done)}"
                lines.append(f"- {job.name}: uploading, {pct} done")
            else:
                lines.append(f"- {job.name}: kept, waiting for a connection")
        if lines:
            lines.insert(0, "Your files:")
        return lines

    async def waiting_count(self, link: str) -> int:
        return await self._jobs.count(link, ACTIVE)

    async def retry(self, user_id: str, job_id: str) -> str:
        if await self._jobs.requeue(job_id, user_id):
            self._wake.set()
            return "Trying that file again."
        return "That file is not waiting for a retry."

    async def cancel(self, user_id: str, job_id: str) -> str:
        job = await self._jobs.cancel(job_id, user_id)
        if job is None:
            return "That file cannot be cancelled now (it is done, or uploading this moment)."
        await self._jobs.delete_kept(job.kept_file)
        return f"Cancelled {job.name}."

    async def resume(self, link: str, user_id: str) -> None:
        """The credential owner connected: upload every kept file of theirs, in order."""
        kept = await self._jobs.count_kept(link, user_id)  # waiting, or still downloading
        released = await self._jobs.release_waiting(link, user_id)
        if released:
            log.info("resuming %s kept file(s) for %s on %s", released, user_id, link)
            self._wake.set()
        if kept:
            await self._notifier.notify(
                [user_id], text(f"Uploading the {kept} file(s) I kept, in the order sent.")
            )

    # -- the worker --

    def start(self, concurrency: int) -> None:
        """Start ``concurrency`` upload slots and the housekeeping as one task, until ``stop``."""
        if self._runner is not None:
            raise RuntimeError("the upload worker is running already")
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._runner = asyncio.create_task(self._run(concurrency), name="upload-worker")
        self._runner.add_done_callback(self._ended)

    async def stop(self, timeout: float) -> None:
        """Let in-flight work finish (up to ``timeout`` s), then cancel what is left.

        Slots are asked to stop between jobs rather than cancelled outright: cancelling
        PyMongo's async client while it waits for a server can leave it unable to close.
        A stop before the worker's first step returns at once, and so does a second stop.
        """
        runner = self._runner
        if runner is None:
            return
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        done, _ = await asyncio.wait({runner}, timeout=timeout)
        if not done:
            log.warning("uploads still running after %s s; they resume on the next start", timeout)
            runner.cancel()
            await asyncio.wait({runner})
        if self._runner is runner:
            self._runner = None

    def _ended(self, runner: asyncio.Task[None]) -> None:
        if runner.cancelled():
            return
        exc = runner.exception()
        if exc is not None:
            log.error("the upload worker ended; no file uploads until a restart", exc_info=exc)
        elif not self._stopping:
            log.error("the upload worker ended before it was stopped")

    async def _run(self, concurrency: int) -> None:
        async with asyncio.TaskGroup() as group:
            for index in range(concurrency):
                group.create_task(self._slot(index), name=f"upload-slot-{index}")
            group.create_task(self._housekeeping(), name="upload-housekeeping")

    async def _idle(self, seconds: float) -> None:
        if self._stopping:
            return  # checked before clearing: stop() sets the flag, then wakes
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _slot(self, index: int) -> None:
        holder = f"{self._holder}-{index}"  # leases and account locks belong to one slot
        claim_errors = 0
        while not self._stopping:
            try:
                job = await self._jobs.claim(holder, self._lease, (QUEUED, KEEP))
            except StoreUnavailable as err:
                log.warning("upload slot %s: %s", index, err)
                job = None
            except Exception:
                # Supervision: a claim that fails otherwise (e.g. a malformed job document, set
                # aside by the store) is logged and counted; the slot tries again after a pause.
                log.exception("upload slot %s could not claim a job", index)
                self._metrics.worker_errors.inc(stage="claim")
                claim_errors += 1
                await self._idle(min(self._poll * 2**claim_errors, _MAX_CLAIM_BACKOFF))
                continue
            claim_errors = 0
            if job is None:
                await self._idle(self._poll)
                continue
            self._wake.set()  # there may be more: let another slot look
            stage = "keep" if job.state == KEEP else "upload"
            try:
                await self._run_job(job, holder, stage)
            except Exception:
                # Reporting the job's own error failed too (e.g. the message could not be
                # built): logged and counted; the job runs again when its lease lapses.
                log.exception("upload slot %s: job %s could not be settled", index, job.id)
                self._metrics.worker_errors.inc(stage=stage)

    async def _run_job(self, job: Job, holder: str, stage: str) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job, holder))
        try:
            if job.state == KEEP:
                await self._keep(job, holder)
            else:
                await self._upload(job, holder)
        except StoreUnavailable as err:
            log.warning("job %s paused, the store does not answer: %s", job.id, err)
        except Exception as exc:
            # Supervision: whatever the job did not handle is logged with its traceback and
            # counted; the job is retried later, then failed (never swallowed, never fatal).
            log.exception("job %s: unexpected error (%s)", job.id, stage)
            self._metrics.worker_errors.inc(stage=stage)
            await self._unexpected(job, holder, exc)
        finally:
            heartbeat.cancel()
            self._live.pop(job.id, None)

    async def _unexpected(self, job: Job, holder: str, exc: Exception) -> None:
        """Retry a job that raised an unexpected error after a pause; fail it in the end."""
        reason = f"internal error ({type(exc).__name__})"
        try:
            if job.attempts + 1 < _MAX_JOB_ATTEMPTS:
                delay = _ERROR_BACKOFF[min(job.attempts, len(_ERROR_BACKOFF) - 1)]
                await self._jobs.postpone(job, holder, delay, error=reason)
                log.warning("job %s postponed %s s after an unexpected error", job.id, delay)
                return
            if not await self._jobs.finish(job, holder, FAILED, error=reason):
                return  # the job had moved on (or its lease lapsed) before the error
        except StoreError as err:
            log.warning("job %s: the error could not be recorded (%s); it runs again", job.id, err)
            return
        self._metrics.uploads.inc(outcome="failed")
        log.warning("job %s failed after %s attempts: %s", job.id, job.attempts + 1, reason)
        await self._notify(
            job,
            Message(
                text=f"{job.name}: the upload failed on my side (internal error);"
                " send it again or press Retry.",
                buttons=self._retry_buttons(job),
            ),
        )

    async def _heartbeat(self, job: Job, holder: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 4)
            try:
                await self._jobs.renew(job, holder, self._lease)
            except StoreError:
                log.warning("could not renew the lease of job %s", job.id)

    async def _housekeeping(self) -> None:
        steps: tuple[Callable[[], Awaitable[object]], ...] = (
            self._expire_kept,
            self._accounts.discard_expired_pending,
        )
        while not self._stopping:
            for step in steps:
                try:
                    await step()
                except StoreError as err:
                    log.warning("housekeeping skipped %s: %s", step.__name__, err)
                except Exception:
                    # Supervision: logged with the traceback and counted; the next round runs.
                    log.exception("housekeeping failed in %s", step.__name__)
                    self._metrics.worker_errors.inc(stage="housekeeping")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), max(self._poll * 10, 1.0))

    async def _expire_kept(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self._settings.kept_file_ttl)
        for job in await self._jobs.kept_older_than(cutoff):
            if await self._jobs.expire(job):
                await self._jobs.delete_kept(job.kept_file)
                waited = words(self._settings.kept_file_ttl)
                await self._notify(
                    job,
                    text(
                        f"{job.name} waited {waited} for a connection and was"
                        " deleted. Send it again after connecting."
                    ),
                )

    async def _keep(self, job: Job, holder: str) -> None:
        """Download the attachment into the store, then wait for (or go straight to) upload."""
        await self._jobs.delete_kept(job.kept_file)
        limit = self._settings.max_file_bytes
        source = HttpSource(self._http, job.url, limit)
        try:
            async with source.open(0) as pieces:
                kept_file, size = await self._jobs.save_kept(
                    job.id, job.name, _at_most(pieces, limit)
                )
        except (SourceError, FileTooLarge) as err:
            await self._jobs.finish(job, holder, FAILED, error=str(err))
            self._metrics.uploads.inc(outcome="source_error")
            await self._notify(job, text(f"{job.name}: {err}. Please send it again."))
            return
        auth = await self._auths.get(job.connection, job.credential_user)
        next_state = QUEUED if auth is not None and auth.connected else WAITING
        await self._jobs.finish(job, holder, next_state, kept_file=kept_file, size=size)
        if next_state == QUEUED:
            self._wake.set()

    async def _upload(self, job: Job, holder: str) -> None:
        started = time.monotonic()
        source: HttpSource | KeptSource
        if job.kept_file is not None:
            source = KeptSource(self._jobs, job.kept_file)
        else:
            source = HttpSource(self._http, job.url, self._settings.max_file_bytes)
        progress = UploadProgress.from_dict(dict(job.progress)) if job.progress else None

        async def save(p: UploadProgress) -> None:
            size = source.total if isinstance(source, HttpSource) else None
            await self._jobs.save_progress(job, holder, p.to_dict(), size=size)

        def on_bytes(done: int) -> None:
            self._live[job.id] = done

        path = f"{self._settings.upload_folder}/{job.name}"
        try:
            meta = await relay_upload(
                self._dropbox,
                self._accounts.tokens(job.connection, job.credential_user),
                source,
                path,
                progress=progress,
                save_progress=save,
                on_bytes=on_bytes,
                max_bytes=self._settings.max_file_bytes,
                policy=self._retry,
            )
        except NotAuthorized:
            await self._lost_authorization(job, holder)
            return
        except InvalidToken as err:
            # Revoked at the provider, or scopes gone: one refresh tells which.
            try:
                await self._accounts.refresh(
                    job.connection, job.credential_user, rejected=await self._current_token(job)
                )
            except NotAuthorized:
                await self._lost_authorization(job, holder)
                return
            if job.attempts + 1 >= _MAX_JOB_ATTEMPTS:
                await self._failed(job, err, holder)
            else:
                await self._jobs.postpone(job, holder, 0.0, error="InvalidToken")
            return
        except (SourceError, FileTooLarge) as err:
            await self._jobs.finish(job, holder, FAILED, error=str(err))
            self._metrics.uploads.inc(outcome="source_error")
            await self._notify(job, text(f"{job.name}: {err}. Please send it again."))
            return
        except StoreError:
            raise  # the store, not the upload: paused or retried by the slot (_run_job)
        except (ProviderError, BotError) as err:
            await self._failed(job, err, holder)
            return
        await self._jobs.finish(
            job,
            holder,
            DONE,
            result={
                "path": meta.path_display,
                "size": meta.size,
                "content_hash": meta.content_hash,
            },
            progress={},
        )
        await self._jobs.delete_kept(job.kept_file)
        self._metrics.uploads.inc(outcome="ok")
        self._metrics.bytes_uploaded.inc(meta.size)
        self._metrics.upload_duration.observe(time.monotonic() - started)
        whose = "your Dropbox" if job.credential_user == job.sender_id else "the shared Dropbox"
        await self._notify(
            job,
            text(f"Saved {meta.name} to {whose} at {meta.path_display} ({human_size(meta.size)})."),
        )

    async def _current_token(self, job: Job) -> str:
        try:
            return await self._accounts.access_token(job.connection, job.credential_user)
        except NotAuthorized:
            return ""

    async def _lost_authorization(self, job: Job, holder: str) -> None:
        """Authorization gone (revoked, refresh rejected): keep the file, prompt to connect."""
        next_state = WAITING if job.kept_file is not None else KEEP
        await self._jobs.finish(job, holder, next_state, progress={})
        self._metrics.uploads.inc(outcome="not_authorized")
        conn = await self._connections.get(job.connection)
        if conn is None:
            return
        if job.credential_user == job.sender_id:
            await self._notify(
                job,
                await self._connect_prompt(
                    job.sender_id,
                    conn,
                    f"{job.name}: your Dropbox connection no longer works, so I kept the file."
                    " Connect again and I upload it.",
                ),
            )
        else:
            await self._notify(
                job,
                text(
                    f"{job.name}: the shared Dropbox connection no longer works; I kept the file"
                    " until its owner connects again."
                ),
            )
            await self._notifier.notify(
                [job.credential_user],
                await self._connect_prompt(
                    job.credential_user,
                    conn,
                    f"*{conn.name}* needs you to connect again: files are waiting.",
                ),
            )

    async def _connect_prompt(self, user_id: str, conn: Connection, intro: str) -> Message:
        """``intro`` with an ``open.url`` connect link for ``user_id`` (CONTRACT §4)."""
        try:
            url = await self._accounts.connect_url(conn, CliqUser(id=user_id))
        except ChatError as err:  # e.g. the connection's service is gone
            return text(f"{intro} {err}")
        ttl = words(self._settings.connect_link_ttl)
        return Message(
            text=f"{intro}\nThe link works once and for {ttl}.",
            card_title=f"Connect {conn.name}",
            buttons=(Button.open_url("Connect", url),),
        )

    async def _failed(self, job: Job, err: BotError, holder: str) -> None:
        retryable = isinstance(err, ProviderError) and not isinstance(err, ContentHashMismatch)
        if retryable and job.attempts + 1 < _MAX_JOB_ATTEMPTS:
            delay = 30.0 * (job.attempts + 1)
            await self._jobs.postpone(job, holder, delay, error=type(err).__name__)
            log.warning("job %s postponed %ss after %s", job.id, delay, type(err).__name__)
            return
        await self._jobs.finish(job, holder, FAILED, error=type(err).__name__)
        self._metrics.uploads.inc(outcome="failed")
        log.warning("job %s failed: %s", job.id, type(err).__name__)
        await self._notify(
            job,
            Message(
                text=f"{job.name}: the upload failed ({err}).", buttons=self._retry_buttons(job)
            ),
        )

    @staticmethod
    def _retry_buttons(job: Job) -> tuple[Button, ...]:
        """Retry and Cancel for a failed job; none if its id makes too long a key."""
        if len(f"cancel:{job.id}") > MAX_KEY:
            log.warning("job %s: its id is too long for Retry / Cancel buttons", job.id)
            return ()
        return (
            Button.invoke("Retry", f"retry:{job.id}"),
            Button.invoke("Cancel", f"cancel:{job.id}", type="-"),
        )

    async def _notify(self, job: Job, message: Message) -> None:
        await self._notifier.notify([job.sender_id], message)
