"""Intake of attachments and the chat-facing queries of the file flow (CONTRACT §7).

Intake answers at once (the webhook must reply well under 3 s): it records a durable job and
kicks the worker (:mod:`bot.files.worker`), which keeps or uploads the file afterwards.
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
from storage.records import ACTIVE, KEEP, QUEUED, Connection, Job
from storage.uploads import UploadJobs

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
        auth = await self.authorizations.get(conn.link, credential_user)
        authorized = auth is not None and auth.connected
        job = await self.jobs.create(
            sender_id=event.user.id,
            attachment_id=attachment.id,
            connection=conn.link,
            credential_user=credential_user,
            name=name,
            url=attachment.url,
            state=QUEUED if authorized else KEEP,
        )
        if job is None:
            return Intake(wording.already_have(name))
        self.worker.kick()
        if authorized:
            place = await self.worker.destination(conn)
            title = place.title if place is not None else conn.service
            own = credential_user == event.user.id
            return Intake(wording.upload_started(name, title, own=own))
        ttl = words(self.settings.kept_file_ttl)
        return Intake(wording.kept(name, ttl), needs_connect=True)

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
