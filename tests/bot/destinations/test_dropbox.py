"""DropboxDestination against the local Dropbox stand-in, over real HTTP."""

from __future__ import annotations

import logging
import os

import aiohttp
import pytest

from bot.destinations.dropbox import DropboxDestination
from bot.destinations.dropbox_wire import BLOCK_SIZE, content_hash
from bot.errors import (
    ApiError,
    ContentHashMismatch,
    IncorrectOffset,
    InvalidToken,
    RateLimited,
    ServerError,
    TokenExpired,
)
from bot.retry import DEFAULT_RETRY_AFTER
from tests.bot.destinations.conftest import EMAIL, Dropbox

UPLOAD = "/2/files/upload"


def _chain_text(exc: BaseException) -> str:
    """What an exception and its causes say about themselves (not the code that raised them)."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        parts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


async def test_account(dropbox: Dropbox) -> None:
    account = await dropbox.destination.account(dropbox.access_token)
    assert account.email == EMAIL
    assert account.id.startswith("dbid:")
    assert account.name == "Ana"


async def test_upload_lands_byte_for_byte(dropbox: Dropbox) -> None:
    data = os.urandom(100_000)
    meta = await dropbox.destination.upload(
        dropbox.access_token, "/Cliq Uploads/a.bin", data, content_hash=content_hash(data)
    )
    assert meta.path_display == "/Cliq Uploads/a.bin"
    assert meta.name == "a.bin"
    assert meta.size == len(data)
    assert meta.content_hash == content_hash(data)
    assert meta.id and meta.rev
    assert dropbox.standin.read_file(EMAIL, "/Cliq Uploads/a.bin") == data


async def test_upload_autorenames_on_conflict(dropbox: Dropbox) -> None:
    dest, token = dropbox.destination, dropbox.access_token
    first = await dest.upload(
        token, "/Cliq Uploads/a.txt", b"one", content_hash=content_hash(b"one")
    )
    again = await dest.upload(
        token, "/Cliq Uploads/a.txt", b"one", content_hash=content_hash(b"one")
    )
    other = await dest.upload(
        token, "/Cliq Uploads/a.txt", b"two", content_hash=content_hash(b"two")
    )
    assert first.path_display == again.path_display == "/Cliq Uploads/a.txt"  # same content
    assert other.path_display == "/Cliq Uploads/a (1).txt"


async def test_non_ascii_name_lands_exactly(dropbox: Dropbox) -> None:
    path = "/Cliq Uploads/Relatório 🚀\x7f.pdf"
    meta = await dropbox.destination.upload(
        dropbox.access_token, path, b"%PDF", content_hash=content_hash(b"%PDF")
    )
    assert meta.path_display == path
    assert list(dropbox.standin.files(EMAIL)) == [path]


async def test_wrong_content_hash_is_rejected(dropbox: Dropbox) -> None:
    with pytest.raises(ContentHashMismatch):
        await dropbox.destination.upload(
            dropbox.access_token, "/x.bin", b"abc", content_hash=content_hash(b"abd")
        )
    assert dropbox.standin.files(EMAIL) == {}


async def test_upload_session_round_trip(dropbox: Dropbox) -> None:
    dest, token = dropbox.destination, dropbox.access_token
    data = os.urandom(2 * BLOCK_SIZE + 1234)
    first, second, rest = (
        data[:BLOCK_SIZE],
        data[BLOCK_SIZE : 2 * BLOCK_SIZE],
        data[2 * BLOCK_SIZE :],
    )
    session_id = await dest.start(token, first, content_hash=content_hash(first))
    await dest.append(token, session_id, BLOCK_SIZE, second)  # the hash is optional
    meta = await dest.finish(
        token,
        session_id,
        2 * BLOCK_SIZE,
        rest,
        path="/Cliq Uploads/big.bin",
        content_hash=content_hash(rest),  # of this call's bytes, not of the whole file
    )
    assert meta.size == len(data)
    assert meta.content_hash == content_hash(data)
    assert dropbox.standin.read_file(EMAIL, "/Cliq Uploads/big.bin") == data


async def test_every_upload_call_carries_the_hash_of_its_bytes(dropbox: Dropbox) -> None:
    """Dropbox checks each call's content_hash against the bytes of that call."""
    data = os.urandom(6 * 1024 * 1024)
    dest, token = dropbox.destination, dropbox.access_token
    with pytest.raises(ContentHashMismatch):
        await dest.start(token, data[:4], content_hash=content_hash(b"else"))
    session_id = await dest.start(token, data[:4], content_hash=content_hash(data[:4]))
    with pytest.raises(ContentHashMismatch):
        await dest.append(token, session_id, 4, b"ab", content_hash=content_hash(b"x"))
    with pytest.raises(ContentHashMismatch):
        await dest.finish(
            token, session_id, 4, b"ab", path="/h", content_hash=content_hash(data[:6])
        )
    meta = await dest.finish(
        token, session_id, 4, b"ab", path="/h", content_hash=content_hash(b"ab")
    )
    assert meta.content_hash == content_hash(data[:4] + b"ab")


async def test_append_at_wrong_offset_reports_the_right_one(dropbox: Dropbox) -> None:
    dest, token = dropbox.destination, dropbox.access_token
    session_id = await dest.start(token, b"x" * 10)
    with pytest.raises(IncorrectOffset) as info:
        await dest.append(token, session_id, 4, b"y")
    assert info.value.correct_offset == 10
    with pytest.raises(IncorrectOffset) as info:
        await dest.finish(token, session_id, 3, b"", path="/f", content_hash=content_hash(b""))
    assert info.value.correct_offset == 10


async def test_unknown_session_is_an_api_error(dropbox: Dropbox) -> None:
    with pytest.raises(ApiError) as info:
        await dropbox.destination.append(dropbox.access_token, "pid_upload_session:nope", 0, b"x")
    assert info.value.status == 409
    assert info.value.summary.startswith("not_found/")


async def test_expired_and_invalid_tokens(
    dropbox: Dropbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = dropbox.access_token
    dropbox.standin.expire_access_tokens(EMAIL)
    with pytest.raises(TokenExpired) as expired:
        await dropbox.destination.account(token)
    with pytest.raises(InvalidToken) as invalid:
        await dropbox.destination.upload("sl.bogus", "/a", b"a", content_hash=content_hash(b"a"))
    for exc in (expired.value, invalid.value):
        assert token not in _chain_text(exc)
        assert "sl.bogus" not in _chain_text(exc)
    assert token not in caplog.text
    assert "sl.bogus" not in caplog.text


async def test_revoke_kills_the_token(dropbox: Dropbox) -> None:
    await dropbox.destination.revoke(dropbox.access_token)
    with pytest.raises(InvalidToken):
        await dropbox.destination.account(dropbox.access_token)


async def test_rate_limited_carries_retry_after(dropbox: Dropbox) -> None:
    dropbox.standin.inject_fault(UPLOAD, "429", retry_after=7)
    with pytest.raises(RateLimited) as info:
        await dropbox.destination.upload(
            dropbox.access_token, "/a", b"a", content_hash=content_hash(b"a")
        )
    assert info.value.retry_after == 7
    dropbox.standin.inject_fault(UPLOAD, "429_text")
    with pytest.raises(RateLimited) as info:
        await dropbox.destination.upload(
            dropbox.access_token, "/a", b"a", content_hash=content_hash(b"a")
        )
    assert info.value.retry_after == DEFAULT_RETRY_AFTER


@pytest.mark.parametrize("kind", ["500", "503", "drop"])
async def test_server_errors_and_lost_connections(dropbox: Dropbox, kind: str) -> None:
    dropbox.standin.inject_fault(UPLOAD, kind)
    with pytest.raises(ServerError) as info:
        await dropbox.destination.upload(
            dropbox.access_token, "/a", b"a", content_hash=content_hash(b"a")
        )
    assert dropbox.access_token not in _chain_text(info.value)
    if kind == "drop":
        assert isinstance(info.value.__cause__, aiohttp.ClientError)
    else:
        assert info.value.status == int(kind)


async def test_unreachable_host_is_a_server_error(dropbox: Dropbox) -> None:
    dest = DropboxDestination(dropbox.session, "http://127.0.0.1:9", "http://127.0.0.1:9")
    with pytest.raises(ServerError) as info:
        await dest.account(dropbox.access_token)
    assert dropbox.access_token not in _chain_text(info.value)


async def test_timeout_is_a_server_error(dropbox: Dropbox) -> None:
    # The stand-in answers quickly; a zero-ish read timeout still trips before the reply.
    dest = DropboxDestination(
        dropbox.session,
        dropbox.base_url,
        dropbox.base_url,
        timeout=aiohttp.ClientTimeout(total=0.000001),
    )
    with pytest.raises(ServerError):
        await dest.account(dropbox.access_token)
