"""The real command line, as an operator runs it: processes, signals, exit codes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp

_ENV_KEEP = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
    env.update({"BOT_DATA_DIR": str(tmp_path / "data"), "BOT_PORT": "0"})
    env.update(extra)
    return env


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found


def _alive(pid: int) -> bool:
    """Running: a process that exited but is not reaped yet (a zombie, whoever its new parent
    is) has ended."""
    return _state(pid) not in ("", "Z", "X")


def _state(pid: int) -> str:
    """The process's state letter from /proc (``""`` when it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


async def _start_serve(tmp_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        env=_env(tmp_path, BOT_WEBHOOK_SECRET="s3cr3t"),
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    url = ""
    async with asyncio.timeout(90):
        while not url:
            line = (await proc.stderr.readline()).decode()
            assert line, "serve exited before listening"
            if m := re.search(r"listening on (http://\S+)", line):
                url = m.group(1)
    return proc, url


async def test_serve_runs_on_the_embedded_store_and_stops_cleanly(tmp_path: Path) -> None:
    proc, url = await _start_serve(tmp_path)
    try:
        children = _children(proc.pid)
        assert children, "the embedded store should run as a child process"
        async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        rest = (await asyncio.wait_for(proc.stderr.read(), 60)).decode()
        assert await proc.wait() == 0
    assert "s3cr3t" not in rest
    for child in children:
        assert not _alive(child), "the embedded store outlived the server"
    assert (tmp_path / "data" / "store" / "db").is_dir()

    # A second start finds the first one's files.
    proc, url = await _start_serve(tmp_path)
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_serve_without_inbound_authentication_names_what_is_missing(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        env=_env(tmp_path),
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "BOT_WEBHOOK_SECRET" in err.decode()


async def test_bad_configuration_lists_every_variable(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check",
        env=_env(tmp_path, BOT_PORT="x", BOT_LOG_LEVEL="LOUD"),
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1  # CONTRACT §2: check prints every problem, exits 1
    text = err.decode()
    assert "BOT_PORT" in text and "BOT_LOG_LEVEL" in text


async def test_check_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check",
        env=_env(
            tmp_path,
            MONGODB_URI="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300",
            CLIQ_API_BASE="http://127.0.0.1:9/api/v2",
            DROPBOX_API_URL="http://127.0.0.1:9",
        ),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    lines = out.decode().splitlines()
    for name in (
        "BOT_WEBHOOK_SECRET",
        "MONGODB_URI",
        "CLIQ_API_BASE",
        "DROPBOX_API_URL",
        "CLIQ_BOT_NAME",
        "CLIQ_FUNCTION_OWNER",
    ):
        assert any(line.startswith(name) or name in line for line in lines), name
    buttons = next(line for line in lines if line.startswith("CLIQ_FUNCTION_OWNER"))
    assert "`cliqbot`" in buttons and "/cliq/webhook" in buttons, buttons


async def test_a_killed_server_takes_its_embedded_store_along(tmp_path: Path) -> None:
    proc, url = await _start_serve(tmp_path)
    children = _children(proc.pid)
    assert children
    proc.kill()
    await proc.wait()
    for _ in range(200):  # up to 20 s for the kernel's SIGTERM to end the store
        if not any(_alive(c) for c in children):
            break
        await asyncio.sleep(0.1)
    alive = {c: _state(c) for c in children if _alive(c)}
    assert not alive, f"the embedded store outlived a killed server: {alive}"
    # And the data directory is free for the next start.
    proc, url = await _start_serve(tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 60) == 0
