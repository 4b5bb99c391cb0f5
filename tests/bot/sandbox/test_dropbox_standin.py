"""The Dropbox stand-in, through real HTTP (and through the official SDK over TLS)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import pathlib
import random
import secrets
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from bot.destinations.dropbox_wire import (
    BLOCK_SIZE,
    content_hash,
    encode_api_arg,
    error_from_response,
)
from bot.errors import (
    ApiError,
    ContentHashMismatch,
    IncorrectOffset,
    InvalidToken,
    RateLimited,
    ServerError,
    TokenExpired,
)
from bot.sandbox.dropbox_standin import DropboxStandin

APP_KEY = "app-key"
APP_SECRET = "app-secret"
REDIRECT = "http://127.0.0.1:9/oauth/callback"
SCOPES = ["account_info.read", "files.content.write"]
ANA = "ana.lima@example.com"
BEN = "ben@example.com"
MiB = 1024 * 1024
ROOT = pathlib.Path(__file__).resolve().parents[3]

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
def standin(tmp_path: pathlib.Path) -> DropboxStandin:
    return DropboxStandin(tmp_path / "dropbox", apps={APP_KEY: APP_SECRET})


@pytest.fixture
async def client(aiohttp_client: Any, standin: DropboxStandin) -> Client:
    result: Client = await aiohttp_client(standin.app())
    return result


@pytest.fixture
def token(standin: DropboxStandin) -> str:
    return standin.issue_tokens(APP_KEY, ANA, SCOPES)[0]


def data_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


def basic(key: str = APP_KEY, secret: str = APP_SECRET) -> dict[str, str]:
    raw = base64.b64encode(f"{key}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def content_headers(token: str, arg: object) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/octet-stream",
        "Dropbox-API-Arg": encode_api_arg(arg),
    }


async def post_content(
    client: Client, endpoint: str, token: str, arg: object, data: Any = b""
) -> aiohttp.ClientResponse:
    if isinstance(data, bytes) and len(data) > MiB:
        data = io.BytesIO(data)  # aiohttp warns about big raw bytes bodies
    return await client.post(f"/2/files/{endpoint}", headers=content_headers(token, arg), data=data)


async def upload(
    client: Client, token: str, path: str, data: bytes, **extra: object
) -> aiohttp.ClientResponse:
    arg = {"path": path, "mode": "add", "autorename": False, "mute": False, **extra}
    return await post_content(client, "upload", token, arg, data)


async def as_error(resp: aiohttp.ClientResponse) -> Exception:
    return error_from_response(resp.status, dict(resp.headers), await resp.read())


async def authorize(
    client: Client,
    email: str,
    *,
    challenge: str | None = None,
    offline: bool = True,
    state: str = "st-1",
) -> str:
    params = {
        "client_id": APP_KEY,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": " ".join(SCOPES),
        "state": state,
    }
    if offline:
        params["token_access_type"] = "offline"
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    page = await client.get("/oauth2/authorize", params=params)
    assert page.status == 200
    assert page.content_type == "text/html"
    text = await page.text()
    for scope in SCOPES:
        assert scope in text
    assert 'action="/oauth2/authorize/decide"' in text
    decided = await client.post(
        "/oauth2/authorize/decide",
        data={**params, "email_other": email, "decision": "allow"},
        allow_redirects=False,
    )
    assert decided.status == 302
    location = URL(decided.headers["Location"])
    assert str(location.with_query(None)) == REDIRECT
    assert location.query["state"] == state
    return location.query["code"]


async def exchange(client: Client, code: str, verifier: str | None, **extra: str) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    if verifier is not None:
        form["code_verifier"] = verifier
    form |= extra
    return await client.post("/oauth2/token", data=form, headers=basic())


# ------------------------------------------------------------------------------------ OAuth


async def test_code_flow_with_pkce(client: Client, standin: DropboxStandin) -> None:
    standin.add_account(BEN, "Ben Okafor")
    verifier, challenge = pkce()
    page = await client.get(
        "/oauth2/authorize",
        params={
            "client_id": APP_KEY,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "account_info.read",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    text = await page.text()
    assert BEN in text
    assert 'type="radio"' in text
    assert 'value="allow"' in text
    assert 'value="deny"' in text

    code = await authorize(client, ANA, challenge=challenge)
    resp = await exchange(client, code, verifier)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    body = await resp.json()
    assert set(body) == {
        "access_token",
        "expires_in",
        "token_type",
        "scope",
        "refresh_token",
        "account_id",
        "uid",
    }
    assert body["access_token"].startswith("sl.")
    assert body["refresh_token"].startswith("r.")
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 14400
    assert body["scope"] == " ".join(SCOPES)
    assert body["account_id"] == standin.add_account(ANA)
    assert standin.calls["token:authorization_code"] == 1

    account = await client.post(
        "/2/users/get_current_account",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert account.status == 200
    assert account.headers["Content-Type"] == "application/json"
    info = await account.json()
    assert info["email"] == ANA
    assert info["account_id"] == body["account_id"]
    assert info["name"]["display_name"] == "Ana Lima"
    assert info["email_verified"] is True
    assert info["account_type"] == {".tag": "basic"}


async def test_online_flow_without_pkce_has_no_refresh_token(client: Client) -> None:
    code = await authorize(client, ANA, offline=False)
    resp = await client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": APP_KEY,
            "client_secret": APP_SECRET,
        },
    )
    assert resp.status == 200
    assert "refresh_token" not in await resp.json()


async def test_deny_redirects_with_access_denied(client: Client) -> None:
    params = {
        "client_id": APP_KEY,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "files.content.write",
        "state": "xyz",
    }
    resp = await client.post(
        "/oauth2/authorize/decide",
        data={**params, "email": ANA, "decision": "deny"},
        allow_redirects=False,
    )
    assert resp.status == 302
    query = URL(resp.headers["Location"]).query
    assert query["error"] == "access_denied"
    assert query["error_description"]
    assert query["state"] == "xyz"
    assert "code" not in query


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "nope"},
        {"response_type": "token"},
        {"redirect_uri": ""},
        {"scope": ""},
        {"scope": "files.content.write made.up"},
        {"state": "s" * 501},
        {"code_challenge_method": "plain"},
    ],
)
async def test_authorize_rejects_bad_requests(client: Client, change: dict[str, str]) -> None:
    _, challenge = pkce()
    params = {
        "client_id": APP_KEY,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "files.content.write",
        "state": "s" * 500,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    } | change
    resp = await client.get("/oauth2/authorize", params=params)
    assert resp.status == 400
    assert resp.content_type == "text/plain"


async def test_code_errors(client: Client) -> None:
    verifier, challenge = pkce()
    code = await authorize(client, ANA, challenge=challenge)
    wrong = await exchange(client, code, pkce()[0])
    assert wrong.status == 400
    assert (await wrong.json())["error"] == "invalid_grant"
    # The code was spent by the failed attempt.
    reused = await exchange(client, code, verifier)
    assert await reused.json() == {
        "error": "invalid_grant",
        "error_description": "code doesn't exist or has expired",
    }

    code = await authorize(client, ANA, challenge=challenge)
    ok = await exchange(client, code, verifier)
    assert ok.status == 200
    again = await exchange(client, code, verifier)
    assert (await again.json())["error_description"] == "code doesn't exist or has expired"

    code = await authorize(client, ANA, challenge=challenge)
    mismatch = await exchange(client, code, verifier, redirect_uri="http://127.0.0.1:9/other")
    assert await mismatch.json() == {
        "error": "invalid_grant",
        "error_description": "redirect_uri mismatch",
    }


async def test_bad_client(client: Client) -> None:
    code = await authorize(client, ANA)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    via_basic = await client.post("/oauth2/token", data=form, headers=basic(secret="wrong"))
    assert via_basic.status == 401
    assert (await via_basic.json())["error"] == "invalid_client"
    via_body = await client.post(
        "/oauth2/token", data={**form, "client_id": APP_KEY, "client_secret": "wrong"}
    )
    assert via_body.status == 400
    assert (await via_body.json())["error"] == "invalid_client"
    unknown = await client.post("/oauth2/token", data=form, headers=basic(key="who"))
    assert (await unknown.json())["error"] == "invalid_client"


async def test_refresh_and_revoke(client: Client, standin: DropboxStandin) -> None:
    access, refresh = standin.issue_tokens(APP_KEY, ANA, SCOPES)
    resp = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        headers=basic(),
    )
    body = await resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["access_token"] != access
    assert standin.calls["token:refresh_token"] == 1

    revoked = await client.post(
        "/2/auth/token/revoke", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert revoked.status == 200
    assert await revoked.read() == b"null"
    assert standin.calls["/2/auth/token/revoke"] == 1
    for old in (access, body["access_token"]):
        dead = await client.post(
            "/2/users/get_current_account", headers={"Authorization": f"Bearer {old}"}
        )
        assert dead.status == 401
        assert isinstance(await as_error(dead), InvalidToken)
    again = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        headers=basic(),
    )
    assert again.status == 400
    assert await again.json() == {
        "error": "invalid_grant",
        "error_description": "refresh token is invalid or revoked",
    }


async def test_expire_and_revoke_all(client: Client, standin: DropboxStandin) -> None:
    access, refresh = standin.issue_tokens(APP_KEY, ANA, SCOPES)
    standin.expire_access_tokens(ANA)
    resp = await client.post(
        "/2/users/get_current_account", headers={"Authorization": f"Bearer {access}"}
    )
    assert resp.status == 401
    assert "WWW-Authenticate" in resp.headers
    assert (await resp.json())["error"] == {".tag": "expired_access_token"}
    assert isinstance(await as_error(resp), TokenExpired)
    standin.revoke_all(ANA)
    refreshed = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        headers=basic(),
    )
    assert (await refreshed.json())["error"] == "invalid_grant"


async def test_token_lifetime(tmp_path: pathlib.Path, aiohttp_client: Any) -> None:
    standin = DropboxStandin(tmp_path, apps={APP_KEY: APP_SECRET}, token_lifetime=0.05)
    client: Client = await aiohttp_client(standin.app())
    access, _ = standin.issue_tokens(APP_KEY, ANA, SCOPES)
    await asyncio.sleep(0.1)
    resp = await client.post(
        "/2/users/get_current_account", headers={"Authorization": f"Bearer {access}"}
    )
    assert isinstance(await as_error(resp), TokenExpired)


async def test_account_body_rules_and_scope(
    client: Client, standin: DropboxStandin, token: str
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    null = await client.post(
        "/2/users/get_current_account",
        data=b"null",
        headers={**auth, "Content-Type": "application/json"},
    )
    assert null.status == 200
    empty_object = await client.post(
        "/2/users/get_current_account",
        data=b"{}",
        headers={**auth, "Content-Type": "application/json"},
    )
    assert empty_object.status == 400
    assert empty_object.content_type == "text/plain"
    no_auth = await client.post("/2/users/get_current_account")
    assert no_auth.status == 400

    narrow, _ = standin.issue_tokens(APP_KEY, BEN, ["files.content.write"])
    missing = await client.post(
        "/2/users/get_current_account", headers={"Authorization": f"Bearer {narrow}"}
    )
    assert missing.status == 401
    assert (await missing.json())["error"] == {
        ".tag": "missing_scope",
        "required_scope": "account_info.read",
    }
    unknown = await client.post(
        "/2/users/get_current_account", headers={"Authorization": "Bearer sl.unknown"}
    )
    assert (await unknown.json())["error"] == {".tag": "invalid_access_token"}


# ---------------------------------------------------------------------------------- uploads


async def test_small_upload(client: Client, standin: DropboxStandin, token: str) -> None:
    data = b"%PDF-1.7 hello"
    resp = await upload(client, token, "/Cliq Uploads/a.pdf", data, content_hash=content_hash(data))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    meta = await resp.json()
    assert meta["name"] == "a.pdf"
    assert meta["path_display"] == "/Cliq Uploads/a.pdf"
    assert meta["path_lower"] == "/cliq uploads/a.pdf"
    assert meta["size"] == len(data)
    assert meta["content_hash"] == content_hash(data)
    assert meta["id"].startswith("id:")
    assert meta["is_downloadable"] is True
    assert {"rev", "client_modified", "server_modified"} <= set(meta)
    record = standin.files(ANA)["/Cliq Uploads/a.pdf"]
    assert (record.size, record.content_hash, record.rev) == (
        len(data),
        meta["content_hash"],
        meta["rev"],
    )
    assert standin.read_file(ANA, "/cliq uploads/A.pdf") == data
    assert standin.calls["/2/files/upload"] == 1
    assert standin.max_parallel_writes[ANA] == 1


async def test_same_content_conflict_and_autorename(
    client: Client, standin: DropboxStandin, token: str
) -> None:
    first = await (await upload(client, token, "/Cliq Uploads/a.pdf", b"one")).json()
    # Same content at the same path (any case): nothing new is written.
    same = await (await upload(client, token, "/cliq uploads/A.pdf", b"one")).json()
    assert same == first
    conflict = await upload(client, token, "/CLIQ UPLOADS/a.pdf", b"two")
    assert conflict.status == 409
    body = await conflict.json()
    assert body["error_summary"].startswith("path/conflict/file/")
    assert body["error"][".tag"] == "path"
    assert body["error"]["reason"] == {".tag": "conflict", "conflict": {".tag": "file"}}
    assert "upload_session_id" in body["error"]
    assert isinstance(await as_error(conflict), ApiError)

    renamed = [
        (await (await upload(client, token, "/cliq uploads/a.pdf", d, autorename=True)).json())
        for d in (b"two", b"three")
    ]
    assert [m["path_display"] for m in renamed] == [
        "/Cliq Uploads/a (1).pdf",
        "/Cliq Uploads/a (2).pdf",
    ]
    noext = await (await upload(client, token, "/Cliq Uploads/README", b"x")).json()
    again = await upload(client, token, "/Cliq Uploads/README", b"y", autorename=True)
    assert noext["name"] == "README"
    assert (await again.json())["name"] == "README (1)"

    over = await upload(client, token, "/Cliq Uploads/a.pdf", b"four", mode="overwrite")
    meta = await over.json()
    assert meta["path_display"] == "/Cliq Uploads/a.pdf"
    assert meta["id"] == first["id"]
    assert meta["rev"] != first["rev"]
    assert standin.read_file(ANA, "/Cliq Uploads/a.pdf") == b"four"
    assert sorted(standin.files(ANA)) == [
        "/Cliq Uploads/README",
        "/Cliq Uploads/README (1)",
        "/Cliq Uploads/a (1).pdf",
        "/Cliq Uploads/a (2).pdf",
        "/Cliq Uploads/a.pdf",
    ]


async def test_upload_argument_errors(client: Client, standin: DropboxStandin, token: str) -> None:
    unknown = await upload(client, token, "/a.txt", b"x", surprise=1)
    assert unknown.status == 400
    assert unknown.content_type == "text/plain"
    text = await unknown.text()
    assert text.startswith('Error in call to API function "files/upload": ')
    assert "surprise" in text
    assert token not in text

    headers = content_headers(token, {"path": "/a.txt"})
    headers["Dropbox-API-Arg"] = '{"path": "/caf\u00e9.txt"}'
    raw = await client.post(
        "/2/files/upload",
        data=b"x",
        headers={k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()},
    )
    assert raw.status == 400

    no_type = content_headers(token, {"path": "/a.txt"})
    no_type["Content-Type"] = "application/json"
    assert (await client.post("/2/files/upload", data=b"x", headers=no_type)).status == 400
    relative = await upload(client, token, "a.txt", b"x")
    assert relative.status == 400
    malformed = await upload(client, token, "/a//b.txt", b"x")
    assert malformed.status == 409
    assert (await malformed.json())["error_summary"].startswith("path/malformed_path/")

    mismatch = await upload(client, token, "/a.txt", b"x", content_hash=content_hash(b"y"))
    assert mismatch.status == 409
    assert (await mismatch.json())["error_summary"].startswith("content_hash_mismatch/")
    assert isinstance(await as_error(mismatch), ContentHashMismatch)
    assert standin.files(ANA) == {}

    # Non-ASCII escaped as \\uXXXX is how it must arrive; it decodes to the real name.
    ok = await upload(client, token, "/Cliq Uploads/caf\u00e9 \u263a\U0001f600\x7f.txt", b"x")
    assert ok.status == 200
    assert (await ok.json())["name"] == "caf\u00e9 \u263a\U0001f600\x7f.txt"


async def test_upload_over_150_mib_is_refused(
    client: Client, standin: DropboxStandin, token: str
) -> None:
    chunk = b"\0" * (4 * MiB)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(38):  # 152 MiB, streamed
            yield chunk

    resp = await upload(client, token, "/big.bin", body())  # type: ignore[arg-type]
    assert resp.status == 409
    assert (await resp.json())["error"] == {".tag": "payload_too_large"}
    assert standin.files(ANA) == {}


# ---------------------------------------------------------------------------------- sessions


async def test_sequential_session(client: Client, standin: DropboxStandin, token: str) -> None:
    data = data_of(9 * MiB + 123)
    parts = [data[: 3 * MiB], data[3 * MiB : 8 * MiB], data[8 * MiB :]]
    start = await post_content(client, "upload_session/start", token, {"close": False}, parts[0])
    assert start.status == 200
    session_id = (await start.json())["session_id"]
    assert session_id.startswith("pid_upload_session:")

    wrong = await post_content(
        client,
        "upload_session/append_v2",
        token,
        {"cursor": {"session_id": session_id, "offset": 0}, "close": False},
        parts[1],
    )
    assert wrong.status == 409
    body = await wrong.json()
    assert body["error_summary"].startswith("incorrect_offset/")
    assert body["error"] == {".tag": "incorrect_offset", "correct_offset": 3 * MiB}
    err = error_from_response(409, {}, json.dumps(body).encode())
    assert isinstance(err, IncorrectOffset)
    assert err.correct_offset == 3 * MiB

    bad_chunk = await post_content(
        client,
        "upload_session/append_v2",
        token,
        {
            "cursor": {"session_id": session_id, "offset": 3 * MiB},
            "close": False,
            "content_hash": content_hash(b"other"),
        },
        parts[1],
    )
    assert (await bad_chunk.json())["error"] == {".tag": "content_hash_mismatch"}

    append = await post_content(
        client,
        "upload_session/append_v2",
        token,
        {"cursor": {"session_id": session_id, "offset": 3 * MiB}, "close": False},
        parts[1],
    )
    assert append.status == 200
    assert await append.read() == b"null"

    commit = {"path": "/Cliq Uploads/big.bin", "mode": "add", "autorename": True, "mute": False}
    late = await post_content(
        client,
        "upload_session/finish",
        token,
        {"cursor": {"session_id": session_id, "offset": 3 * MiB}, "commit": commit},
        parts[2],
    )
    assert late.status == 409
    late_body = await late.json()
    assert late_body["error_summary"].startswith("lookup_failed/incorrect_offset/")
    assert late_body["error"]["lookup_failed"]["correct_offset"] == 8 * MiB
    assert (await as_error(late)).correct_offset == 8 * MiB  # type: ignore[attr-defined]

    in_commit = await post_content(
        client,
        "upload_session/finish",
        token,
        {
            "cursor": {"session_id": session_id, "offset": 8 * MiB},
            "commit": {**commit, "content_hash": content_hash(data)},
        },
        parts[2],
    )
    assert in_commit.status == 400  # content_hash sits beside cursor, not inside commit

    # content_hash covers the bytes of this call only (Dropbox's spec; the SDK fills it so):
    # the whole file's hash here is a mismatch, and nothing is committed or kept.
    whole = await post_content(
        client,
        "upload_session/finish",
        token,
        {
            "cursor": {"session_id": session_id, "offset": 8 * MiB},
            "commit": commit,
            "content_hash": content_hash(data),
        },
        parts[2],
    )
    assert isinstance(await as_error(whole), ContentHashMismatch)
    assert standin.files(ANA) == {}

    finish = await post_content(
        client,
        "upload_session/finish",
        token,
        {
            "cursor": {"session_id": session_id, "offset": 8 * MiB},
            "commit": commit,
            "content_hash": content_hash(parts[2]),
        },
        parts[2],
    )
    assert finish.status == 200
    meta = await finish.json()
    assert meta["size"] == len(data)
    assert meta["content_hash"] == content_hash(data)
    assert standin.read_file(ANA, "/Cliq Uploads/big.bin") == data

    gone = await post_content(
        client,
        "upload_session/append_v2",
        token,
        {"cursor": {"session_id": session_id, "offset": len(data)}, "close": False},
        b"",
    )
    assert gone.status == 409
    assert (await gone.json())["error"] == {".tag": "not_found"}
    assert standin.calls["/2/files/upload_session/finish"] == 4


async def test_closed_session(client: Client, token: str) -> None:
    start = await post_content(client, "upload_session/start", token, {"close": True}, b"abc")
    session_id = (await start.json())["session_id"]
    append = await post_content(
        client,
        "upload_session/append_v2",
        token,
        {"cursor": {"session_id": session_id, "offset": 3}, "close": False},
        b"d",
    )
    assert append.status == 409
    assert (await append.json())["error"] == {".tag": "closed"}
    finish = await post_content(
        client,
        "upload_session/finish",
        token,
        {
            "cursor": {"session_id": session_id, "offset": 3},
            "commit": {"path": "/abc.txt", "mode": "add", "autorename": True},
        },
    )
    assert finish.status == 200
    assert (await finish.json())["content_hash"] == content_hash(b"abc")


async def test_unknown_session(client: Client, token: str) -> None:
    resp = await post_content(
        client,
        "upload_session/finish",
        token,
        {
            "cursor": {"session_id": "pid_upload_session:nope", "offset": 0},
            "commit": {"path": "/x.txt"},
        },
    )
    assert resp.status == 409
    body = await resp.json()
    assert body["error_summary"].startswith("lookup_failed/not_found/")
    assert body["error"] == {".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}}


async def test_concurrent_session(client: Client, standin: DropboxStandin, token: str) -> None:
    data = data_of(2 * BLOCK_SIZE + MiB, seed=7)
    with_data = await post_content(
        client, "upload_session/start", token, {"close": False, "session_type": "concurrent"}, b"x"
    )
    assert (await with_data.json())["error"] == {".tag": "concurrent_session_data_not_allowed"}
    start = await post_content(
        client,
        "upload_session/start",
        token,
        {"close": False, "session_type": {".tag": "concurrent"}},
    )
    session_id = (await start.json())["session_id"]

    def append(offset: int, chunk: bytes, close: bool) -> Awaitable[aiohttp.ClientResponse]:
        arg = {"cursor": {"session_id": session_id, "offset": offset}, "close": close}
        return post_content(client, "upload_session/append_v2", token, arg, chunk)

    odd = await append(0, data[:MiB], False)
    assert (await odd.json())["error"] == {".tag": "concurrent_session_invalid_data_size"}
    misaligned = await append(MiB, data[MiB : MiB + BLOCK_SIZE], False)
    assert (await misaligned.json())["error"] == {".tag": "concurrent_session_invalid_offset"}

    commit = {"path": "/Cliq Uploads/par.bin", "mode": "add", "autorename": True, "mute": False}
    early = await post_content(
        client,
        "upload_session/finish",
        token,
        {"cursor": {"session_id": session_id, "offset": len(data)}, "commit": commit},
    )
    assert (await early.json())["error"] == {".tag": "concurrent_session_not_closed"}

    # Out of order and in parallel; the closing append may carry any size.
    results = await asyncio.gather(
        append(2 * BLOCK_SIZE, data[2 * BLOCK_SIZE :], True),
        append(BLOCK_SIZE, data[BLOCK_SIZE : 2 * BLOCK_SIZE], False),
        append(0, data[:BLOCK_SIZE], False),
    )
    assert [r.status for r in results] == [200, 200, 200]
    finish = await post_content(
        client,
        "upload_session/finish",
        token,
        {
            "cursor": {"session_id": session_id, "offset": len(data)},
            "commit": commit,
            "content_hash": content_hash(b""),  # this call carries no bytes
        },
    )
    assert finish.status == 200
    assert (await finish.json())["content_hash"] == content_hash(data)
    assert standin.read_file(ANA, "/Cliq Uploads/par.bin") == data
    assert standin.max_parallel_writes[ANA] >= 2


async def test_parallel_writes_are_counted_and_limited(
    tmp_path: pathlib.Path, aiohttp_client: Any
) -> None:
    for limit in (False, True):
        standin = DropboxStandin(
            tmp_path / str(limit), apps={APP_KEY: APP_SECRET}, concurrent_write_limit=limit
        )
        client: Client = await aiohttp_client(standin.app())
        token = standin.issue_tokens(APP_KEY, ANA, SCOPES)[0]
        gate = asyncio.Event()

        async def slow_body(gate: asyncio.Event = gate) -> AsyncIterator[bytes]:
            yield b"first half "
            await gate.wait()
            yield b"second half"

        first = asyncio.create_task(upload(client, token, "/one.txt", slow_body()))  # type: ignore[arg-type]
        for _ in range(200):
            if standin.max_parallel_writes.get(ANA):
                break
            await asyncio.sleep(0.01)
        if limit:
            second = await upload(client, token, "/two.txt", b"two")
            assert second.status == 429
            assert isinstance(await as_error(second), RateLimited)
            gate.set()
        else:
            second_task = asyncio.create_task(upload(client, token, "/two.txt", b"two"))
            for _ in range(200):
                if standin.max_parallel_writes[ANA] == 2:
                    break
                await asyncio.sleep(0.01)
            gate.set()
            assert (await second_task).status == 200
        assert (await first).status == 200
        assert standin.max_parallel_writes[ANA] == (1 if limit else 2)


# ------------------------------------------------------------------------------------ faults


async def test_fault_429_with_and_without_retry_after(
    client: Client, standin: DropboxStandin, token: str
) -> None:
    standin.inject_fault("/2/files/upload", "429", retry_after=2)
    standin.inject_fault("/2/files/upload", "429")
    first = await upload(client, token, "/a.txt", b"a")
    assert first.status == 429
    assert first.headers["Retry-After"] == "2"
    body = await first.json()
    assert body["error_summary"].startswith("too_many_write_operations/")
    assert body["error"]["retry_after"] == 2
    assert (await as_error(first)).retry_after == 2.0  # type: ignore[attr-defined]
    second = await upload(client, token, "/a.txt", b"a")
    assert second.status == 429
    assert "Retry-After" not in second.headers
    assert (await second.json())["error"]["retry_after"] == 1
    third = await upload(client, token, "/a.txt", b"a")
    assert third.status == 200
    assert standin.calls["/2/files/upload"] == 3


async def test_fault_429_text_and_5xx(client: Client, standin: DropboxStandin, token: str) -> None:
    standin.inject_fault("*", "429_text")
    standin.inject_fault("/2/files/upload_session/start", "500")
    standin.inject_fault("/2/files/upload_session/start", "503", count=2)
    text = await upload(client, token, "/a.txt", b"a")
    assert text.status == 429
    assert text.content_type == "text/plain"
    assert "Retry-After" not in text.headers
    assert (await as_error(text)).retry_after == 5.0  # type: ignore[attr-defined]
    statuses = []
    for _ in range(4):
        resp = await post_content(client, "upload_session/start", token, {"close": False})
        statuses.append(resp.status)
        if resp.status >= 500:
            assert isinstance(await as_error(resp), ServerError)
    assert statuses == [500, 503, 503, 200]


async def test_fault_drop(client: Client, standin: DropboxStandin, token: str) -> None:
    standin.inject_fault("/2/files/upload", "drop")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await upload(client, token, "/a.txt", b"a" * 100_000)
    assert standin.files(ANA) == {}
    standin.inject_fault("/2/files/upload", "drop_after")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await upload(client, token, "/a.txt", b"a" * 100_000)
    assert list(standin.files(ANA)) == ["/a.txt"]  # stored, but the answer was lost
    retry = await upload(client, token, "/a.txt", b"a" * 100_000)
    assert (await retry.json())["path_display"] == "/a.txt"  # same content: no duplicate


async def test_fault_expired_token_and_invalid_grant(
    client: Client, standin: DropboxStandin
) -> None:
    access, refresh = standin.issue_tokens(APP_KEY, ANA, SCOPES)
    standin.inject_fault("*", "invalid_grant")  # only the token endpoint takes it
    standin.inject_fault("/2/users/get_current_account", "expired_token")
    auth = {"Authorization": f"Bearer {access}"}
    expired = await client.post("/2/users/get_current_account", headers=auth)
    assert isinstance(await as_error(expired), TokenExpired)
    assert (await client.post("/2/users/get_current_account", headers=auth)).status == 200
    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    rejected = await client.post("/oauth2/token", data=form, headers=basic())
    assert rejected.status == 400
    assert (await rejected.json())["error"] == "invalid_grant"
    assert (await client.post("/oauth2/token", data=form, headers=basic())).status == 200
    assert standin.calls["token:refresh_token"] == 2


def test_inject_fault_validates(standin: DropboxStandin) -> None:
    with pytest.raises(ValueError):
        standin.inject_fault("*", "teapot")
    with pytest.raises(ValueError):
        standin.inject_fault("*", "500", count=0)


# ---------------------------------------------------------------------------- control routes


async def test_control_routes(client: Client, standin: DropboxStandin, token: str) -> None:
    added = await client.post("/_standin/accounts", json={"email": BEN})
    ben_id = (await added.json())["account_id"]
    assert ben_id == standin.add_account(BEN)
    accounts = await (await client.get("/_standin/accounts")).json()
    assert {a["email"] for a in accounts} == {ANA, BEN}

    fault = await client.post(
        "/_standin/faults",
        json={"endpoint": "/2/files/upload", "kind": "503", "count": 1, "retry_after": None},
    )
    assert fault.status == 200
    assert (await client.post("/_standin/faults", json={"kind": "nope"})).status == 400
    assert (await upload(client, token, "/Cliq Uploads/r\u00e9sum\u00e9.pdf", b"x")).status == 503
    assert (await upload(client, token, "/Cliq Uploads/r\u00e9sum\u00e9.pdf", b"x")).status == 200
    calls = await (await client.get("/_standin/calls")).json()
    assert calls["/2/files/upload"] == 2

    files = await (await client.get(f"/_standin/accounts/{ANA}/files.json")).json()
    assert files == [
        {
            "path_display": "/Cliq Uploads/r\u00e9sum\u00e9.pdf",
            "size": 1,
            "content_hash": content_hash(b"x"),
            "rev": files[0]["rev"],
            "id": files[0]["id"],
            "server_modified": files[0]["server_modified"],
        }
    ]
    page = await client.get(f"/_standin/accounts/{ANA}/files")
    assert page.content_type == "text/html"
    assert "r\u00e9sum\u00e9.pdf" in await page.text()
    index = await (await client.get("/")).text()
    assert ANA in index
    assert BEN in index
    raw = await client.get(
        f"/_standin/accounts/{ANA}/content",
        params={"path": "/cliq uploads/R\u00c9SUM\u00c9.pdf".lower()},
    )
    assert raw.status == 200
    assert await raw.read() == b"x"
    assert (await client.get("/_standin/accounts/nobody@x/files.json")).status == 404

    assert (await client.post("/_standin/expire", json={"email": ANA})).status == 200
    expired = await client.post(
        "/2/users/get_current_account", headers={"Authorization": f"Bearer {token}"}
    )
    assert isinstance(await as_error(expired), TokenExpired)


async def test_main_runs_as_a_process(tmp_path: pathlib.Path) -> None:
    root = ROOT
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.sandbox.dropbox_standin",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--storage-dir",
        str(tmp_path),
        "--app",
        f"{APP_KEY}:{APP_SECRET}",
        "--account",
        ANA,
        stdout=asyncio.subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert line.startswith("READY http://127.0.0.1:")
        base = line.split()[1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base}/_standin/accounts") as resp,
        ):
            assert [a["email"] for a in await resp.json()] == [ANA]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ------------------------------------------------------------------ fidelity with the real SDK


@pytest.fixture
async def tls_standin(
    aiohttp_server: Any, standin: DropboxStandin, tmp_path: pathlib.Path
) -> tuple[TestServer, pathlib.Path]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server: TestServer = await aiohttp_server(standin.app(), ssl=server_ctx)
    return server, ca_path


def sdk_client(token: str, port: int, ca_path: pathlib.Path) -> Any:
    dropbox = pytest.importorskip("dropbox")
    session = dropbox.create_session(ca_certs=str(ca_path))
    # requests lets REQUESTS_CA_BUNDLE from the environment override the session's CA bundle.
    session.trust_env = False
    dbx = dropbox.Dropbox(
        oauth2_access_token=token,
        session=session,
        max_retries_on_error=0,
        max_retries_on_rate_limit=0,
    )
    host = f"localhost:{port}"
    # The SDK picks hosts from this per-instance map; point it at the stand-in.
    dbx._host_map = {"api": host, "content": host, "notify": host}
    return dbx


async def test_official_sdk_against_standin(
    tls_standin: tuple[TestServer, pathlib.Path], standin: DropboxStandin, token: str
) -> None:
    server, ca_path = tls_standin
    assert server.port is not None
    dbx = sdk_client(token, server.port, ca_path)
    small = b"hello from the SDK"
    big = data_of(9 * MiB + 5, seed=3)

    def scenario() -> dict[str, Any]:
        from dropbox import exceptions, files

        out: dict[str, Any] = {}
        out["account"] = dbx.users_get_current_account()
        out["small"] = dbx.files_upload(
            small, "/SDK/small.txt", mode=files.WriteMode.add, autorename=True
        )
        try:
            dbx.files_upload(b"different", "/sdk/SMALL.txt", mode=files.WriteMode.add)
        except exceptions.ApiError as exc:
            out["conflict"] = exc.error
        start = dbx.files_upload_session_start(big[: 4 * MiB])
        cursor = files.UploadSessionCursor(session_id=start.session_id, offset=4 * MiB)
        try:
            dbx.files_upload_session_append_v2(
                big[4 * MiB : 8 * MiB],
                files.UploadSessionCursor(session_id=start.session_id, offset=0),
            )
        except exceptions.ApiError as exc:
            out["offset_error"] = exc.error
        dbx.files_upload_session_append_v2(big[4 * MiB : 8 * MiB], cursor)
        cursor.offset = 8 * MiB
        out["big"] = dbx.files_upload_session_finish(
            big[8 * MiB :],
            cursor,
            files.CommitInfo(path="/SDK/big.bin", mode=files.WriteMode.add, autorename=True),
        )  # the SDK sends content_hash of each call's bytes by itself
        standin.expire_access_tokens(ANA)
        try:
            dbx.users_get_current_account()
        except exceptions.AuthError as exc:
            out["auth_error"] = exc.error
        return out

    out = await asyncio.to_thread(scenario)
    assert out["account"].email == ANA
    assert out["account"].name.display_name == "Ana Lima"
    assert out["small"].path_display == "/SDK/small.txt"
    assert out["small"].content_hash == content_hash(small)
    assert out["conflict"].is_path()
    assert out["conflict"].get_path().reason.is_conflict()
    assert out["offset_error"].is_incorrect_offset()
    assert out["offset_error"].get_incorrect_offset().correct_offset == 4 * MiB
    assert out["big"].size == len(big)
    assert out["big"].content_hash == content_hash(big)
    assert out["auth_error"].is_expired_access_token()
    stored = standin.files(ANA)
    assert stored["/SDK/big.bin"].content_hash == content_hash(big)
    assert standin.read_file(ANA, "/SDK/big.bin") == big
    assert standin.read_file(ANA, "/SDK/small.txt") == small


async def test_official_sdk_rate_limit_and_concurrent_session(
    tls_standin: tuple[TestServer, pathlib.Path], standin: DropboxStandin, token: str
) -> None:
    server, ca_path = tls_standin
    assert server.port is not None
    dbx = sdk_client(token, server.port, ca_path)
    data = data_of(BLOCK_SIZE + 10, seed=5)
    standin.inject_fault("/2/files/upload", "429", retry_after=3)

    def scenario() -> dict[str, Any]:
        from dropbox import exceptions, files

        out: dict[str, Any] = {}
        try:
            dbx.files_upload(b"x", "/x.txt")
        except exceptions.RateLimitError as exc:
            out["retry_after"] = exc.backoff
        start = dbx.files_upload_session_start(b"", session_type=files.UploadSessionType.concurrent)
        sid = start.session_id
        dbx.files_upload_session_append_v2(
            data[BLOCK_SIZE:], files.UploadSessionCursor(sid, BLOCK_SIZE), close=True
        )
        dbx.files_upload_session_append_v2(data[:BLOCK_SIZE], files.UploadSessionCursor(sid, 0))
        out["meta"] = dbx.files_upload_session_finish(
            b"", files.UploadSessionCursor(sid, len(data)), files.CommitInfo(path="/c.bin")
        )
        return out

    out = await asyncio.to_thread(scenario)
    assert out["retry_after"] == 3
    assert out["meta"].content_hash == content_hash(data)
    assert standin.read_file(ANA, "/c.bin") == data
