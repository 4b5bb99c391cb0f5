"""The upload worker (CONTRACT §7): it keeps and uploads the files intake accepted.

It runs in every ``serve`` process and claims jobs with a lease (:mod:`storage.uploads`):

- **upload slots** (``BOT_UPLOAD_CONCURRENCY``) claim ``queued`` jobs of one account at a time,
  up to ``BOT_UPLOAD_BATCH`` in one claim, and stream each file to the connection's destination
  (picked from :class:`~bot.destinations.base.Destinations` by its service kind) through
  :func:`~bot.destinations.relay.relay_upload`, saving progress at chunk boundaries so a
  restarted process resumes the same upload session. A lone file goes up as before; files of a
  batch go up in parallel, each through its own session closed on its one call, and are
  committed together (:mod:`bot.destinations.batch`: ``finish_batch``, Dropbox's way for many
  files). Commits of one account go one at a time, across processes (its commit lock); the
  contents do not wait for it.
- **the fetch slot** downloads attachments into the store (their URLs expire): ``keep`` jobs,
  which then wait for the credential owner to connect, and queued jobs that have been due for
  ``BOT_PREFETCH_AFTER`` seconds without starting (a backlog), which then upload from the store.
- **one heartbeat** renews every lease and commit lock this process holds, in one write each.

A batch costs the store about the same few round trips whatever its size: one read and one
write to claim it, one read of the connection and one of the authorization, one lock and one
unlock per commit, and coalesced writes (:mod:`storage.batching`) for the jobs' outcomes.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import aiohttp

from bot.accounts import AccountService
from bot.cliq.events import CliqUser
from bot.cliq.messages import Message, text
from bot.config import Settings
from bot.context import Notifier, ServiceCatalog
from bot.destinations.base import BatchEntry, Destinations, FileDestination, FileMetadata
from bot.destinations.batch import AccountCommits, CommitGroups
from bot.destinations.relay import (
    Commits,
    RetryPolicy,
    SharedTokens,
    TokenSource,
    UploadProgress,
    relay_upload,
)
from bot.durations import words
from bot.errors import (
    BotError,
    ChatError,
    Conflict,
    ContentHashMismatch,
    FileTooLarge,
    InvalidToken,
    MalformedRecord,
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
#: Files of a batch up to this size go up through one closed session each, committed together.
_BATCH_FILE_BYTES: Final = 4 * 1024 * 1024
#: Files of batches being transferred at once in this process (each at most the size above in
#: memory); a file waiting for its commit holds no place.
_BATCH_TRANSFERS: Final = 16
#: Attachments the fetch slot downloads into the store at once.
_FETCH_BATCH: Final = 32
#: Waiting for an account's commit lock that another process holds: first pause, longest.
_LOCK_PAUSE: Final = (0.02, 0.5)


@dataclass(frozen=True)
class _Account:
    """What the jobs of one claim share: their connection, destination, tokens, commits."""

    conn: Connection | None
    place: FileDestination | None
    tokens: TokenSource
    group: AccountCommits | None
    batched: bool


class _Transfer:
    """A batched upload's commits: its transfer place is given back once its bytes are up."""

    def __init__(self, commits: Commits, release: Callable[[], None]) -> None:
        self._commits = commits
        self._release = release

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        return self._commits.exclusive()

    async def commit(self, access_token: str, entry: BatchEntry) -> FileMetadata:
        self._release()
        return await self._commits.commit(access_token, entry)


@dataclass(kw_only=True, eq=False, repr=False)
class UploadWorker:
    """Upload slots, the fetch slot, the heartbeat and housekeeping, as one task between
    :meth:`start` and :meth:`stop`.

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
    #: The jobs this process holds a lease on, with the slot holding it (the heartbeat's list).
    _leases: dict[str, str] = field(init=False, default_factory=dict)
    #: The accounts whose commit lock this process holds.
    _locks_held: set[str] = field(init=False, default_factory=set)
    _claiming: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    _transfers: asyncio.Semaphore = field(
        init=False, default_factory=lambda: asyncio.Semaphore(_BATCH_TRANSFERS)
    )
    _commits: CommitGroups = field(init=False)
    _stopping: bool = field(init=False, default=False)
    _stop_event: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _runner: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._commits = CommitGroups(self._commit_lock)

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
        """Start ``concurrency`` upload slots, the fetch slot, the heartbeat and the
        housekeeping as one task, until ``stop``."""
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
        try:
            async with asyncio.TaskGroup() as group:
                for index in range(concurrency):
                    slot = self._slot(
                        f"upload slot {index}", self._claim_uploads, self._run_uploads
                    )
                    group.create_task(slot, name=f"upload-slot-{index}")
                fetch = self._slot("fetch slot", self._claim_fetches, self._run_fetches)
                group.create_task(fetch, name="upload-fetch")
                group.create_task(self._heartbeat(), name="upload-heartbeat")
                group.create_task(self._housekeeping(), name="upload-housekeeping")
        finally:
            await self._commits.close()

    async def _idle(self, seconds: float) -> None:
        if self._stopping:
            return  # checked before clearing: stop() sets the flag, then wakes
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    # -- slots --

    async def _slot(
        self,
        name: str,
        claim: Callable[[str], Awaitable[list[Job]]],
        run: Callable[[list[Job], str], Awaitable[None]],
    ) -> None:
        """Claim jobs and run them, until stopped; leases belong to the slot (``holder``)."""
        holder = f"{self._holder}-{name.replace(' ', '-')}"
        claim_errors = 0
        while not self._stopping:
            try:
                async with self._claiming:  # this process's slots claim one after another
                    jobs = await claim(holder)
            except StoreUnavailable as err:
                log.warning("%s: %s", name, err)
                jobs = []
            except Exception as exc:
                # Supervision: a claim that fails otherwise (e.g. a malformed job document, set
                # aside by the store, whose sender is told) is logged and counted; the slot
                # tries again after a pause.
                log.exception("%s could not claim a job", name)
                self.metrics.worker_errors.inc(stage="claim")
                if isinstance(exc, MalformedRecord):
                    await self._report_set_aside(exc)
                claim_errors += 1
                pause = backoff(
                    claim_errors, base=self.poll_seconds, cap=_MAX_CLAIM_BACKOFF, jitter=0
                )
                await self._idle(pause)
                continue
            claim_errors = 0
            if not jobs:
                await self._idle(self.poll_seconds)
                continue
            self._wake.set()  # there may be more: let another slot look
            self._leases.update((job.id, holder) for job in jobs)
            try:
                await run(jobs, holder)
            finally:
                for job in jobs:
                    self._leases.pop(job.id, None)

    async def _settle(
        self, job: Job, holder: str, stage: str, body: Callable[[Job, str], Awaitable[None]]
    ) -> None:
        """Run one job under supervision; nothing it raises reaches the slot."""
        try:
            await self._run_job(job, holder, stage, body)
        except Exception:
            # Reporting the job's own error failed too (e.g. the message could not be built):
            # logged and counted; the job runs again when its lease lapses.
            log.exception("job %s could not be settled", job.id)
            self.metrics.worker_errors.inc(stage=stage)

    async def _run_job(
        self, job: Job, holder: str, stage: str, body: Callable[[Job, str], Awaitable[None]]
    ) -> None:
        try:
            await body(job, holder)
        except StoreUnavailable as err:
            log.warning("job %s paused, the store does not answer: %s", job.id, err)
        except Exception as exc:
            # Supervision: whatever the job did not handle is logged with its traceback and
            # counted; the job is retried later, then failed (never swallowed, never fatal).
            log.exception("job %s: unexpected error (%s)", job.id, stage)
            self.metrics.worker_errors.inc(stage=stage)
            await self._unexpected(job, holder, exc)
        finally:
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

    # -- leases and commit locks --

    async def _heartbeat(self) -> None:
        """Renew every lease and commit lock of this process: one write each, whatever the
        number of jobs."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), self.lease_seconds / 4)
            leases, locks = dict(self._leases), sorted(self._locks_held)
            try:
                if leases:
                    await self.jobs.renew_leases(leases, self.lease_seconds)
                if locks:
                    await self.jobs.renew_locks(locks, self._holder, self.lease_seconds)
            except StoreError as err:
                log.warning("could not renew %s leases: %s", len(leases), err)

    @contextlib.asynccontextmanager
    async def _commit_lock(self, key: str) -> AsyncIterator[None]:
        """The commit lock of account ``key`` across processes, waited for if need be."""
        pause = _LOCK_PAUSE[0]
        while not await self.jobs.lock(key, self._holder, self.lease_seconds):
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LOCK_PAUSE[1])
        self._locks_held.add(key)
        try:
            yield
        finally:
            self._locks_held.discard(key)
            try:
                await self.jobs.unlock(key, self._holder)
            except StoreError as err:  # the commit stands; the lock lapses with its lease
                log.warning("could not release the commit lock of %s: %s", key, err)

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
        jobs, malformed = await self.jobs.kept_older_than(cutoff)
        for err in malformed:
            log.error("housekeeping: %s", err)
            self.metrics.worker_errors.inc(stage="housekeeping")
            await self._report_set_aside(err)
        for job in jobs:
            if await self.jobs.expire(job):
                await self.jobs.delete_kept(job.kept_file)
                waited = words(self.settings.kept_file_ttl)
                await self._notify(job, wording.expired(job.name, waited))

    # -- fetching into the store: keep jobs, and uploads a backlog holds up --

    async def _claim_fetches(self, holder: str) -> list[Job]:
        jobs = await self.jobs.claim_batch(holder, self.lease_seconds, KEEP, limit=_FETCH_BATCH)
        if jobs:
            return jobs
        return await self.jobs.claim_prefetch(
            holder,
            self.lease_seconds,
            older_than=self.settings.prefetch_after,
            limit=_FETCH_BATCH,
        )

    async def _run_fetches(self, jobs: list[Job], holder: str) -> None:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(self._settle(job, holder, "keep", self._keep))

    async def _keep(self, job: Job, holder: str) -> None:
        """Download the attachment into the store. A kept file then waits for (or goes
        straight to) its upload; a queued one fetched ahead uploads from the store."""
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
        if job.state == QUEUED:  # its place in the queue stays: due since it was made
            next_state, due = QUEUED, {"not_before": job.created_at}
            log.info("job %s waited for its upload: its file is in the store now", job.id)
        else:
            auth = await self.authorizations.get(job.connection, job.credential_user)
            next_state = QUEUED if auth is not None and auth.connected else WAITING
            due = {}
        fields = {"kept_file": kept_file, "size": size, **due}
        if not await self.jobs.finish(job, holder, next_state, **fields):
            await self.jobs.delete_kept(kept_file)  # the job moved on meanwhile
        elif next_state == QUEUED:
            self._wake.set()

    # -- upload --

    async def _claim_uploads(self, holder: str) -> list[Job]:
        limit = max(1, self.settings.upload_batch)
        return await self.jobs.claim_batch(holder, self.lease_seconds, QUEUED, limit=limit)

    async def _run_uploads(self, jobs: list[Job], holder: str) -> None:
        """Upload the claimed jobs (all of one account): alone, or as a batch."""
        first = jobs[0]
        try:
            conn = await self.connections.get(first.connection)
            place = await self.destination(conn) if conn is not None else None
        except StoreUnavailable as err:  # their leases lapse; they are claimed again
            log.warning("%s jobs paused, the store does not answer: %s", len(jobs), err)
            return
        except Exception as exc:  # e.g. a malformed connection: each job's supervision decides
            error = exc

            async def fail(job: Job, holder: str) -> None:
                raise error

            for job in jobs:
                await self._settle(job, holder, "upload", fail)
            return
        # One token read (and at most one refresh) for all the requests of these uploads.
        shared = SharedTokens(self.accounts.tokens(first.connection, first.credential_user))
        if len(jobs) == 1 or place is None:
            for job in jobs:
                acct = _Account(conn, place, shared, None, batched=False)
                await self._with_commits(job, holder, acct)
            return
        log.info("uploading %s files of %s together", len(jobs), first.account_key)
        with self._commits.using(first.account_key, place) as group:
            acct = _Account(conn, place, shared, group, batched=True)
            async with asyncio.TaskGroup() as tasks:
                for job in jobs:
                    tasks.create_task(self._settle(job, holder, "upload", self._uploader(acct)))

    async def _with_commits(self, job: Job, holder: str, acct: _Account) -> None:
        """A lone upload, with its account's commit turn when it commits."""
        if acct.place is None:
            await self._settle(job, holder, "upload", self._uploader(acct))
            return
        with self._commits.using(job.account_key, acct.place) as group:
            alone = _Account(acct.conn, acct.place, acct.tokens, group, batched=False)
            await self._settle(job, holder, "upload", self._uploader(alone))

    def _uploader(self, acct: _Account) -> Callable[[Job, str], Awaitable[None]]:
        async def upload(job: Job, holder: str) -> None:
            await self._upload(job, holder, acct)

        return upload

    async def _upload(self, job: Job, holder: str, acct: _Account) -> None:
        started = time.monotonic()
        conn, place = acct.conn, acct.place
        if conn is None:  # deleted, and its authorizations with it
            await self._lost_authorization(job, holder, None, "")
            return
        if place is None or acct.group is None:
            await self._failed(job, Conflict(f"files cannot land in {conn.service}"), holder)
            return
        try:
            meta = await self._transfer(job, holder, acct, acct.group)
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

    async def _transfer(
        self, job: Job, holder: str, acct: _Account, group: AccountCommits
    ) -> FileMetadata:
        """The relay of one job: a batched one holds one of the process's transfer places
        until its bytes are up (then it waits for its commit without one)."""
        if not acct.batched:
            with group.upload(expect=False) as commits:
                return await self._relay(job, holder, acct, commits)
        with group.upload(expect=True) as commits:
            await self._transfers.acquire()
            held = True

            def release() -> None:
                nonlocal held
                if held:
                    held = False
                    self._transfers.release()

            try:
                return await self._relay(job, holder, acct, _Transfer(commits, release))
            finally:
                release()

    async def _relay(self, job: Job, holder: str, acct: _Account, commits: Commits) -> FileMetadata:
        """Stream the job's file (kept, or from its URL) to its destination, saving progress."""
        assert acct.place is not None
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
            acct.place,
            acct.tokens,
            source,
            f"{self.settings.upload_folder}/{job.name}",
            progress=progress,
            save_progress=save,
            on_bytes=on_bytes,
            max_bytes=self.settings.max_file_bytes,
            policy=self.retry,
            commits=commits,
            batch_limit=_BATCH_FILE_BYTES if acct.batched else 0,
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

    async def _report_set_aside(self, err: MalformedRecord) -> None:
        """Tell the sender of a job set aside as unreadable, when its record still names them
        (never raises: the report is best effort, the error is logged already)."""
        if not err.owner or not err.set_aside_as:
            return
        try:
            await self.notifier.notify([err.owner], wording.set_aside(err.label))
        except Exception:  # noqa: BLE001 - a failed report must not stop the slot
            log.warning("could not tell %s that job %s was set aside", err.owner, err.key)

    async def _notify(self, job: Job, message: Message) -> None:
        await self.notifier.notify([job.sender_id], message)
