"""A thin async client for the Dropbox HTTP API v2 (the calls cliqbot makes).

Each method is one HTTP request and nothing more: no retries, no refreshes. Retrying, refreshing
and resuming belong to :mod:`bot.providers.relay`, which knows what is safe to repeat.

Errors are translated at this boundary:

* every non-2xx response goes through :func:`~bot.providers.dropbox_wire.error_from_response`
  (``TokenExpired``, ``InvalidToken``, ``RateLimited``, ``ServerError``, ``IncorrectOffset``,
  ``ContentHashMismatch``, ``ApiError``);
* a lost connection, a timeout or an unreadable 2xx body becomes :class:`~bot.errors.ServerError`.

The access token is passed per call and only ever travels in the ``Authorization`` header: it is
never stored on the client, logged, or put into an exception message.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from bot.errors import ApiError, ServerError
from bot.providers.dropbox_wire import encode_api_arg, error_from_response

__all__ = ["DEFAULT_TIMEOUT", "DropboxAccount", "DropboxClient", "FileMetadata"]

logger = logging.getLogger(__name__)

#: No overall deadline (a large chunk on a slow link may take a while), but a stalled connection
#: or a silent server is given up on.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)

_UPLOAD_MODE: Final[dict[str, Any]] = {
    "mode": "add",
    "autorename": True,
    "mute": False,
    "strict_conflict": False,
}


@dataclass(frozen=True)
class DropboxAccount:
    account_id: str
    email: str
    display_name: str


@dataclass(frozen=True)
class FileMetadata:
    name: str
    path_display: str
    id: str
    size: int
    content_hash: str
    rev: str


class DropboxClient:
    """Calls the RPC host (``api_url``) and the content host (``content_url``).

    ``session`` is the application's one shared :class:`aiohttp.ClientSession`; the client never
    closes it.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        content_url: str,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self._session = session
        self._api_url = api_url.rstrip("/")
        self._content_url = content_url.rstrip("/")
        self._timeout = timeout if timeout is not None else DEFAULT_TIMEOUT

    # -- RPC host ---------------------------------------------------------------------------

    async def get_current_account(self, access_token: str) -> DropboxAccount:
        result = await self._request(
            self._api_url,
            "/2/users/get_current_account",
            access_token,
            data=b"null",
            content_type="application/json",
        )
        body = _as_dict(result, "/2/users/get_current_account")
        name = body.get("name")
        display_name = name.get("display_name") if isinstance(name, dict) else None
        account_id = body.get("account_id")
        email = body.get("email")
        if not isinstance(account_id, str) or not isinstance(email, str):
            raise ApiError("Dropbox returned an account without account_id or email", status=200)
        return DropboxAccount(
            account_id=account_id,
            email=email,
            display_name=display_name if isinstance(display_name, str) else email,
        )

    async def revoke(self, access_token: str) -> None:
        await self._request(self._api_url, "/2/auth/token/revoke", access_token)

    # -- content host -------------------------------------------------------------------------

    async def upload(
        self, access_token: str, path: str, data: bytes, *, content_hash: str
    ) -> FileMetadata:
        """``/2/files/upload`` (at most 150 MiB): ``mode=add``, ``autorename=true``."""
        arg = {"path": path, **_UPLOAD_MODE, "content_hash": content_hash}
        result = await self._content("/2/files/upload", access_token, arg, data)
        return _file_metadata(result, "/2/files/upload")

    async def session_start(
        self, access_token: str, data: bytes, *, content_hash: str | None = None
    ) -> str:
        """Start a *sequential* upload session carrying the first chunk; returns its id.

        ``content_hash``, when given, is that of ``data`` (the bytes of this call); Dropbox
        refuses the call with ``content_hash_mismatch`` if what arrived differs.

        Sequential, not concurrent: the relay sends chunks one after another anyway (one write
        at a time per account, as Dropbox asks), a sequential session lets the finish call carry
        the last chunk, and its offsets are checked strictly, so ``incorrect_offset`` tells
        exactly how much Dropbox holds and an interrupted upload can resume from there.
        """
        arg: dict[str, Any] = {"close": False, "session_type": "sequential"}
        if content_hash is not None:
            arg["content_hash"] = content_hash
        result = await self._content("/2/files/upload_session/start", access_token, arg, data)
        body = _as_dict(result, "/2/files/upload_session/start")
        session_id = body.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise ApiError("Dropbox started an upload session without an id", status=200)
        return session_id

    async def session_append(
        self,
        access_token: str,
        session_id: str,
        offset: int,
        data: bytes,
        *,
        content_hash: str | None = None,
    ) -> None:
        """Append ``data`` at ``offset``; ``content_hash``, when given, is that of ``data``."""
        arg: dict[str, Any] = {
            "cursor": {"session_id": session_id, "offset": offset},
            "close": False,
        }
        if content_hash is not None:
            arg["content_hash"] = content_hash
        await self._content("/2/files/upload_session/append_v2", access_token, arg, data)

    async def session_finish(
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

    # -- plumbing -------------------------------------------------------------------------------

    async def _content(
        self, endpoint: str, access_token: str, arg: dict[str, Any], data: bytes
    ) -> object:
        return await self._request(
            self._content_url,
            endpoint,
            access_token,
            # BytesIO, not bytes: aiohttp then writes the body in pieces, yielding to the loop
            # (and warns about raw bytes over 1 MiB). It shares the buffer; nothing is copied.
            data=io.BytesIO(data),
            content_type="application/octet-stream",
            api_arg=encode_api_arg(arg),
        )

    async def _request(
        self,
        base_url: str,
        endpoint: str,
        access_token: str,
        *,
        data: bytes | io.BytesIO | None = None,
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
                base_url + endpoint, data=data, headers=headers, timeout=self._timeout
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


def _as_dict(result: object, endpoint: str) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise ApiError(f"{endpoint}: unexpected response shape", status=200)
    return result


def _file_metadata(result: object, endpoint: str) -> FileMetadata:
    body = _as_dict(result, endpoint)
    try:
        name = body["name"]
        path_display = body["path_display"]
        file_id = body["id"]
        size = body["size"]
        content_hash = body["content_hash"]
        rev = body["rev"]
    except KeyError as exc:
        raise ApiError(f"{endpoint}: file metadata without {exc.args[0]!r}", status=200) from exc
    if not (
        isinstance(name, str)
        and isinstance(path_display, str)
        and isinstance(file_id, str)
        and isinstance(size, int)
        and not isinstance(size, bool)
        and isinstance(content_hash, str)
        and isinstance(rev, str)
    ):
        raise ApiError(f"{endpoint}: file metadata of the wrong shape", status=200)
    return FileMetadata(
        name=name,
        path_display=path_display,
        id=file_id,
        size=size,
        content_hash=content_hash,
        rev=rev,
    )
