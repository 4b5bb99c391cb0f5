"""The resources of a running application, filled in by ``cleanup_ctx`` steps in order.

A holder object, rather than ``app[...] = ...`` after start-up, because some values (the bound
port, the database behind an embedded server) are only known once the server runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from pymongo import AsyncMongoClient

from storage.base import Database, Doc
from storage.embedded import EmbeddedStore

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from bot.accounts import AccountService
    from bot.context import Context
    from bot.router import Router
    from bot.uploads import FileService
    from bot.vault import Vault
    from storage.events import ProcessedEvents


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
