"""Ack-path throughput and latency of signed file-message events, against a bare aiohttp floor.

Run from the repository root: ``.venv/bin/python -m benchmarks.bench_events [--requests N]``.

One ``cliqbot serve`` process (embedded store, stand-ins in this process) receives signed
``message_handler`` events from one connected user, each with a distinct attachment, from a load
generator in its own process at 50 and 200 concurrent clients. The same generator then hits a
bare aiohttp handler (its own process) that returns the same JSON: the floor on this machine.
The bot's upload worker runs as in production, so the tiny attachments are uploaded meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.common import load_in_child
from bot.sandbox.driver import ChatDriver
from storage.embedded import EmbeddedStore
from tests.drills.harness import BOT_NAME, WEBHOOK_SECRET, sandbox, user

LEVELS = (50, 200)


def bare_main(reply_json: str) -> None:
    reply = json.loads(reply_json)

    async def handler(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.json_response(reply)

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/cliq/webhook", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        sys.stdout.write(f"READY http://127.0.0.1:{runner.addresses[0][1]}\n")
        sys.stdout.flush()
        await asyncio.sleep(3600)

    asyncio.run(serve())


async def start_bare(reply: dict[str, Any]) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.bench_events",
        "--bare",
        json.dumps(reply),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    assert line.startswith("READY "), line
    return proc, line.split()[1]


async def main(requests: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp_name:
        tmp = Path(tmp_name)
        async with (
            EmbeddedStore(storage_dir=tmp / "store") as store,
            sandbox(tmp, store.uri) as box,
        ):
            bot = await box.start_bot()
            await box.setup_connection(bot)
            ana = user(1)
            await box.connect(bot, ana)
            driver = ChatDriver(box.http, bot.url, WEBHOOK_SECRET, bot_name=BOT_NAME)
            probe = await box.send(bot, ana, box.cliq.add_file("probe.txt", b"probe"))
            bare, bare_url = await start_bare(probe.body)
            rows = []
            try:
                for level in LEVELS:
                    bodies = [
                        json.dumps(
                            driver.message(
                                ana, "", [box.cliq.add_file(f"f{level}-{i}.txt", b"x" * 64)]
                            ),
                            separators=(",", ":"),
                        ).encode()
                        for i in range(requests)
                    ]
                    got = await load_in_child(
                        tmp, f"{bot.url}/cliq/webhook", bodies, level, WEBHOOK_SECRET
                    )
                    floor = await load_in_child(
                        tmp, f"{bare_url}/cliq/webhook", bodies, level, None
                    )
                    rows.append((level, got, floor))
            finally:
                bare.terminate()
                await bare.wait()
    print(f"{requests} signed file-message events per level, distinct attachments")
    print(
        f"{'clients':>7} | {'bot rps':>8} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'bare rps':>8} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>6} | statuses"
    )
    ok = True
    for level, got, floor in rows:
        ratio = got["rps"] / floor["rps"]
        print(
            f"{level:>7} | {got['rps']:8.0f} {got['p50_ms']:7.1f} {got['p99_ms']:7.1f} | "
            f"{floor['rps']:8.0f} {floor['p50_ms']:7.1f} {floor['p99_ms']:7.1f} | "
            f"{ratio:6.1%} | bot {got['statuses']} bare {floor['statuses']}"
        )
        if level == 200:
            ok = got["p99_ms"] < 50 and ratio >= 0.40
    print("targets (200 clients: p99 < 50 ms, >= 40% of bare):", "MET" if ok else "NOT MET")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="requests per level")
    parser.add_argument("--bare", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare is not None:
        bare_main(args.bare)
        sys.exit(0)
    sys.exit(asyncio.run(main(min(args.requests, 20000))))
