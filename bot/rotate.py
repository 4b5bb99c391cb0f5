"""``cliqbot rotate-keys``: re-encrypt every stored secret under the first key.

A maintenance command: it opens the store and the vault and nothing else. No HTTP session, no
services, so no upload worker and no housekeeping (which would upload kept files, expire them
and revoke expired linking checks at the provider while the operator rotates keys).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from aiohttp import web

from bot.app import build_vault, store_ctx
from bot.config import Settings
from bot.keys import RUNTIME, SETTINGS
from bot.runtime import Runtime
from bot.sealing import (
    ACCESS,
    REFRESH,
    needs_rotation,
    reseal_client_secret,
    reseal_token,
    sealed_parts,
)
from bot.vault import Vault
from storage.authorizations import Authorizations
from storage.base import Database
from storage.connections import ServiceRecords

log = logging.getLogger(__name__)


async def rotate_all(db: Database, vault: Vault) -> int:
    """Re-seal every token and client secret not sealed with the primary key; the count."""
    auths = Authorizations(db)
    rotated = 0
    async for auth in auths.every_sealed():
        parts = sealed_parts(auth)
        if not any(needs_rotation(vault, sealed) for sealed in parts.values()):
            continue
        fresh = {part: reseal_token(vault, auth, part) for part in parts}
        if await auths.replace_sealed(
            auth.link, auth.user_id, auth.version, fresh[ACCESS], fresh.get(REFRESH)
        ):
            rotated += 1
    services = ServiceRecords(db)
    async for record in services.every_sealed():
        if needs_rotation(vault, record.client_secret_sealed):
            await services.replace_secret(record.name, reseal_client_secret(vault, record))
            rotated += 1
    return rotated


async def rotate_keys(settings: Settings) -> int:
    vault = build_vault(settings)
    # The store step of create_app alone (the embedded server when MONGODB_URI is unset, the
    # client, the indexes), opened and closed exactly as serve does.
    store = web.Application()
    store[SETTINGS] = settings
    store[RUNTIME] = Runtime(public_url=settings.base_url())
    async with asynccontextmanager(store_ctx)(store):
        count = await rotate_all(store[RUNTIME].db, vault)
    print(f"re-encrypted {count} record(s) under key {vault.primary_kid}")  # noqa: T201
    return 0
