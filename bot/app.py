"""The application factory: ``create_app(settings)`` builds every client, repository and route.

Resources are opened and closed in ``cleanup_ctx`` generators, in this order (closed in reverse):
the store (embedded child process when ``MONGODB_URI`` is unset, then the Mongo client and
indexes), the one shared ``aiohttp.ClientSession``, and the components built on them (the
repositories, the provider clients, the account and file services, the router).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from bot.accounts import AccountService
from bot.cache import CachedAuthorizations, CachedConnections, CachedServiceRecords
from bot.cliq.client import CliqClient
from bot.cliq.signing import load_public_key
from bot.config import Settings
from bot.context import Context
from bot.destinations.base import Destinations
from bot.destinations.dropbox import DropboxDestination
from bot.files.service import FileService
from bot.files.worker import UploadWorker
from bot.invoker import HttpInvoker
from bot.kept import KeptEvents
from bot.keys import METRICS, RUNTIME, SETTINGS
from bot.metrics import Metrics
from bot.notify import CliqNotifier
from bot.plugins import load_plugins
from bot.providers.kinds import oauth_hooks
from bot.providers.oauth2 import OAuth2Client
from bot.runtime import Components, Runtime
from bot.services import ServiceCatalog
from bot.signin import PageService
from bot.vault import Vault, load_or_create_key_file, parse_keys
from bot.web import health, oauth, page, webhook
from bot.web.middleware import Admission, error_middleware, logging_middleware
from handlers import build_router
from storage.authorizations import Authorizations, ConnectLinks, OAuthStates
from storage.base import Database, Repository, Store
from storage.connections import AuditLog, Connections, ServiceRecords
from storage.embedded import EmbeddedStore
from storage.events import ProcessedEvents
from storage.kept_actions import KeptActions
from storage.monitor import StoreMonitor
from storage.sessions import Sessions, SignInLinks
from storage.uploads import UploadJobs

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 10.0
_DRAIN_SECONDS = 30.0


def create_app(settings: Settings) -> web.Application:
    # Cross-cutting work, in the order a request meets it (STYLE practice 5):
    # 1. authenticity: the webhook is the only signed route and its check needs the raw body,
    #    so it is that route's first step (bot.web.webhook), before anything is parsed;
    # 2. request logging, the outermost middleware: it sees the final status of every answer,
    #    the 401s and 413s of step 1 and the mapped errors of step 3 too;
    # 3. error mapping: domain errors become JSON answers with their status code.
    # Before step 1, the webhook admits at most BOT_MAX_EVENTS_IN_FLIGHT deliveries at once.
    app = web.Application(
        client_max_size=webhook.MAX_BODY,
        middlewares=[logging_middleware, error_middleware],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[webhook.ADMISSION] = Admission(settings.max_events_in_flight)
    app[RUNTIME] = Runtime(public_url=settings.base_url())
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(_http_ctx)
    app.cleanup_ctx.append(_components_ctx)
    app.add_routes(health.routes)
    app.add_routes(webhook.routes)
    app.add_routes(oauth.routes)
    page.setup(app)
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
        KeptActions(db),
        SignInLinks(db),
        Sessions(db),
    ]


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The store: the embedded server when ``MONGODB_URI`` is unset, the client, the indexes."""
    settings, runtime = app[SETTINGS], app[RUNTIME]
    if settings.mongodb_uri is None:
        runtime.embedded = EmbeddedStore(storage_dir=settings.data_dir / "store")
        await runtime.embedded.start()
        uri = runtime.embedded.uri
    else:
        uri = settings.mongodb_uri.reveal()
    store = Store.open(uri, settings.mongodb_db)
    try:
        runtime._store = store
        for repo in _repositories(store.db):
            await repo.ensure_indexes()
        yield
    finally:
        runtime._store = None
        if not await store.close(_CLOSE_TIMEOUT):
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


async def _components_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, runtime = app[SETTINGS], app[RUNTIME]
    kept = _kept_events(settings, runtime)
    components = _with_kept_events(_build_components(settings, runtime, app[METRICS]), kept)
    runtime._components = components
    commands = StoreMonitor.of(runtime.db)  # cliqbot_store_commands_total on /metrics
    if commands is not None:
        app[METRICS].registry.register(commands)
    components.files.start(settings.upload_concurrency)
    kept.start()
    try:
        yield
    finally:
        await kept.stop(timeout=_DRAIN_SECONDS)
        await components.files.stop(timeout=_DRAIN_SECONDS)
        runtime._components = None
        if commands is not None:
            app[METRICS].registry.unregister(commands)


def _kept_events(settings: Settings, runtime: Runtime) -> KeptEvents:
    """Events kept until a connection is connected (CONTRACT §10); resumed ones post replies."""
    return KeptEvents(
        records=KeptActions(runtime.db),
        settings=settings,
        notifier=CliqNotifier(_cliq_client(settings, runtime.http)),
        housekeeping_seconds=max(settings.worker_poll_seconds * 10, 1.0),
    )


def _with_kept_events(components: Components, kept: KeptEvents) -> Components:
    """A handler that lets ``NotAuthorized`` propagate gets its event kept and resumed."""
    context = replace(components.context, on_not_authorized=kept.not_authorized)
    kept.serve(components.router, context, components.accounts)
    return replace(components, context=context)


def _cliq_client(settings: Settings, http: aiohttp.ClientSession) -> CliqClient | None:
    """The client that posts the bot's messages; ``None`` while Cliq is not configured."""
    if not (settings.cliq_bot_name and settings.cliq_webhook_token):
        return None
    return CliqClient(
        http,
        settings.cliq_api_base,
        settings.cliq_bot_name,
        settings.cliq_webhook_token,
        function=settings.cliq_function,
    )


def _build_components(settings: Settings, runtime: Runtime, metrics: Metrics) -> Components:
    """Every repository, client and service, on the open store and HTTP session."""
    db, http = runtime.db, runtime.http
    vault = build_vault(settings)
    notifier = CliqNotifier(_cliq_client(settings, http))
    # Read from memory on the acknowledgement path, at most 1 s old (bot/cache.py).
    connections, authorizations = CachedConnections(db), CachedAuthorizations(db)
    destinations = _destinations(settings, http)
    services = CachedServiceRecords(db)
    catalog = ServiceCatalog(settings, services, vault, file_kinds=destinations.kinds)
    accounts = AccountService(
        settings=settings,
        public_url=lambda: runtime.public_url,
        catalog=catalog,
        connections=connections,
        authorizations=authorizations,
        links=ConnectLinks(db),
        states=OAuthStates(db),
        vault=vault,
        oauth=OAuth2Client(http, hooks=oauth_hooks),
        notifier=notifier,
        metrics=metrics,
    )
    worker = UploadWorker(
        settings=settings,
        jobs=UploadJobs(db),
        connections=connections,
        authorizations=authorizations,
        accounts=accounts,
        catalog=catalog,
        destinations=destinations,
        http=http,
        notifier=notifier,
        metrics=metrics,
        lease_seconds=settings.job_lease_seconds,
        poll_seconds=settings.worker_poll_seconds,
    )
    files = FileService(worker)
    context = Context(
        settings=settings,
        catalog=catalog,
        connections=connections,
        authorizations=authorizations,
        audit=AuditLog(db),
        accounts=accounts,
        files=files,
        signin=_page_service(settings, runtime, worker),
        invoker=HttpInvoker(http, accounts, catalog),
    )
    return Components(
        context=context,
        router=build_router(plugins=load_plugins(settings.plugins)),
        events=ProcessedEvents(db, worker.jobs),  # a file's jobs are its delivery's record
        accounts=accounts,
        files=files,
        vault=vault,
        cliq_public_key=_cliq_public_key(settings),
    )


def _page_service(settings: Settings, runtime: Runtime, worker: UploadWorker) -> PageService:
    """The connections page's sign-in links, sessions and reads (CONTRACT §11)."""
    db = runtime.db
    return PageService(
        settings=settings,
        public_url=lambda: runtime.public_url,
        links=SignInLinks(db),
        sessions=Sessions(db),
        jobs=worker.jobs,
        live=worker.committed,
        audit=AuditLog(db),
    )


def _destinations(settings: Settings, http: aiohttp.ClientSession) -> Destinations:
    """Where files can land, by service kind (a new destination is one more entry)."""
    return Destinations(
        {
            "dropbox": DropboxDestination(
                http, settings.dropbox_api_url, settings.dropbox_content_url
            )
        }
    )


def _cliq_public_key(settings: Settings) -> RSAPublicKey | None:
    return load_public_key(settings.cliq_public_key) if settings.cliq_public_key else None
