"""Many files for one account: closed sessions committed by ``finish_batch_v2``, over real HTTP.

The stand-in's answers are read with the official SDK's own validators (``dropbox.files``), so
its wire format is Dropbox's; the destination maps each entry's failure as the same failure of a
single commit; :class:`~bot.destinations.batch.AccountCommits` puts the uploads of one account
into one commit at a time; the relay retries an entry as it would a single commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator

import pytest
from dropbox import files, stone_serializers

from bot.destinations.base import BatchEntry, FileMetadata
from bot.destinations.batch import AccountCommits
from bot.destinations.dropbox_wire import content_hash
from bot.errors import ApiError, IncorrectOffset, RateLimited, ServerError, TokenExpired
from tests.bot.destinations.conftest import EMAIL, Dropbox
from tests.bot.destinations.test_relay import FAST, BytesSource, Sleeps, Tokens

BATCH = "/2/files/upload_session/finish_batch_v2"
CHECK = "/2/files/upload_session/finish_batch/check"
START = "/2/files/upload_session/start"
UPLOAD = "/2/files/upload"


async def _closed(dropbox: Dropbox, data: bytes, path: str) -> BatchEntry:
    session_id = await dropbox.destination.start(
        dropbox.access_token, data, content_hash=content_hash(data), close=True
    )
    return BatchEntry(session_id, len(data), path)


async def _rpc(dropbox: Dropbox, route: str, body: str) -> tuple[int, str]:
    headers = {
        "Authorization": f"Bearer {dropbox.access_token}",
        "Content-Type": "application/json",
    }
    async with dropbox.session.post(f"{dropbox.base_url}{route}", data=body, headers=headers) as r:
        return r.status, await r.text()


class Turns:
    """A commit lock that counts how many hold it at once (it must never be more than one)."""

    def __init__(self) -> None:
        self.holding = 0
        self.most = 0
        self.taken = 0

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        self.holding += 1
        self.taken += 1
        self.most = max(self.most, self.holding)
        try:
            await asyncio.sleep(0)
            yield
        finally:
            self.holding -= 1


# ------------------------------------------------------------------------ the wire format


async def test_the_sdks_batch_commit_lands_every_closed_session_in_order(dropbox: Dropbox) -> None:
    """What the official SDK sends is accepted; what comes back decodes with its validators."""
    datas = [os.urandom(1000 + n) for n in range(3)]
    sessions = [await _closed(dropbox, data, f"/sdk/{n}.bin") for n, data in enumerate(datas)]
    arg = files.UploadSessionFinishBatchArg(
        [
            files.UploadSessionFinishArg(
                files.UploadSessionCursor(s.session_id, s.size),
                files.CommitInfo(path=s.path, mode=files.WriteMode.add, autorename=True),
            )
            for s in sessions
        ]
    )
    body = stone_serializers.json_encode(files.UploadSessionFinishBatchArg_validator, arg)
    status, text = await _rpc(dropbox, BATCH, body)
    assert status == 200, text
    result = stone_serializers.json_decode(files.UploadSessionFinishBatchResult_validator, text)
    got = [entry.get_success() for entry in result.entries]
    assert [m.path_display for m in got] == ["/sdk/0.bin", "/sdk/1.bin", "/sdk/2.bin"]
    assert [m.content_hash for m in got] == [content_hash(d) for d in datas]
    for data, meta in zip(datas, got, strict=True):
        assert dropbox.standin.read_file(EMAIL, meta.path_display) == data


async def test_the_destination_commits_a_batch_and_maps_each_entry(dropbox: Dropbox) -> None:
    ok = os.urandom(5000)
    entries = [
        await _closed(dropbox, ok, "/Cliq Uploads/ok.bin"),
        await _closed(dropbox, b"busy", "/Cliq Uploads/busy.txt"),
        await _closed(dropbox, b"short", "/Cliq Uploads/short.txt"),
        BatchEntry("pid_upload_session:unknown", 3, "/Cliq Uploads/gone.txt"),
    ]
    open_id = await dropbox.destination.start(dropbox.access_token, b"open", close=False)
    entries.append(BatchEntry(open_id, 4, "/Cliq Uploads/open.txt"))
    entries[2] = BatchEntry(entries[2].session_id, 3, entries[2].path)  # Dropbox holds 5
    dropbox.standin.inject_entry_failure("busy.txt", "too_many_write_operations")

    results = await dropbox.destination.finish_batch(dropbox.access_token, entries)

    assert isinstance(results[0], FileMetadata) and results[0].content_hash == content_hash(ok)
    assert isinstance(results[1], RateLimited)  # as a 429 of a single commit: wait, try again
    assert isinstance(results[2], IncorrectOffset) and results[2].correct_offset == 5
    assert isinstance(results[3], ApiError) and dropbox.destination.session_gone(results[3])
    assert isinstance(results[4], ApiError)
    assert results[4].summary.startswith("lookup_failed/not_closed")  # refused, as Dropbox does
    assert set(dropbox.standin.files(EMAIL)) == {"/Cliq Uploads/ok.bin"}
    # The entry refused for contention kept its session: committed again, it lands.
    (again,) = await dropbox.destination.finish_batch(dropbox.access_token, [entries[1]])
    assert isinstance(again, FileMetadata) and again.content_hash == content_hash(b"busy")
    assert dropbox.standin.max_parallel_commits[EMAIL] == 1


async def test_an_asynchronous_batch_job_is_polled_until_complete(dropbox: Dropbox) -> None:
    dropbox.standin.batch_async = 2
    entries = [await _closed(dropbox, f"file {n}".encode(), f"/a/{n}.txt") for n in range(3)]
    results = await dropbox.destination.finish_batch(dropbox.access_token, entries)
    assert [r.path_display for r in results if isinstance(r, FileMetadata)] == [
        "/a/0.txt",
        "/a/1.txt",
        "/a/2.txt",
    ]
    assert dropbox.standin.calls[CHECK] == 3  # in progress twice, then complete
    # The launch and the status in the shapes the SDK reads.
    more = await _closed(dropbox, b"more", "/a/more.txt")
    arg = {"entries": [{"cursor": {"session_id": more.session_id, "offset": 4},
                        "commit": {"path": more.path}}]}  # fmt: skip
    status, text = await _rpc(dropbox, BATCH, json.dumps(arg))
    launch = stone_serializers.json_decode(files.UploadSessionFinishBatchLaunch_validator, text)
    assert status == 200 and launch.is_async_job_id()
    poll = json.dumps({"async_job_id": launch.get_async_job_id()})
    statuses = []
    for _ in range(4):
        status, text = await _rpc(dropbox, CHECK, poll)
        statuses.append(
            stone_serializers.json_decode(files.UploadSessionFinishBatchJobStatus_validator, text)
        )
    assert [s.is_in_progress() for s in statuses] == [True, True, False, False]
    assert statuses[-1].get_complete().entries[0].is_success()
    status, text = await _rpc(dropbox, CHECK, json.dumps({"async_job_id": "dbjid:nope"}))
    assert status == 409 and "invalid_async_job_id" in text


async def test_errors_of_the_whole_call_are_raised(dropbox: Dropbox) -> None:
    entry = await _closed(dropbox, b"x", "/e/x.txt")
    dropbox.standin.inject_fault(BATCH, "429", retry_after=2)
    with pytest.raises(RateLimited) as limited:
        await dropbox.destination.finish_batch(dropbox.access_token, [entry])
    assert limited.value.retry_after == 2
    dropbox.standin.inject_fault(BATCH, "503")
    with pytest.raises(ServerError):
        await dropbox.destination.finish_batch(dropbox.access_token, [entry])
    with pytest.raises(ValueError, match="1 to 1000"):
        await dropbox.destination.finish_batch(dropbox.access_token, [entry] * 1001)
    status, text = await _rpc(dropbox, BATCH, json.dumps({"entries": [{"cursor": 5}]}))
    assert status == 400 and "entries[0]" in text
    dropbox.standin.expire_access_tokens()
    with pytest.raises(TokenExpired):
        await dropbox.destination.finish_batch(dropbox.access_token, [entry])


# ------------------------------------------------------------- commits of one account, grouped


async def _relay_many(
    dropbox: Dropbox, datas: dict[str, bytes], group: AccountCommits, sleeps: Sleeps
) -> dict[str, FileMetadata]:
    from bot.destinations.relay import relay_upload

    tokens = Tokens(dropbox)

    async def one(name: str, data: bytes) -> FileMetadata:
        with group.upload(expect=True) as commits:
            return await relay_upload(
                dropbox.destination,
                tokens,
                BytesSource(data),
                f"/Cliq Uploads/{name}",
                policy=FAST,
                sleep=sleeps,
                commits=commits,
                batch_limit=4 * 1024 * 1024,
            )

    metas = await asyncio.gather(*(one(name, data) for name, data in datas.items()))
    return dict(zip(datas, metas, strict=True))


async def test_uploads_of_one_account_are_committed_together_one_commit_at_a_time(
    dropbox: Dropbox,
) -> None:
    dropbox.standin.commit_limit = True  # a second commit in flight would be refused (429)
    turns = Turns()
    group = AccountCommits(dropbox.destination, turns)
    datas = {f"f{n:02d}.bin": os.urandom(3000 + 17 * n) for n in range(30)}
    datas["big.bin"] = os.urandom(5 * 1024 * 1024)  # over the batch limit: its own upload
    sleeps = Sleeps()
    metas = await _relay_many(dropbox, datas, group, sleeps)
    for name, data in datas.items():
        assert metas[name].content_hash == content_hash(data)
        assert dropbox.standin.read_file(EMAIL, f"/Cliq Uploads/{name}") == data
    calls = dropbox.standin.calls
    assert calls[START] == 30 and calls[UPLOAD] == 1
    assert group.entries == 30 and calls[BATCH] == group.calls <= 2
    assert turns.most == 1 and dropbox.standin.max_parallel_commits[EMAIL] == 1
    assert dropbox.standin.commits[EMAIL] == 31  # each file once
    assert sleeps.delays == []  # never refused for contention


async def test_an_entry_refused_or_lost_is_retried_like_a_single_commit(dropbox: Dropbox) -> None:
    group = AccountCommits(dropbox.destination, Turns())
    dropbox.standin.inject_entry_failure("busy.txt", "too_many_write_operations", count=2)
    dropbox.standin.inject_entry_failure("lost.txt", "lookup_failed/not_found")
    datas = {"busy.txt": b"busy", "lost.txt": b"lost", "fine.txt": b"fine"}
    sleeps = Sleeps()
    metas = await _relay_many(dropbox, datas, group, sleeps)
    assert {name: m.content_hash for name, m in metas.items()} == {
        name: content_hash(data) for name, data in datas.items()
    }
    assert sleeps.delays == [1.0, 1.0]  # too_many_write_operations: wait, then again
    assert dropbox.standin.calls[START] == 4  # the lost session started over, once
    assert len(dropbox.standin.files(EMAIL)) == 3


async def test_a_batch_commit_whose_reply_is_lost_lands_each_file_once(dropbox: Dropbox) -> None:
    group = AccountCommits(dropbox.destination, Turns())
    dropbox.standin.inject_fault(BATCH, "drop_after")  # committed, but the answer never came
    datas = {f"r{n}.txt": f"reply {n}".encode() for n in range(5)}
    metas = await _relay_many(dropbox, datas, group, Sleeps())
    assert sorted(m.path_display for m in metas.values()) == [
        f"/Cliq Uploads/r{n}.txt" for n in range(5)
    ]
    assert set(dropbox.standin.files(EMAIL)) == {m.path_display for m in metas.values()}
    # The sessions were used up: each upload started over; its bytes were there already.
    assert dropbox.standin.calls[START] == 10


async def test_relay_refuses_batching_without_commits(dropbox: Dropbox) -> None:
    from bot.destinations.relay import relay_upload

    with pytest.raises(ValueError, match="batch_limit"):
        await relay_upload(
            dropbox.destination, Tokens(dropbox), BytesSource(b"x"), "/x", batch_limit=10
        )
