"""Where the bytes of a file come from: its attachment URL, or the copy kept in the store.

Both are :class:`~bot.destinations.relay.ByteSource`: ``open(offset)`` yields the file's bytes
from ``offset`` on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import aiohttp

from bot.errors import FileTooLarge, SourceError
from storage.uploads import UploadJobs

__all__ = ["HttpSource", "KeptSource", "at_most"]

#: The size of the pieces read from a download.
_PIECE: Final = 1024 * 1024


class HttpSource:
    """An attachment URL as a ``ByteSource``: a plain GET, ``Range`` to resume at an offset.

    ``total`` is the file's size once a response has said it (``Content-Length``).
    """

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
    """A file kept in the store (GridFS) as a ``ByteSource``; may raise ``StoreError``."""

    def __init__(self, jobs: UploadJobs, file_id: Any) -> None:
        self._jobs = jobs
        self._id = file_id
        self.total: int | None = None  # the store knows the size already; nothing to report

    @asynccontextmanager
    async def open(self, offset: int) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._jobs.read_kept(self._id, offset) as pieces:
            yield pieces


async def at_most(pieces: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """``pieces``, raising :class:`FileTooLarge` once they add up to more than ``limit``."""
    size = 0
    async for piece in pieces:
        size += len(piece)
        if size > limit:
            raise FileTooLarge(limit)
        yield piece
