"""The connections page's own service (CONTRACT §11): the way in, and what only the page reads.

- :meth:`PageService.link` is what the chat word ``connections`` and ``/connection page`` offer
  (``bot.context.SignIn``): a single-use sign-in link, valid for ``BOT_CONNECT_LINK_TTL``, bound to
  the chat user as the verified payload described them;
- :meth:`PageService.open` consumes it and starts a server-side session (an opaque id for the
  cookie, a CSRF token bound to it, an expiry); :meth:`PageService.session` and
  :meth:`PageService.end` are the rest of its life;
- :meth:`PageService.files` and :meth:`PageService.audit` are the page's reads that no chat reply
  needs: the user's files with their progress, the audit log newest first.

Every change the page makes goes through the same domain code as chat (``ctx.admin``,
``ctx.accounts``, ``ctx.files``), never through this service.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.cliq.events import CliqUser
from bot.config import Settings
from bot.errors import LinkGone
from storage.connections import AuditLog
from storage.records import DONE, FAILED, KEEP, QUEUED, WAITING, AuditEntry, Job
from storage.sessions import PageSession, Sessions, SignInLinks
from storage.uploads import UploadJobs

__all__ = ["FileView", "PageService"]

#: How many recently saved files the page shows (with their bar at 100%).
RECENTLY_SAVED = 5
AUDIT_ENTRIES = 50

_STATES = {
    KEEP: "Keeping",
    WAITING: "Kept",
    QUEUED: "Uploading",
    DONE: "Saved",
    FAILED: "Failed",
}


@dataclass(frozen=True)
class FileView:
    """One of the user's files as the page shows it."""

    id: str
    name: str
    state: str
    label: str
    done: int
    size: int | None
    kept_until: datetime | None = None
    error: str = ""
    path: str = ""

    @property
    def percent(self) -> int | None:
        if self.state == DONE:
            return 100
        if not self.size:
            return None
        return min(100, 100 * self.done // self.size)

    @property
    def in_flight(self) -> bool:
        return self.state in (KEEP, QUEUED, DONE)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "label": self.label,
            "done": self.done,
            "size": self.size,
            "percent": self.percent,
        }


class PageService:
    """Sign-in links, sessions, and the page's own reads (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: Settings,
        public_url: Callable[[], str],
        links: SignInLinks,
        sessions: Sessions,
        jobs: UploadJobs,
        live: Callable[[str], int | None],
        audit: AuditLog,
    ) -> None:
        self._settings = settings
        self._public_url = public_url
        self._links = links
        self._sessions = sessions
        self._jobs = jobs
        self._live = live
        self._audit = audit

    # -- the way in --

    async def link(self, user: CliqUser) -> str:
        """A single-use sign-in link for ``user``, valid for ``BOT_CONNECT_LINK_TTL``."""
        link_id = secrets.token_urlsafe(16)
        await self._links.create(link_id, user, float(self._settings.connect_link_ttl))
        return f"{self._public_url()}/signin/{link_id}"

    async def open(self, link_id: str) -> tuple[str, PageSession]:
        """Consume a sign-in link: the new session's opaque id (for the cookie) and the session.
        Raises :class:`~bot.errors.LinkGone` for a used, unknown or expired link."""
        user = await self._links.consume(link_id) if link_id else None
        if user is None:
            raise LinkGone("This sign-in link was used already, has expired, or never existed.")
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        ttl = self._settings.page_session_ttl
        await self._sessions.create(session_id, user, csrf, ttl)
        created = await self._sessions.get(session_id)
        if created is None:  # only if the TTL is shorter than the round trip
            raise LinkGone("The session ended as it started; ask the bot for a new link.")
        return session_id, created

    async def session(self, session_id: str) -> PageSession | None:
        return await self._sessions.get(session_id) if session_id else None

    @staticmethod
    def csrf_ok(session: PageSession, token: str) -> bool:
        return bool(token) and hmac.compare_digest(session.csrf.encode(), token.encode())

    async def notice(self, session_id: str, notice: str) -> None:
        """Show ``notice`` once, on the next page this session loads."""
        await self._sessions.set_flash(session_id, notice)

    async def take_notice(self, session_id: str) -> str:
        return await self._sessions.take_flash(session_id)

    async def end(self, session_id: str) -> None:
        await self._sessions.delete(session_id)

    # -- what the page reads --

    async def files(self, user_id: str) -> list[FileView]:
        """The user's files: in flight, kept, failed (oldest first), then recently saved."""
        active = await self._jobs.of_sender(user_id, (KEEP, WAITING, QUEUED, FAILED))
        saved = await self._jobs.latest_of_sender(user_id, (DONE,), RECENTLY_SAVED)
        return [self._view(job) for job in (*active, *saved)]

    def _view(self, job: Job) -> FileView:
        done = int(job.progress.get("offset", 0)) if job.progress else 0
        if job.state == QUEUED:
            done = self._live(job.id) or done
        result = job.result or {}
        path = str(result.get("path", "")) if job.state == DONE else ""
        size = job.size if job.size is not None else result.get("size")
        kept_until = None
        if job.state == WAITING:
            kept_until = job.created_at + timedelta(seconds=self._settings.kept_file_ttl)
        return FileView(
            id=job.id,
            name=job.name,
            state=job.state,
            label=f"Saved to {path}" if path else _STATES.get(job.state, job.state),
            done=int(size or 0) if job.state == DONE else done,
            size=int(size) if size is not None else None,
            kept_until=kept_until,
            error=job.error if job.state == FAILED else "",
            path=path,
        )

    async def audit(self) -> list[AuditEntry]:
        return await self._audit.newest(AUDIT_ENTRIES)
