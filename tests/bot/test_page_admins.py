"""An admin manages every connection on the page, not only their own (CONTRACT §11: the forms
of every admin subcommand of §5, whose `publish`, `set`, `revoke` and `delete` take any link).

Two admins: Ada creates and connects the connection, Ben manages it from his page. Over HTTP,
with the real app, store and stand-ins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.config import Settings
from bot.keys import RUNTIME
from tests.bot.test_page_http import Browser
from tests.conftest import ADMIN, ANA, BEN, World

LINK = "team_dropbox"


@pytest.fixture
def world_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, admins=settings.admins | {BEN.email})


@pytest.fixture
async def ben(world: World) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        browser = Browser(world, http)
        await browser.sign_in(BEN)
        yield browser


def _others(html: str) -> str:
    assert 'id="others-h"' in html, "no Other connections section"
    return html.split('id="others-h"', 1)[1].split("</section>", 1)[0]


async def _owned_by_ada(world: World) -> None:
    reply = await world.chat.run(
        ADMIN,
        'create "Team Dropbox" service=dropbox scopes=account_info.read,files.content.write'
        " login_user_credentials=off",
    )
    assert LINK in reply.text, reply.text
    await world.connect(ADMIN, "ada@dropbox.example", LINK)
    assert "Published" in (await world.chat.run(ADMIN, f"publish {LINK}")).text


async def test_another_admins_connection_is_listed_with_every_admin_action(
    world: World, ben: Browser
) -> None:
    await _owned_by_ada(world)
    await ben.open()
    others = _others(ben.html)
    assert "Team Dropbox" in others and f'<code class="link-name">{LINK}</code>' in others
    assert "Owner&#39;s status" in others or "Owner's status" in others
    assert "connected" in others and "admin@example.com" in others
    assert "Published</dt><dd>yes" in others
    for action in (">Unpublish<", ">Revoke<", ">Delete<", "<summary>Edit "):
        assert action in others, action
    assert ">Connect<" not in others  # the switch is off: only its owner connects it


async def test_another_admin_unpublishes_revokes_edits_and_deletes_it(
    world: World, ben: Browser
) -> None:
    await _owned_by_ada(world)
    db = world.app[RUNTIME].db
    await ben.open()
    assert (await ben.post("unpublish", {"link": LINK}))[0] == 303
    assert (await db["connections"].find_one({"_id": LINK}) or {})["published"] is False
    await ben.open()
    assert (await ben.post("revoke", {"link": LINK}))[0] == 303
    owner = await db["authorizations"].find_one({"_id": f"{LINK}:{ADMIN.id}"})
    assert owner is not None and owner["status"] == "disconnected"
    await ben.open()
    assert ">Revoke<" not in _others(ben.html)  # nothing left to revoke
    form = {"link": LINK, "name": "Files", "scopes": "files.content.write"}
    assert (await ben.post("edit", form))[0] == 303
    assert (await db["connections"].find_one({"_id": LINK}) or {})["name"] == "Files"
    await ben.open()
    assert (await ben.post("delete", {"link": LINK}))[0] == 303
    assert await db["connections"].count_documents({}) == 0
    audit = [d async for d in db["audit"].find({"actor_id": BEN.id}).sort("at", 1)]
    assert [d["action"] for d in audit] == [
        "connection.unpublish",
        "connection.revoke",
        "connection.set",
        "connection.delete",
    ], audit


async def test_a_shared_connection_an_admin_connected_is_listed_once_with_admin_actions(
    world: World, ben: Browser
) -> None:
    await world.setup_connection()  # Ada's, switch on, published
    await world.connect(BEN, "ben@dropbox.example", LINK)
    await ben.open()
    shared = ben.html.split('id="shared-h"', 1)[1].split('id="others-h"', 1)[0]
    assert "Team Dropbox" in shared and ">Disconnect<" in shared and ">Unpublish<" in shared
    assert "Team Dropbox" not in _others(ben.html)
    assert ben.html.count(f'id="conn-{LINK}"') == 1

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        ana = Browser(world, http)
        await ana.sign_in(ANA)
        assert 'id="others-h"' not in ana.html and ">Unpublish<" not in ana.html
