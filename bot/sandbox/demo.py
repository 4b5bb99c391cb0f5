"""``cliqbot demo``: the whole product on loopback, in one process and one event loop.

:class:`Sandbox` starts, in this order (stopped in reverse):

1. the Dropbox stand-in (an app key/secret pair made up per run, a few demo accounts);
2. the Cliq stand-in, which also serves the chat emulator page;
3. the bot itself, built by :func:`bot.app.create_app` with settings pointing at the stand-ins, a
   webhook secret and an encryption key made up per run. ``MONGODB_URI`` is left unset, so the
   bot starts the embedded store exactly as ``serve`` does. It loads the example plugin
   ``examples/files_plugin.py`` (the chat word ``files``, CONTRACT §10) the way a deployer loads
   one: its folder goes on the Python path (as ``PYTHONPATH=examples`` would) and its module
   name into ``BOT_PLUGINS``.

Everything lives in a fresh temporary directory, removed on exit: the Dropbox stand-in keeps its
accounts and tokens in memory, so stored authorizations would be worthless on the next run anyway.
``BOT_DATA_DIR`` is therefore not used by the demo; nothing from ``.env`` is needed.

:func:`run_demo` then either prints the URLs to open and runs until SIGINT/SIGTERM, or
(``--self-test``) plays the scripted scenario through real HTTP, printing one ``ok`` / ``FAIL``
line per step, and returns 0 only if every step held.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import pathlib
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType

import aiohttp
from aiohttp import web

from bot.app import create_app
from bot.config import Settings
from bot.errors import ConfigError
from bot.keys import RUNTIME
from bot.logs import setup_logging
from bot.sandbox.cliq_standin import CliqStandin
from bot.sandbox.driver import ChatDriver, ChatUser
from bot.sandbox.dropbox_standin import DropboxStandin
from bot.secret import Secret

__all__ = ["ADMIN", "ANA", "BEN", "CHEN", "Sandbox", "run_demo"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
BOT_NAME = "filesbot"
STEP_TIMEOUT = 20.0
DEMO_LINK = "demo_dropbox"
OWNER_LINK = "owner_dropbox"
SCOPES = "account_info.read,files.content.write,files.metadata.read"
#: The example plugin (a source checkout has it) and the folder it is imported from.
EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_PLUGIN = "files_plugin"

ADMIN = ChatUser("1001", "admin@example.com", "Ada", "Admin", admin=True)
ANA = ChatUser("55501", "ana@example.com", "Ana", "Lima")
BEN = ChatUser("55502", "ben@example.com", "Ben", "Okafor")
CHEN = ChatUser("55503", "chen@example.com", "Chen", "Wu")
USERS = (ADMIN, ANA, BEN, CHEN)

ANA_DROPBOX = "ana@dropbox.example"
BEN_DROPBOX = "ben@dropbox.example"
OWNER_DROPBOX = "owner@dropbox.example"
DROPBOX_ACCOUNTS = (ANA_DROPBOX, BEN_DROPBOX, "chen@dropbox.example", OWNER_DROPBOX)

_OUR_LOGGERS = ("bot", "handlers", "storage")


class Sandbox:
    """The Dropbox stand-in, the Cliq stand-in (with the emulator) and the bot, on loopback.

    Use as ``async with Sandbox(port=0) as sandbox:``; the URLs and the in-process stand-ins are
    attributes once entered.
    """

    def __init__(self, *, port: int = 0, log_level: str = "INFO") -> None:
        self.port = port
        self.log_level = log_level
        self._stack = contextlib.AsyncExitStack()
        self.bot_url = ""
        self.secret = secrets.token_urlsafe(32)
        self.dropbox: DropboxStandin | None = None
        self.dropbox_url = ""
        self._zapikey = secrets.token_urlsafe(24)
        self.cliq = CliqStandin(bot_name=BOT_NAME, webhook_token=self._zapikey)
        self.chat: ChatDriver | None = None

    @property
    def emulator_url(self) -> str:
        return f"{self.cliq.base_url}/"

    def files_page(self, email: str) -> str:
        return f"{self.dropbox_url}/_standin/accounts/{email}/files"

    async def __aenter__(self) -> Sandbox:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        stack = self._stack
        tmp = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cliqbot-demo-")))
        app_key, app_secret = f"demo-{secrets.token_hex(4)}", secrets.token_urlsafe(24)

        dropbox = DropboxStandin(tmp / "dropbox", apps={app_key: app_secret})
        for email in DROPBOX_ACCOUNTS:
            dropbox.add_account(email)
        self.dropbox = dropbox
        self.dropbox_url = await self._serve(dropbox.app(), 0)
        log.info("Dropbox stand-in listening on %s", self.dropbox_url)

        await self.cliq.start(HOST, 0)
        stack.push_async_callback(self.cliq.stop)

        settings = Settings(
            host=HOST,
            port=self.port,
            data_dir=tmp / "data",
            encryption_keys=(Secret(_new_key()),),
            webhook_secret=Secret(self.secret),
            admins=frozenset({ADMIN.email}),
            cliq_api_base=self.cliq.api_base,
            cliq_bot_name=BOT_NAME,
            cliq_webhook_token=Secret(self._zapikey),
            dropbox_app_key=app_key,
            dropbox_app_secret=Secret(app_secret),
            dropbox_authorize_url=f"{self.dropbox_url}/oauth2/authorize",
            dropbox_api_url=self.dropbox_url,
            dropbox_content_url=self.dropbox_url,
            log_level=self.log_level,
            plugins=example_plugins(),
            worker_poll_seconds=0.2,
            job_lease_seconds=10.0,
        )
        app = create_app(settings)
        self.bot_url = await self._serve(app, self.port)
        app[RUNTIME].public_url = self.bot_url
        log.info("bot listening on %s", self.bot_url)

        http = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP_TIMEOUT))
        )
        self.chat = ChatDriver(http, self.bot_url, self.secret, bot_name=BOT_NAME)
        self.cliq.connect_bot(
            self.bot_url,
            self.secret,
            USERS,
            links=[
                ("Dropbox stand-in accounts", f"{self.dropbox_url}/"),
                *((f"Dropbox of {e}", self.files_page(e)) for e in DROPBOX_ACCOUNTS),
            ],
        )

    async def _serve(self, app: web.Application, port: int) -> str:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, HOST, port).start()
        bound = next(a[1] for a in runner.addresses if isinstance(a, tuple))
        return f"http://{HOST}:{bound}"

    def driver(self) -> ChatDriver:
        if self.chat is None:
            raise RuntimeError("the sandbox is not running")
        return self.chat

    def standin(self) -> DropboxStandin:
        if self.dropbox is None:
            raise RuntimeError("the sandbox is not running")
        return self.dropbox

    async def create_connection(self, name: str, link: str, *, switch: str) -> str:
        """``/connection create`` as the admin; returns the reply text (raises unless created)."""
        reply = await self.driver().run(
            ADMIN,
            f'create "{name}" service=dropbox scopes={SCOPES} login_user_credentials={switch}',
        )
        if reply.status != 200 or link not in reply.text:
            raise StepFailed(f"create {name}: {reply.status} {reply.text[:200]}")
        return reply.text

    async def publish(self, link: str) -> None:
        reply = await self.driver().run(ADMIN, f"publish {link}")
        if reply.status != 200 or "Published" not in reply.text:
            raise StepFailed(f"publish {link}: {reply.status} {reply.text[:200]}")

    async def connect(self, user: ChatUser, email: str, link: str = "") -> None:
        """``/connection connect [LINK]`` as ``user``, then consent as ``email`` at the stand-in."""
        reply = await self.driver().run(user, f"connect {link}".strip())
        url = reply.button_url()
        if not url:
            raise StepFailed(f"no connect button for {user.first_name}: {reply.text[:200]}")
        status, page = await self.driver().consent(url, email)
        if status != 200 or "Connected" not in page:
            raise StepFailed(f"consent as {email}: the callback answered {status}")
        await self.cliq.wait_for_message(
            user.id, lambda m: "Connected" in str(m.get("text", "")), timeout=STEP_TIMEOUT
        )

    async def forward(self, user: ChatUser, name: str, content: bytes) -> None:
        """``user`` forwards a file offered by the Cliq stand-in; waits for "Saved NAME"."""
        attachment = self.cliq.add_file(name, content)
        reply = await self.driver().send_files(user, [attachment])
        if reply.status != 200:
            raise StepFailed(f"{user.first_name}'s file: {reply.status} {reply.text[:200]}")
        await self.cliq.wait_for_message(
            user.id, lambda m: f"Saved {name}" in str(m.get("text", "")), timeout=STEP_TIMEOUT
        )

    def landed(self, email: str, name: str, content: bytes, *, not_in: tuple[str, ...]) -> None:
        """``name`` is in ``email``'s stand-in Dropbox with ``content``, and in no ``not_in``."""
        dbx, path = self.standin(), f"/Cliq Uploads/{name}"
        try:
            stored = dbx.read_file(email, path)
        except KeyError:
            raise StepFailed(f"{path} is not in {email}'s Dropbox") from None
        if stored != content:
            raise StepFailed(f"{path} in {email}'s Dropbox differs ({len(stored)} bytes)")
        for other in not_in:
            if path in dbx.files(other):
                raise StepFailed(f"{path} also landed in {other}'s Dropbox")

    async def own_files_listed(self) -> None:
        """Ana and Ben say ``files`` (the example plugin): each sees only their own file."""
        for user, own, other in ((ANA, "q3 report.pdf", "photo.jpg"), (BEN, "photo.jpg", "q3")):
            reply = await self.driver().say(user, "files")
            if reply.status != 200 or own not in reply.text or other in reply.text:
                raise StepFailed(f"{user.first_name}'s `files`: {reply.status} {reply.text[:300]}")


class StepFailed(Exception):
    """A self-test step did not hold; the message says what was seen."""


def example_plugins() -> tuple[str, ...]:
    """``BOT_PLUGINS`` of the demo: the example plugin, its folder put on the Python path."""
    if not (EXAMPLES / f"{EXAMPLE_PLUGIN}.py").is_file():
        log.warning("no %s/%s.py here: the demo runs without `files`", EXAMPLES, EXAMPLE_PLUGIN)
        return ()
    if str(EXAMPLES) not in sys.path:
        sys.path.append(str(EXAMPLES))
    return (EXAMPLE_PLUGIN,)


def _new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def _configure_logging(env: Mapping[str, str], self_test: bool) -> str:
    level = (env.get("BOT_LOG_LEVEL") or ("WARNING" if self_test else "INFO")).strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        level = "INFO"
    fmt = "json" if (env.get("BOT_LOG_FORMAT") or "").strip().lower() == "json" else "text"
    setup_logging("WARNING", fmt)  # other libraries: warnings only
    for name in _OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)
    return level


def run_demo(env: Mapping[str, str], *, self_test: bool, port: int) -> int:
    """Run the sandbox (interactive, or the scripted self-test); the process exit code."""
    level = _configure_logging(env, self_test)
    try:
        return asyncio.run(_main(self_test=self_test, port=port, log_level=level))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130


async def _main(*, self_test: bool, port: int, log_level: str) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        sandbox = Sandbox(port=port, log_level=log_level)
        try:
            async with sandbox:
                if self_test:
                    return await _race(self_test_steps(sandbox), stop)
                await sandbox.create_connection("Demo Dropbox", DEMO_LINK, switch="on")
                await sandbox.publish(DEMO_LINK)
                _say(_banner(sandbox))
                await stop.wait()
                _say("stopping the demo")
        except OSError as exc:
            _say(f"cannot start the demo: {exc.strerror or exc}")
            return 1
        except StepFailed as exc:
            _say(f"cannot set up the demo connection: {exc}")
            return 1
        except ConfigError as exc:
            _say(f"cannot start the demo: {exc}")
            return 1
        _say("stopped")
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)


async def _race(work: Awaitable[int], stop: asyncio.Event) -> int:
    """``work``'s result, or 130 when SIGINT/SIGTERM comes first (the work is cancelled)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    _say("FAIL interrupted")
    return 130


def _banner(sandbox: Sandbox) -> str:
    return "\n".join(
        [
            "",
            "cliqbot demo is running (press Ctrl-C to stop)",
            f"  chat emulator:    {sandbox.emulator_url}",
            f"  Dropbox stand-in: {sandbox.dropbox_url}/",
            f"  bot:              {sandbox.bot_url}",
            f"  connections page: {sandbox.bot_url}/connections (sign in from chat:"
            " type `connections`)",
            "",
            f'The admin (Ada) has created and published "Demo Dropbox" (`{DEMO_LINK}`,'
            " login user credentials ON).",
            "Open the chat emulator, pick a user, type `connect`, allow access on the consent",
            f"page (e.g. as {ANA_DROPBOX}), then attach a file: it lands in that account.",
            "Type `files` (the example plugin, examples/files_plugin.py) to list that account's",
            "last files through ctx.invoke.",
            "",
        ]
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --- the self-test --------------------------------------------------------------------------


async def self_test_steps(sandbox: Sandbox) -> int:
    """The scripted scenario; one line per step; 0 only if every step held."""
    ana_bytes = b"Ana's quarterly report\n" + secrets.token_bytes(40_000)
    ben_bytes = b"Ben's holiday photo\n" + secrets.token_bytes(25_000)
    owner_bytes = b"Ana's file for the owner\n" + secrets.token_bytes(10_000)
    landed = sandbox.landed

    async def forward_ana() -> None:
        await sandbox.forward(ANA, "q3 report.pdf", ana_bytes)
        landed(ANA_DROPBOX, "q3 report.pdf", ana_bytes, not_in=(BEN_DROPBOX, OWNER_DROPBOX))

    async def forward_ben() -> None:
        await sandbox.forward(BEN, "photo.jpg", ben_bytes)
        landed(BEN_DROPBOX, "photo.jpg", ben_bytes, not_in=(ANA_DROPBOX, OWNER_DROPBOX))

    async def create_demo() -> None:
        await sandbox.create_connection("Demo Dropbox", DEMO_LINK, switch="on")
        await sandbox.publish(DEMO_LINK)

    async def owner_connection() -> None:
        await sandbox.create_connection("Owner Dropbox", OWNER_LINK, switch="off")
        await sandbox.connect(ADMIN, OWNER_DROPBOX, OWNER_LINK)
        await sandbox.publish(OWNER_LINK)

    async def forward_to_owner() -> None:
        await sandbox.forward(ANA, "for the owner.txt", owner_bytes)
        landed(OWNER_DROPBOX, "for the owner.txt", owner_bytes, not_in=(ANA_DROPBOX,))

    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ('admin creates and publishes "Demo Dropbox" (login user credentials ON)', create_demo),
        (
            f"Ana connects her own Dropbox ({ANA_DROPBOX})",
            lambda: sandbox.connect(ANA, ANA_DROPBOX),
        ),
        (
            f"Ben connects his own Dropbox ({BEN_DROPBOX})",
            lambda: sandbox.connect(BEN, BEN_DROPBOX),
        ),
        ("Ana's file lands byte-for-byte in Ana's Dropbox only", forward_ana),
        ("Ben's file lands byte-for-byte in Ben's Dropbox only", forward_ben),
        (
            "through the example plugin's `files` (ctx.invoke), Ana and Ben each see only"
            " their own files",
            sandbox.own_files_listed,
        ),
        (
            f'admin creates "Owner Dropbox" (switch OFF), connects it as {OWNER_DROPBOX},'
            " publishes it",
            owner_connection,
        ),
        ("with the switch OFF, Ana's file lands in the owner's Dropbox", forward_to_owner),
    ]
    return await run_steps(steps)


async def run_steps(steps: Sequence[tuple[str, Callable[[], Awaitable[None]]]]) -> int:
    """Run each step within :data:`STEP_TIMEOUT`, one line each; 0 only if every step held."""
    for label, step in steps:
        started = time.monotonic()
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                await step()
        except StepFailed as exc:
            _say(f"FAIL {label}: {exc}")
            return 1
        except TimeoutError as exc:
            detail = str(exc) or f"no result within {STEP_TIMEOUT:g} s"
            _say(f"FAIL {label}: {detail}")
            return 1
        except (aiohttp.ClientError, ValueError) as exc:
            _say(f"FAIL {label}: {type(exc).__name__}: {exc}")
            return 1
        _say(f"ok  {label} ({time.monotonic() - started:.2f} s)")
    _say(f"self-test passed: {len(steps)} steps")
    return 0
