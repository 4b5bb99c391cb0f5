"""The command line: ``cliqbot serve | check | demo | rotate-keys`` (also ``python -m bot``)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.app import create_app
from bot.catalogue import client_variables, named_endpoints
from bot.config import Settings, load_environment, load_settings, serve_problems
from bot.errors import ConfigError, StoreUnavailable
from bot.keys import RUNTIME
from bot.logs import setup_logging
from storage.base import Store
from storage.connections import ServiceRecords

log = logging.getLogger("bot")

_DRAIN_SECONDS = 30.0
_CHECK_TIMEOUT = 3.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cliqbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the bot server until SIGINT/SIGTERM")
    sub.add_parser("check", help="validate configuration and reachability")
    demo = sub.add_parser("demo", help="run a complete local sandbox on loopback")
    demo.add_argument("--self-test", action="store_true", help="run the scripted scenario")
    demo.add_argument("--port", type=int, default=8080, help="the bot's port (0: any free port)")
    sub.add_parser("rotate-keys", help="re-encrypt every stored token under the first key")
    args = parser.parse_args(argv)

    env = load_environment()
    if args.command == "demo":
        from bot.sandbox.demo import run_demo

        return run_demo(env, self_test=args.self_test, port=args.port)
    try:
        settings = load_settings(env)
    except ConfigError as err:
        for problem in err.problems:
            print(f"config: {problem}", file=sys.stderr)
        return 1 if args.command == "check" else 2  # CONTRACT §2: check exits 1 on problems
    setup_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        problems = serve_problems(settings)
        if problems:
            for problem in problems:
                print(f"config: {problem}", file=sys.stderr)
            return 2
        return asyncio.run(serve(settings))
    if args.command == "check":
        problems = asyncio.run(check(settings))
        for problem in problems:
            print(problem)
        if not problems:
            print("ok: configuration valid and every endpoint answered")
        return 1 if problems else 0
    from bot.rotate import rotate_keys

    return asyncio.run(rotate_keys(settings))


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM, then drain in-flight work and return 0."""
    app = create_app(settings)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=_DRAIN_SECONDS
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        port = _bound_port(runner, settings.port)
        runtime = app[RUNTIME]
        runtime.public_url = settings.base_url(port)
        log.info(
            "cliqbot listening on http://%s:%s (public URL %s)",
            settings.host,
            port,
            runtime.public_url,
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stopping: draining in-flight work")
    finally:
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0


def _bound_port(runner: web.AppRunner, default: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return default


async def check(settings: Settings) -> list[str]:
    """Every problem with the configuration and the endpoints it names, one line each.

    The default services (``settings.catalogue``) whose clients ``SERVICE_<NAME>_*`` configure
    are checked too: their endpoints must answer, like Dropbox's.
    """
    problems = [f"config: {p}" for p in serve_problems(settings)]
    if not settings.cliq_bot_name:
        problems.append("CLIQ_BOT_NAME: not set; the bot cannot post messages to Cliq")
    if not settings.cliq_webhook_token:
        problems.append("CLIQ_WEBHOOK_TOKEN: not set; the bot cannot post messages to Cliq")
    if not settings.cliq_function_owner:
        problems.append(
            "CLIQ_FUNCTION_OWNER: not set; set it to the email of whoever created the Cliq"
            f" function `{settings.cliq_function_name}` (CLIQ_FUNCTION_NAME: a button function"
            f" executed through {settings.base_url()}/cliq/webhook), or clicks on the bot's"
            " Retry / Cancel buttons may not reach the bot"
        )
    if not settings.dropbox_app_key:
        problems.append("DROPBOX_APP_KEY / DROPBOX_APP_SECRET: not set; Dropbox cannot connect")
    problems += _check_data_dir(settings.data_dir)
    found, stored = await _check_mongodb(settings)
    problems += found
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for name, url in (
            ("CLIQ_API_BASE", settings.cliq_api_base),
            ("DROPBOX_AUTHORIZE_URL", settings.dropbox_authorize_url),
            ("DROPBOX_API_URL", settings.dropbox_api_url),
            ("DROPBOX_CONTENT_URL", settings.dropbox_content_url),
        ):
            problem = await _unreachable(session, url)
            if problem:
                problems.append(f"{name}: {url} is not reachable ({problem})")
        problems += await _check_services(session, settings)
        for label, endpoints in stored:
            problems += await _probe(session, label, endpoints)
    return problems


async def _probe(
    session: aiohttp.ClientSession, label: str, endpoints: Mapping[str, str]
) -> list[str]:
    """A line for each of ``endpoints`` (URLs by what they are) that does not answer."""
    problems = []
    for what, url in endpoints.items():
        problem = await _unreachable(session, url)
        if problem:
            problems.append(f"{label}: the {what}, {url}, is not reachable ({problem})")
    return problems


async def _unreachable(session: aiohttp.ClientSession, url: str) -> str:
    """``""`` if ``url`` answers at all (any status), else the error's name."""
    try:
        async with session.get(url, allow_redirects=False) as resp:
            await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__
    return ""


async def _check_services(session: aiohttp.ClientSession, settings: Settings) -> list[str]:
    """The endpoints of every default service configured by ``SERVICE_<NAME>_CLIENT_*``."""
    problems = []
    for name, client in sorted(settings.service_clients.items()):
        id_var, _ = client_variables(name)
        found = settings.catalogue.get(name)
        if found is None:
            problems.append(f"{id_var}: no default service `{name}`")
            continue
        endpoints = found.endpoints(client.client_id).items()
        problems += await _probe(session, id_var, {f"{w} of `{name}`": u for w, u in endpoints})
    return problems


def _check_data_dir(data_dir: Path) -> list[str]:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        return [f"BOT_DATA_DIR: {data_dir} is not writable ({exc.strerror})"]
    return []


async def _check_mongodb(
    settings: Settings,
) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """Problems with the store, and the endpoints of the services stored in it (``service
    add``, ``service configure``), each service's by what they are: none with the embedded
    store, which a running ``serve`` holds."""
    if settings.mongodb_uri is None:
        if importlib.util.find_spec("secantus") is None:
            return ["MONGODB_URI: unset and the embedded store (secantusdb) is not installed"], []
        return [], []
    store = Store.open(settings.mongodb_uri.reveal(), settings.mongodb_db)
    try:
        with store.deadline(_CHECK_TIMEOUT):
            await store.ping(_CHECK_TIMEOUT)
            records = ServiceRecords(store.db)
            custom, defaults = await records.all(), await records.configured_defaults()
    except StoreUnavailable as err:
        return [f"MONGODB_URI: the database does not answer ({err.cause})"], []
    except (KeyError, TypeError, ValueError) as exc:
        return [f"MONGODB_URI: a stored service cannot be read ({type(exc).__name__})"], []
    finally:
        await store.close(_CHECK_TIMEOUT)
    endpoints = [
        (
            f"service `{r.name}` (/connection service add)",
            named_endpoints(
                authorize_url=r.authorize_url,
                token_url=r.token_url,
                refresh_url=r.refresh_url,
                revoke_url=r.revoke_url,
                userinfo_url=r.userinfo_url,
            ),
        )
        for r in custom
    ]
    for name, record in sorted(defaults.items()):
        entry = settings.catalogue.get(name)
        if entry is None or name in settings.service_clients:  # unknown, or checked above
            continue
        label = f"service `{name}` (/connection service configure)"
        endpoints.append((label, entry.endpoints(record.client_id)))
    return [], endpoints


if __name__ == "__main__":
    sys.exit(main())
