"""The file flow (CONTRACT §7): intake of attachments, and the worker that keeps and uploads them.

Intake answers at once (the webhook must reply well under 3 s): it records a durable job and
kicks the worker. The worker, running in every ``serve`` process, claims jobs with a lease:

- ``keep`` jobs download the attachment into the store (its URL expires) and then wait for the
  credential owner to connect;
- ``queued`` jobs stream to Dropbox through :func:`~bot.providers.relay.relay_upload`, one at a
  time per account, saving progress so a restarted process resumes the same upload session.

Each outcome is posted to the sender through Cliq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.accounts import AccountService
from bot.cliq.events import Attachment, Event
from bot.cliq.messages import Button, Message, text
from bot.config import Settings
from bot.errors import (
    BotError,
    ContentHashMismatch,
    FileTooLarge,
    InvalidToken,
    NotAuthorized,
    ProviderError,
    SourceError,
    StoreError,
)
from bot.metrics import Metrics
from bot.providers.dropbox import DropboxClient
from bot.providers.relay import RetryPolicy, UploadProgress, relay_upload
from handlers.context import Intake, Notifier
from storage.authorizations import Authorizations
from storage.connections import Connections
from storage.uploads import (
    ACTIVE,
    DONE,
    FAILED,
    KEEP,
    QUEUED,
    WAITING,
    Job,
    UploadJobs,
)

log = logging.getLogger(__name__)

_DEFAULT_NAME = "file"
_MAX_NAME = 200
_PIECE = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_JOB_ATTEMPTS = 3


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
    """A file kept in the store (GridFS) as a ``ByteSource``."""

    def __init__(self, jobs: UploadJobs, file_id: Any) -> None:
        self._jobs = jobs
        self._id = file_id

    @asynccontextmanager
    async def open(self, offset: int) -> AsyncIterator[AsyncIterator[bytes]]:
        pieces = self._jobs.read_kept(self._id, offset)
        try:
            yield pieces
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]


class FileService:
    """Implements ``handlers.context.Files`` and runs the upload worker."""

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
        return Intake(f"{name}: I kept it for you (for 7 days).", needs_connect=True)

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

    async def run(self, concurrency: int) -> None:
        """Worker slots plus housekeeping, until :meth:`stop`."""
        self._stopping = False
        self._stop_event = asyncio.Event()
        await asyncio.gather(*(self._slot(i) for i in range(concurrency)), self._housekeeping())

    async def stop(self, runner: asyncio.Task[None], timeout: float) -> None:
        """Let in-flight work finish (up to ``timeout`` s), then cancel what is left.

        Slots are asked to stop between jobs rather than cancelled outright: cancelling
        PyMongo's async client while it waits for a server can leave it unable to close.
        """
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(runner), timeout)
        except TimeoutError:
            log.warning("uploads still running after %s s; they resume on the next start", timeout)
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def _idle(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _slot(self, index: int) -> None:
        holder = f"{self._holder}-{index}"  # leases and account locks belong to one slot
        while not self._stopping:
            try:
                job = await self._jobs.claim(holder, self._lease, (QUEUED, KEEP))
            except StoreError as err:
                log.warning("upload slot %s: %s", index, err)
                job = None
            if job is None:
                if not self._stopping:
                    await self._idle(self._poll)
                continue
            self._wake.set()  # there may be more: let another slot look
            heartbeat = asyncio.create_task(self._heartbeat(job, holder))
            try:
                if job.state == KEEP:
                    await self._keep(job, holder)
                else:
                    await self._upload(job, holder)
            except StoreError as err:
                log.warning("job %s paused, the store failed: %s", job.id, err)
            finally:
                heartbeat.cancel()
                self._live.pop(job.id, None)

    async def _heartbeat(self, job: Job, holder: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 4)
            try:
                await self._jobs.renew(job, holder, self._lease)
            except StoreError:
                log.warning("could not renew the lease of job %s", job.id)

    async def _housekeeping(self) -> None:
        while not self._stopping:
            try:
                await self._expire_kept()
                await self._accounts.discard_expired_pending()
            except StoreError as err:
                log.warning("housekeeping skipped: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), max(self._poll * 10, 1.0))

    async def _expire_kept(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self._settings.kept_file_ttl)
        for job in await self._jobs.kept_older_than(cutoff):
            if await self._jobs.expire(job):
                await self._jobs.delete_kept(job.kept_file)
                days = max(1, round(self._settings.kept_file_ttl / 86400))
                await self._notify(
                    job,
                    text(
                        f"{job.name} waited {days} day(s) for a connection and was"
                        " deleted. Send it again after connecting."
                    ),
                )

    async def _keep(self, job: Job, holder: str) -> None:
        """Download the attachment into the store, then wait for (or go straight to) upload."""
        await self._jobs.delete_kept(job.kept_file)
        source = HttpSource(self._http, job.url, self._settings.max_file_bytes)
        upload = self._jobs.kept.open_upload_stream(job.name, metadata={"job": job.id})
        size = 0
        try:
            async with source.open(0) as pieces:
                async for piece in pieces:
                    size += len(piece)
                    if size > self._settings.max_file_bytes:
                        raise FileTooLarge(self._settings.max_file_bytes)
                    await upload.write(piece)
            await upload.close()
        except (SourceError, FileTooLarge) as err:
            await upload.abort()
            await self._jobs.finish(job, holder, FAILED, error=str(err))
            self._metrics.uploads.inc(outcome="source_error")
            await self._notify(job, text(f"{job.name}: {err}. Please send it again."))
            return
        auth = await self._auths.get(job.connection, job.credential_user)
        next_state = QUEUED if auth is not None and auth.connected else WAITING
        await self._jobs.finish(job, holder, next_state, kept_file=upload._id, size=size)
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
                Message(
                    text=f"{job.name}: your Dropbox connection no longer works, so I kept the file."
                    " Connect again and I upload it.",
                    buttons=(
                        Button.invoke(
                            "Connect", "cliqbot", {"action": "connect", "link": conn.link}
                        ),
                    ),
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
                text(
                    f"*{conn.name}* needs you to connect again (`connect {conn.link}`):"
                    " files are waiting."
                ),
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
                text=f"{job.name}: the upload failed ({err}).",
                buttons=(
                    Button.invoke("Retry", "cliqbot", {"action": "retry", "job": job.id}),
                    Button.invoke(
                        "Cancel", "cliqbot", {"action": "cancel", "job": job.id}, type="-"
                    ),
                ),
            ),
        )

    async def _notify(self, job: Job, message: Message) -> None:
        await self._notifier.notify([job.sender_id], message)
