"""A local Dropbox: OAuth 2, RPC and content endpoints in one aiohttp application.

It speaks Dropbox's wire format (``Dropbox-API-Arg`` headers, ``error_summary`` JSON, 400 plain
text, 401 with ``WWW-Authenticate``, 429 with ``Retry-After``) closely enough that the official
``dropbox`` SDK works against it, so tests, the demo, drills and benchmarks can run without the
real service. Point ``DROPBOX_AUTHORIZE_URL`` at ``{base}/oauth2/authorize`` and
``DROPBOX_API_URL`` / ``DROPBOX_CONTENT_URL`` at ``{base}``.

Upload bodies and session data are streamed to files under ``storage_dir``; nothing holds a whole
request in memory. Metadata (accounts, tokens, files) lives in memory for the life of the object.

The consent page (``GET /oauth2/authorize``) posts to ``/oauth2/authorize/decide`` with the
original parameters as hidden fields, ``decision=allow|deny`` and the account either as the
radio field ``email`` or typed into the text field ``email_other`` (which wins when filled).

Fault kinds for :meth:`DropboxStandin.inject_fault`:

``429``            429 ``too_many_write_operations`` JSON, ``Retry-After`` header when given
``429_text``       429 plain text body, no header
``500`` / ``503``  server error
``drop``           read the request body, then close the connection without answering
``drop_after``     process the request, then close the connection instead of answering
``expired_token``  401 ``expired_access_token``
``invalid_grant``  (token endpoint only) 400 ``invalid_grant``

The endpoint ``"*"`` matches every ``/2/...`` call and the token endpoint (each fault kind only
where it makes sense). Faults are served before authentication; they count in ``calls``.

``content_hash`` in any upload argument (``upload``, ``upload_session/start``, ``append_v2``,
``finish``) is checked against the bytes of *that call*, as Dropbox documents it and as the
official SDK sends it; the whole file's hash is returned in ``FileMetadata.content_hash``.

Many files at once (``upload_session/finish_batch_v2``, an RPC call): sessions closed on their
last call (``close: true`` on ``start`` or ``append_v2``) are committed in order, up to 1,000
per call, each entry answered ``{".tag": "success", <FileMetadata>}`` or ``{".tag": "failure",
"failure": <UploadSessionFinishError>}`` (a session not closed: ``lookup_failed/not_closed``).
Dropbox's v2 answers synchronously (SDK 12: ``UploadSessionFinishBatchResult``); with
``batch_async=N`` the stand-in answers as the older route does instead
(``UploadSessionFinishBatchLaunch``: an ``async_job_id``), and
``upload_session/finish_batch/check`` says ``in_progress`` N times before ``complete``, so a
client's polling is exercised. :meth:`DropboxStandin.inject_entry_failure` makes the next
entries for a path fail with a given ``UploadSessionFinishError`` (``too_many_write_operations``,
say) while the rest of the batch lands.

Commits (``upload``, ``upload_session/finish``, ``finish_batch_v2`` and its asynchronous job)
are counted per account: ``max_parallel_commits`` (commits in flight at once, what Dropbox's
per-namespace lock serialises) and ``commits`` (files committed, a file whose content was
already there included). With ``commit_limit=True`` a commit while another of the same account
is in flight is refused with 429 ``too_many_write_operations``, as Dropbox does under contention;
``concurrent_write_limit=True`` does the same for every write, content calls included.

Run it alone with ``python -m bot.sandbox.dropbox_standin --port 0 --app KEY:SECRET``; it prints
``READY http://127.0.0.1:<port>`` once listening and stops on SIGTERM/SIGINT. The ``/_standin``
routes let another process add accounts, inject faults and read what was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import contextlib
import datetime as dt
import hashlib
import html
import json
import logging
import math
import os
import pathlib
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import quote

from aiohttp import web
from yarl import URL

from bot.destinations.dropbox_wire import BLOCK_SIZE, ContentHasher

__all__ = ["FAULT_KINDS", "DropboxStandin", "FileRecord", "main"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 150 * 1024 * 1024
MAX_FILE_BYTES = 2 * 1024**4 - 4 * 1024 * 1024
CODE_LIFETIME = 600.0
SESSION_LIFETIME = 7 * 24 * 3600.0
STREAM_CHUNK = 1024 * 1024
MAX_STATE_BYTES = 500

FAULT_KINDS = frozenset(
    {"429", "429_text", "500", "503", "drop", "drop_after", "expired_token", "invalid_grant"}
)
KNOWN_SCOPES = frozenset(
    {
        "account_info.read",
        "account_info.write",
        "contacts.read",
        "contacts.write",
        "file_requests.read",
        "file_requests.write",
        "files.content.read",
        "files.content.write",
        "files.metadata.read",
        "files.metadata.write",
        "files.permanent_delete",
        "sharing.read",
        "sharing.write",
        "email",
        "openid",
        "profile",
    }
)
WRITE_SCOPE = "files.content.write"
METADATA_SCOPE = "files.metadata.read"
_LIST_FOLDER_FIELDS = frozenset(
    {
        "path",
        "recursive",
        "include_media_info",
        "include_deleted",
        "include_has_explicit_shared_members",
        "include_mounted_folders",
        "limit",
        "shared_link",
        "include_property_groups",
        "include_non_downloadable_files",
        "include_restorable_info",
    }
)
ACCOUNT_SCOPE = "account_info.read"
TOKEN_ENDPOINT = "/oauth2/token"

_COMMIT_FIELDS = frozenset(
    {"path", "mode", "autorename", "client_modified", "mute", "property_groups", "strict_conflict"}
)
_UPLOAD_FIELDS = _COMMIT_FIELDS | {"content_hash"}
_START_FIELDS = frozenset({"close", "session_type", "content_hash"})
_APPEND_FIELDS = frozenset({"cursor", "close", "content_hash"})
_FINISH_FIELDS = frozenset({"cursor", "commit", "content_hash"})
MAX_BATCH_ENTRIES = 1000
_EMPTY_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_CURSOR_FIELDS = frozenset({"session_id", "offset"})
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_WWW_AUTHENTICATE = 'Bearer realm="Dropbox-API"'
_DENIED = "The user chose not to give your app access to their Dropbox account."


# --------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class FileRecord:
    """A file stored in a stand-in account."""

    path_display: str
    path_lower: str
    name: str
    id: str
    rev: str
    size: int
    content_hash: str
    client_modified: str
    server_modified: str
    blob_path: pathlib.Path

    def metadata(self) -> dict[str, object]:
        """Dropbox ``FileMetadata`` JSON."""
        return {
            "name": self.name,
            "path_lower": self.path_lower,
            "path_display": self.path_display,
            "id": self.id,
            "client_modified": self.client_modified,
            "server_modified": self.server_modified,
            "rev": self.rev,
            "size": self.size,
            "is_downloadable": True,
            "content_hash": self.content_hash,
        }


@dataclass
class _Account:
    account_id: str
    uid: str
    email: str
    display_name: str
    files: dict[str, FileRecord] = field(default_factory=dict)  # by path_lower
    folders: dict[str, str] = field(default_factory=dict)  # path_lower -> path_display


@dataclass
class _Grant:
    client_id: str
    email: str
    scopes: tuple[str, ...]
    refresh_token: str | None
    public_client: bool
    revoked: bool = False


@dataclass
class _AccessToken:
    grant: _Grant
    expires_at: float
    force_expired: bool = False


@dataclass(frozen=True)
class _Code:
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    scopes: tuple[str, ...]
    email: str
    offline: bool
    expires_at: float


@dataclass
class _Fault:
    endpoint: str
    kind: str
    remaining: int
    retry_after: float | None


@dataclass
class _EntryFailure:
    name: str  # lowercased: a path's last part, or a whole path
    tags: list[str]
    remaining: int

    def matches(self, path: str) -> bool:
        lower = path.lower()
        return self.name in (lower, lower.rsplit("/", 1)[-1])

    def failure(self) -> dict[str, object]:
        nested: dict[str, object] = {".tag": self.tags[-1]}
        for tag in reversed(self.tags[:-1]):
            nested = {".tag": tag, tag: nested}
        return nested


@dataclass
class _BatchJob:
    """An asynchronous ``finish_batch`` job: its commit runs in ``task``."""

    email: str
    task: asyncio.Task[list[dict[str, object]]]
    polls_left: int


@dataclass
class _Session:
    id: str
    email: str
    directory: pathlib.Path
    concurrent: bool
    created: float
    offset: int = 0  # sequential: bytes received so far
    closed: bool = False
    hasher: ContentHasher = field(default_factory=ContentHasher)
    chunks: dict[int, int] = field(default_factory=dict)  # concurrent: offset -> size
    total: int | None = None  # concurrent: known once the closing append arrived
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def data_path(self) -> pathlib.Path:
        return self.directory / "data"

    def chunk_path(self, offset: int) -> pathlib.Path:
        return self.directory / f"chunk-{offset:020d}"


@dataclass(frozen=True)
class _Commit:
    path: str
    mode: str  # add | overwrite | update
    update_rev: str | None
    autorename: bool
    client_modified: str | None


@dataclass(frozen=True)
class _Received:
    size: int
    content_hash: str
    too_large: bool


class _Abort(Exception):
    """Carries a finished error response out of nested helpers."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


# ------------------------------------------------------------------------------------- helpers


def _json_response(
    payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    # Dropbox answers exactly "application/json" (the SDK asserts it), so no charset parameter.
    return web.Response(
        body=json.dumps(payload).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _text_response(text: str, status: int = 400) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain")


def _html_response(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html")


def _route_name(path: str) -> str:
    return path.removeprefix("/2/")


def _bad_input(route: str, message: str) -> _Abort:
    return _Abort(_text_response(f'Error in call to API function "{route}": {message}'))


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _display_name_for(email: str) -> str:
    local = email.split("@", 1)[0]
    words = [word.capitalize() for word in re.split(r"[._+\-]+", local) if word]
    return " ".join(words) or email


def _split_name(name: str) -> tuple[str, str]:
    parts = name.split()
    if not parts:
        return name, ""
    return parts[0], " ".join(parts[1:])


def _autorename_candidate(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{ext}"


async def _drain(request: web.Request) -> None:
    with contextlib.suppress(Exception):
        while not request.content.at_eof():
            chunk = await request.content.readany()
            if not chunk:
                break


def _drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _require_bool(arg: Mapping[str, Any], key: str, route: str, default: bool = False) -> bool:
    value = arg.get(key, default)
    if not isinstance(value, bool):
        raise _bad_input(route, f'HTTP header "Dropbox-API-Arg": {key}: expected boolean')
    return value


def _optional_hash(arg: Mapping[str, Any], route: str) -> str | None:
    value = arg.get("content_hash")
    if value is None:
        return None
    if not isinstance(value, str) or not _HASH_RE.match(value):
        raise _bad_input(
            route,
            'HTTP header "Dropbox-API-Arg": content_hash: '
            "expected a 64 character lowercase hex string",
        )
    return value


def _json_rpc_body(request: web.Request, route: str, body: bytes) -> Any:
    """An RPC call's body parsed as JSON, after Dropbox's check of its ``Content-Type``."""
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise _bad_input(
            route,
            f'Bad HTTP "Content-Type" header: "{content_type}".  '
            'Expecting one of "application/json", "text/plain; charset=dropbox-cors-hack".',
        )
    try:
        return json.loads(body)
    except ValueError:
        raise _bad_input(route, "request body: could not decode input as JSON") from None


def _check_fields(obj: Mapping[str, Any], allowed: frozenset[str], route: str, where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise _bad_input(route, f'HTTP header "Dropbox-API-Arg": {where}unknown field "{key}"')


# ----------------------------------------------------------------------------------- the stand-in


class DropboxStandin:
    """A faithful local Dropbox for tests, the demo, drills and benchmarks."""

    def __init__(
        self,
        storage_dir: pathlib.Path,
        *,
        apps: Mapping[str, str] | None = None,
        token_lifetime: float = 14400.0,
        concurrent_write_limit: bool = False,
        commit_limit: bool = False,
        batch_async: int = 0,
    ) -> None:
        self.storage_dir = pathlib.Path(storage_dir)
        self.token_lifetime = token_lifetime
        self.concurrent_write_limit = concurrent_write_limit
        self.commit_limit = commit_limit
        #: ``finish_batch_v2`` answers with an async job reported ``in_progress`` this many times.
        self.batch_async = batch_async
        self.calls: collections.Counter[str] = collections.Counter()
        self.max_parallel_writes: dict[str, int] = {}
        self.max_parallel_commits: dict[str, int] = {}
        #: Files committed per account (by its email), including commits that wrote nothing.
        self.commits: collections.Counter[str] = collections.Counter()
        self._committing_now: collections.Counter[str] = collections.Counter()
        self._entry_failures: list[_EntryFailure] = []
        self._batch_jobs: dict[str, _BatchJob] = {}
        self._apps: dict[str, str] = dict(apps or {})
        self._accounts: dict[str, _Account] = {}  # by lowercased email
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _Grant] = {}
        self._sessions: dict[str, _Session] = {}
        self._faults: list[_Fault] = []
        self._inflight: dict[str, int] = {}
        self._summaries = 0
        self._clock: Callable[[], float] = time.monotonic
        for sub in ("blobs", "sessions", "incoming"):
            (self.storage_dir / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ public, in-process API

    def app(self) -> web.Application:
        @web.middleware
        async def middleware(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            return await self._dispatch(request, handler)

        app = web.Application(middlewares=[middleware])
        add_get, add_post = app.router.add_get, app.router.add_post
        add_get("/oauth2/authorize", self._authorize_page)
        add_post("/oauth2/authorize/decide", self._authorize_decide)
        add_post(TOKEN_ENDPOINT, self._token)
        add_post("/2/auth/token/revoke", self._revoke)
        add_post("/2/users/get_current_account", self._current_account)
        add_post("/2/files/list_folder", self._list_folder)
        add_post("/2/files/list_folder/continue", self._list_folder_continue)
        add_post("/2/files/upload", self._upload)
        add_post("/2/files/upload_session/start", self._session_start)
        add_post("/2/files/upload_session/append_v2", self._session_append)
        add_post("/2/files/upload_session/finish", self._session_finish)
        add_post("/2/files/upload_session/finish_batch_v2", self._finish_batch)
        add_post("/2/files/upload_session/finish_batch/check", self._finish_batch_check)
        add_get("/", self._index_page)
        add_get("/_standin/accounts", self._ctl_accounts)
        add_post("/_standin/accounts", self._ctl_add_account)
        add_post("/_standin/apps", self._ctl_add_app)
        add_post("/_standin/faults", self._ctl_fault)
        add_post("/_standin/entry_failures", self._ctl_entry_failure)
        add_post("/_standin/expire", self._ctl_expire)
        add_post("/_standin/revoke", self._ctl_revoke)
        add_get("/_standin/calls", self._ctl_calls)
        add_get("/_standin/stats", self._ctl_stats)
        add_get("/_standin/accounts/{email}/files.json", self._ctl_files_json)
        add_get("/_standin/accounts/{email}/files", self._files_page)
        add_get("/_standin/accounts/{email}/content", self._ctl_content)
        return app

    def add_account(self, email: str, display_name: str | None = None) -> str:
        key = email.strip().lower()
        if not key:
            raise ValueError("an account needs an email")
        account = self._accounts.get(key)
        if account is None:
            account = _Account(
                account_id="dbid:AA" + secrets.token_urlsafe(33)[:33],  # 40 chars, as Dropbox
                uid=str(secrets.randbelow(9 * 10**9) + 10**9),
                email=email.strip(),
                display_name=display_name or _display_name_for(email.strip()),
            )
            self._accounts[key] = account
        return account.account_id

    def add_app(self, client_id: str, client_secret: str) -> None:
        self._apps[client_id] = client_secret

    def issue_tokens(self, client_id: str, email: str, scopes: Sequence[str]) -> tuple[str, str]:
        if client_id not in self._apps:
            raise ValueError(f"unknown app {client_id!r}")
        self.add_account(email)
        refresh = "r." + secrets.token_urlsafe(48)
        grant = _Grant(
            client_id=client_id,
            email=self._account(email).email,
            scopes=tuple(scopes),
            refresh_token=refresh,
            public_client=False,
        )
        self._refresh[refresh] = grant
        return self._mint_access(grant), refresh

    def expire_access_tokens(self, email: str | None = None) -> None:
        key = email.lower() if email is not None else None
        for token in self._access.values():
            if key is None or token.grant.email.lower() == key:
                token.force_expired = True

    def revoke_all(self, email: str) -> None:
        key = email.lower()
        for grant in self._refresh.values():
            if grant.email.lower() == key:
                grant.revoked = True
        for token in self._access.values():
            if token.grant.email.lower() == key:
                token.grant.revoked = True

    def inject_fault(
        self, endpoint: str, kind: str, count: int = 1, retry_after: float | None = None
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")
        if endpoint != "*" and not endpoint.startswith("/"):
            raise ValueError("endpoint must be a path like /2/files/upload, or *")
        if count < 1:
            raise ValueError("count must be at least 1")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must not be negative")
        self._faults.append(_Fault(endpoint, kind, count, retry_after))

    def inject_entry_failure(self, name: str, failure: str, count: int = 1) -> None:
        """The next ``count`` batch entries committing to a path named ``name`` (its last part,
        or the whole path; any case) fail with ``failure``, a chain of ``UploadSessionFinishError``
        tags such as ``too_many_write_operations``, ``lookup_failed/not_found`` or
        ``path/insufficient_space``. The entry's session is left as it was."""
        tags = [tag for tag in failure.split("/") if tag]
        if not name or not tags or any(not re.fullmatch(r"[a-z_]+", tag) for tag in tags):
            raise ValueError("a name, and failure tags like lookup_failed/not_found")
        if count < 1:
            raise ValueError("count must be at least 1")
        self._entry_failures.append(_EntryFailure(name.lower(), tags, count))

    def files(self, email: str) -> dict[str, FileRecord]:
        """The account's files by ``path_display`` (empty for an unknown account)."""
        account = self._accounts.get(email.strip().lower())
        if account is None:
            return {}
        return {record.path_display: record for record in account.files.values()}

    def read_file(self, email: str, path_display: str) -> bytes:
        record = self._account(email).files.get(path_display.lower())
        if record is None:
            raise KeyError(path_display)
        return record.blob_path.read_bytes()

    # ----------------------------------------------------------------------------- internals

    def _account(self, email: str) -> _Account:
        account = self._accounts.get(email.strip().lower())
        if account is None:
            raise KeyError(email)
        return account

    def _summary(self, *tags: str) -> str:
        # Dropbox pads summaries with a varying number of dots; clients must match on prefixes.
        self._summaries += 1
        return "/".join(tags) + "/" + "." * (self._summaries % 4)

    def _route_error(self, tags: Sequence[str], error: object, status: int = 409) -> _Abort:
        body = {"error_summary": self._summary(*tags), "error": error}
        return _Abort(_json_response(body, status=status))

    def _auth_error(self, tag: str, **extra: str) -> _Abort:
        body = {"error_summary": self._summary(tag), "error": {".tag": tag, **extra}}
        headers = {"WWW-Authenticate": _WWW_AUTHENTICATE}
        return _Abort(_json_response(body, status=401, headers=headers))

    def _rate_limited(self, retry_after: float | None) -> web.Response:
        body_after = 1 if retry_after is None else max(1, math.ceil(retry_after))
        body = {
            "error_summary": self._summary("too_many_write_operations"),
            "error": {"reason": {".tag": "too_many_write_operations"}, "retry_after": body_after},
        }
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return _json_response(body, status=429, headers=headers)

    def _mint_access(self, grant: _Grant) -> str:
        token = "sl." + secrets.token_urlsafe(64)
        self._access[token] = _AccessToken(grant, self._clock() + self.token_lifetime)
        return token

    def _take_fault(self, path: str, *, token_endpoint: bool) -> _Fault | None:
        for fault in self._faults:
            if fault.endpoint not in ("*", path):
                continue
            if token_endpoint and fault.kind == "expired_token":
                continue
            if not token_endpoint and fault.kind == "invalid_grant":
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            log.info("stand-in fault %s on %s", fault.kind, path)
            return fault
        return None

    def _fault_response(self, fault: _Fault) -> web.Response:
        if fault.kind == "429":
            return self._rate_limited(fault.retry_after)
        if fault.kind == "429_text":
            return _text_response("Too Many Requests", status=429)
        if fault.kind in ("500", "503"):
            status = int(fault.kind)
            return _text_response(f"stand-in injected error {status}", status=status)
        if fault.kind == "invalid_grant":
            return _json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "refresh token is invalid or revoked",
                },
                status=400,
            )
        return self._auth_error("expired_access_token").response

    async def _dispatch(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        fault: _Fault | None = None
        if request.path.startswith("/2/"):
            self.calls[request.path] += 1
            fault = self._take_fault(request.path, token_endpoint=False)
            if fault is not None and fault.kind != "drop_after":
                await _drain(request)
                if fault.kind == "drop":
                    _drop_connection(request)
                    return web.Response(status=500)  # never sent: the connection is gone
                return self._fault_response(fault)
        try:
            response = await handler(request)
        except _Abort as abort:
            if request.method == "POST":
                await _drain(request)
            response = abort.response
        if fault is not None:  # drop_after: the work is done, the answer is lost
            _drop_connection(request)
        return response

    def _authenticate(self, request: web.Request, scope: str | None) -> _Account:
        route = _route_name(request.path)
        header = request.headers.get("Authorization")
        if header is None:
            raise _bad_input(
                route, 'Must provide HTTP header "Authorization" or URL parameter "authorization".'
            )
        scheme, _, value = header.partition(" ")
        token_text = value.strip()
        if scheme.lower() != "bearer" or not token_text:
            raise _bad_input(
                route,
                'Invalid authorization value in HTTP header "Authorization". '
                'Expecting "Bearer <oauth2-access-token>".',
            )
        token = self._access.get(token_text)
        if token is None or token.grant.revoked:
            raise self._auth_error("invalid_access_token")
        account = self._accounts.get(token.grant.email.lower())
        if account is None:
            raise self._auth_error("invalid_access_token")
        if token.force_expired or self._clock() >= token.expires_at:
            raise self._auth_error("expired_access_token")
        if scope is not None and scope not in token.grant.scopes:
            raise self._auth_error("missing_scope", required_scope=scope)
        return account

    async def _rpc_null_body(self, request: web.Request) -> None:
        route = _route_name(request.path)
        body = await request.read()
        if not body.strip():
            return
        parsed = _json_rpc_body(request, route, body)
        if parsed is not None:
            raise _bad_input(route, "request body: expected null, got value")

    # --------------------------------------------------------------------------------- OAuth

    def _validate_authorize(self, params: Mapping[str, str]) -> str | None:
        client_id = params.get("client_id", "")
        if client_id not in self._apps:
            return "Invalid client_id: the app does not exist."
        if params.get("response_type") != "code":
            return 'Invalid response_type: only "code" is supported.'
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            return "Missing redirect_uri."
        try:
            parsed = URL(redirect_uri)
        except ValueError:
            return "Invalid redirect_uri."
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return "Invalid redirect_uri: it must be an absolute http(s) URL."
        scopes = params.get("scope", "").split()
        if not scopes:
            return "Invalid scope: at least one scope is required."
        unknown = [scope for scope in scopes if scope not in KNOWN_SCOPES]
        if unknown:
            return f"Invalid scope: unknown scope {unknown[0]!r}."
        state = params.get("state", "")
        if len(state.encode()) > MAX_STATE_BYTES:
            return f"Invalid state: at most {MAX_STATE_BYTES} bytes."
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is not None or method is not None:
            if method != "S256":
                return 'Invalid code_challenge_method: only "S256" is supported.'
            if not challenge or not re.fullmatch(r"[A-Za-z0-9_\-]{43,128}", challenge):
                return "Invalid code_challenge."
        access_type = params.get("token_access_type")
        if access_type is not None and access_type not in ("offline", "online", "legacy"):
            return "Invalid token_access_type."
        return None

    _AUTHORIZE_FIELDS = (
        "client_id",
        "response_type",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "token_access_type",
        "force_reapprove",
    )

    async def _authorize_page(self, request: web.Request) -> web.Response:
        self.calls["/oauth2/authorize"] += 1
        params = dict(request.query)
        problem = self._validate_authorize(params)
        if problem is not None:
            return _text_response(f"Bad request to /oauth2/authorize: {problem}\n")
        esc = html.escape
        scopes = params["scope"].split()
        hidden = "\n".join(
            f'<input type="hidden" name="{name}" value="{esc(params[name])}">'
            for name in self._AUTHORIZE_FIELDS
            if name in params
        )
        accounts = sorted(self._accounts.values(), key=lambda a: a.email.lower())
        radios = "\n".join(
            f'<div><input type="radio" name="email" id="acct-{i}" value="{esc(a.email)}"'
            f"{' checked' if i == 0 else ''}>"
            f' <label for="acct-{i}">{esc(a.display_name)} ({esc(a.email)})</label></div>'
            for i, a in enumerate(accounts)
        )
        picker = (
            f"<fieldset><legend>Choose an account</legend>{radios}</fieldset>" if accounts else ""
        )
        host = URL(params["redirect_uri"]).host or ""
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dropbox stand-in: authorize</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main>
<h1>{esc(params["client_id"])} wants to access your Dropbox</h1>
<p>This is the local Dropbox stand-in. After you decide you go back to <strong>{esc(host)}</strong>.
</p>
<h2>Requested permissions</h2>
<ul>{"".join(f"<li>{esc(scope)}</li>" for scope in scopes)}</ul>
<form method="post" action="/oauth2/authorize/decide">
{hidden}
{picker}
<p><label for="email_other">Or sign in with another email address</label>
<input type="email" id="email_other" name="email_other" autocomplete="email"></p>
<p><button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form>
</main></body></html>
"""
        return _html_response(page)

    async def _authorize_decide(self, request: web.Request) -> web.Response:
        self.calls["/oauth2/authorize/decide"] += 1
        form = await request.post()
        params = {key: value for key, value in form.items() if isinstance(value, str)}
        problem = self._validate_authorize(params)
        if problem is not None:
            return _text_response(f"Bad request to /oauth2/authorize: {problem}\n")
        target = URL(params["redirect_uri"])
        state = params.get("state")
        extra = {"state": state} if state is not None else {}
        decision = params.get("decision")
        if decision == "deny":
            location = target.update_query(
                {"error": "access_denied", "error_description": _DENIED, **extra}
            )
            return web.Response(status=302, headers={"Location": str(location)})
        if decision != "allow":
            return _text_response('decision must be "allow" or "deny"\n')
        email = params.get("email_other", "").strip() or params.get("email", "").strip()
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
            return _text_response("Choose an account or type a valid email address.\n")
        self.add_account(email)
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            code_challenge=params.get("code_challenge"),
            scopes=tuple(params["scope"].split()),
            email=self._account(email).email,
            offline=params.get("token_access_type") == "offline",
            expires_at=self._clock() + CODE_LIFETIME,
        )
        location = target.update_query({"code": code, **extra})
        return web.Response(status=302, headers={"Location": str(location)})

    def _client_auth(
        self, request: web.Request, form: Mapping[str, str]
    ) -> tuple[str, str | None] | web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        basic = scheme.lower() == "basic"
        if basic:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            client_id, sep, secret = decoded.partition(":")
            if not sep:
                return self._invalid_client(basic=True)
            client_secret: str | None = secret
        else:
            client_id = form.get("client_id", "")
            client_secret = form.get("client_secret")
        expected = self._apps.get(client_id)
        if expected is None:
            return self._invalid_client(basic=basic)
        if client_secret is not None and not secrets.compare_digest(
            client_secret.encode(), expected.encode()
        ):
            return self._invalid_client(basic=basic)
        return client_id, client_secret

    @staticmethod
    def _invalid_client(*, basic: bool) -> web.Response:
        body = {
            "error": "invalid_client",
            "error_description": "Invalid client_id or client_secret",
        }
        if basic:
            return _json_response(
                body, status=401, headers={"WWW-Authenticate": 'Basic realm="Dropbox-API"'}
            )
        return _json_response(body, status=400)

    @staticmethod
    def _oauth_error(error: str, description: str) -> web.Response:
        return _json_response({"error": error, "error_description": description}, status=400)

    async def _token(self, request: web.Request) -> web.Response:
        form_data = await request.post()
        form = {key: value for key, value in form_data.items() if isinstance(value, str)}
        grant_type = form.get("grant_type", "")
        self.calls[f"token:{grant_type}"] += 1
        fault = self._take_fault(TOKEN_ENDPOINT, token_endpoint=True)
        if fault is not None and fault.kind != "drop_after":
            if fault.kind == "drop":
                _drop_connection(request)
                return web.Response(status=500)  # never sent: the connection is gone
            return self._fault_response(fault)
        response = self._token_response(request, form, grant_type)
        if fault is not None:
            _drop_connection(request)
        return response

    def _token_response(
        self, request: web.Request, form: Mapping[str, str], grant_type: str
    ) -> web.Response:
        auth = self._client_auth(request, form)
        if isinstance(auth, web.Response):
            return auth
        client_id, client_secret = auth
        if grant_type == "authorization_code":
            return self._exchange_code(form, client_id, client_secret)
        if grant_type == "refresh_token":
            return self._refresh_grant(form, client_id, client_secret)
        return self._oauth_error(
            "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
        )

    def _exchange_code(
        self, form: Mapping[str, str], client_id: str, client_secret: str | None
    ) -> web.Response:
        code_value = form.get("code")
        if not code_value:
            return self._oauth_error("invalid_request", 'No "code" param')
        code = self._codes.pop(code_value, None)  # single use, whatever happens next
        if code is None or code.client_id != client_id or self._clock() >= code.expires_at:
            return self._oauth_error("invalid_grant", "code doesn't exist or has expired")
        if form.get("redirect_uri") != code.redirect_uri:
            return self._oauth_error("invalid_grant", "redirect_uri mismatch")
        verifier = form.get("code_verifier")
        if code.code_challenge is not None:
            if not verifier or not secrets.compare_digest(
                _pkce_challenge(verifier), code.code_challenge
            ):
                return self._oauth_error("invalid_grant", "invalid code verifier")
        elif verifier is not None:
            return self._oauth_error("invalid_grant", "invalid code verifier")
        public = client_secret is None
        if public and code.code_challenge is None:
            return self._oauth_error("invalid_request", "No auth function available for request")
        account = self._account(code.email)
        refresh = "r." + secrets.token_urlsafe(48) if code.offline else None
        grant = _Grant(client_id, account.email, code.scopes, refresh, public_client=public)
        if refresh is not None:
            self._refresh[refresh] = grant
        body: dict[str, object] = {
            "access_token": self._mint_access(grant),
            "expires_in": math.ceil(self.token_lifetime),
            "token_type": "bearer",
            "scope": " ".join(code.scopes),
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        body["account_id"] = account.account_id
        body["uid"] = account.uid
        return _json_response(body)

    def _refresh_grant(
        self, form: Mapping[str, str], client_id: str, client_secret: str | None
    ) -> web.Response:
        refresh = form.get("refresh_token")
        if not refresh:
            return self._oauth_error("invalid_request", 'No "refresh_token" param')
        grant = self._refresh.get(refresh)
        if grant is None or grant.revoked or grant.client_id != client_id:
            return self._oauth_error("invalid_grant", "refresh token is invalid or revoked")
        if client_secret is None and not grant.public_client:
            return self._oauth_error("invalid_request", "No auth function available for request")
        return _json_response(
            {
                "access_token": self._mint_access(grant),
                "token_type": "bearer",
                "expires_in": math.ceil(self.token_lifetime),
            }
        )

    async def _revoke(self, request: web.Request) -> web.Response:
        self._authenticate(request, None)
        await self._rpc_null_body(request)
        header = request.headers["Authorization"]
        token = self._access[header.partition(" ")[2].strip()]
        token.grant.revoked = True
        return _json_response(None)

    async def _current_account(self, request: web.Request) -> web.Response:
        account = self._authenticate(request, ACCOUNT_SCOPE)
        await self._rpc_null_body(request)
        given, surname = _split_name(account.display_name)
        initials = "".join(word[0].upper() for word in account.display_name.split() if word)
        namespace = str(int(hashlib.sha256(account.account_id.encode()).hexdigest()[:12], 16))
        return _json_response(
            {
                "account_id": account.account_id,
                "name": {
                    "given_name": given,
                    "surname": surname,
                    "familiar_name": given,
                    "display_name": account.display_name,
                    "abbreviated_name": initials,
                },
                "email": account.email,
                "email_verified": True,
                "disabled": False,
                "country": "US",
                "locale": "en",
                "referral_link": f"https://www.dropbox.com/referrals/{account.uid}",
                "is_paired": False,
                "account_type": {".tag": "basic"},
                "root_info": {
                    ".tag": "user",
                    "root_namespace_id": namespace,
                    "home_namespace_id": namespace,
                },
            }
        )

    # ------------------------------------------------------------------------------ listing

    async def _rpc_arg(
        self, request: web.Request, allowed: frozenset[str]
    ) -> tuple[dict[str, Any], str]:
        """An RPC call's JSON body (an object of ``allowed`` fields), as Dropbox checks it."""
        route = _route_name(request.path)
        arg = _json_rpc_body(request, route, await request.read())
        if not isinstance(arg, dict):
            raise _bad_input(route, "request body: expected object")
        for key in arg:
            if key not in allowed:
                raise _bad_input(route, f'request body: unknown field "{key}"')
        return arg, route

    async def _list_folder(self, request: web.Request) -> web.Response:
        """``files/list_folder``: the folder's entries (files and folders), in pages."""
        account = self._authenticate(request, METADATA_SCOPE)
        arg, route = await self._rpc_arg(request, _LIST_FOLDER_FIELDS)
        path = arg.get("path")
        if not isinstance(path, str):
            raise _bad_input(route, "request body: missing required field 'path'")
        if path and (not path.startswith("/") or path == "/"):
            raise _bad_input(
                route,
                f"request body: path: '{path}' did not match pattern"
                " '(/(.|[\\r\\n])*)?|id:.*|(ns:[0-9]+(/.*)?)'",
            )
        recursive = arg.get("recursive", False)
        limit = arg.get("limit")
        if not isinstance(recursive, bool):
            raise _bad_input(route, "request body: recursive: expected boolean")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 2000
        ):
            raise _bad_input(route, "request body: limit: expected an integer from 1 to 2000")
        folder = path.rstrip("/").lower()
        if folder and folder not in account.folders:
            tag = "not_folder" if folder in account.files else "not_found"
            raise self._route_error(["path", tag], {".tag": "path", "path": {".tag": tag}})
        cursor = {"a": account.account_id, "f": folder, "r": recursive, "o": 0, "l": limit}
        return _json_response(self._listing(account, cursor))

    async def _list_folder_continue(self, request: web.Request) -> web.Response:
        """``files/list_folder/continue``: the next page of a listing."""
        account = self._authenticate(request, METADATA_SCOPE)
        arg, route = await self._rpc_arg(request, frozenset({"cursor"}))
        try:
            cursor = json.loads(base64.urlsafe_b64decode(str(arg.get("cursor", "")) + "=="))
            cursor["f"].lower(), int(cursor["o"]), int(cursor["l"] or 0)  # its shape
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
            raise _bad_input(route, 'request body: cursor: Invalid "cursor" parameter') from None
        if cursor.get("a") != account.account_id:
            raise self._route_error(["reset"], {".tag": "reset"})
        folder = cursor["f"]
        if folder and folder not in account.folders:
            raise self._route_error(
                ["path", "not_found"], {".tag": "path", "path": {".tag": "not_found"}}
            )
        return _json_response(self._listing(account, cursor))

    def _listing(self, account: _Account, cursor: dict[str, Any]) -> dict[str, object]:
        """One page of ``ListFolderResult`` from ``cursor`` (folder, recursive, offset, limit),
        entries in path order; the cursor for the next page."""
        folder, recursive = str(cursor["f"]), bool(cursor["r"])

        def inside(path_lower: str) -> bool:
            parent = path_lower.rsplit("/", 1)[0]
            return path_lower.startswith(f"{folder}/") if recursive else parent == folder

        entries: list[tuple[str, dict[str, object]]] = [
            (lower, {".tag": "folder", **self._folder_metadata(account, lower, display)})
            for lower, display in account.folders.items()
            if inside(lower)
        ]
        entries += [
            (record.path_lower, {".tag": "file", **record.metadata()})
            for record in account.files.values()
            if inside(record.path_lower)
        ]
        entries.sort(key=lambda entry: entry[0])
        start = int(cursor["o"])
        size = int(cursor["l"] or 2000)
        page = [entry for _, entry in entries[start : start + size]]
        after = {**cursor, "o": start + len(page)}
        token = base64.urlsafe_b64encode(json.dumps(after).encode()).decode().rstrip("=")
        return {"entries": page, "cursor": token, "has_more": start + len(page) < len(entries)}

    @staticmethod
    def _folder_metadata(account: _Account, lower: str, display: str) -> dict[str, object]:
        digest = hashlib.sha256(f"{account.account_id}{lower}".encode()).digest()
        return {
            "name": display.rsplit("/", 1)[-1],
            "path_lower": lower,
            "path_display": display,
            "id": "id:" + base64.urlsafe_b64encode(digest[:16]).decode().rstrip("="),
        }

    # ------------------------------------------------------------------------------ content

    def _api_arg(self, request: web.Request, allowed: frozenset[str]) -> tuple[dict[str, Any], str]:
        route = _route_name(request.path)
        raw = request.headers.get("Dropbox-API-Arg")
        if raw is None:
            raise _bad_input(
                route, 'Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".'
            )
        if not raw.isascii() or "\x7f" in raw:
            raise _bad_input(
                route,
                'HTTP header "Dropbox-API-Arg": the value must be ASCII; escape every other '
                "character (and 0x7F) as \\uXXXX.",
            )
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/octet-stream":
            raise _bad_input(
                route,
                f'Bad HTTP "Content-Type" header: "{content_type}".  Expecting one of '
                '"application/octet-stream", "text/plain; charset=dropbox-cors-hack".',
            )
        try:
            arg = json.loads(raw)
        except ValueError:
            raise _bad_input(
                route, 'HTTP header "Dropbox-API-Arg": could not decode input as JSON'
            ) from None
        if not isinstance(arg, dict):
            raise _bad_input(route, 'HTTP header "Dropbox-API-Arg": expected object')
        _check_fields(arg, allowed, route, "")
        return arg, route

    def _parse_commit(self, arg: Mapping[str, Any], route: str, where: str) -> _Commit:
        prefix = f'HTTP header "Dropbox-API-Arg": {where}'
        path = arg.get("path")
        if not isinstance(path, str):
            raise _bad_input(route, f"{prefix}missing or invalid field 'path'")
        if not path.startswith("/"):
            raise _bad_input(
                route,
                f"{prefix}path: '{path}' did not match pattern "
                "'(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)|(id:.*)'",
            )
        mode_value = arg.get("mode", "add")
        update_rev: str | None = None
        if isinstance(mode_value, dict):
            mode = mode_value.get(".tag")
            if mode == "update":
                rev = mode_value.get("update")
                if not isinstance(rev, str):
                    raise _bad_input(route, f"{prefix}mode: update needs a rev")
                update_rev = rev
        else:
            mode = mode_value
        if mode not in ("add", "overwrite", "update"):
            raise _bad_input(route, f"{prefix}mode: unknown tag '{mode}'")
        client_modified = arg.get("client_modified")
        if client_modified is not None and (
            not isinstance(client_modified, str) or not _TIMESTAMP_RE.match(client_modified)
        ):
            raise _bad_input(route, f"{prefix}client_modified: expected %Y-%m-%dT%H:%M:%SZ")
        _require_bool(arg, "mute", route)
        _require_bool(arg, "strict_conflict", route)
        return _Commit(
            path=path,
            mode=str(mode),
            update_rev=update_rev,
            autorename=_require_bool(arg, "autorename", route),
            client_modified=client_modified,
        )

    def _parse_cursor(self, arg: Mapping[str, Any], route: str) -> tuple[str, int]:
        cursor = arg.get("cursor")
        if not isinstance(cursor, dict):
            raise _bad_input(route, "HTTP header \"Dropbox-API-Arg\": missing field 'cursor'")
        _check_fields(cursor, _CURSOR_FIELDS, route, "cursor: ")
        session_id = cursor.get("session_id")
        offset = cursor.get("offset")
        if not isinstance(session_id, str):
            raise _bad_input(
                route, 'HTTP header "Dropbox-API-Arg": cursor.session_id: expected string'
            )
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise _bad_input(route, 'HTTP header "Dropbox-API-Arg": cursor.offset: expected uint64')
        return session_id, offset

    @contextlib.asynccontextmanager
    async def _writing(self, account: _Account) -> AsyncIterator[None]:
        key = account.email.lower()
        if self.concurrent_write_limit and self._inflight.get(key, 0) > 0:
            raise _Abort(self._rate_limited(1.0))
        self._inflight[key] = self._inflight.get(key, 0) + 1
        self.max_parallel_writes[account.email] = max(
            self.max_parallel_writes.get(account.email, 0), self._inflight[key]
        )
        try:
            yield
        finally:
            self._inflight[key] -= 1

    def _commit_begins(self, account: _Account) -> None:
        """A commit of ``account`` starts: refused (429) under ``commit_limit`` if another is
        in flight; counted in ``max_parallel_commits``."""
        key = account.email
        if self.commit_limit and self._committing_now[key] > 0:
            raise _Abort(self._rate_limited(1.0))
        self._committing_now[key] += 1
        self.max_parallel_commits[key] = max(
            self.max_parallel_commits.get(key, 0), self._committing_now[key]
        )

    def _commit_ends(self, account: _Account) -> None:
        self._committing_now[account.email] -= 1

    @contextlib.asynccontextmanager
    async def _committing(self, account: _Account) -> AsyncIterator[None]:
        self._commit_begins(account)
        try:
            yield
        finally:
            self._commit_ends(account)

    @staticmethod
    async def _receive(
        request: web.Request,
        dest: pathlib.Path,
        *,
        offset: int = 0,
        limit: int = MAX_REQUEST_BYTES,
        running: ContentHasher | None = None,
    ) -> _Received:
        """Stream the request body into ``dest`` at ``offset``; hash it on the way."""
        hasher = ContentHasher()
        size = 0
        too_large = False
        with _open_at(dest, offset) as out:
            async for chunk in request.content.iter_chunked(STREAM_CHUNK):
                size += len(chunk)
                if too_large or size > limit:
                    too_large = True
                    continue
                out.write(chunk)
                hasher.update(chunk)
                if running is not None:
                    running.update(chunk)
        return _Received(size=size, content_hash=hasher.hexdigest(), too_large=too_large)

    def _new_incoming(self) -> pathlib.Path:
        return self.storage_dir / "incoming" / secrets.token_hex(16)

    def _session(self, account: _Account, session_id: str, tags: Sequence[str]) -> _Session:
        session = self._sessions.get(session_id)
        if (
            session is None
            or session.email.lower() != account.email.lower()
            or self._clock() - session.created > SESSION_LIFETIME
        ):
            lookup = {".tag": "not_found"}
            raise self._route_error(
                [*tags, "not_found"], {".tag": tags[0], tags[0]: lookup} if tags else lookup
            )
        return session

    async def _upload(self, request: web.Request) -> web.Response:
        account = self._authenticate(request, WRITE_SCOPE)
        arg, route = self._api_arg(request, _UPLOAD_FIELDS)
        commit = self._parse_commit(arg, route, "")
        expected = _optional_hash(arg, route)
        async with self._writing(account), self._committing(account):
            incoming = self._new_incoming()
            try:
                got = await self._receive(request, incoming)
                if got.too_large:
                    raise self._route_error(["payload_too_large"], {".tag": "payload_too_large"})
                if expected is not None and got.content_hash != expected:
                    raise self._route_error(
                        ["content_hash_mismatch"], {".tag": "content_hash_mismatch"}
                    )
                record = self._commit(
                    account,
                    commit,
                    incoming,
                    size=got.size,
                    digest=got.content_hash,
                    session_id=None,
                )
            finally:
                incoming.unlink(missing_ok=True)
        return _json_response(record.metadata())

    async def _session_start(self, request: web.Request) -> web.Response:
        account = self._authenticate(request, WRITE_SCOPE)
        arg, route = self._api_arg(request, _START_FIELDS)
        close = _require_bool(arg, "close", route)
        expected = _optional_hash(arg, route)
        session_type = arg.get("session_type") or "sequential"
        if isinstance(session_type, dict):
            session_type = session_type.get(".tag")
        if session_type not in ("sequential", "concurrent"):
            raise _bad_input(route, 'HTTP header "Dropbox-API-Arg": session_type: unknown tag')
        concurrent = session_type == "concurrent"
        if concurrent and close:
            raise self._route_error(
                ["concurrent_session_close_not_allowed"],
                {".tag": "concurrent_session_close_not_allowed"},
            )
        async with self._writing(account):
            session_id = "pid_upload_session:" + secrets.token_urlsafe(40)
            directory = self.storage_dir / "sessions" / secrets.token_hex(16)
            directory.mkdir(parents=True)
            session = _Session(
                id=session_id,
                email=account.email,
                directory=directory,
                concurrent=concurrent,
                created=self._clock(),
            )
            try:
                got = await self._receive(request, session.data_path, running=session.hasher)
                if got.too_large:
                    raise self._route_error(["payload_too_large"], {".tag": "payload_too_large"})
                if concurrent and got.size:
                    raise self._route_error(
                        ["concurrent_session_data_not_allowed"],
                        {".tag": "concurrent_session_data_not_allowed"},
                    )
                if expected is not None and got.content_hash != expected:
                    raise self._route_error(
                        ["content_hash_mismatch"], {".tag": "content_hash_mismatch"}
                    )
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            session.offset = got.size
            session.closed = close
            self._sessions[session_id] = session
        return _json_response({"session_id": session_id})

    async def _session_append(self, request: web.Request) -> web.Response:
        account = self._authenticate(request, WRITE_SCOPE)
        arg, route = self._api_arg(request, _APPEND_FIELDS)
        session_id, offset = self._parse_cursor(arg, route)
        close = _require_bool(arg, "close", route)
        expected = _optional_hash(arg, route)
        async with self._writing(account):
            session = self._session(account, session_id, [])
            if session.concurrent:
                await self._append_concurrent(request, session, offset, close, expected)
            else:
                await self._append_sequential(request, session, offset, close, expected)
        return _json_response(None)

    async def _append_sequential(
        self,
        request: web.Request,
        session: _Session,
        offset: int,
        close: bool,
        expected: str | None,
    ) -> None:
        async with session.lock:
            if session.closed:
                raise self._route_error(["closed"], {".tag": "closed"})
            if offset != session.offset:
                raise self._route_error(
                    ["incorrect_offset"],
                    {".tag": "incorrect_offset", "correct_offset": session.offset},
                )
            running = session.hasher.copy()
            got = await self._receive(request, session.data_path, offset=offset, running=running)
            problem: tuple[str, ...] = ()
            if got.too_large:
                problem = ("payload_too_large",)
            elif offset + got.size > MAX_FILE_BYTES:
                problem = ("too_large",)
            elif expected is not None and got.content_hash != expected:
                problem = ("content_hash_mismatch",)
            if problem:
                with session.data_path.open("r+b") as data:
                    data.truncate(offset)
                raise self._route_error(problem, {".tag": problem[0]})
            session.offset = offset + got.size
            session.hasher = running
            session.closed = close

    async def _append_concurrent(
        self,
        request: web.Request,
        session: _Session,
        offset: int,
        close: bool,
        expected: str | None,
    ) -> None:
        if session.total is not None and (offset >= session.total or close):
            raise self._route_error(["closed"], {".tag": "closed"})
        if offset % BLOCK_SIZE:
            raise self._route_error(
                ["concurrent_session_invalid_offset"],
                {".tag": "concurrent_session_invalid_offset"},
            )
        incoming = self._new_incoming()
        try:
            got = await self._receive(request, incoming)
            problem = ""
            if got.too_large:
                problem = "payload_too_large"
            elif not close and got.size % BLOCK_SIZE:
                problem = "concurrent_session_invalid_data_size"
            elif expected is not None and got.content_hash != expected:
                problem = "content_hash_mismatch"
            elif session.total is not None and offset + got.size > session.total:
                problem = "closed"
            if problem:
                raise self._route_error([problem], {".tag": problem})
            incoming.replace(session.chunk_path(offset))
        finally:
            incoming.unlink(missing_ok=True)
        session.chunks[offset] = got.size
        if close:
            session.total = offset + got.size
            session.closed = True

    async def _session_finish(self, request: web.Request) -> web.Response:
        account = self._authenticate(request, WRITE_SCOPE)
        arg, route = self._api_arg(request, _FINISH_FIELDS)
        session_id, offset = self._parse_cursor(arg, route)
        commit_arg = arg.get("commit")
        if not isinstance(commit_arg, dict):
            raise _bad_input(route, "HTTP header \"Dropbox-API-Arg\": missing field 'commit'")
        _check_fields(commit_arg, _COMMIT_FIELDS, route, "commit: ")
        commit = self._parse_commit(commit_arg, route, "commit: ")
        expected = _optional_hash(arg, route)
        async with self._writing(account), self._committing(account):
            session = self._session(account, session_id, ["lookup_failed"])
            async with session.lock:
                if session.concurrent:
                    size, digest, received = await self._finish_concurrent(request, session, offset)
                else:
                    size, digest, received = await self._finish_sequential(request, session, offset)
                try:
                    # Like every upload call, finish's content_hash covers the bytes of this call
                    # only (the SDK fills it in that way); the whole file's hash comes back in
                    # the FileMetadata.
                    if expected is not None and received != expected:
                        raise self._route_error(
                            ["content_hash_mismatch"], {".tag": "content_hash_mismatch"}
                        )
                    record = self._commit(
                        account,
                        commit,
                        session.data_path,
                        size=size,
                        digest=digest,
                        session_id=session.id,
                    )
                except _Abort:
                    if not session.concurrent:  # undo the bytes this call appended
                        with session.data_path.open("r+b") as data:
                            data.truncate(session.offset)
                    raise
                self._sessions.pop(session.id, None)
                shutil.rmtree(session.directory, ignore_errors=True)
        return _json_response(record.metadata())

    async def _finish_sequential(
        self, request: web.Request, session: _Session, offset: int
    ) -> tuple[int, str, str]:
        if offset != session.offset:
            raise self._route_error(
                ["lookup_failed", "incorrect_offset"],
                {
                    ".tag": "lookup_failed",
                    "lookup_failed": {".tag": "incorrect_offset", "correct_offset": session.offset},
                },
            )
        running = session.hasher.copy()
        got = await self._receive(request, session.data_path, offset=offset, running=running)
        problem: tuple[str, ...] = ()
        if got.too_large:
            problem = ("payload_too_large",)
        elif session.closed and got.size:
            problem = ("lookup_failed", "closed")
        elif offset + got.size > MAX_FILE_BYTES:
            problem = ("lookup_failed", "too_large")
        if problem:
            with session.data_path.open("r+b") as data:
                data.truncate(offset)
            error: dict[str, object] = {".tag": problem[0]}
            if len(problem) > 1:
                error[problem[0]] = {".tag": problem[1]}
            raise self._route_error(problem, error)
        return offset + got.size, running.hexdigest(), got.content_hash

    async def _finish_concurrent(
        self, request: web.Request, session: _Session, offset: int
    ) -> tuple[int, str, str]:
        got = await self._receive(request, self._new_incoming_discard(session))
        if got.size:
            raise self._route_error(
                ["concurrent_session_data_not_allowed"],
                {".tag": "concurrent_session_data_not_allowed"},
            )
        if session.total is None:
            raise self._route_error(
                ["concurrent_session_not_closed"], {".tag": "concurrent_session_not_closed"}
            )
        if offset != session.total:
            raise self._route_error(
                ["lookup_failed", "incorrect_offset"],
                {
                    ".tag": "lookup_failed",
                    "lookup_failed": {".tag": "incorrect_offset", "correct_offset": session.total},
                },
            )
        return session.total, await self._assemble_concurrent(session), got.content_hash

    async def _assemble_concurrent(self, session: _Session) -> str:
        """A closed concurrent session's chunks, in order, into its data file: the hash."""
        assert session.total is not None
        position = 0
        ordered: list[pathlib.Path] = []
        while position < session.total:
            size = session.chunks.get(position)
            if size is None or (size == 0 and position < session.total):
                raise self._route_error(
                    ["concurrent_session_missing_data"],
                    {".tag": "concurrent_session_missing_data"},
                )
            ordered.append(session.chunk_path(position))
            position += size
        return await asyncio.to_thread(_concatenate, ordered, session.data_path)

    @staticmethod
    def _new_incoming_discard(session: _Session) -> pathlib.Path:
        return session.directory / "finish-body"

    # ---------------------------------------------------------------------- batch commits

    async def _finish_batch(self, request: web.Request) -> web.Response:
        """``upload_session/finish_batch_v2``: commit closed sessions, in order."""
        account = self._authenticate(request, WRITE_SCOPE)
        arg, route = await self._rpc_arg(request, frozenset({"entries"}))
        entries = arg.get("entries")
        if not isinstance(entries, list):
            raise _bad_input(route, "request body: missing required field 'entries'")
        if len(entries) > MAX_BATCH_ENTRIES:
            raise _bad_input(
                route, f"request body: entries: list has more than {MAX_BATCH_ENTRIES} items"
            )
        parsed = [self._batch_entry(entry, index, route) for index, entry in enumerate(entries)]
        self._commit_begins(account)
        if self.batch_async <= 0:
            try:
                results = await self._commit_batch(account, parsed)
            finally:
                self._commit_ends(account)
            return _json_response({"entries": results})
        task = asyncio.create_task(self._commit_batch_then_end(account, parsed))
        job_id = "dbjid:" + secrets.token_urlsafe(48)
        self._batch_jobs[job_id] = _BatchJob(account.email, task, self.batch_async)
        return _json_response({".tag": "async_job_id", "async_job_id": job_id})

    async def _finish_batch_check(self, request: web.Request) -> web.Response:
        """``upload_session/finish_batch/check``: ``in_progress``, or ``complete`` and the
        entries' results; an id this account does not know is ``invalid_async_job_id``."""
        account = self._authenticate(request, WRITE_SCOPE)
        arg, route = await self._rpc_arg(request, frozenset({"async_job_id"}))
        job_id = arg.get("async_job_id")
        if not isinstance(job_id, str) or not job_id:
            raise _bad_input(route, "request body: async_job_id: expected a non-empty string")
        job = self._batch_jobs.get(job_id)
        if job is None or job.email != account.email:
            raise self._route_error(["invalid_async_job_id"], {".tag": "invalid_async_job_id"})
        if job.polls_left > 0 or not job.task.done():
            job.polls_left -= 1
            return _json_response({".tag": "in_progress"})
        return _json_response({".tag": "complete", "entries": job.task.result()})

    async def _commit_batch_then_end(
        self, account: _Account, entries: list[tuple[str, int, _Commit, str | None]]
    ) -> list[dict[str, object]]:
        try:
            await asyncio.sleep(0)  # the launch is answered first, as Dropbox does
            return await self._commit_batch(account, entries)
        finally:
            self._commit_ends(account)

    def _batch_entry(
        self, entry: object, index: int, route: str
    ) -> tuple[str, int, _Commit, str | None]:
        """One ``UploadSessionFinishArg`` of a batch: session id, offset, commit, hash."""
        try:
            if not isinstance(entry, dict):
                raise _bad_input(route, 'HTTP header "Dropbox-API-Arg": expected object')
            _check_fields(entry, _FINISH_FIELDS, route, "")
            session_id, offset = self._parse_cursor(entry, route)
            commit_arg = entry.get("commit")
            if not isinstance(commit_arg, dict):
                raise _bad_input(route, "HTTP header \"Dropbox-API-Arg\": missing field 'commit'")
            _check_fields(commit_arg, _COMMIT_FIELDS, route, "commit: ")
            commit = self._parse_commit(commit_arg, route, "commit: ")
            expected = _optional_hash(entry, route)
        except _Abort as abort:  # the single-call checks, worded for an RPC body
            text = abort.response.text or ""
            text = text.replace(
                'HTTP header "Dropbox-API-Arg": ', f"request body: entries[{index}]."
            )
            raise _Abort(_text_response(text)) from None
        return session_id, offset, commit, expected

    async def _commit_batch(
        self, account: _Account, entries: list[tuple[str, int, _Commit, str | None]]
    ) -> list[dict[str, object]]:
        results: list[dict[str, object]] = []
        for session_id, offset, commit, expected in entries:
            try:
                record = await self._commit_entry(account, session_id, offset, commit, expected)
            except _Abort as abort:
                body = json.loads(abort.response.body or b"{}")  # type: ignore[arg-type]
                results.append({".tag": "failure", "failure": body.get("error", {})})
                continue
            results.append({".tag": "success", **record.metadata()})
        return results

    async def _commit_entry(
        self, account: _Account, session_id: str, offset: int, commit: _Commit, expected: str | None
    ) -> FileRecord:
        """Commit one closed session, or raise its ``UploadSessionFinishError`` as an abort."""
        for injected in self._entry_failures:
            if injected.matches(commit.path):
                injected.remaining -= 1
                if injected.remaining <= 0:
                    self._entry_failures.remove(injected)
                raise self._route_error(injected.tags, injected.failure())
        session = self._session(account, session_id, ["lookup_failed"])
        async with session.lock:
            if not session.closed:
                raise self._lookup_failed("not_closed")
            size = session.total if session.concurrent else session.offset
            if offset != size:
                raise self._lookup_failed("incorrect_offset", correct_offset=size)
            if expected is not None and expected != _EMPTY_HASH:  # the bytes of this entry: none
                raise self._route_error(
                    ["content_hash_mismatch"], {".tag": "content_hash_mismatch"}
                )
            digest = (
                await self._assemble_concurrent(session)
                if session.concurrent
                else session.hasher.hexdigest()
            )
            record = self._commit(
                account, commit, session.data_path, size=size, digest=digest, session_id=session.id
            )
            self._sessions.pop(session.id, None)
            shutil.rmtree(session.directory, ignore_errors=True)
        return record

    def _lookup_failed(self, tag: str, **extra: object) -> _Abort:
        return self._route_error(
            ["lookup_failed", tag],
            {".tag": "lookup_failed", "lookup_failed": {".tag": tag, **extra}},
        )

    def _commit(
        self,
        account: _Account,
        commit: _Commit,
        source: pathlib.Path,
        *,
        size: int,
        digest: str,
        session_id: str | None,
    ) -> FileRecord:
        """Place ``source`` at ``commit.path`` (moving it), or raise the Dropbox write error."""
        upload_session_id = session_id or "pid_upload_session:" + secrets.token_urlsafe(40)

        def write_error(*reason: str) -> _Abort:
            nested: dict[str, object] = {".tag": reason[-1]}
            for tag in reversed(reason[:-1]):
                nested = {".tag": tag, tag: nested}
            if session_id is None:  # files/upload: UploadError.path is UploadWriteFailed
                error: dict[str, object] = {
                    ".tag": "path",
                    "reason": nested,
                    "upload_session_id": upload_session_id,
                }
            else:  # upload_session/finish: UploadSessionFinishError.path is a WriteError
                error = {".tag": "path", "path": nested}
            return self._route_error(["path", *reason], error)

        target = self._target(account, commit, digest, write_error)
        self.commits[account.email] += 1
        if isinstance(target, FileRecord):
            return target  # same content: nothing written
        path_display, path_lower, existing = target
        return self._store(
            account, commit, source, path_display, path_lower, existing, size, digest
        )

    def _target(
        self,
        account: _Account,
        commit: _Commit,
        digest: str,
        write_error: Callable[..., _Abort],
    ) -> FileRecord | tuple[str, str, FileRecord | None]:
        """Where the commit lands: ``(path_display, path_lower, record it replaces)``, or the
        existing record when it already holds the same content."""
        parts = commit.path.split("/")[1:]
        if not parts or any(part in ("", ".", "..") for part in parts):
            raise write_error("malformed_path")
        if any(ord(ch) < 0x20 for ch in commit.path):
            raise write_error("malformed_path")
        # The parent folders, keeping the case of folders that already exist.
        parent_display = ""
        for part in parts[:-1]:
            candidate = f"{parent_display}/{part}"
            lower = candidate.lower()
            if lower in account.files:
                raise write_error("conflict", "file")
            parent_display = account.folders.get(lower, candidate)
        name = parts[-1]
        path_display = f"{parent_display}/{name}"
        path_lower = path_display.lower()
        existing = account.files.get(path_lower)
        if path_lower in account.folders:
            if not commit.autorename:
                raise write_error("conflict", "folder")
            return (*self._free_name(account, parent_display, name), None)
        if existing is None:
            return path_display, path_lower, None
        if existing.content_hash == digest:
            return existing
        rev_matches = commit.mode == "update" and commit.update_rev == existing.rev
        if commit.mode == "overwrite" or rev_matches:
            return path_display, path_lower, existing
        if commit.autorename:
            return (*self._free_name(account, parent_display, name), None)
        raise write_error("conflict", "file")

    def _store(
        self,
        account: _Account,
        commit: _Commit,
        source: pathlib.Path,
        path_display: str,
        path_lower: str,
        replaced: FileRecord | None,
        size: int,
        digest: str,
    ) -> FileRecord:
        blob = self.storage_dir / "blobs" / secrets.token_hex(16)
        source.replace(blob)
        now = _now_iso()
        record = FileRecord(
            path_display=path_display,
            path_lower=path_lower,
            name=path_display.rsplit("/", 1)[-1],
            id=replaced.id if replaced else "id:" + secrets.token_urlsafe(16),
            rev="015" + secrets.token_hex(8),
            size=size,
            content_hash=digest,
            client_modified=commit.client_modified or now,
            server_modified=now,
            blob_path=blob,
        )
        if replaced is not None:
            replaced.blob_path.unlink(missing_ok=True)
        # Register the parent folders.
        folder = ""
        for part in path_display.split("/")[1:-1]:
            folder = f"{folder}/{part}"
            account.folders.setdefault(folder.lower(), folder)
        account.files[path_lower] = record
        log.info("stand-in stored %s bytes for account %s", size, account.account_id)
        return record

    @staticmethod
    def _free_name(account: _Account, parent_display: str, name: str) -> tuple[str, str]:
        n = 1
        while True:
            display = f"{parent_display}/{_autorename_candidate(name, n)}"
            lower = display.lower()
            if lower not in account.files and lower not in account.folders:
                return display, lower
            n += 1

    # ------------------------------------------------------------------------- control routes

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise _Abort(_json_response({"error": "body must be JSON"}, status=400)) from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise _Abort(_json_response({"error": "body must be a JSON object"}, status=400))
        return body

    def _account_from_path(self, request: web.Request) -> _Account:
        try:
            return self._account(request.match_info["email"])
        except KeyError:
            raise _Abort(_text_response("no such account\n", status=404)) from None

    async def _ctl_accounts(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "email": account.email,
                    "account_id": account.account_id,
                    "display_name": account.display_name,
                    "files": len(account.files),
                }
                for account in self._accounts.values()
            ]
        )

    async def _ctl_add_account(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        email = body.get("email")
        display_name = body.get("display_name")
        if not isinstance(email, str) or "@" not in email:
            return web.json_response({"error": "email is required"}, status=400)
        if display_name is not None and not isinstance(display_name, str):
            return web.json_response({"error": "display_name must be a string"}, status=400)
        return web.json_response({"account_id": self.add_account(email, display_name)})

    async def _ctl_add_app(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        client_id, client_secret = body.get("client_id"), body.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            return web.json_response({"error": "client_id and client_secret required"}, status=400)
        self.add_app(client_id, client_secret)
        return web.json_response({"ok": True})

    async def _ctl_fault(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        endpoint, kind = body.get("endpoint", "*"), body.get("kind")
        count, retry_after = body.get("count", 1), body.get("retry_after")
        if (
            not isinstance(endpoint, str)
            or not isinstance(kind, str)
            or not isinstance(count, int)
            or not (retry_after is None or isinstance(retry_after, int | float))
        ):
            return web.json_response({"error": "endpoint, kind, count, retry_after"}, status=400)
        try:
            self.inject_fault(
                endpoint, kind, count, None if retry_after is None else float(retry_after)
            )
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _ctl_expire(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        email = body.get("email")
        if email is not None and not isinstance(email, str):
            return web.json_response({"error": "email must be a string"}, status=400)
        self.expire_access_tokens(email)
        return web.json_response({"ok": True})

    async def _ctl_revoke(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        email = body.get("email")
        if not isinstance(email, str):
            return web.json_response({"error": "email is required"}, status=400)
        self.revoke_all(email)
        return web.json_response({"ok": True})

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.calls))

    async def _ctl_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "calls": dict(self.calls),
                "max_parallel_writes": dict(self.max_parallel_writes),
                "max_parallel_commits": dict(self.max_parallel_commits),
                "commits": dict(self.commits),
            }
        )

    async def _ctl_entry_failure(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        name, failure, count = body.get("name"), body.get("failure"), body.get("count", 1)
        if not isinstance(name, str) or not isinstance(failure, str) or not isinstance(count, int):
            return web.json_response({"error": "name, failure, count"}, status=400)
        try:
            self.inject_entry_failure(name, failure, count)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _ctl_files_json(self, request: web.Request) -> web.Response:
        account = self._account_from_path(request)
        return web.json_response(
            [
                {
                    "path_display": record.path_display,
                    "size": record.size,
                    "content_hash": record.content_hash,
                    "rev": record.rev,
                    "id": record.id,
                    "server_modified": record.server_modified,
                }
                for record in sorted(account.files.values(), key=lambda r: r.path_lower)
            ]
        )

    async def _ctl_content(self, request: web.Request) -> web.StreamResponse:
        account = self._account_from_path(request)
        record = account.files.get(request.query.get("path", "").lower())
        if record is None:
            return _text_response("no such file\n", status=404)
        return web.FileResponse(
            record.blob_path, headers={"Content-Type": "application/octet-stream"}
        )

    async def _index_page(self, request: web.Request) -> web.Response:
        esc = html.escape
        rows = "".join(
            f'<li><a href="/_standin/accounts/{quote(a.email, safe="@")}/files">'
            f"{esc(a.display_name)} ({esc(a.email)})</a>: {len(a.files)} file(s)</li>"
            for a in sorted(self._accounts.values(), key=lambda a: a.email.lower())
        )
        body = f"<ul>{rows}</ul>" if rows else "<p>No accounts yet.</p>"
        return _html_response(
            _page("Dropbox stand-in", f"<h1>Dropbox stand-in accounts</h1>{body}")
        )

    async def _files_page(self, request: web.Request) -> web.Response:
        account = self._account_from_path(request)
        esc = html.escape
        base = f"/_standin/accounts/{quote(account.email, safe='@')}/content?path="
        rows = "".join(
            f'<tr><td><a href="{base}{quote(r.path_display, safe="")}">'
            f"{esc(r.path_display)}</a></td><td>{r.size}</td>"
            f"<td><code>{r.content_hash[:16]}…</code></td><td>{esc(r.server_modified)}</td></tr>"
            for r in sorted(account.files.values(), key=lambda r: r.path_lower)
        )
        table = (
            '<table><caption>Files</caption><thead><tr><th scope="col">Path</th>'
            '<th scope="col">Size (bytes)</th><th scope="col">Content hash</th>'
            f'<th scope="col">Stored</th></tr></thead><tbody>{rows}</tbody></table>'
            if rows
            else "<p>No files yet.</p>"
        )
        title = f"Dropbox of {esc(account.display_name)}"
        content = (
            f"<h1>{title}</h1><p>{esc(account.email)} · <code>{esc(account.account_id)}</code></p>"
            f'{table}<p><a href="/">All accounts</a></p>'
        )
        return _html_response(_page(title, content))


def _page(title: str, content: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"</head><body><main>{content}</main></body></html>\n"
    )


def _open_at(dest: pathlib.Path, offset: int) -> BinaryIO:
    """``dest`` opened for writing at ``offset``, anything after it cut off."""
    out = dest.open("r+b") if dest.exists() else dest.open("wb")
    out.seek(offset)
    out.truncate()
    return out


def _concatenate(parts: Sequence[pathlib.Path], dest: pathlib.Path) -> str:
    hasher = ContentHasher()
    with dest.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while chunk := src.read(STREAM_CHUNK):
                    out.write(chunk)
                    hasher.update(chunk)
    return hasher.hexdigest()


# ------------------------------------------------------------------------------------ process


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox.dropbox_standin", description="Run the local Dropbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--storage-dir", type=pathlib.Path, default=None)
    parser.add_argument("--app", action="append", default=[], metavar="KEY:SECRET")
    parser.add_argument("--account", action="append", default=[], metavar="EMAIL")
    parser.add_argument("--token-lifetime", type=float, default=14400.0)
    parser.add_argument("--concurrent-write-limit", action="store_true")
    args = parser.parse_args(argv)
    for app in args.app:
        if ":" not in app:
            parser.error("--app takes KEY:SECRET")
    return args


async def _serve(args: argparse.Namespace, storage_dir: pathlib.Path) -> None:
    apps = dict(app.split(":", 1) for app in args.app)
    standin = DropboxStandin(
        storage_dir,
        apps=apps,
        token_lifetime=args.token_lifetime,
        concurrent_write_limit=args.concurrent_write_limit,
    )
    for email in args.account:
        standin.add_account(email)
    runner = web.AppRunner(standin.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        host = args.host if ":" not in args.host else f"[{args.host}]"
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        sys.stdout.write(f"READY http://{host}:{port}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("BOT_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.storage_dir is not None:
        asyncio.run(_serve(args, args.storage_dir))
        return 0
    with tempfile.TemporaryDirectory(prefix="dropbox-standin-") as tmp:
        asyncio.run(_serve(args, pathlib.Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
