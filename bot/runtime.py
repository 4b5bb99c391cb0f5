"""The resources of a running application, filled in by ``cleanup_ctx`` steps in order.

A holder object, rather than ``app[...] = ...`` after start-up, because some values (the bound
port, the database behind an embedded server) are only known once the server runs. The web layer
reaches the database only through :attr:`Runtime.store` and the repositories in
:attr:`Runtime.components`, never through the driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from storage.base import Database, Store
from storage.embedded import EmbeddedStore

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from bot.accounts import AccountService
    from bot.context import Context
    from bot.files.service import FileService
    from bot.router import Router
    from bot.vault import Vault
    from storage.events import ProcessedEvents


@dataclass(frozen=True)
class Components:
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
    _store: Store | None = None
    _http: aiohttp.ClientSession | None = None
    _components: Components | None = None

    @property
    def components(self) -> Components:
        if self._components is None:
            raise RuntimeError("the components are not started yet")
        return self._components

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the database is not open yet")
        return self._store

    @property
    def db(self) -> Database:
        return self.store.db

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("the HTTP client session is not open yet")
        return self._http
