"""A backlog for one Dropbox account: many small files from one user, all at once.

Run from the repository root: ``.venv/bin/python -m benchmarks.bench_backlog [--files 1500]``.

One connected user forwards ``--files`` small files (distinct bytes each) through one ``cliqbot
serve`` process (embedded store; stand-ins in this process), from a load generator in its own
process at ``--concurrency`` concurrent deliveries. A delivery answered with anything but 200 (a
503 under admission control, say) is sent again after its ``Retry-After``, as Cliq does, until
accepted. The attachment URLs expire ``--ttl`` seconds after they are handed out, so a file the
bot leaves waiting on its URL for longer is lost.

Targets (ISSUE 14): every file lands within 60 s of the last acknowledgement (>= 25 files/s),
with at most one commit in flight for the account at any time, none lost, none committed twice.

Reported: acknowledgement and landing times, the files per second, the stand-in's commits in
flight and file commits for the account, every file's content hash against its bytes, and the
store round trips the bot made (its ``cliqbot_store_commands_total`` on ``/metrics``: ``ack``
per event and ``other`` per landed file; and the store's own ``network.numRequests``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from benchmarks.common import json_in_child, read_spec
from bot.cliq.signing import hmac_signature
from bot.destinations.dropbox_wire import content_hash
from storage.embedded import EmbeddedStore
from tests.drills.harness import WEBHOOK_SECRET, dropbox_email, sandbox, user, wait_until

DRAIN_TARGET_S = 60.0
RATE_TARGET = 25.0


# -- the load generator (a child process) ----------------------------------------------------


async def deliver_all(
    url: str, bodies: list[bytes], concurrency: int, secret: str, timeout: float
) -> dict[str, Any]:
    """POST every body until it is answered 200 (waiting ``Retry-After`` between tries)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    last_ack = 0.0
    accepted = 0
    deadline = time.monotonic() + timeout
    connector = aiohttp.TCPConnector(limit=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as http:

        async def one(body: bytes) -> float | None:
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Bot-Timestamp": ts,
                "X-Bot-Signature": hmac_signature(secret, ts, body),
            }
            started = time.perf_counter()
            try:
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    status, wait = resp.status, resp.headers.get("Retry-After", "0.2")
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, wait = -1, "0.2"
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            latencies.append(time.perf_counter() - started)
            if status == 200:
                return None
            try:
                return min(max(float(wait), 0.05), 5.0)
            except ValueError:
                return 0.2

        async def worker() -> None:
            nonlocal last_ack, accepted
            while not queue.empty() and time.monotonic() < deadline:
                body = queue.get_nowait()
                while time.monotonic() < deadline:
                    wait = await one(body)
                    if wait is None:
                        accepted += 1
                        last_ack = time.time()
                        break
                    await asyncio.sleep(wait)

        first_send = time.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    return {
        "accepted": accepted,
        "first_send": first_send,
        "last_ack": last_ack,
        "statuses": statuses,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


def load_main() -> None:
    """Child entry point of :func:`deliver_in_child`."""
    spec = read_spec()
    bodies = [b.encode() for b in spec["bodies"]]
    result = asyncio.run(
        deliver_all(spec["url"], bodies, spec["concurrency"], spec["secret"], spec["timeout"])
    )
    sys.stdout.write(json.dumps(result) + "\n")


async def deliver_in_child(
    url: str, bodies: list[bytes], concurrency: int, timeout: float
) -> dict[str, Any]:
    """:func:`deliver_all` in its own process, so the load does not share our CPU time."""
    spec = {
        "url": url,
        "bodies": [b.decode() for b in bodies],
        "concurrency": concurrency,
        "secret": WEBHOOK_SECRET,
        "timeout": timeout,
    }
    return await json_in_child("benchmarks.bench_backlog", spec, timeout + 60)


# -- the measurement ---------------------------------------------------------------------------


def _content(n: int, size: int) -> bytes:
    seed = hashlib.sha256(f"backlog-{n}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


async def _bot_store_commands(http: aiohttp.ClientSession, bot_url: str) -> dict[str, float]:
    """``cliqbot_store_commands_total`` summed by path, if the bot exports it."""
    async with http.get(f"{bot_url}/metrics") as resp:
        text = await resp.text()
    paths: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("cliqbot_store_commands_total{"):
            labels, _, value = line.rpartition(" ")
            path = labels.split('path="', 1)[1].split('"', 1)[0] if 'path="' in labels else "?"
            paths[path] = paths.get(path, 0.0) + float(value)
    return paths


async def _store_requests(uri: str) -> int:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        status = await client.admin.command("serverStatus")
    finally:
        await client.close()
    return int(status.get("network", {}).get("numRequests", 0))


def _saved_times(box: Any, user_id: str) -> dict[str, list[float]]:
    saved: dict[str, list[float]] = {}
    for m in box.cliq.messages:
        text = str(m.payload.get("text", ""))
        if user_id in m.userids and text.startswith("Saved "):
            name = text.removeprefix("Saved ").split(" ", 1)[0]
            saved.setdefault(name, []).append(m.received_at)
    return saved


async def main(files: int, concurrency: int, size: int, ttl: float, wait: float) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp_name:
        tmp = Path(tmp_name)
        async with (
            EmbeddedStore(storage_dir=tmp / "store") as store,
            sandbox(tmp, store.uri) as box,
        ):
            bot = await box.start_bot()
            await box.setup_connection(bot)
            ana = user(1)
            await box.connect(bot, ana)
            email = dropbox_email(ana)
            driver = box.driver(bot)
            names = [f"b{n:05d}.bin" for n in range(files)]
            expected = {name: content_hash(_content(n, size)) for n, name in enumerate(names)}
            bodies = [
                json.dumps(
                    driver.message(ana, "", [box.cliq.add_file(name, _content(n, size), ttl=ttl)]),
                    separators=(",", ":"),
                ).encode()
                for n, name in enumerate(names)
            ]
            commands_before = await _bot_store_commands(box.http, bot.url)
            requests_before = await _store_requests(store.uri)
            load = await deliver_in_child(
                f"{bot.url}/cliq/webhook", bodies, concurrency, timeout=600
            )
            with contextlib.suppress(TimeoutError):  # what did not land is reported
                await wait_until(
                    lambda: len(_saved_times(box, ana.id)) >= files, wait, "all landed"
                )
            await asyncio.sleep(1.0)  # a duplicate "Saved" or commit would show up now
            saved = _saved_times(box, ana.id)
            commands_after = await _bot_store_commands(box.http, bot.url)
            requests_after = await _store_requests(store.uri)
            stats = await box.stats()
            stored = await box.files_json(email)
            downloads = sum(box.cliq.downloads.values()) if hasattr(box.cliq, "downloads") else -1
            prefetched = bot.log().count("its file is in the store now")
            errors = [
                line for line in bot.log().splitlines() if "ERROR" in line or "Traceback" in line
            ]
            lost_urls = sum(
                "could not be downloaded" in str(m.payload.get("text", ""))
                for m in box.cliq.messages
            )
    return report(
        files=files,
        concurrency=concurrency,
        size=size,
        ttl=ttl,
        load=load,
        saved=saved,
        stored=stored,
        expected=expected,
        stats=stats,
        email=email,
        lost_urls=lost_urls,
        downloads=downloads,
        prefetched=prefetched,
        errors=errors,
        commands={
            k: commands_after.get(k, 0.0) - commands_before.get(k, 0.0) for k in ("ack", "other")
        },
        store_requests=requests_after - requests_before,
    )


def report(**r: Any) -> int:
    files, load, saved = r["files"], r["load"], r["saved"]
    times = sorted(t for ts in saved.values() for t in ts)
    last_land = times[-1] if times else float("nan")
    drain = last_land - load["last_ack"]
    span = last_land - load["first_send"]
    rate = len(saved) / span if span > 0 else 0.0
    paths = {f["path_display"]: f for f in r["stored"]}
    wanted = {f"/Cliq Uploads/{name}": digest for name, digest in r["expected"].items()}
    right = sum(1 for p, digest in wanted.items() if paths.get(p, {}).get("content_hash") == digest)
    extra = sorted(set(paths) - set(wanted))
    stats = r["stats"]
    in_flight = stats.get("max_parallel_commits", stats.get("max_parallel_writes", {}))
    commits_in_flight = in_flight.get(r["email"], 0)
    file_commits = stats.get("commits", {}).get(r["email"])
    twice = [name for name, ts in saved.items() if len(ts) > 1]
    print(
        f"{files} files of {r['size']} B from one user, {r['concurrency']} concurrent deliveries,"
        f" attachment URLs valid {r['ttl']:.0f} s"
    )
    print(
        f"acknowledged {load['accepted']} in {load['last_ack'] - load['first_send']:.1f} s"
        f" (p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms, answers {load['statuses']})"
    )
    rows = [
        ("landed (Saved messages)", f"{len(saved)} of {files}", f"{files}", len(saved) == files),
        (
            "landed within s of the last ack",
            f"{drain:.1f}",
            f"<= {DRAIN_TARGET_S:.0f}",
            len(saved) == files and drain <= DRAIN_TARGET_S,
        ),
        (
            "files/s, first send to last landing",
            f"{rate:.1f}",
            f">= {RATE_TARGET:.0f}",
            rate >= RATE_TARGET,
        ),
        (
            "commits in flight for the account, max",
            f"{commits_in_flight}",
            "<= 1",
            commits_in_flight <= 1,
        ),
        (
            "files in the account with the right content_hash",
            f"{right}",
            f"{files}",
            right == files and not extra,
        ),
        (
            "file commits at the stand-in",
            f"{file_commits}",
            f"{files}",
            file_commits is None or file_commits == files,
        ),
        (
            "files saved twice / extra files",
            f"{len(twice)} / {len(extra)}",
            "0 / 0",
            not twice and not extra,
        ),
        ("files lost to an expired URL", f"{r['lost_urls']}", "0", r["lost_urls"] == 0),
    ]
    print(f"{'':50} | {'result':>14} | {'target':>8} | met")
    for label, value, target, ok in rows:
        print(f"{label:50} | {value:>14} | {target:>8} | {'yes' if ok else 'NO'}")
    commands = r["commands"]
    if any(commands.values()):
        per_event = commands["ack"] / max(load["accepted"], 1)
        per_file = commands["other"] / max(len(saved), 1)
        print(
            f"store round trips by the bot: ack path {per_event:.2f} per event, worker and the"
            f" rest {per_file:.2f} per landed file"
            f" ({commands['ack']:.0f} + {commands['other']:.0f} commands)"
        )
    calls = stats.get("calls", {})
    print(
        "Dropbox calls: "
        + ", ".join(
            f"{route.removeprefix('/2/files/')} {calls[route]}"
            for route in sorted(calls)
            if route.startswith("/2/files/")
        )
        + f"; attachment downloads {r['downloads']} for {files} files, of which fetched into"
        f" the store ahead of their upload {r['prefetched']}"
    )
    for line in r["errors"][:5]:
        print("bot:", line[:200])
    print(
        f"store requests (serverStatus network.numRequests): {r['store_requests']}"
        f" = {r['store_requests'] / max(len(saved), 1):.2f} per landed file"
    )
    met = all(ok for *_, ok in rows)
    print("targets:", "MET" if met else "NOT MET")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--size", type=int, default=2048, help="bytes per file")
    parser.add_argument("--ttl", type=float, default=60.0, help="attachment URL lifetime, s")
    parser.add_argument("--wait", type=float, default=180.0, help="longest wait for landing, s")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load_main()
        sys.exit(0)
    sys.exit(
        asyncio.run(
            main(
                max(1, min(args.files, 20000)),
                max(1, min(args.concurrency, 1000)),
                max(1, min(args.size, 4 * 1024 * 1024)),
                max(1.0, args.ttl),
                max(10.0, min(args.wait, 1800.0)),
            )
        )
    )
