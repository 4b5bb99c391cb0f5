"""Ack-path throughput, latency and store round trips of signed file-message events, against a
bare aiohttp floor.

Run from the repository root:
``.venv/bin/python -m benchmarks.bench_events [--requests N] [--processes 1|2]``.

One ``cliqbot serve`` process — or two on one store (``--processes 2``; the load alternates
between them) — on the embedded store, stand-ins in this process, receives signed
``message_handler`` events from one connected user, each with a distinct attachment, from a
load generator in its own process at 50 and 200 concurrent clients. The same generator then
hits a bare aiohttp handler (its own process) that returns the same JSON: the floor on this
machine. The bots' upload workers run as in production; after each level the benchmark waits
(bounded) until every accepted file has landed in the Dropbox stand-in, and checks none landed
twice.

Store round trips are the bots' own count (``cliqbot_store_commands_total`` on ``/metrics``,
from PyMongo command monitoring, ``storage/monitor.py``): ``ack`` is what acknowledging the
events sent, ``other`` what the workers (and everything else) sent meanwhile; both per event.
CPU is the processes' own (``/proc``), per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.common import cpu_seconds, load_in_child, server_requests
from bot.sandbox.driver import ChatDriver
from storage.embedded import EmbeddedStore
from tests.drills.harness import (
    BOT_NAME,
    WEBHOOK_SECRET,
    BotProcess,
    Sandbox,
    dropbox_email,
    sandbox,
    user,
)

LEVELS = (50, 200)
#: The targets of issue 14 by number of clients, printed beside the figures.
TARGETS = {
    50: "p99 < 50 ms, 0 non-200, every file once",
    200: "p99 < 150 ms, 0 non-200, >= 25% of bare rps, every file once",
}
_COMMANDS = re.compile(r'^cliqbot_store_commands_total\{command="([^"]+)",path="([^"]+)"\} (\S+)$')


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


async def store_commands(box: Sandbox, bots: list[BotProcess]) -> dict[str, float]:
    """Store commands sent so far by ``bots``, summed, by path (``ack`` / ``other``)."""
    totals: dict[str, float] = {"ack": 0.0, "other": 0.0}
    for bot in bots:
        async with box.http.get(f"{bot.url}/metrics") as resp:
            text = await resp.text()
        for line in text.splitlines():
            match = _COMMANDS.match(line)
            if match:
                totals[match.group(2)] = totals.get(match.group(2), 0.0) + float(match.group(3))
    return totals


def cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


@dataclass(frozen=True)
class Landing:
    once: int
    twice: int
    seconds: float


async def landed(box: Sandbox, email: str, prefix: str, expected: int, wait: float) -> Landing:
    """Wait (at most ``wait`` s) until ``expected`` files named ``{prefix}N.txt`` landed."""
    started = time.monotonic()
    once = twice = 0
    while True:
        names = [entry["path_display"] for entry in await box.files_json(email)]
        mine = [n for n in names if n.startswith(f"/Cliq Uploads/{prefix}")]
        once = sum(1 for n in mine if re.fullmatch(rf"/Cliq Uploads/{prefix}\d+\.txt", n))
        twice = len(mine) - once  # autorenamed "name (1).txt": a file that landed again
        if once >= expected or time.monotonic() - started > wait:
            return Landing(once, twice, time.monotonic() - started)
        await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Row:
    level: int
    got: dict[str, Any]
    floor: dict[str, Any]
    ack: float  # store round trips per event, acknowledging
    other: float  # per event, everything else meanwhile (the workers)
    served: float  # requests the store answered per event, counted by the store (all clients)
    bot_cpu_ms: float
    store_cpu_ms: float
    landing: Landing

    @property
    def ratio(self) -> float:
        return float(self.got["rps"] / self.floor["rps"]) if self.floor["rps"] else 0.0

    @property
    def non_200(self) -> int:
        return sum(n for status, n in self.got["statuses"].items() if str(status) != "200")

    def met(self, requests: int) -> bool:
        accepted = self.got["statuses"].get("200", 0)
        files_ok = self.landing.twice == 0 and self.landing.once == accepted
        if self.level == 50:
            return self.got["p99_ms"] < 50 and self.non_200 == 0 and files_ok
        return (
            self.got["p99_ms"] < 150
            and self.non_200 == 0
            and self.ratio >= 0.25
            and files_ok
            and accepted == requests
        )


async def run(requests: int, processes: int, land_wait: float) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp_name:
        tmp = Path(tmp_name)
        async with (
            EmbeddedStore(storage_dir=tmp / "store") as store,
            sandbox(tmp, store.uri) as box,
        ):
            bots = [await box.start_bot() for _ in range(processes)]
            await box.setup_connection(bots[0])
            ana = user(1)
            await box.connect(bots[0], ana)
            driver = ChatDriver(box.http, bots[0].url, WEBHOOK_SECRET, bot_name=BOT_NAME)
            probe = await box.send(bots[0], ana, box.cliq.add_file("probe.txt", b"probe"))
            bare, bare_url = await start_bare(probe.body)
            urls = [f"{bot.url}/cliq/webhook" for bot in bots]
            bot_pids = [bot.pid for bot in bots]
            assert store.pid is not None
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
                    await asyncio.sleep(1.0)  # let the previous level's tail settle
                    commands = await store_commands(box, bots)
                    served = await server_requests(store.uri)
                    cpu_before = cpu(bot_pids), cpu([store.pid])
                    got = await load_in_child(urls, bodies, level, WEBHOOK_SECRET)
                    cpu_after = cpu(bot_pids), cpu([store.pid])
                    after = await store_commands(box, bots)
                    served = await server_requests(store.uri) - served
                    landing = await landed(
                        box,
                        dropbox_email(ana),
                        f"f{level}-",
                        got["statuses"].get("200", 0),
                        land_wait,
                    )
                    floor = await load_in_child([bare_url], bodies, level, None)
                    n = max(got["requests"], 1)
                    rows.append(
                        Row(
                            level,
                            got,
                            floor,
                            (after["ack"] - commands["ack"]) / n,
                            (after["other"] - commands["other"]) / n,
                            served / n,
                            1000 * (cpu_after[0] - cpu_before[0]) / n,
                            1000 * (cpu_after[1] - cpu_before[1]) / n,
                            landing,
                        )
                    )
            finally:
                bare.terminate()
                await bare.wait()
    return rows


def report(rows: list[Row], requests: int, processes: int) -> bool:
    print(
        f"{requests} signed file-message events per level, distinct attachments, one user,"
        f" {processes} serve process(es) on one embedded store"
    )
    print(
        f"{'clients':>7} | {'bot rps':>7} {'p50 ms':>7} {'p99 ms':>7} {'non-200':>7} | "
        f"{'bare rps':>8} {'p99 ms':>7} | {'ratio':>6} | "
        f"{'ack rt/ev':>9} {'other rt/ev':>11} {'store req/ev':>12} | "
        f"{'bot cpu ms/ev':>13} {'store cpu ms/ev':>15} | landed once / twice (s)"
    )
    ok = True
    for row in rows:
        got, floor, land = row.got, row.floor, row.landing
        print(
            f"{row.level:>7} | {got['rps']:7.0f} {got['p50_ms']:7.1f} {got['p99_ms']:7.1f} "
            f"{row.non_200:>7} | {floor['rps']:8.0f} {floor['p99_ms']:7.1f} | {row.ratio:6.1%} | "
            f"{row.ack:9.2f} {row.other:11.2f} {row.served:12.2f} | "
            f"{row.bot_cpu_ms:13.2f} {row.store_cpu_ms:15.2f} |"
            f" {land.once} / {land.twice} ({land.seconds:.0f} s)"
        )
    for row in rows:
        met = row.met(requests)
        ok = ok and met
        print(
            f"target at {row.level:>3} clients: {TARGETS[row.level]}: {'MET' if met else 'NOT MET'}"
        )
        if row.got["statuses"].keys() - {"200"} or row.got["errors"]:
            print(f"  statuses {row.got['statuses']} errors {row.got['errors']}")
    return ok


async def main(requests: int, processes: int, land_wait: float) -> int:
    rows = await run(requests, processes, land_wait)
    report(rows, requests, processes)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="requests per level")
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1)
    parser.add_argument(
        "--land-wait", type=float, default=120.0, help="seconds to wait for files to land"
    )
    parser.add_argument("--bare", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare is not None:
        bare_main(args.bare)
        sys.exit(0)
    sys.exit(asyncio.run(main(min(args.requests, 20000), args.processes, args.land_wait)))
