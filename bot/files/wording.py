"""What the file flow says to people: every reply and message of intake and the worker.

``place`` is how a destination is named in them (``FileDestination.title``: "Dropbox"), and
``own`` whether the credentials are the sender's own (else the connection is shared).
"""

from __future__ import annotations

import logging

from bot.cliq.messages import MAX_KEY, Button, Message, text
from bot.errors import BotError
from storage.records import Job

__all__ = [
    "NOT_CANCELLABLE",
    "NOT_RETRYABLE",
    "RETRYING",
    "already_have",
    "cancelled",
    "connect_prompt",
    "expired",
    "failed",
    "internal_failure",
    "kept",
    "lost_own",
    "lost_shared",
    "owner_needed",
    "resuming",
    "saved",
    "source_failed",
    "upload_started",
    "uploading",
    "waiting",
    "your_files",
]

log = logging.getLogger(__name__)

RETRYING = "Trying that file again."
NOT_RETRYABLE = "That file is not waiting for a retry."
NOT_CANCELLABLE = "That file cannot be cancelled now (it is done, or uploading this moment)."


def _where(place: str, own: bool) -> str:
    return f"your {place}" if own else f"the shared {place}"


# -- replies of intake -----------------------------------------------------------------------


def already_have(name: str) -> str:
    return f"{name}: I have this file already; it is saved only once."


def upload_started(name: str, place: str, *, own: bool) -> str:
    return f"{name}: upload to {_where(place, own)} started; I will tell you when it is saved."


def kept(name: str, ttl: str) -> str:
    return f"{name}: I kept it for you (for {ttl})."


def uploading(name: str, done: str) -> str:
    """A line of ``status``: a file on its way, ``done`` saying how far ("40%")."""
    return f"- {name}: uploading, {done} done"


def waiting(name: str) -> str:
    """A line of ``status``: a kept file."""
    return f"- {name}: kept, waiting for a connection"


def your_files(lines: list[str]) -> list[str]:
    return ["Your files:", *lines] if lines else []


def cancelled(name: str) -> str:
    return f"Cancelled {name}."


# -- messages of the worker ------------------------------------------------------------------


def resuming(count: int) -> Message:
    return text(f"Uploading the {count} file(s) I kept, in the order sent.")


def saved(name: str, path: str, size: str, place: str, *, own: bool) -> Message:
    return text(f"Saved {name} to {_where(place, own)} at {path} ({size}).")


def source_failed(name: str, err: BotError) -> Message:
    return text(f"{name}: {err}. Please send it again.")


def set_aside(name: str) -> Message:
    """A job whose record could not be read back: it will not be uploaded."""
    what = name or "A file you sent"
    return text(
        f"{what}: I could not read my record of it back, so I set it aside and will not upload"
        " it. Please send it again."
    )


def expired(name: str, waited: str) -> Message:
    return text(
        f"{name} waited {waited} for a connection and was deleted. Send it again after connecting."
    )


def failed(job: Job, err: BotError) -> Message:
    return Message(text=f"{job.name}: the upload failed ({err}).", buttons=_retry_buttons(job))


def internal_failure(job: Job) -> Message:
    return Message(
        text=f"{job.name}: the upload failed on my side (internal error);"
        " send it again or press Retry.",
        buttons=_retry_buttons(job),
    )


def lost_own(name: str, place: str) -> str:
    """The start of the connect prompt for a sender whose own connection stopped working."""
    return (
        f"{name}: your {place} connection no longer works, so I kept the file."
        " Connect again and I upload it."
    )


def lost_shared(name: str, place: str) -> Message:
    return text(
        f"{name}: the shared {place} connection no longer works; I kept the file"
        " until its owner connects again."
    )


def owner_needed(connection_name: str) -> str:
    """The start of the connect prompt for the owner of a shared connection."""
    return f"*{connection_name}* needs you to connect again: files are waiting."


def connect_prompt(intro: str, connection_name: str, url: str, ttl: str) -> Message:
    """``intro`` with an ``open.url`` connect link (CONTRACT §4)."""
    return Message(
        text=f"{intro}\nThe link works once and for {ttl}.",
        card_title=f"Connect {connection_name}",
        buttons=(Button.open_url("Connect", url),),
    )


def _retry_buttons(job: Job) -> tuple[Button, ...]:
    """Retry and Cancel for a failed job; none if its id makes too long a key."""
    if len(f"cancel:{job.id}") > MAX_KEY:
        log.warning("job %s: its id is too long for Retry / Cancel buttons", job.id)
        return ()
    return (
        Button.invoke("Retry", f"retry:{job.id}"),
        Button.invoke("Cancel", f"cancel:{job.id}", type="-"),
    )
