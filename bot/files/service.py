"""The file flow as the rest of the bot sees it: ``bot.context.Files`` and the worker's task."""

from __future__ import annotations

from bot.cliq.events import Attachment, Event
from bot.context import Intake
from bot.files.intake import FileIntake
from bot.files.worker import UploadWorker
from storage.records import Connection

__all__ = ["FileService"]


class FileService:
    """An upload worker with its intake: ``bot.context.Files`` for handlers, and the worker's
    :meth:`start` and :meth:`stop` for ``create_app``.

    Kept files are resumed when their credential owner connects (``accounts.on_connected``).
    """

    def __init__(self, worker: UploadWorker) -> None:
        self.worker = worker
        self.intake = FileIntake(
            settings=worker.settings,
            jobs=worker.jobs,
            authorizations=worker.authorizations,
            notifier=worker.notifier,
            worker=worker,
        )
        worker.accounts.on_connected.append(self.intake.resume)

    async def accept(
        self, event: Event, attachment: Attachment, conn: Connection, credential_user: str
    ) -> Intake:
        return await self.intake.accept(event, attachment, conn, credential_user)

    async def status_lines(self, user_id: str) -> list[str]:
        return await self.intake.status_lines(user_id)

    async def waiting_count(self, link: str) -> int:
        return await self.intake.waiting_count(link)

    async def retry(self, user_id: str, job_id: str) -> str:
        return await self.intake.retry(user_id, job_id)

    async def cancel(self, user_id: str, job_id: str) -> str:
        return await self.intake.cancel(user_id, job_id)

    def start(self, concurrency: int) -> None:
        self.worker.start(concurrency)

    async def stop(self, timeout: float) -> None:
        await self.worker.stop(timeout)
