"""Token refresh across processes, ``invalid_grant``, and key rotation (CONTRACT §7.5, §8)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from bot.app import create_app
from bot.errors import NotAuthorized
from bot.keys import RUNTIME
from bot.rotate import rotate_all
from bot.secret import Secret
from bot.vault import Sealed, Vault, parse_keys
from tests.conftest import ADMIN, ANA, BEN, World, make_key

LINK = "team_dropbox"


def auths(app: Any) -> Any:
    return app[RUNTIME].db["authorizations"]


async def expire_stored(world: World) -> None:
    """Make the stored access tokens look expired to the bot (the provider still takes them)."""
    await auths(world.app).update_many({}, {"$set": {"expires_at": time.time() - 10}})


async def second_app(aiohttp_server: Any, world: World, **changes: Any) -> Any:
    """Another bot process on the same database: its own AccountService, vault and lease holder."""
    app = create_app(dataclasses.replace(world.settings, **changes))
    await aiohttp_server(app)
    return app


def open_sealed(vault: Vault, doc: dict[str, Any], part: str) -> str:
    sealed = Sealed.from_doc(doc["access" if part == "a" else "refresh"])
    return vault.open(sealed, aad=f"authorization:{doc['connection']}:{doc['user_id']}:{part}")


async def test_two_processes_refreshing_at_once_make_one_refresh_call(
    world: World, aiohttp_server: Any
) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    other = await second_app(aiohttp_server, world)
    one = world.app[RUNTIME].components.accounts
    two = other[RUNTIME].components.accounts
    [before] = [d async for d in auths(world.app).find()]
    old = open_sealed(world.app[RUNTIME].components.vault, before, "a")
    await expire_stored(world)
    tokens = await asyncio.gather(
        *(svc.access_token(LINK, ANA.id) for svc in (one, two, one, two, two, one))
    )
    assert world.dropbox.calls["token:refresh_token"] == 1
    assert len(set(tokens)) == 1 and tokens[0] != old
    assert world.dropbox._access[tokens[0]].grant.email == "ana@dropbox.example"
    [after] = [d async for d in auths(world.app).find()]
    assert after["expires_at"] > time.time() + 3600
    assert "lease" not in after
    assert open_sealed(other[RUNTIME].components.vault, after, "a") == tokens[0]
    # the refresh token is kept (Dropbox does not rotate it)
    assert open_sealed(world.app[RUNTIME].components.vault, after, "r") == open_sealed(
        world.app[RUNTIME].components.vault, before, "r"
    )
    # fresh now: no further refresh from either process
    assert await two.access_token(LINK, ANA.id) == tokens[0]
    assert world.dropbox.calls["token:refresh_token"] == 1


async def test_a_token_the_provider_rejects_is_refreshed_once_and_the_file_lands(
    world: World,
) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    world.dropbox.expire_access_tokens("ana@dropbox.example")
    sent = world.cliq.add_file("after-expiry.txt", b"still lands")
    reply = await world.chat.send_files(ANA, [sent])
    assert "started" in reply.text, reply.text
    await world.messages_for(ANA, "Saved after-expiry.txt")
    assert world.dropbox.calls["token:refresh_token"] == 1
    assert world.dropbox.read_file("ana@dropbox.example", "/Cliq Uploads/after-expiry.txt") == (
        b"still lands"
    )


async def test_invalid_grant_marks_the_authorization_disconnected(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    await world.connect(BEN, "ben@dropbox.example")
    world.dropbox.revoke_all("ana@dropbox.example")
    await auths(world.app).update_one({"user_id": ANA.id}, {"$set": {"expires_at": 1.0}})
    accounts = world.app[RUNTIME].components.accounts
    with pytest.raises(NotAuthorized):
        await accounts.access_token(LINK, ANA.id)
    assert world.dropbox.calls["token:refresh_token"] == 1
    doc = await auths(world.app).find_one({"user_id": ANA.id})
    assert doc["status"] == "disconnected"
    assert doc["access"] is None and doc["refresh"] is None and "lease" not in doc
    assert (await auths(world.app).find_one({"user_id": BEN.id}))["status"] == "connected"
    status = await world.chat.say(ANA, "status")
    assert "You: disconnected as ana@dropbox.example." in status.text, status.text
    with pytest.raises(NotAuthorized):  # no second refresh for a disconnected authorization
        await accounts.access_token(LINK, ANA.id)
    assert world.dropbox.calls["token:refresh_token"] == 1
    # the user can connect again
    await world.connect(ANA, "ana@dropbox.example")
    assert (await auths(world.app).find_one({"user_id": ANA.id}))["status"] == "connected"


async def test_invalid_grant_during_an_upload_keeps_the_file_and_prompts(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    world.dropbox.expire_access_tokens("ana@dropbox.example")
    world.dropbox.inject_fault("/oauth2/token", "invalid_grant")
    sent = world.cliq.add_file("orphan.txt", b"keep me")
    await world.chat.send_files(ANA, [sent])
    prompt = await world.cliq.wait_for_message(ANA.id, lambda m: bool(m.get("buttons")))
    assert "connect" in str(prompt).lower()
    doc = await auths(world.app).find_one({"user_id": ANA.id})
    assert doc["status"] == "disconnected"
    assert "orphan.txt: kept" in (await world.chat.say(ANA, "status")).text
    await world.connect(ANA, "ana2@dropbox.example")
    await world.messages_for(ANA, "Saved orphan.txt")
    assert world.dropbox.read_file("ana2@dropbox.example", "/Cliq Uploads/orphan.txt") == b"keep me"


async def test_key_rotation_reseals_under_the_new_first_key(
    world: World, aiohttp_server: Any
) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    await world.connect(BEN, "ben@dropbox.example")
    reply = await world.chat.run(
        ADMIN,
        "service add acme authorize_url=https://acme.example/a token_url=https://acme.example/t"
        " client_id=acme client_secret=acme-secret",
    )
    assert "Added" in reply.text, reply.text
    old_vault = world.app[RUNTIME].components.vault
    db = world.app[RUNTIME].db
    before = {d["user_id"]: d async for d in auths(world.app).find()}
    plain = {
        u: (open_sealed(old_vault, d, "a"), open_sealed(old_vault, d, "r"))
        for u, d in before.items()
    }

    old_key = world.settings.encryption_keys[0].reveal()
    new_key = make_key()
    new_vault = Vault(parse_keys(f"{new_key},{old_key}"))
    assert await rotate_all(db, new_vault) == 3  # two authorizations and one client secret
    assert await rotate_all(db, new_vault) == 0

    only_new = Vault(parse_keys(new_key))
    after = {d["user_id"]: d async for d in auths(world.app).find()}
    for user, doc in after.items():
        assert doc["access"]["kid"] == doc["refresh"]["kid"] == new_vault.primary_kid
        assert (open_sealed(only_new, doc, "a"), open_sealed(only_new, doc, "r")) == plain[user]
    service = await db["services"].find_one({"_id": "acme"})
    assert service["client_secret"]["kid"] == new_vault.primary_kid
    secret = only_new.open(
        Sealed.from_doc(service["client_secret"]), aad="service:acme:client_secret"
    )
    assert secret == "acme-secret"

    # a process that has only the new key serves the rotated tokens
    rotated = await second_app(aiohttp_server, world, encryption_keys=(Secret(new_key),))
    accounts = rotated[RUNTIME].components.accounts
    assert await accounts.access_token(LINK, ANA.id) == plain[ANA.id][0]
    catalog = rotated[RUNTIME].components.context.catalog
    acme = await catalog.oauth_service("acme")  # type: ignore[attr-defined]
    assert acme.client_secret.reveal() == "acme-secret"
