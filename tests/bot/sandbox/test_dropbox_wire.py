from __future__ import annotations

import hashlib
import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.destinations.dropbox_wire import (
    BLOCK_SIZE,
    ContentHasher,
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

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
HELLO = "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423"


def reference_hash(data: bytes) -> str:
    blocks = [data[i : i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE)]
    return hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in blocks)).hexdigest()


def test_vectors() -> None:
    assert BLOCK_SIZE == 4 * 1024 * 1024
    assert content_hash(b"") == EMPTY
    assert content_hash(b"hello world") == HELLO
    assert ContentHasher().hexdigest() == EMPTY


def test_multi_block_matches_reference() -> None:
    data = bytes(range(256)) * (BLOCK_SIZE * 2 // 256) + b"tail"
    assert content_hash(data) == reference_hash(data)
    exact = data[: BLOCK_SIZE * 2]
    assert content_hash(exact) == reference_hash(exact)


def test_block_digests_and_resume() -> None:
    data = b"\x01" * BLOCK_SIZE + b"\x02" * BLOCK_SIZE + b"\x03" * 100
    hasher = ContentHasher()
    hasher.update(data[: BLOCK_SIZE + 10])
    assert hasher.block_digests() == [hashlib.sha256(data[:BLOCK_SIZE]).hexdigest()]
    hasher.update(data[BLOCK_SIZE + 10 :])
    digests = hasher.block_digests()
    assert len(digests) == 2
    # A restart at the 8 MiB boundary: only the digests survive.
    resumed = ContentHasher.from_block_digests(digests)
    assert resumed.size == 2 * BLOCK_SIZE
    resumed.update(data[2 * BLOCK_SIZE :])
    assert resumed.hexdigest() == content_hash(data) == hasher.hexdigest()
    with pytest.raises(ValueError):
        ContentHasher.from_block_digests(["abcd"])


def test_copy_is_independent() -> None:
    hasher = ContentHasher()
    hasher.update(b"hello ")
    twin = hasher.copy()
    twin.update(b"world")
    assert twin.hexdigest() == HELLO
    assert hasher.hexdigest() == content_hash(b"hello ")


def sample(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**16),
    size=st.integers(min_value=0, max_value=2 * BLOCK_SIZE + 4096)
    | st.sampled_from([BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 2 * BLOCK_SIZE]),
    cuts=st.lists(st.integers(min_value=0, max_value=2 * BLOCK_SIZE + 4096), max_size=6),
)
def test_any_split_gives_same_hash(seed: int, size: int, cuts: list[int]) -> None:
    data = sample(seed, size)
    points = sorted({min(c, size) for c in cuts} | {0, size})
    pieces = ContentHasher()
    for start, end in itertools.pairwise(points):
        pieces.update(data[start:end])
    assert pieces.hexdigest() == content_hash(data) == reference_hash(data)
    assert pieces.size == size


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**16),
    size=st.integers(min_value=0, max_value=2 * BLOCK_SIZE + 100),
    blocks=st.integers(min_value=0, max_value=2),
)
def test_resume_at_any_boundary(seed: int, size: int, blocks: int) -> None:
    data = sample(seed, size)
    boundary = min(blocks, size // BLOCK_SIZE) * BLOCK_SIZE
    first = ContentHasher()
    first.update(data[:boundary])
    resumed = ContentHasher.from_block_digests(first.block_digests())
    resumed.update(data[boundary:])
    assert resumed.hexdigest() == reference_hash(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_encode_api_arg_round_trips_ascii(value: object) -> None:
    encoded = encode_api_arg(value)
    assert encoded.isascii()
    assert "\x7f" not in encoded
    assert all(0x20 <= ord(ch) < 0x7F for ch in encoded)
    assert json.loads(encoded) == value


def test_encode_api_arg_escapes() -> None:
    encoded = encode_api_arg({"path": "/Cliq Uploads/résumé\x7f😀.pdf", "autorename": True})
    assert encoded == (
        '{"path":"/Cliq Uploads/r\\u00e9sum\\u00e9\\u007f\\ud83d\\ude00.pdf","autorename":true}'
    )


def body(summary: str, error: object) -> bytes:
    return json.dumps({"error_summary": summary, "error": error}).encode()


def test_error_401() -> None:
    expired = error_from_response(
        401, {}, body("expired_access_token/..", {".tag": "expired_access_token"})
    )
    assert isinstance(expired, TokenExpired)
    invalid = error_from_response(
        401, {}, body("invalid_access_token/", {".tag": "invalid_access_token"})
    )
    assert isinstance(invalid, InvalidToken)
    scope = error_from_response(
        401, {}, body("missing_scope/.", {".tag": "missing_scope", "required_scope": "x"})
    )
    assert isinstance(scope, InvalidToken)
    assert isinstance(error_from_response(401, {}, b"nope"), InvalidToken)


def test_error_429() -> None:
    limited = body(
        "too_many_write_operations/.",
        {"reason": {".tag": "too_many_write_operations"}, "retry_after": 3},
    )
    header = error_from_response(429, {"retry-after": "2"}, limited)
    assert isinstance(header, RateLimited)
    assert header.retry_after == 2.0
    from_body = error_from_response(429, {}, limited)
    assert isinstance(from_body, RateLimited)
    assert from_body.retry_after == 3.0
    text = error_from_response(429, {}, b"Too Many Requests")
    assert isinstance(text, RateLimited)
    assert text.retry_after == 5.0
    bad_header = error_from_response(429, {"Retry-After": "soon"}, b"")
    assert isinstance(bad_header, RateLimited)
    assert bad_header.retry_after == 5.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_error_5xx(status: int) -> None:
    err = error_from_response(status, {}, b"<html>oops</html>")
    assert isinstance(err, ServerError)
    assert err.status == status


def test_error_incorrect_offset() -> None:
    append = error_from_response(
        409, {}, body("incorrect_offset/...", {".tag": "incorrect_offset", "correct_offset": 8})
    )
    assert isinstance(append, IncorrectOffset)
    assert append.correct_offset == 8
    finish = error_from_response(
        409,
        {},
        body(
            "lookup_failed/incorrect_offset/",
            {
                ".tag": "lookup_failed",
                "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 4194304},
            },
        ),
    )
    assert isinstance(finish, IncorrectOffset)
    assert finish.correct_offset == 4194304


def test_error_content_hash_mismatch() -> None:
    err = error_from_response(
        409, {}, body("content_hash_mismatch/..", {".tag": "content_hash_mismatch"})
    )
    assert isinstance(err, ContentHashMismatch)


def test_error_other() -> None:
    conflict = error_from_response(
        409,
        {},
        body(
            "path/conflict/file/..",
            {".tag": "path", "reason": {".tag": "conflict", "conflict": {".tag": "file"}}},
        ),
    )
    assert isinstance(conflict, ApiError)
    assert conflict.status == 409
    assert conflict.summary.startswith("path/conflict/file")
    not_found = error_from_response(
        409,
        {},
        body(
            "lookup_failed/not_found/",
            {".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}},
        ),
    )
    assert isinstance(not_found, ApiError)
    assert not isinstance(not_found, IncorrectOffset)
    text = error_from_response(
        400,
        {"Authorization": "Bearer sl.secret"},
        b'Error in call to API function "files/upload": HTTP header "Dropbox-API-Arg": bad',
    )
    assert isinstance(text, ApiError)
    assert text.status == 400
    assert "files/upload" in str(text)
    assert "sl.secret" not in str(text)
