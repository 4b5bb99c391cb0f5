"""Intake of attachments and the chat-facing queries of the file flow (CONTRACT §7).

Intake answers at once (the webhook must reply well under 3 s): it makes a durable job and kicks
the worker (:mod:`bot.files.worker`), which keeps or uploads the file afterwards.

How the job is written, and how the reply is stored on it in the same write: on the
acknowledgement path (a webhook delivery is open, :func:`storage.events.current_delivery`)
:meth:`FileIntake.accept` does not write. It decides what happens to the attachment from reads
served from memory (the authorization's state, ``bot/cache.py``), *stages* the job on the
delivery and answers the line of the reply as if the job were new. The file handler composes the
reply from those lines and returns it; the webhook then writes every staged job of the message,
each carrying that reply and the event's identity, as one coalesced ``insert_many``
(:meth:`storage.events.ProcessedEvents.commit`) — the one durable write of the delivery — and
the worker is kicked once it is written. If a job exists already, the commit tells whether it was
this event (a duplicate delivery: the stored first reply is the answer) or another event carrying
the same attachment; then the webhook dispatches once more with those jobs marked as *held*, and
``accept`` answers "I have this file already" for them.

Outside a delivery (no webhook: e.g. a test or a tool calling it directly) ``accept`` writes the
job at once, as one insert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.cliq.events import Attachment, Event
from bot.config import Settings
from bot.context import Intake, Notifier
from bot.durations import words
from bot.files import wording
from bot.files.names import clean_name, human_size
from bot.files.worker import UploadWorker
from storage.authorizations import Authorizations
from storage.events import current_delivery
from storage.records import ACTIVE, KEEP, QUEUED, Connection, Job
from storage.uploads import NewJob, UploadJobs

__all__ = ["FileIntake"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, repr=False)
class FileIntake:
    """Accepts attachments; answers ``status``, Retry, Cancel; resumes kept files on connect.

    The worker is kicked when there is work, and says how far its uploads are.
    """

    settings: Settings
    jobs: UploadJobs
    authorizations: Authorizations
    notifier: Notifier
    worker: UploadWorker

    async def accept(
        self, event: Event, attachment: Attachment, conn: Connection, credential_user: str
    ) -> Intake:
        name = clean_name(attachment.name)
        auth = await self.authorizations.get(conn.link, credential_user)  # from memory: bot/cache
        authorized = auth is not None and auth.connected
        job = NewJob(
            sender_id=event.user.id,
            attachment_id=attachment.id,
            connection=conn.link,
            credential_user=credential_user,
            name=name,
            url=attachment.url,
            state=QUEUED if authorized else KEEP,
        )
        if not await self._take(job):
            return Intake(wording.already_have(name))
        if authorized:
            place = await self.worker.destination(conn)
            title = place.title if place is not None else conn.service
            own = credential_user == event.user.id
            return Intake(wording.upload_started(name, title, own=own))
        ttl = words(self.settings.kept_file_ttl)
        return Intake(wording.kept(name, ttl), needs_connect=True)

    async def _take(self, job: NewJob) -> bool:
        """Stage ``job`` on the open delivery (written with the reply), or outside one write it
        now; ``False`` if the attachment has a job already (as far as is known here)."""
        delivery = current_delivery()
        if delivery is None:
            created = await self.jobs.add(job) is not None
            if created:
                self.worker.kick()
            return created
        if job.id in delivery.held:
            return False
        return delivery.stage_job(job, on_written=self.worker.kick)

    async def status_lines(self, user_id: str) -> list[str]:
        jobs = await self.jobs.of_sender(user_id, ACTIVE)
        return wording.your_files([self._status_line(job) for job in jobs])

    def _status_line(self, job: Job) -> str:
        if job.state != QUEUED:
            return wording.waiting(job.name)
        done = self.worker.committed(job.id)
        if done is None:
            done = int(job.progress.get("offset", 0))
        return wording.uploading(
            job.name, f"{100 * done // job.size}%" if job.size else human_size(done)
        )

    async def waiting_count(self, link: str) -> int:
        return await self.jobs.count(link, ACTIVE)

    async def retry(self, user_id: str, job_id: str) -> str:
        if await self.jobs.requeue(job_id, user_id):
            self.worker.kick()
            return wording.RETRYING
        return wording.NOT_RETRYABLE

    async def cancel(self, user_id: str, job_id: str) -> str:
        job = await self.jobs.cancel(job_id, user_id)
        if job is None:
            return wording.NOT_CANCELLABLE
        await self.jobs.delete_kept(job.kept_file)
        return wording.cancelled(job.name)

    async def resume(self, link: str, user_id: str) -> None:
        """The credential owner connected: upload every kept file of theirs, in order."""
        kept = await self.jobs.count_kept(link, user_id)  # waiting, or still downloading
        released = await self.jobs.release_waiting(link, user_id)
        if released:
            log.info("resuming %s kept file(s) for %s on %s", released, user_id, link)
            self.worker.kick()
        if kept:
            await self.notifier.notify([user_id], wording.resuming(kept))
