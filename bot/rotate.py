"""``cliqbot rotate-keys``: re-encrypt every stored secret under the first key.

A maintenance command: it opens the store and the vault and nothing else. No HTTP session, no
services, so no upload worker and no housekeeping (which would upload kept files, expire them
and revoke expired linking checks at the provider while the operator rotates keys).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from aiohttp import web

from bot.app import _store_ctx, build_vault
from bot.config import Settings
from bot.keys import RUNTIME, SETTINGS
from bot.runtime import Runtime
from bot.vault import Sealed, Vault
from storage.authorizations import Authorizations
from storage.base import Database

log = logging.getLogger(__name__)


async def rotate_all(db: Database, vault: Vault) -> int:
    """Re-seal every token and client secret not sealed with the primary key; the count."""
    auths = Authorizations(db)
    rotated = 0
    async for auth in auths.every_sealed():
        parts = {"a": auth.access, "r": auth.refresh}
        sealed = {k: Sealed.from_doc(v) for k, v in parts.items() if v is not None}
        if not any(vault.needs_rotation(s) for s in sealed.values()):
            continue
        fresh = {}
        for part, old in sealed.items():
            aad = f"authorization:{auth.link}:{auth.user_id}:{part}"
            fresh[part] = vault.seal(vault.open(old, aad=aad), aad=aad).to_doc()
        if await auths.replace_sealed(
            auth.link, auth.user_id, auth.version, fresh["a"], fresh.get("r")
        ):
            rotated += 1
    services = db["services"]
    async for doc in services.find({"client_secret.kid": {"$ne": vault.primary_kid}}):
        aad = f"service:{doc['_id']}:client_secret"
        old = Sealed.from_doc(doc["client_secret"])
        new = vault.seal(vault.open(old, aad=aad), aad=aad).to_doc()
        await services.update_one({"_id": doc["_id"]}, {"$set": {"client_secret": new}})
        rotated += 1
    return rotated


async def rotate_keys(settings: Settings) -> int:
    vault = build_vault(settings)
    # The store step of create_app alone (the embedded server when MONGODB_URI is unset, the
    # client, the indexes), opened and closed exactly as serve does.
    store = web.Application()
    store[SETTINGS] = settings
    store[RUNTIME] = Runtime(public_url=settings.base_url())
    async with asynccontextmanager(_store_ctx)(store):
        count = await rotate_all(store[RUNTIME].db, vault)
    print(f"re-encrypted {count} record(s) under key {vault.primary_kid}")  # noqa: T201
    return 0
