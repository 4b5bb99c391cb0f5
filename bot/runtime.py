"""The resources of a running application, filled in by ``cleanup_ctx`` steps in order.

A holder object, rather than ``app[...] = ...`` after start-up, because some values (the bound
port, the database behind an embedded server) are only known once the server runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from pymongo import AsyncMongoClient

from storage.base import Database, Doc
from storage.embedded import EmbeddedStore

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from bot.accounts import AccountService
    from bot.uploads import FileService
    from bot.vault import Vault
    from handlers.context import Context
    from handlers.router import Router
    from storage.events import ProcessedEvents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """What routes use once the store and the HTTP session are open."""

    context: Context
    router: Router
    events: ProcessedEvents
    accounts: AccountService
    files: FileService
    vault: Vault
    cliq_public_key: RSAPublicKey | None


@dataclass
class Runtime:
    public_url: str
    embedded: EmbeddedStore | None = None
    mongo: AsyncMongoClient[Doc] | None = None
    _db: Database | None = None
    _http: aiohttp.ClientSession | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the services are not started yet")
        return self._services

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the database is not open yet")
        return self._db

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("the HTTP client session is not open yet")
        return self._http

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` after the reply; kept in a set, errors logged, cancelled on shutdown."""
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self, timeout: float) -> None:
        """Wait for in-flight background work, then cancel what is left."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
