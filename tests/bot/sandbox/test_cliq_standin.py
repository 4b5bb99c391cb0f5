from __future__ import annotations

import asyncio
import hashlib
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.sandbox.cliq_standin import CliqStandin, generated_bytes

TOKEN = "zapi-standin-token"
BOT = "filesbot"


class Clock:
    def __init__(self) -> None:
        self.now = 1_764_300_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def standin(clock: Clock, tmp_path: Path) -> CliqStandin:
    return CliqStandin(bot_name=BOT, webhook_token=TOKEN, file_dir=tmp_path / "files", clock=clock)


@pytest.fixture
async def client(aiohttp_client: Any, standin: CliqStandin) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(standin.app())
    standin.base_url = str(client.make_url("")).rstrip("/")
    return client


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_urls_use_the_real_host_and_port(
    client: TestClient[Any, Any], standin: CliqStandin
) -> None:
    attachment = standin.add_file("a.txt", b"hello", content_type="text/plain")
    assert set(attachment) == {"name", "id", "url", "contenttype"}
    assert attachment["url"].startswith(f"http://{client.host}:{client.port}/files/")
    assert attachment["contenttype"] == "text/plain"
    # a plain GET of the URL, as the bot does it
    async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as resp:
        assert resp.status == 200
        assert await resp.read() == b"hello"
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert resp.headers["Accept-Ranges"] == "bytes"


def test_urls_need_a_base_url() -> None:
    standin = CliqStandin(bot_name=BOT, webhook_token=TOKEN)
    with pytest.raises(RuntimeError, match="base_url"):
        standin.add_file("a.txt", b"x")


async def test_urls_expire(
    client: TestClient[Any, Any], standin: CliqStandin, clock: Clock
) -> None:
    attachment = standin.add_file("a.txt", b"hello", ttl=60)
    clock.now += 60
    assert (await client.get(path_of(attachment["url"]))).status == 200
    clock.now += 1.5
    resp = await client.get(path_of(attachment["url"]))
    assert resp.status == 403
    assert "expired" in await resp.text()
    # a fresh link for the same file works again
    fresh = standin.file_url(attachment["id"], ttl=10)
    assert (await client.get(path_of(fresh))).status == 200


async def test_tampered_or_unknown_links(
    client: TestClient[Any, Any], standin: CliqStandin
) -> None:
    attachment = standin.add_file("a.txt", b"hello", ttl=60)
    url = urlsplit(attachment["url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    longer = urlencode({**query, "exp": str(int(query["exp"]) + 3600)})
    assert (await client.get(f"{url.path}?{longer}")).status == 403
    bad_sig = urlencode({**query, "sig": "0" * 64})
    assert (await client.get(f"{url.path}?{bad_sig}")).status == 403
    assert (await client.get(f"{url.path}?exp=abc&sig=x")).status == 403
    assert (await client.get(url.path)).status == 403
    assert (await client.get(f"/files/f-unknown?{url.query}")).status == 404


@pytest.mark.parametrize("source", ["bytes", "path"])
async def test_range_requests(
    client: TestClient[Any, Any], standin: CliqStandin, tmp_path: Path, source: str
) -> None:
    content = bytes(range(256)) * 4096  # 1 MiB, several read chunks
    if source == "path":
        file = tmp_path / "big.bin"
        file.write_bytes(content)
        attachment = standin.add_file("big.bin", file)
    else:
        attachment = standin.add_file("big.bin", content)
    path = path_of(attachment["url"])

    resp = await client.get(path)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(content))
    assert await resp.read() == content

    resp = await client.get(path, headers={"Range": "bytes=1000-"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 1000-{len(content) - 1}/{len(content)}"
    assert await resp.read() == content[1000:]

    resp = await client.get(path, headers={"Range": "bytes=10-19"})
    assert resp.status == 206
    assert await resp.read() == content[10:20]

    resp = await client.get(path, headers={"Range": "bytes=-5"})
    assert resp.status == 206
    assert await resp.read() == content[-5:]

    resp = await client.get(path, headers={"Range": f"bytes={len(content)}-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(content)}"

    resp = await client.get(path, headers={"Range": "items=0-1"})  # not bytes: ignored
    assert resp.status == 200
    assert len(await resp.read()) == len(content)

    resp = await client.get(path, headers={"Range": "bytes=20-10"})  # invalid: ignored
    assert resp.status == 200
    assert len(await resp.read()) == len(content)


async def test_client_hanging_up_mid_download(
    client: TestClient[Any, Any], standin: CliqStandin, tmp_path: Path
) -> None:
    file = tmp_path / "big.bin"
    file.write_bytes(b"z" * (4 * 1024 * 1024))
    for attachment in (
        standin.add_file("big.bin", file),
        standin.add_generated_file("gen.bin", 8 * 1024 * 1024),
    ):
        resp = await client.get(path_of(attachment["url"]))
        assert resp.status == 200
        await resp.content.readexactly(1000)
        resp.close()  # hang up with most of the file unread
    # the stand-in still serves
    resp = await client.get(path_of(standin.add_file("a.txt", b"ok")["url"]))
    assert await resp.read() == b"ok"


def test_generated_bytes_are_reproducible() -> None:
    size = 200_000
    whole = b"".join(generated_bytes(size, seed=7))
    assert len(whole) == size
    assert whole == b"".join(generated_bytes(size, seed=7))
    assert whole != b"".join(generated_bytes(size, seed=8))
    for offset in (0, 1, 65_535, 65_536, 100_001, size - 1, size):
        assert b"".join(generated_bytes(size, seed=7, offset=offset)) == whole[offset:]
    assert b"".join(generated_bytes(0)) == b""
    assert len(set(whole[:4096])) > 200  # not a repeating pattern
    with pytest.raises(ValueError):
        next(generated_bytes(-1))


async def test_generated_file_streams_and_resumes(
    client: TestClient[Any, Any], standin: CliqStandin
) -> None:
    size = 5 * 1024 * 1024 + 123
    attachment = standin.add_generated_file("big.bin", size, seed=3)
    path = path_of(attachment["url"])
    expected = hashlib.sha256()
    for chunk in generated_bytes(size, seed=3):
        expected.update(chunk)

    resp = await client.get(path)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(size)
    got = hashlib.sha256()
    async for chunk in resp.content.iter_chunked(1 << 16):
        got.update(chunk)
    assert got.hexdigest() == expected.hexdigest()

    offset = 4 * 1024 * 1024 + 7
    resp = await client.get(path, headers={"Range": f"bytes={offset}-"})
    assert resp.status == 206
    assert await resp.read() == b"".join(generated_bytes(size, seed=3, offset=offset))


async def test_message_api_answers(client: TestClient[Any, Any], standin: CliqStandin) -> None:
    url = f"/api/v2/bots/{BOT}/message"
    body = {"text": "hi", "userids": "1, 2"}
    assert (await client.post(url, json=body)).status == 401
    assert (await client.post(url, params={"zapikey": "nope"}, json=body)).status == 401
    other = await client.post("/api/v2/bots/other/message", params={"zapikey": TOKEN}, json=body)
    assert other.status == 404
    for bad in ({"userids": "1"}, {"text": "", "userids": "1"}, {"text": "hi"}, [1]):
        assert (await client.post(url, params={"zapikey": TOKEN}, json=bad)).status == 400
    resp = await client.post(url, params={"zapikey": TOKEN}, data=b"{", headers={})
    assert resp.status == 400
    assert standin.messages == []

    resp = await client.post(url, params={"zapikey": TOKEN}, json=body)
    assert resp.status == 204
    assert standin.messages[0].userids == ["1", "2"]
    broadcast = {"text": "all", "broadcast": True}
    assert (await client.post(url, params={"zapikey": TOKEN}, json=broadcast)).status == 204

    listed = await (await client.get("/_standin/messages", params={"userid": "2"})).json()
    assert [m["payload"]["text"] for m in listed] == ["hi"]
    assert listed[0]["userids"] == ["1", "2"]
    everything = await (await client.get("/_standin/messages")).json()
    assert len(everything) == 2


async def test_faults(client: TestClient[Any, Any], standin: CliqStandin) -> None:
    url = f"/api/v2/bots/{BOT}/message"
    body = {"text": "hi", "userids": "1"}
    standin.inject_fault("429")
    standin.inject_fault("500", count=2)
    resp = await client.post(url, params={"zapikey": TOKEN}, json=body)
    assert (resp.status, resp.headers["Retry-After"]) == (429, "0")
    assert (await client.post(url, params={"zapikey": TOKEN}, json=body)).status == 500
    assert (await client.post(url, params={"zapikey": TOKEN}, json=body)).status == 500
    standin.inject_fault("drop")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(url, params={"zapikey": TOKEN}, json=body)
    assert (await client.post(url, params={"zapikey": TOKEN}, json=body)).status == 204
    assert len(standin.messages) == 1
    with pytest.raises(ValueError, match="unknown fault"):
        standin.inject_fault("teapot")


async def test_wait_for_message(client: TestClient[Any, Any], standin: CliqStandin) -> None:
    url = f"/api/v2/bots/{BOT}/message"

    async def post_later() -> None:
        await asyncio.sleep(0.05)
        await client.post(url, params={"zapikey": TOKEN}, json={"text": "first", "userids": "1"})
        await client.post(url, params={"zapikey": TOKEN}, json={"text": "Saved", "userids": "1"})

    task = asyncio.create_task(post_later())
    got = await standin.wait_for_message("1", lambda m: m["text"].startswith("Saved"), timeout=5)
    assert got["text"] == "Saved"
    await task
    # already received messages count too
    assert (await standin.wait_for_message("1", timeout=0.1))["text"] == "first"
    with pytest.raises(TimeoutError, match="first"):
        await standin.wait_for_message("1", lambda m: m["text"] == "never", timeout=0.05)


@pytest.mark.parametrize("with_dir", [True, False])
async def test_upload_a_file_over_http(
    aiohttp_client: Any, clock: Clock, tmp_path: Path, with_dir: bool
) -> None:
    standin = CliqStandin(
        bot_name=BOT,
        webhook_token=TOKEN,
        file_dir=tmp_path / "up" if with_dir else None,
        clock=clock,
    )
    client: TestClient[Any, Any] = await aiohttp_client(standin.app())  # base_url left unset
    content = b"x" * 300_000
    form = aiohttp.FormData()
    form.add_field("file", content, filename="report.pdf", content_type="application/pdf")
    form.add_field("ttl", "30")
    resp = await client.post("/_standin/files", data=form)
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    attachment = await resp.json()
    assert attachment["name"] == "report.pdf"
    assert attachment["contenttype"] == "application/pdf"
    assert attachment["url"].startswith(f"http://{client.host}:{client.port}/files/")
    resp = await client.get(path_of(attachment["url"]))
    assert await resp.read() == content
    clock.now += 31
    assert (await client.get(path_of(attachment["url"]))).status == 403
    if with_dir:
        assert (tmp_path / "up" / attachment["id"]).read_bytes() == content
    assert (await client.post("/_standin/files", data=aiohttp.FormData({"a": "b"}))).status == 400
    assert (await client.options("/_standin/files")).status == 204


async def test_start_and_stop(standin: CliqStandin) -> None:
    base = await standin.start()
    try:
        assert standin.base_url == base
        assert standin.api_base == f"{base}/api/v2"
        attachment = standin.add_file("a.txt", b"abc")
        async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as resp:
            assert await resp.read() == b"abc"
    finally:
        await standin.stop()


async def test_command_line_prints_ready_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.sandbox.cliq_standin",
        "--port",
        "0",
        "--bot-name",
        BOT,
        "--webhook-token",
        TOKEN,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert line.startswith("READY http://127.0.0.1:")
        base = line.split(" ", 1)[1]
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{base}/api/v2/bots/{BOT}/message",
                params={"zapikey": TOKEN},
                json={"text": "hi", "userids": "7"},
            ) as resp:
                assert resp.status == 204
            async with session.get(f"{base}/_standin/messages?userid=7") as resp:
                assert [m["payload"]["text"] for m in await resp.json()] == ["hi"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
