"""``python -m bot demo``: the self-test passes; the interactive demo starts and stops cleanly."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = 8


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MONGODB_URI", None)  # the demo always runs its own embedded store
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for children in pathlib.Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(p) for p in children.read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def test_self_test_passes_every_step() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--self-test"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    ok = [line for line in lines if line.startswith("ok  ")]
    assert len(ok) == STEPS, done.stdout
    assert not [line for line in lines if line.startswith("FAIL")]
    assert any("Ana's Dropbox only" in line for line in ok)
    assert any("Ben's Dropbox only" in line for line in ok)
    assert any("owner's Dropbox" in line for line in ok)
    assert any("`files` (ctx.invoke)" in line and "their own files" in line for line in ok)
    assert f"self-test passed: {STEPS} steps" in done.stdout


def test_interactive_demo_serves_the_emulator_and_stops_on_sigint() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--port", "0"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        urls: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while "bot" not in urls and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            match = re.match(r"\s+(chat emulator|Dropbox stand-in|bot):\s+(http://\S+)", line)
            if match:
                urls[match.group(1)] = match.group(2)
        assert set(urls) == {"chat emulator", "Dropbox stand-in", "bot"}, urls
        with urllib.request.urlopen(urls["chat emulator"], timeout=10) as resp:
            page = resp.read().decode()
        assert resp.status == 200
        assert 'aria-live="polite"' in page and "cliqbot chat emulator" in page
        with urllib.request.urlopen(urls["bot"] + "/healthz", timeout=10) as resp:
            assert resp.status == 200
        children = _children(proc.pid)
        assert children, "the embedded store should run as a child of the demo"

        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "stopped" in out
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)], "a child outlived the demo"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
