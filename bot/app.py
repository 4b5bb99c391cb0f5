"""The application factory: ``create_app(settings)`` builds every client, repository and route.

Resources are opened and closed in ``cleanup_ctx`` generators, in this order (closed in reverse):
the store (embedded child process when ``MONGODB_URI`` is unset, then the Mongo client and
indexes), the one shared ``aiohttp.ClientSession``, and the services built on them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from pymongo import AsyncMongoClient

from bot.accounts import AccountService
from bot.cliq.client import CliqClient
from bot.cliq.signing import load_public_key
from bot.config import Settings
from bot.context import Context
from bot.keys import METRICS, RUNTIME, SETTINGS
from bot.metrics import Metrics
from bot.notify import CliqNotifier
from bot.providers.dropbox import DropboxClient
from bot.providers.oauth2 import OAuth2Client
from bot.runtime import Runtime, Services
from bot.services import ServiceCatalog
from bot.uploads import FileService
from bot.vault import Vault, load_or_create_key_file, parse_keys
from bot.web import health, oauth, webhook
from handlers import build_router
from storage.authorizations import Authorizations, ConnectLinks, OAuthStates
from storage.base import Database, Doc, Repository
from storage.connections import AuditLog, Connections
from storage.connections import Services as ServiceRecords
from storage.embedded import EmbeddedStore
from storage.events import ProcessedEvents
from storage.uploads import UploadJobs

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
_SERVER_SELECTION_MS = 2000
_CLOSE_TIMEOUT = 10.0
_SOCKET_TIMEOUT_MS = 20000
_DRAIN_SECONDS = 30.0


def create_app(settings: Settings) -> web.Application:
    # Middleware, outermost first: request logging (sees the final status), then error mapping
    # (domain errors become status codes). Authenticity needs the raw body, so the webhook route
    # checks it itself, before parsing.
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[webhook.logging_middleware, webhook.error_middleware],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[RUNTIME] = Runtime(public_url=settings.base_url())
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_http_ctx)
    app.cleanup_ctx.append(_services_ctx)
    app.add_routes(health.routes)
    app.add_routes(webhook.routes)
    app.add_routes(oauth.routes)
    return app


def build_vault(settings: Settings) -> Vault:
    if settings.encryption_keys:
        keys = parse_keys(",".join(k.reveal() for k in settings.encryption_keys))
        return Vault(keys)
    key, created = load_or_create_key_file(settings.data_dir)
    if created:
        log.warning(
            "BOT_ENCRYPTION_KEYS is unset: generated a key into %s/encryption.key (mode 0600)."
            " Back it up; without it stored tokens cannot be read.",
            settings.data_dir,
        )
    return Vault([key])


def _repositories(db: Database) -> list[Repository]:
    return [
        ProcessedEvents(db),
        ServiceRecords(db),
        Connections(db),
        AuditLog(db),
        Authorizations(db),
        ConnectLinks(db),
        OAuthStates(db),
        UploadJobs(db),
    ]


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, runtime = app[SETTINGS], app[RUNTIME]
    if settings.mongodb_uri is None:
        runtime.embedded = EmbeddedStore(storage_dir=settings.data_dir / "store")
        await runtime.embedded.start()
        uri = runtime.embedded.uri
    else:
        uri = settings.mongodb_uri.reveal()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=_SERVER_SELECTION_MS,
        connectTimeoutMS=_SERVER_SELECTION_MS,
        # Every operation we run is small; a server that hangs must not hang a request forever.
        socketTimeoutMS=_SOCKET_TIMEOUT_MS,
        tz_aware=True,
    )
    try:
        runtime.mongo = client
        runtime._db = client[settings.mongodb_db]
        for repo in _repositories(runtime.db):
            await repo.ensure_indexes()
        yield
    finally:
        runtime._db = None
        runtime.mongo = None
        try:
            # Bounded: with the server gone, closing must not hold shutdown hostage.
            await asyncio.wait_for(client.close(), _CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("the MongoDB client did not close within %s s", _CLOSE_TIMEOUT)
        if runtime.embedded is not None:
            await runtime.embedded.stop()
            runtime.embedded = None


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
        runtime._http = session
        try:
            yield
        finally:
            runtime._http = None


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, runtime, metrics = app[SETTINGS], app[RUNTIME], app[METRICS]
    db, http = runtime.db, runtime.http
    vault = build_vault(settings)
    cliq = (
        CliqClient(
            http,
            settings.cliq_api_base,
            settings.cliq_bot_name,
            settings.cliq_webhook_token,
            function=settings.cliq_function,
        )
        if settings.cliq_bot_name and settings.cliq_webhook_token
        else None
    )
    notifier = CliqNotifier(cliq)
    connections, authorizations = Connections(db), Authorizations(db)
    catalog = ServiceCatalog(settings, ServiceRecords(db), vault)
    accounts = AccountService(
        settings=settings,
        public_url=lambda: runtime.public_url,
        catalog=catalog,
        connections=connections,
        authorizations=authorizations,
        links=ConnectLinks(db),
        states=OAuthStates(db),
        vault=vault,
        oauth=OAuth2Client(http),
        notifier=notifier,
        metrics=metrics,
    )
    files = FileService(
        settings=settings,
        jobs=UploadJobs(db),
        connections=connections,
        authorizations=authorizations,
        accounts=accounts,
        dropbox=DropboxClient(http, settings.dropbox_api_url, settings.dropbox_content_url),
        http=http,
        notifier=notifier,
        metrics=metrics,
        lease_seconds=settings.job_lease_seconds,
        poll_seconds=settings.worker_poll_seconds,
    )
    context = Context(
        settings=settings,
        services=catalog,
        connections=connections,
        authorizations=authorizations,
        audit=AuditLog(db),
        accounts=accounts,
        files=files,
    )
    runtime._services = Services(
        context=context,
        router=build_router(),
        events=ProcessedEvents(db),
        accounts=accounts,
        files=files,
        vault=vault,
        cliq_public_key=load_public_key(settings.cliq_public_key)
        if settings.cliq_public_key
        else None,
    )
    files.start(settings.upload_concurrency)
    try:
        yield
    finally:
        await files.stop(timeout=_DRAIN_SECONDS)
        runtime._services = None
