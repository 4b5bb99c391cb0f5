"""The embedded MongoDB-compatible store: SecantusDB run as a child process.

SecantusDB is GPL, so it is never imported: we start ``python -m secantus`` with its files under
``BOT_DATA_DIR``, wait until it answers ``ping`` over the wire, and stop it on shutdown. The code
talks to it exactly as to a real MongoDB; nothing depends on its quirks.

It is started ``--standalone``: by default SecantusDB advertises itself as a single-node replica
set, which only change streams and transactions need, and which makes every write cost about
2.5 times as much (the driver sends retryable-write transaction numbers the server then tracks).
The bot uses neither: no client sessions, no transactions, no change streams
(``tests/storage/test_standalone.py`` checks the code for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import AsyncMongoClient

from bot.errors import EmbeddedStoreError

log = logging.getLogger(__name__)

_START_TIMEOUT = 60.0
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class EmbeddedStore:
    """A running SecantusDB child. Use :meth:`start` and :meth:`stop` (or ``async with``)."""

    storage_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    _proc: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _log_file: object = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, timeout: float = _START_TIMEOUT) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        log_path = self.log_path or self.storage_dir / "secantus.log"
        log_file = log_path.open("ab")
        self._log_file = log_file
        args = [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage_dir / "db"),
            "--log-level",
            "WARNING",
            "--standalone",  # no replica-set advertisement: nothing here needs one (docstring)
        ]
        log.info("starting embedded store on %s:%s in %s", self.host, self.port, self.storage_dir)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                cwd=str(self.storage_dir),
                # Own process group: a Ctrl-C in the terminal reaches us, and we stop it in order.
                start_new_session=True,
                # If we die without stopping it (kill -9), the kernel stops it too, so a restart
                # does not find the data directory held by an orphan.
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            log_file.close()
            raise EmbeddedStoreError(f"cannot start the embedded store: {exc}") from exc
        try:
            await self._wait_ready(timeout, log_path)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, timeout: float, log_path: Path) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            self.uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            while True:
                if self._proc.returncode is not None:
                    raise EmbeddedStoreError(
                        f"the embedded store exited with code {self._proc.returncode} while"
                        f" starting; its log is {log_path}: {_tail(log_path)}"
                    )
                try:
                    await client.admin.command("ping")
                except Exception:  # noqa: BLE001 - any failure here means "not ready yet"
                    if time.monotonic() > deadline:
                        raise EmbeddedStoreError(
                            f"the embedded store did not answer within {timeout:g} s;"
                            f" its log is {log_path}"
                        ) from None
                    await asyncio.sleep(0.1)
                else:
                    log.info("embedded store ready (pid %s)", self._proc.pid)
                    return
        finally:
            await client.close()

    def crashed(self) -> int | None:
        """The exit code if the child died on its own, else ``None``."""
        if self._proc is None:
            return None
        return self._proc.returncode

    async def stop(self, timeout: float = 15.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("embedded store did not stop in %s s; killing it", timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            log.info("embedded store stopped")
        elif proc is not None:
            await proc.wait()
        log_file, self._log_file = self._log_file, None
        if log_file is not None:
            log_file.close()  # type: ignore[attr-defined]

    async def __aenter__(self) -> EmbeddedStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent exits."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
