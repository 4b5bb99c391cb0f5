"""Dropbox wire-format helpers shared by the destination and the local stand-in.

* :class:`ContentHasher` / :func:`content_hash` compute Dropbox's ``content_hash``: SHA-256 of
  the concatenated SHA-256 digests of every 4 MiB block.
* :func:`encode_api_arg` renders the JSON carried by the ``Dropbox-API-Arg`` header (pure ASCII,
  0x7F escaped too).
* :func:`session_gone` tells an upload session Dropbox no longer knows (expired, closed).
* :func:`error_from_response` maps a Dropbox error response onto :mod:`bot.errors` (a 429's wait
  through :func:`bot.retry.retry_after`: the header, else the body's ``retry_after``);
  :func:`entry_error` maps the ``failure`` of one ``upload_session/finish_batch`` entry the same
  way, as if that file had been committed alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.errors import (
    ApiError,
    BotError,
    ContentHashMismatch,
    IncorrectOffset,
    InvalidToken,
    RateLimited,
    ServerError,
    TokenExpired,
)
from bot.retry import retry_after

__all__ = [
    "BLOCK_SIZE",
    "ContentHasher",
    "content_hash",
    "encode_api_arg",
    "entry_error",
    "error_from_response",
    "session_gone",
]

BLOCK_SIZE = 4 * 1024 * 1024
#: How long a batch entry refused with ``too_many_write_operations`` waits: Dropbox names no
#: time there (the account's other writes hold its lock), so a short one, then the next commit.
ENTRY_RETRY_AFTER = 1.0


class ContentHasher:
    """Incremental Dropbox ``content_hash``.

    Feed bytes with :meth:`update` in pieces of any size. :meth:`block_digests` returns the hex
    digests of the blocks completed so far; :meth:`from_block_digests` rebuilds a hasher from
    them, so hashing can resume at a 4 MiB boundary after a restart.
    """

    __slots__ = ("_block", "_block_len", "_digests")

    def __init__(self) -> None:
        self._digests: list[bytes] = []
        self._block = hashlib.sha256()
        self._block_len = 0

    @classmethod
    def from_block_digests(cls, digests: Sequence[str]) -> ContentHasher:
        hasher = cls()
        for digest in digests:
            raw = bytes.fromhex(digest)
            if len(raw) != hashlib.sha256().digest_size:
                raise ValueError("a block digest must be 32 bytes of hex")
            hasher._digests.append(raw)
        return hasher

    @property
    def size(self) -> int:
        """Bytes hashed so far (including the blocks this hasher was resumed from)."""
        return len(self._digests) * BLOCK_SIZE + self._block_len

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            take = min(BLOCK_SIZE - self._block_len, len(view))
            self._block.update(view[:take])
            self._block_len += take
            view = view[take:]
            if self._block_len == BLOCK_SIZE:
                self._digests.append(self._block.digest())
                self._block = hashlib.sha256()
                self._block_len = 0

    def copy(self) -> ContentHasher:
        """An independent hasher in the same state (to try bytes that may be rolled back)."""
        twin = ContentHasher()
        twin._digests = list(self._digests)
        twin._block = self._block.copy()
        twin._block_len = self._block_len
        return twin

    def block_digests(self) -> list[str]:
        """Hex digests of the completed 4 MiB blocks so far."""
        return [digest.hex() for digest in self._digests]

    def hexdigest(self) -> str:
        overall = hashlib.sha256()
        for digest in self._digests:
            overall.update(digest)
        if self._block_len:
            overall.update(self._block.digest())
        return overall.hexdigest()


def content_hash(data: bytes) -> str:
    hasher = ContentHasher()
    hasher.update(data)
    return hasher.hexdigest()


def encode_api_arg(arg: object) -> str:
    """JSON for the ``Dropbox-API-Arg`` header: compact, ASCII only, 0x7F escaped."""
    text = json.dumps(arg, ensure_ascii=True, separators=(",", ":"))
    # ensure_ascii already escaped everything above 0x7F; only DEL can remain raw.
    return text.replace("\x7f", "\\u007f")


def _parse_body(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _tag(value: object) -> str:
    if isinstance(value, dict):
        tag = value.get(".tag")
        return tag if isinstance(tag, str) else ""
    return ""


def _body_retry_after(parsed: dict[str, Any] | None) -> object:
    """``error.retry_after`` of a 429 body (``too_many_write_operations``), if there is one."""
    error = parsed.get("error") if parsed is not None else None
    return error.get("retry_after") if isinstance(error, dict) else None


def _summary_matches(summary: str, prefix: str) -> bool:
    return summary == prefix or summary.startswith(prefix + "/")


def _correct_offset(error: object) -> int | None:
    """``correct_offset`` of an append or finish ``incorrect_offset`` error, if that is it."""
    if not isinstance(error, dict):
        return None
    candidate: object = None
    if _tag(error) == "incorrect_offset":
        candidate = error
    elif _tag(error) == "lookup_failed" and _tag(error.get("lookup_failed")) == "incorrect_offset":
        candidate = error["lookup_failed"]
    if isinstance(candidate, dict):
        offset = candidate.get("correct_offset")
        if isinstance(offset, int) and not isinstance(offset, bool):
            return offset
    return None


def _short_text(body: bytes, limit: int = 300) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> BotError:
    """Translate a non-2xx Dropbox response into the matching :mod:`bot.errors` error."""
    parsed = _parse_body(body)
    summary = ""
    error: object = None
    if parsed is not None:
        raw_summary = parsed.get("error_summary")
        summary = raw_summary if isinstance(raw_summary, str) else ""
        error = parsed.get("error")
        if not summary and isinstance(error, str):
            summary = error  # OAuth-style {"error": "...", "error_description": "..."}

    if status == 401:
        if _summary_matches(summary, "expired_access_token") or _tag(error) == (
            "expired_access_token"
        ):
            return TokenExpired("the access token has expired")
        return InvalidToken(f"Dropbox rejected the access token ({summary or 'unauthorized'})")
    if status == 429:
        wait = retry_after(headers, body_seconds=_body_retry_after(parsed))
        return RateLimited(wait, message=summary or "too_many_requests")
    if status >= 500:
        return ServerError(f"Dropbox server error {status}", status=status)
    if status == 409:
        offset = _correct_offset(error)
        if offset is not None and (
            _summary_matches(summary, "incorrect_offset")
            or _summary_matches(summary, "lookup_failed/incorrect_offset")
            or not summary
        ):
            return IncorrectOffset(offset)
    if "content_hash_mismatch" in summary or _tag(error) == "content_hash_mismatch":
        return ContentHashMismatch("Dropbox computed a different content_hash")
    if summary:
        message = f"Dropbox API error {status}: {summary}"
    else:
        text = _short_text(body)
        message = f"Dropbox API error {status}" + (f": {text}" if text else "")
    return ApiError(message, status=status, summary=summary)


def _tag_chain(error: object) -> list[str]:
    """The tags of a nested Dropbox union: ``lookup_failed`` → ``incorrect_offset`` ..."""
    tags: list[str] = []
    while isinstance(error, dict) and (tag := _tag(error)) and len(tags) < 8:
        tags.append(tag)
        error = error.get(tag)
    return tags


def entry_error(failure: object) -> BotError:
    """The error of one ``finish_batch`` entry (an ``UploadSessionFinishError``), as the same
    failure of a single ``upload_session/finish`` would be: ``too_many_write_operations`` →
    :class:`~bot.errors.RateLimited`, ``lookup_failed/incorrect_offset`` →
    :class:`~bot.errors.IncorrectOffset`, ``content_hash_mismatch``, else
    :class:`~bot.errors.ApiError` with the summary the tags make (``lookup_failed/not_found/``:
    the session is gone)."""
    tags = _tag_chain(failure)
    if tags[:1] == ["too_many_write_operations"]:
        return RateLimited(ENTRY_RETRY_AFTER, message="too_many_write_operations")
    summary = "/".join(tags) + "/" if tags else "other/"
    body = json.dumps({"error_summary": summary, "error": failure}).encode()
    return error_from_response(409, {}, body)


def session_gone(error: ApiError) -> bool:
    """A 409 ``not_found`` (the session expired after 7 days) or ``closed``: start a new one."""
    parts = error.summary.split("/")
    return error.status == 409 and bool(
        {"not_found", "closed"} & {part.strip(".") for part in parts[:2]}
    )
