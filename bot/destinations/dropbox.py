"""Dropbox as a file destination, and Dropbox's own ways in OAuth (HTTP API v2).

:class:`DropboxDestination` implements :class:`~bot.destinations.base.FileDestination`: each
method is one HTTP request and nothing more (no retries, no refreshes: those belong to
:mod:`bot.destinations.relay`, which knows what is safe to repeat). :class:`DropboxHooks` are
the :class:`~bot.providers.oauth2.OAuthHooks` of service kind ``dropbox``: revocation through
``/2/auth/token/revoke`` and the account from ``/2/users/get_current_account``, both through a
:class:`DropboxDestination`, so each call is written once.

Errors are translated at this boundary:

* every non-2xx response goes through
  :func:`~bot.destinations.dropbox_wire.error_from_response` (``TokenExpired``,
  ``InvalidToken``, ``RateLimited``, ``ServerError``, ``IncorrectOffset``,
  ``ContentHashMismatch``, ``ApiError``);
* a lost connection, a timeout or an unreadable 2xx body becomes :class:`~bot.errors.ServerError`.

The access token is passed per call and only ever travels in the ``Authorization`` header: it is
never stored on the client, logged, or put into an exception message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp.abc import AbstractStreamWriter

from bot.destinations.base import BatchEntry, BatchResult, FileMetadata
from bot.destinations.dropbox_wire import (
    BLOCK_SIZE,
    ContentHasher,
    encode_api_arg,
    entry_error,
    error_from_response,
    session_gone,
)
from bot.errors import (
    ApiError,
    InvalidGrant,
    InvalidToken,
    RateLimited,
    ServerError,
    TokenExpired,
)
from bot.providers.oauth2 import Account

if TYPE_CHECKING:
    from bot.providers.oauth2 import OAuth2Client, OAuth2Service

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_CONTENT_URL",
    "DEFAULT_TIMEOUT",
    "DropboxDestination",
    "DropboxHooks",
]

logger = logging.getLogger(__name__)

DEFAULT_API_URL: Final = "https://api.dropboxapi.com"
DEFAULT_CONTENT_URL: Final = "https://content.dropboxapi.com"
#: Uploads: no overall deadline (a large chunk on a slow link may take a while), but a stalled
#: connection or a silent server is given up on.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
#: Calls on the RPC host (the account, revoking) are small: 30 s in all, as for the OAuth calls.
RPC_TIMEOUT: Final = aiohttp.ClientTimeout(total=30)

_UPLOAD_MODE: Final[dict[str, Any]] = {
    "mode": "add",
    "autorename": True,
    "mute": False,
    "strict_conflict": False,
}
#: Upload bodies go to the connection in pieces of this size.
_BODY_PIECE: Final = 1024 * 1024
#: ``upload_session/finish_batch_v2`` takes at most this many entries per call.
MAX_BATCH: Final = 1000
_FINISH_BATCH: Final = "/2/files/upload_session/finish_batch_v2"
_BATCH_CHECK: Final = "/2/files/upload_session/finish_batch/check"
#: Polling an asynchronous batch job: the first pause, the longest, and how long in all.
_POLL_FIRST: Final = 0.05
_POLL_MAX: Final = 1.0
_POLL_LIMIT: Final = 600.0
#: Failed checks of a batch job (5xx, 429) tried again before giving up (a check is a read).
_POLL_RETRIES: Final = 5
#: FileMetadata's fields in order, with the JSON type each must have.
_METADATA_FIELDS: Final = (
    ("name", str),
    ("path_display", str),
    ("id", str),
    ("size", int),
    ("content_hash", str),
    ("rev", str),
)


class _Body(aiohttp.payload.Payload):
    """The bytes of one content call, written in views of ``_BODY_PIECE`` bytes: nothing is
    copied (aiohttp's ``BytesIOPayload`` copies the whole buffer, then again in 64 KiB reads),
    and the connection drains between pieces, so the loop is never held for long."""

    _value: bytes
    _autoclose = True

    def __init__(self, data: bytes) -> None:
        super().__init__(data, content_type="application/octet-stream")

    @property
    def size(self) -> int:
        return len(self._value)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._value.decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self._value

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = memoryview(self._value)
        if content_length is not None:
            view = view[:content_length]
        for start in range(0, len(view), _BODY_PIECE):
            await writer.write(view[start : start + _BODY_PIECE])


class DropboxDestination:
    """Calls the RPC host (``api_url``) and the content host (``content_url``).

    ``session`` is the application's one shared :class:`aiohttp.ClientSession`; the destination
    never closes it. ``timeout``, when given, is used for every call; by default uploads get
    :data:`DEFAULT_TIMEOUT` and RPC calls :data:`RPC_TIMEOUT`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str = DEFAULT_API_URL,
        content_url: str = DEFAULT_CONTENT_URL,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self._session = session
        self._api_url = api_url.rstrip("/")
        self._content_url = content_url.rstrip("/")
        self._rpc_timeout = timeout if timeout is not None else RPC_TIMEOUT
        self._content_timeout = timeout if timeout is not None else DEFAULT_TIMEOUT

    @property
    def title(self) -> str:
        return "Dropbox"

    @property
    def block_size(self) -> int:
        return BLOCK_SIZE

    @property
    def max_batch(self) -> int:
        return MAX_BATCH

    def hasher(self, block_digests: Sequence[str] = ()) -> ContentHasher:
        """Dropbox's ``content_hash``, resumed after ``block_digests`` 4 MiB blocks."""
        return ContentHasher.from_block_digests(block_digests)

    def session_gone(self, error: ApiError) -> bool:
        return session_gone(error)

    # -- RPC host ---------------------------------------------------------------------------

    async def account(self, access_token: str) -> Account:
        """``/2/users/get_current_account`` (scope ``account_info.read``); "" where it is silent."""
        endpoint = "/2/users/get_current_account"
        result = await self._request(
            self._api_url,
            endpoint,
            access_token,
            self._rpc_timeout,
            data=b"null",
            content_type="application/json",
        )
        body = _as_dict(result, endpoint)
        name = body.get("name")
        display_name = name.get("display_name") if isinstance(name, dict) else None
        return Account(
            id=_text(body.get("account_id")),
            email=_text(body.get("email")),
            name=_text(display_name),
        )

    async def revoke(self, access_token: str) -> None:
        """``/2/auth/token/revoke``: the access token and its refresh token die."""
        await self._request(self._api_url, "/2/auth/token/revoke", access_token, self._rpc_timeout)

    # -- content host -------------------------------------------------------------------------

    async def upload(
        self, access_token: str, path: str, data: bytes, *, content_hash: str
    ) -> FileMetadata:
        """``/2/files/upload`` (at most 150 MiB): ``mode=add``, ``autorename=true``."""
        arg = {"path": path, **_UPLOAD_MODE, "content_hash": content_hash}
        result = await self._content("/2/files/upload", access_token, arg, data)
        return _file_metadata(result, "/2/files/upload")

    async def start(
        self,
        access_token: str,
        data: bytes,
        *,
        content_hash: str | None = None,
        close: bool = False,
    ) -> str:
        """Start a *sequential* upload session carrying the first chunk; returns its id.

        ``content_hash``, when given, is that of ``data`` (the bytes of this call); Dropbox
        refuses the call with ``content_hash_mismatch`` if what arrived differs. ``close``:
        ``data`` is the whole file, to be committed by :meth:`finish_batch`.

        Sequential, not concurrent: the relay sends chunks one after another anyway (one write
        at a time per account, as Dropbox asks), a sequential session lets the finish call carry
        the last chunk, and its offsets are checked strictly, so ``incorrect_offset`` tells
        exactly how much Dropbox holds and an interrupted upload can resume from there.
        """
        arg: dict[str, Any] = {"close": close, "session_type": "sequential"}
        if content_hash is not None:
            arg["content_hash"] = content_hash
        result = await self._content("/2/files/upload_session/start", access_token, arg, data)
        body = _as_dict(result, "/2/files/upload_session/start")
        session_id = body.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise ApiError("Dropbox started an upload session without an id", status=200)
        return session_id

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
        """Append ``data`` at ``offset``; ``content_hash``, when given, is that of ``data``.
        ``close``: the last bytes of the file, to be committed by :meth:`finish_batch`."""
        arg: dict[str, Any] = {
            "cursor": {"session_id": session_id, "offset": offset},
            "close": close,
        }
        if content_hash is not None:
            arg["content_hash"] = content_hash
        await self._content("/2/files/upload_session/append_v2", access_token, arg, data)

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
        """Commit the session to ``path`` with ``data`` as its last bytes.

        ``content_hash`` is that of ``data``, the bytes of *this call* (as for every upload
        call; Dropbox's ``UploadSessionFinishArg.content_hash``), not of the whole file: the
        whole file's hash comes back in the :class:`FileMetadata`, for the caller to check.
        """
        arg = {
            "cursor": {"session_id": session_id, "offset": offset},
            "commit": {"path": path, **_UPLOAD_MODE},
            "content_hash": content_hash,
        }
        result = await self._content("/2/files/upload_session/finish", access_token, arg, data)
        return _file_metadata(result, "/2/files/upload_session/finish")

    async def finish_batch(
        self, access_token: str, entries: Sequence[BatchEntry]
    ) -> list[BatchResult]:
        """``upload_session/finish_batch_v2``: commit closed sessions, one result per entry.

        An RPC call on the API host. Dropbox answers the entries' results in order (SDK 12:
        ``UploadSessionFinishBatchResult``); an answer naming an ``async_job_id`` instead (the
        shape of the older ``finish_batch``: ``UploadSessionFinishBatchLaunch``) is polled at
        ``upload_session/finish_batch/check`` until complete. Each ``failure`` is mapped as
        the same failure of a single finish would be (:func:`~bot.destinations.dropbox_wire.
        entry_error`). The call itself is not repeated here: its errors are raised.
        """
        if not entries or len(entries) > MAX_BATCH:
            raise ValueError(f"a batch commit takes 1 to {MAX_BATCH} entries")
        arg = {
            "entries": [
                {
                    "cursor": {"session_id": entry.session_id, "offset": entry.size},
                    "commit": {"path": entry.path, **_UPLOAD_MODE},
                }
                for entry in entries
            ]
        }
        result = await self._rpc_json(_FINISH_BATCH, access_token, arg, self._content_timeout)
        body = _as_dict(result, _FINISH_BATCH)
        if body.get(".tag") == "async_job_id":
            body = await self._await_batch(access_token, body.get("async_job_id"))
        return _batch_results(body, len(entries))

    async def _await_batch(self, access_token: str, job_id: object) -> dict[str, Any]:
        """Poll an asynchronous batch commit until it is complete: its result body."""
        if not isinstance(job_id, str) or not job_id:
            raise ApiError(f"{_FINISH_BATCH}: an async job without an id", status=200)
        pause, failures = _POLL_FIRST, 0
        deadline = time.monotonic() + _POLL_LIMIT
        while True:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX)
            try:
                result = await self._rpc_json(
                    _BATCH_CHECK, access_token, {"async_job_id": job_id}, self._rpc_timeout
                )
            except (ServerError, RateLimited):
                failures += 1
                if failures > _POLL_RETRIES:
                    raise
                continue
            body = _as_dict(result, _BATCH_CHECK)
            if body.get(".tag") != "in_progress":
                return body
            if time.monotonic() > deadline:
                raise ServerError(f"{_BATCH_CHECK}: still in progress after {_POLL_LIMIT:g} s")

    # -- plumbing -------------------------------------------------------------------------------

    async def _rpc_json(
        self, endpoint: str, access_token: str, arg: object, timeout: aiohttp.ClientTimeout
    ) -> object:
        return await self._request(
            self._api_url,
            endpoint,
            access_token,
            timeout,
            data=json.dumps(arg).encode(),
            content_type="application/json",
        )

    async def _content(
        self, endpoint: str, access_token: str, arg: dict[str, Any], data: bytes
    ) -> object:
        return await self._request(
            self._content_url,
            endpoint,
            access_token,
            self._content_timeout,
            data=_Body(data),
            content_type="application/octet-stream",
            api_arg=encode_api_arg(arg),
        )

    async def _request(
        self,
        base_url: str,
        endpoint: str,
        access_token: str,
        timeout: aiohttp.ClientTimeout,
        *,
        data: bytes | _Body | None = None,
        content_type: str | None = None,
        api_arg: str | None = None,
    ) -> object:
        headers = {"Authorization": f"Bearer {access_token}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if api_arg is not None:
            headers["Dropbox-API-Arg"] = api_arg
        try:
            async with self._session.post(
                base_url + endpoint, data=data, headers=headers, timeout=timeout
            ) as resp:
                body = await resp.read()
                status = resp.status
                response_headers = resp.headers
        except (TimeoutError, aiohttp.ClientError) as exc:
            # aiohttp's messages name the host at most, never the request headers.
            logger.debug("dropbox %s: request failed: %s", endpoint, type(exc).__name__)
            raise ServerError(f"{endpoint}: request failed ({type(exc).__name__})") from exc
        if not 200 <= status < 300:
            error = error_from_response(status, response_headers, body)
            logger.debug("dropbox %s: HTTP %s (%s)", endpoint, status, type(error).__name__)
            raise error
        try:
            return json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServerError(f"{endpoint}: unreadable response body", status=status) from exc


class DropboxHooks:
    """The OAuth hooks of service kind ``dropbox`` (CONTRACT §8).

    The service's ``api_url`` names the RPC host (the catalogue sets it from
    ``DROPBOX_API_URL``); the calls go through a :class:`DropboxDestination` on the OAuth
    client's session, with its timeout.
    """

    @property
    def required_scopes(self) -> tuple[str, ...]:
        """The account lookup behind "Connected as ..." and the uploads need these."""
        return ("account_info.read", "files.content.write")

    async def fetch_account(
        self, oauth: OAuth2Client, service: OAuth2Service, access_token: str
    ) -> Account:
        return await _rpc(oauth, service).account(access_token)

    async def revoke(
        self,
        oauth: OAuth2Client,
        service: OAuth2Service,
        *,
        access_token: str | None,
        refresh_token: str | None,
    ) -> None:
        """Revoke with the access token as Bearer, which also kills the refresh token.

        With only a refresh token, or an access token that has expired, one is refreshed
        first. A token Dropbox no longer knows is what revoking wanted.
        """
        if access_token is None:
            access_token = await _access_for_revoke(oauth, service, refresh_token)
            if access_token is None:
                return
        try:
            await _rpc(oauth, service).revoke(access_token)
        except TokenExpired:
            fresh = await _access_for_revoke(oauth, service, refresh_token)
            if fresh is None:
                # Without a refresh token there is nothing left to revoke with; the grant ends
                # when Dropbox drops it.
                logger.info("service %s: the access token expired before revoking", service.name)
                return
            await self.revoke(oauth, service, access_token=fresh, refresh_token=None)
        except InvalidToken:
            return  # the token is dead already: what revoking wanted


def _rpc(oauth: OAuth2Client, service: OAuth2Service) -> DropboxDestination:
    return DropboxDestination(
        oauth.session, service.api_url or DEFAULT_API_URL, timeout=oauth.timeout
    )


async def _access_for_revoke(
    oauth: OAuth2Client, service: OAuth2Service, refresh_token: str | None
) -> str | None:
    """An access token to revoke with, or ``None`` if the grant is gone already."""
    if refresh_token is None:
        return None
    try:
        tokens = await oauth.refresh(service, refresh_token)
    except InvalidGrant:
        return None
    return tokens.access_token.reveal()


def _as_dict(result: object, endpoint: str) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise ApiError(f"{endpoint}: unexpected response shape", status=200)
    return result


def _text(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else ""


def _batch_results(body: dict[str, Any], count: int) -> list[BatchResult]:
    """The entries of a complete ``UploadSessionFinishBatchResult``, one per entry sent."""
    raw = body.get("entries")
    if body.get(".tag") not in (None, "complete") or not isinstance(raw, list):
        raise ApiError(f"{_FINISH_BATCH}: unexpected response shape", status=200)
    if len(raw) != count:
        raise ApiError(f"{_FINISH_BATCH}: {len(raw)} results for {count} entries", status=200)
    results: list[BatchResult] = []
    for item in raw:
        tag = item.get(".tag") if isinstance(item, dict) else None
        if tag == "success":
            results.append(_file_metadata(item, _FINISH_BATCH))
        elif tag == "failure":
            results.append(entry_error(item.get("failure")))
        else:
            results.append(ApiError(f"{_FINISH_BATCH}: an entry of kind {tag!r}", status=200))
    return results


def _file_metadata(result: object, endpoint: str) -> FileMetadata:
    body = _as_dict(result, endpoint)
    for key, _ in _METADATA_FIELDS:
        if key not in body:
            raise ApiError(f"{endpoint}: file metadata without {key!r}", status=200)
    values = [body[key] for key, _ in _METADATA_FIELDS]
    if not all(
        isinstance(value, kind) and not isinstance(value, bool)
        for value, (_, kind) in zip(values, _METADATA_FIELDS, strict=True)
    ):
        raise ApiError(f"{endpoint}: file metadata of the wrong shape", status=200)
    return FileMetadata(*values)
