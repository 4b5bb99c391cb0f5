"""What a place files can land must offer, and the registry of those places by service kind.

:class:`FileDestination` is the one seam between the file flow and a storage service (rclone's
``fs.Fs``): the relay (:mod:`bot.destinations.relay`) writes through it and the upload worker
(:mod:`bot.files.worker`) picks one from :class:`Destinations` by the connection's service kind.
Nothing above this seam knows which service it is.

Adding a destination (Google Drive, say) is its module beside :mod:`bot.destinations.dropbox`
implementing :class:`FileDestination` (plus :class:`~bot.providers.oauth2.OAuthHooks` in
:mod:`bot.providers.kinds` if its OAuth is not plain RFC 6749/7009), its stand-in under
``bot/sandbox/``, its entry in the service catalogue, and its entry in the registry that
``create_app`` builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.errors import ApiError, BotError

if TYPE_CHECKING:  # the Protocol only names it: importing this module loads no HTTP client
    from bot.providers.oauth2 import Account

__all__ = [
    "BatchEntry",
    "BatchResult",
    "ContentHasher",
    "Destinations",
    "FileDestination",
    "FileMetadata",
]


@dataclass(frozen=True)
class FileMetadata:
    """A file as the destination stored it."""

    name: str
    path_display: str
    id: str
    size: int
    #: The destination's hash of the whole file (what the relay checks against its own).
    content_hash: str
    rev: str


@dataclass(frozen=True)
class BatchEntry:
    """One file of a batch commit: its closed upload session, holding ``size`` bytes."""

    session_id: str
    size: int
    path: str


#: What a batch commit answers for one entry: the file's metadata, or the error that entry met
#: (what the same failure of a single commit would raise: ``RateLimited``, ``IncorrectOffset``,
#: ``ContentHashMismatch``, ``ApiError`` ...).
BatchResult = FileMetadata | BotError


class ContentHasher(Protocol):
    """A destination's content hash, fed in pieces; resumable at its block boundaries.

    The hash covers fixed-size blocks (``FileDestination.block_size``): its state at a block
    boundary is :meth:`block_digests`, from which ``FileDestination.hasher`` rebuilds it, so a
    restarted upload goes on hashing where the saved progress stands.
    """

    @property
    def size(self) -> int:
        """Bytes hashed so far."""
        ...

    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def copy(self) -> ContentHasher:
        """An independent hasher in the same state (to try bytes that may be rolled back)."""
        ...

    def block_digests(self) -> list[str]:
        """Hex digests of the completed blocks so far."""
        ...

    def hexdigest(self) -> str: ...


class FileDestination(Protocol):
    """A service files land in, called with the access token of one authorization.

    Each method is one request: no retries, no refreshes (the relay decides those). Errors are
    :mod:`bot.errors`: ``TokenExpired`` (refresh once and repeat), ``InvalidToken``,
    ``RateLimited`` (``retry_after``), ``ServerError`` (5xx, lost connection, timeout: back off),
    ``IncorrectOffset`` (the session holds ``correct_offset`` bytes), ``ContentHashMismatch``
    and ``ApiError`` for the rest.

    Small files go up in one :meth:`upload`. Larger ones go through an upload session:
    :meth:`start` carries the first chunk, :meth:`append` the next ones in order, :meth:`finish`
    the last (possibly empty) and commits the file. Every chunk but the last is a multiple of
    :attr:`block_size`. ``content_hash`` is always the hash of the bytes of that call; the
    whole file's comes back in the :class:`FileMetadata`, for the caller to check. New files
    never replace others: a taken name gets another one (Dropbox's ``autorename``).

    Many files for one account (Dropbox's advice): each file's bytes go through its own session,
    closed on its last call (``close=True`` on :meth:`start` or :meth:`append`), sessions of
    several files in parallel; then :meth:`finish_batch` commits up to :attr:`max_batch` of them
    in one call. Commits (``upload``, ``finish``, ``finish_batch``) of one account go one at a
    time; the content calls need not.
    """

    @property
    def title(self) -> str:
        """How messages name the service: "Saved a.pdf to your {title} at ..."."""
        ...

    @property
    def block_size(self) -> int:
        """Every chunk but the last of a session is a multiple of this; hashing resumes here."""
        ...

    @property
    def max_batch(self) -> int:
        """The most entries one :meth:`finish_batch` call takes."""
        ...

    def hasher(self, block_digests: Sequence[str] = ()) -> ContentHasher:
        """A new content hasher, or one resumed after ``block_digests`` complete blocks."""
        ...

    async def account(self, access_token: str) -> Account:
        """The account the token belongs to."""
        ...

    async def upload(
        self, access_token: str, path: str, data: bytes, *, content_hash: str
    ) -> FileMetadata:
        """The whole file in one request, to ``path`` (or a free name beside it)."""
        ...

    async def start(
        self,
        access_token: str,
        data: bytes,
        *,
        content_hash: str | None = None,
        close: bool = False,
    ) -> str:
        """Start an upload session with its first chunk; the session's id. ``close``: that
        chunk is the whole file (for :meth:`finish_batch`)."""
        ...

    async def append(
        self,
        access_token: str,
        session_id: str,
        offset: int,
        data: bytes,
        *,
        content_hash: str | None = None,
        close: bool = False,
    ) -> None:
        """Add ``data`` to the session at ``offset`` (the bytes it holds so far); ``close``:
        the last bytes of the file (for :meth:`finish_batch`)."""
        ...

    async def finish(
        self,
        access_token: str,
        session_id: str,
        offset: int,
        data: bytes,
        *,
        path: str,
        content_hash: str,
    ) -> FileMetadata:
        """Add the last bytes at ``offset`` and commit the session's file to ``path``."""
        ...

    async def finish_batch(
        self, access_token: str, entries: Sequence[BatchEntry]
    ) -> list[BatchResult]:
        """Commit closed sessions, in order: one result per entry. An error of the whole call
        (``TokenExpired``, ``RateLimited``, ``ServerError`` ...) is raised instead."""
        ...

    def session_gone(self, error: ApiError) -> bool:
        """Whether ``error`` says the session is no more (expired, closed): start a new one."""
        ...


class Destinations:
    """The file destinations by service kind, as ``create_app`` builds them."""

    def __init__(self, by_kind: Mapping[str, FileDestination]) -> None:
        self._by_kind = dict(by_kind)

    @property
    def kinds(self) -> frozenset[str]:
        """The service kinds that can receive files (CONTRACT §5 ``publish``)."""
        return frozenset(self._by_kind)

    def get(self, kind: str) -> FileDestination | None:
        """The destination of service kind ``kind``; ``None`` if files cannot land there."""
        return self._by_kind.get(kind)
