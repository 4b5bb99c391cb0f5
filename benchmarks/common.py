"""Shared pieces of the benchmarks: RSS and CPU readers, a load-generator child process.

The stack itself (stand-ins, ``serve`` children, the real OAuth connect) comes from the drill
harness in ``tests/drills/harness.py``, so benchmarks and drills exercise the same wiring.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from bot.cliq.signing import hmac_signature

_ROOT = str(Path(__file__).resolve().parents[1])


def rss_kib(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of a process in KiB, from /proc (Linux only)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc (Linux only)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


async def server_requests(uri: str) -> int:
    """Requests the store at ``uri`` has answered so far, from every client (``serverStatus``
    ``network.numRequests``): the store's own count of round trips."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        status = await client.admin.command("serverStatus")
    finally:
        await client.close()
    return int(status["network"]["numRequests"])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run_load(
    urls: list[str], bodies: list[bytes], concurrency: int, secret: str | None, timeout: float
) -> dict[str, Any]:
    """POST every body once with ``concurrency`` workers, the bodies taking ``urls`` in turn
    (several ``serve`` processes behind one load); latencies and status counts."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for index, body in enumerate(bodies):
        queue.put_nowait((urls[index % len(urls)], body))
    connector = aiohttp.TCPConnector(limit=concurrency)
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:

        async def worker() -> None:
            while not queue.empty() and time.monotonic() < deadline:
                url, body = queue.get_nowait()
                ts = str(int(time.time()))
                headers = {"Content-Type": "application/json"}
                if secret is not None:
                    headers["X-Bot-Timestamp"] = ts
                    headers["X-Bot-Signature"] = hmac_signature(secret, ts, body)
                started = time.perf_counter()
                try:
                    async with http.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = -1
                    errors.append(type(exc).__name__)
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "mean_ms": 1000 * statistics.fmean(latencies),
        "statuses": statuses,
        "errors": sorted(set(errors)),
    }


def load_main() -> None:
    """Child entry point of :func:`load_in_child`."""
    spec = read_spec()
    bodies = [b.encode() for b in spec["bodies"]]
    result = asyncio.run(
        run_load(spec["urls"], bodies, spec["concurrency"], spec.get("secret"), spec["timeout"])
    )
    sys.stdout.write(json.dumps(result) + "\n")


def read_spec() -> dict[str, Any]:
    """In a child of :func:`json_in_child`: the spec it was given."""
    spec: dict[str, Any] = json.loads(sys.stdin.read())
    return spec


async def json_in_child(module: str, spec: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``python -m module --load`` (so it does not share our CPU time) with ``spec`` as
    JSON on its stdin (:func:`read_spec`); the JSON object it prints last."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "--load",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=_ROOT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(json.dumps(spec).encode()), timeout)
    lines = out.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(f"the load generator {module} printed nothing (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def load_in_child(
    urls: list[str],
    bodies: list[bytes],
    concurrency: int,
    secret: str | None,
    timeout: float = 240.0,
) -> dict[str, Any]:
    """Run :func:`run_load` in a separate Python process."""
    spec = {
        "urls": urls,
        "bodies": [b.decode() for b in bodies],
        "concurrency": concurrency,
        "secret": secret,
        "timeout": timeout,
    }
    return await json_in_child("benchmarks.common", spec, timeout + 30)


if __name__ == "__main__":
    load_main()
