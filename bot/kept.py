"""Kept and resumed actions (CONTRACT §10): a handler that needed a connection runs again later.

When a handler lets :class:`~bot.errors.NotAuthorized` for a connection propagate,
:func:`bot.router.dispatch` calls :meth:`KeptEvents.not_authorized` (``ctx.on_not_authorized``):
the event is kept in the store (:mod:`storage.kept_actions`: deduplicated by its identity,
surviving restarts) and the reply is a connect prompt for that connection. With the switch off
the owner must connect: the sender is told so, and the owner gets the prompt.

Once the credential user connects (``AccountService.on_connected``), every event kept for them
on that connection is claimed (one process wins each), dispatched again through the same router
with the same event, and the handler's reply is posted to the sender (:class:`~bot.context.
Notifier`): once. That runs in a background task, so the OAuth callback page does not wait on a
plugin's API calls. Kept events expire after ``BOT_KEPT_FILE_TTL``, like kept files, and the
sender is told; so is the sender of one whose run was cut short by a process dying.
:meth:`KeptEvents.start` and :meth:`KeptEvents.stop` own that housekeeping and the tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import asdict, fields
from types import MappingProxyType
from typing import Any, Final

from bot.accounts import AccountService
from bot.cliq.events import Attachment, ButtonClick, Chat, CliqUser, Event
from bot.cliq.messages import Message, text
from bot.config import Settings
from bot.context import Context, Notifier
from bot.durations import words
from bot.errors import NotAuthorized, StoreError
from bot.files.wording import connect_prompt
from bot.router import Router, dispatch
from storage.kept_actions import KeptAction, KeptActions
from storage.records import Connection

__all__ = ["KeptEvents", "decode_event", "encode_event"]

log = logging.getLogger(__name__)

#: How long a claimed action may run before it counts as interrupted (its process died).
RUN_LEASE: Final = 600.0
_SUMMARY_CHARS: Final = 60


class KeptEvents:
    """Keeps events for a connection, runs them again once it is connected, expires them."""

    def __init__(
        self,
        *,
        records: KeptActions,
        settings: Settings,
        notifier: Notifier,
        housekeeping_seconds: float = 10.0,
    ) -> None:
        self.records = records
        self.settings = settings
        self.notifier = notifier
        self.housekeeping_seconds = housekeeping_seconds
        self._holder = f"kept-{uuid.uuid4().hex[:12]}"
        self._router: Router | None = None
        self._context: Context | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    def serve(self, router: Router, context: Context, accounts: AccountService) -> None:
        """Resume kept events when ``accounts`` connects someone, dispatching them through
        ``router`` with ``context``."""
        self._router, self._context = router, context
        accounts.on_connected.append(self.resume)

    # -- keeping (the dispatch hook) --

    async def not_authorized(self, event: Event, ctx: Context, err: NotAuthorized) -> Message:
        """Keep ``event`` until ``err.link`` is connected; the connect prompt as the reply."""
        conn = await ctx.connections.get(err.link)
        if conn is None:
            return text(f"This needs the connection `{err.link}`, which does not exist.")
        credential = err.user_id or ctx.credential_user(conn, event.user.id)
        await self.records.keep(
            event.identity,
            body=encode_event(event),
            summary=summary(event),
            user_id=event.user.id,
            link=conn.link,
            credential_user=credential,
            ttl=self.settings.kept_file_ttl,
        )
        kept_for = words(self.settings.kept_file_ttl)
        log.info("kept event %s until %s connects %s", event.identity[:12], credential, conn.link)
        if credential == event.user.id:
            intro = (
                f"This needs your account on *{conn.name}*. Connect it, and I run your request"
                f" then (I keep it for {kept_for})."
            )
            return await self._prompt(ctx, conn, event.user, intro)
        owner = CliqUser(id=conn.owner_id, email=conn.owner_email)
        intro = (
            f"A request of {event.user.display_name} needs *{conn.name}*, which runs on your"
            " account: connect it, and I run the request then."
        )
        await self.notifier.notify([owner.id], await self._prompt(ctx, conn, owner, intro))
        return text(
            f"This needs *{conn.name}*, and its owner has to connect it first. I kept your"
            f" request and run it once they have (for up to {kept_for})."
        )

    async def _prompt(self, ctx: Context, conn: Connection, user: CliqUser, intro: str) -> Message:
        url = await ctx.accounts.connect_url(conn, user)
        return connect_prompt(intro, conn.name, url, words(self.settings.connect_link_ttl))

    # -- resuming (the on_connected hook) --

    async def resume(self, link: str, user_id: str) -> None:
        """``user_id`` connected ``link``: run what waited for it, in the background."""
        self._spawn(self._run_waiting(link, user_id), f"resume-{link}")

    async def _run_waiting(self, link: str, user_id: str) -> None:
        for action in await self.records.waiting_for(link, user_id):
            await self._run(action)

    async def _run(self, action: KeptAction) -> None:
        router, context, notifier = self._router, self._context, self.notifier
        if router is None or context is None:
            raise RuntimeError("KeptEvents.serve() was not called")
        claimed = await self.records.claim(action.id, self._holder, RUN_LEASE)
        if claimed is None:
            return  # another process (or an earlier hook) runs it
        try:
            event = decode_event(claimed.body)
        except (KeyError, TypeError, ValueError):
            log.exception("kept event %s cannot be read; dropped", claimed.id[:12])
            await self.records.finish(claimed.id, self._holder)
            await notifier.notify(
                [claimed.user_id], text(f"I could not run your request {claimed.summary} again.")
            )
            return
        log.info("running kept event %s for %s", claimed.id[:12], claimed.user_id)
        message, outcome = await dispatch(router, event, context)
        if not await self.records.finish(claimed.id, self._holder):
            log.info("kept event %s was kept again (%s)", claimed.id[:12], outcome)
        await notifier.notify([claimed.user_id], message)

    # -- the task --

    def start(self) -> None:
        """Start the housekeeping (expiry) loop, until :meth:`stop`."""
        self._stop = asyncio.Event()
        self._spawn(self._housekeeping(), "kept-housekeeping")

    async def stop(self, timeout: float) -> None:
        """Stop the housekeeping; let resumed handlers finish (up to ``timeout`` s), then cancel
        them (their actions count as interrupted once the lease lapses)."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def _housekeeping(self) -> None:
        while not self._stop.is_set():
            try:
                await self.expire()
            except StoreError as err:
                log.warning("kept events housekeeping skipped: %s", err)
            except Exception:
                log.exception("kept events housekeeping failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.housekeeping_seconds)

    async def expire(self) -> int:
        """End kept events past ``BOT_KEPT_FILE_TTL`` and runs cut short; tell their senders."""
        ended = 0
        for action in await self.records.end_expired():
            ended += 1
            waited = words((action.expires_at - action.created_at).total_seconds())
            await self._tell(
                action,
                f"Your request {action.summary} waited {waited} for `{action.link}` to be"
                " connected and was dropped. Send it again after connecting.",
            )
        for action in await self.records.end_interrupted():
            ended += 1
            await self._tell(
                action,
                f"I was interrupted while running your request {action.summary}."
                " Please send it again.",
            )
        return ended

    async def _tell(self, action: KeptAction, line: str) -> None:
        await self.notifier.notify([action.user_id], text(line))


def summary(event: Event) -> str:
    """What the user asked for, in a few words: ```files```, ```/connection sample x```."""
    if event.button is not None:
        what = f"the {event.button.target or 'button'} click"
    elif event.type == "command":
        what = f"/{event.name} {event.arguments}".strip()
    else:
        what = event.text.strip() or event.handler
    what = " ".join(what.replace("`", "'").split())
    if len(what) > _SUMMARY_CHARS:
        what = what[: _SUMMARY_CHARS - 1] + "…"
    return f"`{what}`"


def encode_event(event: Event) -> str:
    """``event`` as JSON, for the store; :func:`decode_event` gives it back."""
    plain: dict[str, Any] = {f.name: getattr(event, f.name) for f in fields(event)}
    button = event.button
    plain.update(
        user=asdict(event.user),
        chat=asdict(event.chat) if event.chat is not None else None,
        options=dict(event.options),
        attachments=[asdict(a) for a in event.attachments],
        button=None
        if button is None
        else {"key": button.key, "target": button.target, "arguments": dict(button.arguments)},
    )
    return json.dumps(plain, separators=(",", ":"))


def decode_event(body: str) -> Event:
    raw: dict[str, Any] = json.loads(body)
    chat, button = raw.pop("chat"), raw.pop("button")
    return Event(
        **{
            **raw,
            "user": CliqUser(**raw["user"]),
            "chat": Chat(**chat) if chat is not None else None,
            "options": _frozen(raw["options"]),
            "attachments": tuple(Attachment(**a) for a in raw["attachments"]),
            "button": None
            if button is None
            else ButtonClick(button["key"], button["target"], _frozen(button["arguments"])),
        }
    )


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))
