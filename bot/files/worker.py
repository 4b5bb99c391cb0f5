"""The upload worker (CONTRACT §7): it keeps and uploads the files intake accepted.

It runs in every ``serve`` process and claims jobs with a lease:

- ``keep`` jobs download the attachment into the store (its URL expires) and then wait for the
  credential owner to connect;
- ``queued`` jobs stream to the connection's file destination (picked from
  :class:`~bot.destinations.base.Destinations` by its service kind) through
  :func:`~bot.destinations.relay.relay_upload`, one at a time per account, saving progress so a
  restarted process resumes the same upload session.

Each outcome is posted to the sender through Cliq.

The worker is supervised: an error a job does not handle itself (a bug, malformed data, a store
that answers no) is logged with its traceback, counted (``cliqbot_worker_errors_total`` by
stage), and the job is tried again after a growing pause, then failed with a message to the
sender; the slot carries on with the next job. A store that does not answer pauses the job (its
lease lapses and it is claimed again). Housekeeping errors are logged and counted the same way
and never end its loop. :meth:`UploadWorker.start` and :meth:`UploadWorker.stop` own the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import aiohttp

from bot.accounts import AccountService
from bot.cliq.events import CliqUser
from bot.cliq.messages import Message, text
from bot.config import Settings
from bot.context import Notifier, ServiceCatalog
from bot.destinations.base import Destinations, FileDestination, FileMetadata
from bot.destinations.relay import RetryPolicy, UploadProgress, relay_upload
from bot.durations import words
from bot.errors import (
    BotError,
    ChatError,
    Conflict,
    ContentHashMismatch,
    FileTooLarge,
    InvalidToken,
    NotAuthorized,
    ProviderError,
    SourceError,
    StoreError,
    StoreUnavailable,
)
from bot.files import wording
from bot.files.names import human_size
from bot.files.sources import HttpSource, KeptSource, at_most
from bot.metrics import Metrics
from bot.retry import backoff
from storage.authorizations import Authorizations
from storage.connections import Connections
from storage.records import DONE, FAILED, KEEP, QUEUED, WAITING, Connection, Job
from storage.uploads import UploadJobs

__all__ = ["UploadWorker"]

log = logging.getLogger(__name__)

_MAX_JOB_ATTEMPTS: Final = 3
#: Pause before a job runs again after an unexpected error, by the number of attempts so far.
_ERROR_BACKOFF: Final = (5.0, 30.0, 120.0)
#: Longest pause of a slot whose claims keep failing unexpectedly.
_MAX_CLAIM_BACKOFF: Final = 60.0
#: Pause before a job whose provider failed runs again, per attempt so far.
_PROVIDER_RETRY_STEP: Final = 30.0


@dataclass(kw_only=True, eq=False, repr=False)
class UploadWorker:
    """Upload slots and housekeeping, as one task between :meth:`start` and :meth:`stop`.

    Built from the parts below (``create_app`` passes each); the rest is its own state.
    """

    settings: Settings
    jobs: UploadJobs
    connections: Connections
    authorizations: Authorizations
    accounts: AccountService
    catalog: ServiceCatalog
    destinations: Destinations
    http: aiohttp.ClientSession
    notifier: Notifier
    metrics: Metrics
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    _holder: str = field(init=False, default_factory=lambda: f"worker-{uuid.uuid4().hex[:12]}")
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    #: Bytes committed so far of each job this process uploads (``status`` shows them).
    _live: dict[str, int] = field(init=False, default_factory=dict)
    _stopping: bool = field(init=False, default=False)
    _stop_event: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _runner: asyncio.Task[None] | None = field(init=False, default=None)

    # -- what intake uses --

    def kick(self) -> None:
        """There is work: let an idle slot look now rather than at its next poll."""
        self._wake.set()

    def committed(self, job_id: str) -> int | None:
        """Bytes of the job the destination holds, while this process uploads it."""
        return self._live.get(job_id)

    async def destination(self, conn: Connection) -> FileDestination | None:
        """Where files sent through ``conn`` land; ``None`` if its service cannot receive them."""
        info = await self.catalog.info(conn.service)
        return self.destinations.get(info.kind) if info is not None else None

    # -- the task --

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

    # -- slots --

    async def _slot(self, index: int) -> None:
        holder = f"{self._holder}-{index}"  # leases and account locks belong to one slot
        claim_errors = 0
        while not self._stopping:
            try:
                job = await self.jobs.claim(holder, self.lease_seconds, (QUEUED, KEEP))
            except StoreUnavailable as err:
                log.warning("upload slot %s: %s", index, err)
                job = None
            except Exception:
                # Supervision: a claim that fails otherwise (e.g. a malformed job document, set
                # aside by the store) is logged and counted; the slot tries again after a pause.
                log.exception("upload slot %s could not claim a job", index)
                self.metrics.worker_errors.inc(stage="claim")
                claim_errors += 1
                pause = backoff(
                    claim_errors, base=self.poll_seconds, cap=_MAX_CLAIM_BACKOFF, jitter=0
                )
                await self._idle(pause)
                continue
            claim_errors = 0
            if job is None:
                await self._idle(self.poll_seconds)
                continue
            self._wake.set()  # there may be more: let another slot look
            stage = "keep" if job.state == KEEP else "upload"
            try:
                await self._run_job(job, holder, stage)
            except Exception:
                # Reporting the job's own error failed too (e.g. the message could not be
                # built): logged and counted; the job runs again when its lease lapses.
                log.exception("upload slot %s: job %s could not be settled", index, job.id)
                self.metrics.worker_errors.inc(stage=stage)

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
            self.metrics.worker_errors.inc(stage=stage)
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
                await self.jobs.postpone(job, holder, delay, error=reason)
                log.warning("job %s postponed %s s after an unexpected error", job.id, delay)
                return
            if not await self.jobs.finish(job, holder, FAILED, error=reason):
                return  # the job had moved on (or its lease lapsed) before the error
        except StoreError as err:
            log.warning("job %s: the error could not be recorded (%s); it runs again", job.id, err)
            return
        self.metrics.uploads.inc(outcome="failed")
        log.warning("job %s failed after %s attempts: %s", job.id, job.attempts + 1, reason)
        await self._notify(job, wording.internal_failure(job))

    async def _heartbeat(self, job: Job, holder: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 4)
            try:
                await self.jobs.renew(job, holder, self.lease_seconds)
            except StoreError:
                log.warning("could not renew the lease of job %s", job.id)

    # -- housekeeping --

    async def _housekeeping(self) -> None:
        steps: tuple[Callable[[], Awaitable[object]], ...] = (
            self._expire_kept,
            self.accounts.discard_expired_pending,
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
                    self.metrics.worker_errors.inc(stage="housekeeping")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), max(self.poll_seconds * 10, 1.0))

    async def _expire_kept(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.kept_file_ttl)
        for job in await self.jobs.kept_older_than(cutoff):
            if await self.jobs.expire(job):
                await self.jobs.delete_kept(job.kept_file)
                waited = words(self.settings.kept_file_ttl)
                await self._notify(job, wording.expired(job.name, waited))

    # -- keep --

    async def _keep(self, job: Job, holder: str) -> None:
        """Download the attachment into the store, then wait for (or go straight to) upload."""
        await self.jobs.delete_kept(job.kept_file)
        limit = self.settings.max_file_bytes
        source = HttpSource(self.http, job.url, limit)
        try:
            async with source.open(0) as pieces:
                kept_file, size = await self.jobs.save_kept(
                    job.id, job.name, at_most(pieces, limit)
                )
        except (SourceError, FileTooLarge) as err:
            await self._source_failed(job, holder, err)
            return
        auth = await self.authorizations.get(job.connection, job.credential_user)
        next_state = QUEUED if auth is not None and auth.connected else WAITING
        await self.jobs.finish(job, holder, next_state, kept_file=kept_file, size=size)
        if next_state == QUEUED:
            self._wake.set()

    # -- upload --

    async def _upload(self, job: Job, holder: str) -> None:
        started = time.monotonic()
        conn = await self.connections.get(job.connection)
        if conn is None:  # deleted, and its authorizations with it
            await self._lost_authorization(job, holder, None, "")
            return
        place = await self.destination(conn)
        if place is None:
            await self._failed(job, Conflict(f"files cannot land in {conn.service}"), holder)
            return
        try:
            meta = await self._relay(job, holder, place)
        except NotAuthorized:
            await self._lost_authorization(job, holder, conn, place.title)
            return
        except InvalidToken as err:
            await self._token_refused(job, holder, err, conn, place.title)
            return
        except (SourceError, FileTooLarge) as err:
            await self._source_failed(job, holder, err)
            return
        except StoreError:
            raise  # the store, not the upload: paused or retried by the slot (_run_job)
        except (ProviderError, BotError) as err:
            await self._failed(job, err, holder)
            return
        await self._saved(job, holder, meta, place.title, started)

    async def _relay(self, job: Job, holder: str, place: FileDestination) -> FileMetadata:
        """Stream the job's file (kept, or from its URL) to ``place``, saving progress."""
        source: HttpSource | KeptSource
        if job.kept_file is not None:
            source = KeptSource(self.jobs, job.kept_file)
        else:
            source = HttpSource(self.http, job.url, self.settings.max_file_bytes)
        progress = UploadProgress.from_dict(dict(job.progress)) if job.progress else None

        async def save(p: UploadProgress) -> None:
            await self.jobs.save_progress(job, holder, p.to_dict(), size=source.total)

        def on_bytes(done: int) -> None:
            self._live[job.id] = done

        return await relay_upload(
            place,
            self.accounts.tokens(job.connection, job.credential_user),
            source,
            f"{self.settings.upload_folder}/{job.name}",
            progress=progress,
            save_progress=save,
            on_bytes=on_bytes,
            max_bytes=self.settings.max_file_bytes,
            policy=self.retry,
        )

    async def _saved(
        self, job: Job, holder: str, meta: FileMetadata, place: str, started: float
    ) -> None:
        result = {"path": meta.path_display, "size": meta.size, "content_hash": meta.content_hash}
        await self.jobs.finish(job, holder, DONE, result=result, progress={})
        await self.jobs.delete_kept(job.kept_file)
        self.metrics.uploads.inc(outcome="ok")
        self.metrics.bytes_uploaded.inc(meta.size)
        self.metrics.upload_duration.observe(time.monotonic() - started)
        own = job.credential_user == job.sender_id
        size = human_size(meta.size)
        await self._notify(job, wording.saved(meta.name, meta.path_display, size, place, own=own))

    async def _token_refused(
        self, job: Job, holder: str, err: InvalidToken, conn: Connection, place: str
    ) -> None:
        """Revoked at the provider, or scopes gone: one refresh tells which."""
        try:
            await self.accounts.refresh(
                job.connection, job.credential_user, rejected=await self._current_token(job)
            )
        except NotAuthorized:
            await self._lost_authorization(job, holder, conn, place)
            return
        if job.attempts + 1 >= _MAX_JOB_ATTEMPTS:
            await self._failed(job, err, holder)
        else:
            await self.jobs.postpone(job, holder, 0.0, error="InvalidToken")

    async def _current_token(self, job: Job) -> str:
        try:
            return await self.accounts.access_token(job.connection, job.credential_user)
        except NotAuthorized:
            return ""

    async def _source_failed(self, job: Job, holder: str, err: SourceError) -> None:
        await self.jobs.finish(job, holder, FAILED, error=str(err))
        self.metrics.uploads.inc(outcome="source_error")
        await self._notify(job, wording.source_failed(job.name, err))

    async def _lost_authorization(
        self, job: Job, holder: str, conn: Connection | None, place: str
    ) -> None:
        """Authorization gone (revoked, refresh rejected): keep the file, prompt to connect."""
        next_state = WAITING if job.kept_file is not None else KEEP
        await self.jobs.finish(job, holder, next_state, progress={})
        self.metrics.uploads.inc(outcome="not_authorized")
        if conn is None:
            return
        if job.credential_user == job.sender_id:
            intro = wording.lost_own(job.name, place)
            await self._notify(job, await self._connect_prompt(job.sender_id, conn, intro))
            return
        await self._notify(job, wording.lost_shared(job.name, place))
        owner = job.credential_user
        intro = wording.owner_needed(conn.name)
        await self.notifier.notify([owner], await self._connect_prompt(owner, conn, intro))

    async def _connect_prompt(self, user_id: str, conn: Connection, intro: str) -> Message:
        """``intro`` with an ``open.url`` connect link for ``user_id`` (CONTRACT §4)."""
        try:
            url = await self.accounts.connect_url(conn, CliqUser(id=user_id))
        except ChatError as err:  # e.g. the connection's service is gone
            return text(f"{intro} {err}")
        ttl = words(self.settings.connect_link_ttl)
        return wording.connect_prompt(intro, conn.name, url, ttl)

    async def _failed(self, job: Job, err: BotError, holder: str) -> None:
        retryable = isinstance(err, ProviderError) and not isinstance(err, ContentHashMismatch)
        if retryable and job.attempts + 1 < _MAX_JOB_ATTEMPTS:
            delay = _PROVIDER_RETRY_STEP * (job.attempts + 1)
            await self.jobs.postpone(job, holder, delay, error=type(err).__name__)
            log.warning("job %s postponed %ss after %s", job.id, delay, type(err).__name__)
            return
        await self.jobs.finish(job, holder, FAILED, error=type(err).__name__)
        self.metrics.uploads.inc(outcome="failed")
        log.warning("job %s failed: %s", job.id, type(err).__name__)
        await self._notify(job, wording.failed(job, err))

    async def _notify(self, job: Job, message: Message) -> None:
        await self.notifier.notify([job.sender_id], message)
