"""A large attachment relayed through the bot into Dropbox, against a raw copy and the SDK.

Run from the repository root: ``.venv/bin/python -m benchmarks.bench_relay [--mib 1024]``.

The Cliq stand-in offers a generated file (ChaCha20 bytes, produced while streaming); the
Dropbox stand-in receives it (over HTTP, and over TLS with a trustme CA for the SDK). Measured
one after another in one run, each into its own Dropbox account:

- bot: one ``cliqbot serve`` process, from the signed event to "Saved ..." in chat;
- raw: a child process copying with aiohttp, GET stream -> upload_session in 8 MiB chunks
  (no hashing, no state): the limit for any relay between the two servers;
- sdk: a child process streaming the GET with ``requests`` into the official ``dropbox`` SDK's
  upload session calls, 8 MiB per call.

Peak RSS growth is VmHWM at the end minus VmRSS before the transfer, read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.common import rss_kib
from storage.embedded import EmbeddedStore
from tests.drills.harness import APP_KEY, sandbox, user

CHUNK = 8 * 1024 * 1024
SCOPES = ("account_info.read", "files.content.write")


def _done(result: dict[str, Any]) -> None:
    pid_rss = rss_kib(_PID[0])
    result["rss_before_kib"] = _BASE[0]
    result["hwm_kib"] = pid_rss[1]
    sys.stdout.write(json.dumps(result) + "\n")


_PID = [0]
_BASE = [0]


async def raw_copy(src: str, api: str, token: str, path: str) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    started = time.perf_counter()
    offset = 0
    session_id = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        async with http.get(src) as resp:
            buffer = bytearray()
            async for piece in resp.content.iter_chunked(1024 * 1024):
                buffer += piece
                if len(buffer) < CHUNK:
                    continue
                chunk, buffer = bytes(buffer[:CHUNK]), buffer[CHUNK:]
                if not session_id:
                    arg: dict[str, Any] = {"close": False}
                    url = f"{api}/2/files/upload_session/start"
                else:
                    arg = {"cursor": {"session_id": session_id, "offset": offset}, "close": False}
                    url = f"{api}/2/files/upload_session/append_v2"
                headers = {**auth, "Dropbox-API-Arg": json.dumps(arg)}
                async with http.post(url, data=chunk, headers=headers) as up:
                    body = await up.json(content_type=None)
                    assert up.status == 200, body
                    session_id = session_id or body["session_id"]
                offset += len(chunk)
        arg = {
            "cursor": {"session_id": session_id, "offset": offset},
            "commit": {"path": path, "mode": "add", "autorename": True},
        }
        headers = {**auth, "Dropbox-API-Arg": json.dumps(arg)}
        async with http.post(
            f"{api}/2/files/upload_session/finish", data=bytes(buffer), headers=headers
        ) as up:
            meta = await up.json(content_type=None)
            assert up.status == 200, meta
    return {"seconds": time.perf_counter() - started, "size": meta["size"]}


def sdk_copy(src: str, port: int, ca: str, token: str, path: str) -> dict[str, Any]:
    import dropbox
    import requests
    from dropbox import files

    session = dropbox.create_session(ca_certs=ca)
    session.trust_env = False
    dbx = dropbox.Dropbox(oauth2_access_token=token, session=session)
    host = f"localhost:{port}"
    dbx._host_map = {"api": host, "content": host, "notify": host}
    started = time.perf_counter()
    cursor: files.UploadSessionCursor | None = None
    pending = b""
    with requests.get(src, stream=True, timeout=600) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_content(CHUNK):
            pending += chunk
            if len(pending) < CHUNK:
                continue
            piece, pending = pending[:CHUNK], pending[CHUNK:]
            if cursor is None:
                start = dbx.files_upload_session_start(piece)
                cursor = files.UploadSessionCursor(session_id=start.session_id, offset=0)
            else:
                dbx.files_upload_session_append_v2(piece, cursor)
            cursor.offset += len(piece)
    assert cursor is not None
    commit = files.CommitInfo(path=path, mode=files.WriteMode.add, autorename=True)
    meta = dbx.files_upload_session_finish(pending, cursor, commit)
    return {"seconds": time.perf_counter() - started, "size": meta.size}


async def child(mode: str, args: list[str]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.bench_relay",
        f"--{mode}",
        json.dumps(args),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 900)
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def main(mib: int) -> int:
    size = mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp_name:
        tmp = Path(tmp_name)
        async with (
            EmbeddedStore(storage_dir=tmp / "store") as store,
            sandbox(tmp, store.uri) as box,
        ):
            import trustme

            ca = trustme.CA()
            ca_path = tmp / "ca.pem"
            ca.cert_pem.write_to_path(str(ca_path))
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
            tls_runner = web.AppRunner(box.dropbox.app(), access_log=None)
            await tls_runner.setup()
            await web.TCPSite(tls_runner, "127.0.0.1", 0, ssl_context=ctx).start()
            tls_port = tls_runner.addresses[0][1]

            bot = await box.start_bot()
            await box.setup_connection(bot)
            ana = user(1)
            await box.connect(bot, ana)
            results: dict[str, dict[str, Any]] = {}

            attachment = box.cliq.add_generated_file("big.bin", size, seed=1)
            before = rss_kib(bot.pid)[0]
            started = time.perf_counter()
            reply = await box.send(bot, ana, attachment)
            assert "started" in reply.text, reply.text
            await box.saved(ana, "big.bin", timeout=900)
            results["bot"] = {
                "seconds": time.perf_counter() - started,
                "rss_before_kib": before,
                "hwm_kib": rss_kib(bot.pid)[1],
            }

            raw_token, _ = box.dropbox.issue_tokens(APP_KEY, "raw@dropbox.example", SCOPES)
            src = box.cliq.add_generated_file("big.bin", size, seed=1, ttl=3600)["url"]
            results["raw"] = await child(
                "raw", [src, box.dropbox_url, raw_token, "/Cliq Uploads/big.bin"]
            )
            sdk_token, _ = box.dropbox.issue_tokens(APP_KEY, "sdk@dropbox.example", SCOPES)
            src = box.cliq.add_generated_file("big.bin", size, seed=1, ttl=3600)["url"]
            results["sdk"] = await child(
                "sdk", [src, str(tls_port), str(ca_path), sdk_token, "/Cliq Uploads/big.bin"]
            )
            hashes = {
                who: box.dropbox.files(email)["/Cliq Uploads/big.bin"].content_hash
                for who, email in (
                    ("bot", "user1@dropbox.example"),
                    ("raw", "raw@dropbox.example"),
                    ("sdk", "sdk@dropbox.example"),
                )
            }
            await tls_runner.cleanup()
    assert len(set(hashes.values())) == 1, hashes
    print(f"{mib} MiB generated attachment, Cliq stand-in -> Dropbox stand-in (same bytes x3)")
    print(f"{'path':>5} | {'seconds':>8} {'MiB/s':>7} {'vs raw':>7} | {'peak RSS growth MiB':>19}")
    raw_rate = mib / results["raw"]["seconds"]
    for name in ("bot", "raw", "sdk"):
        r = results[name]
        rate = mib / r["seconds"]
        growth = (r["hwm_kib"] - r["rss_before_kib"]) / 1024
        print(
            f"{name:>5} | {r['seconds']:8.2f} {rate:7.1f} {rate / raw_rate:7.1%} | {growth:19.1f}"
        )
    bot = results["bot"]
    ok = (mib / bot["seconds"]) / raw_rate >= 0.60 and (
        bot["hwm_kib"] - bot["rss_before_kib"]
    ) / 1024 < 150
    print("targets (bot >= 60% of raw, bot RSS growth < 150 MiB):", "MET" if ok else "NOT MET")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=1024, help="attachment size in MiB")
    parser.add_argument("--raw", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sdk", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import os

    _PID[0] = os.getpid()
    _BASE[0] = rss_kib(_PID[0])[0]
    if args.raw is not None:
        _done(asyncio.run(raw_copy(*json.loads(args.raw))))
        sys.exit(0)
    if args.sdk is not None:
        src, port, ca_file, token, dest = json.loads(args.sdk)
        _done(sdk_copy(src, int(port), ca_file, token, dest))
        sys.exit(0)
    sys.exit(asyncio.run(main(max(1, min(args.mib, 4096)))))
