"""The slash command ``/connection`` (CONTRACT §5), over signed HTTP to the real app and store.

Admins here: ``ADMIN`` by email (``BOT_ADMINS``), ``BEN`` by id (this module adds him), ``ROOT``
by a payload saying ``"admin": true``. ``ANA`` and ``CARL`` are ordinary users.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from bot.config import Settings
from bot.keys import RUNTIME
from bot.sandbox.driver import ChatUser
from storage.records import link_name
from tests.conftest import ADMIN, ANA, BEN, World

ROOT = ChatUser("1002", "root@example.com", "Ro", "Ot", admin=True)
CARL = ChatUser("55503", "carl@example.com", "Carl")

CREATE = (
    'create "Team Dropbox" service=dropbox scopes=account_info.read,files.content.write'
    " login_user_credentials={switch}"
)
SERVICE_ADD = (
    "service add acme authorize_url=https://acme.example/auth token_url=https://acme.example/token"
    " client_id=acme-id client_secret=acme-secret-value"
)


@pytest.fixture
def world_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, admins=settings.admins | {BEN.id})


def db(world: World) -> Any:
    return world.app[RUNTIME].db


async def docs(world: World, collection: str, query: dict[str, Any] | None = None) -> list[Any]:
    return [d async for d in db(world)[collection].find(query or {})]


async def audit_actions(world: World) -> list[tuple[str, str]]:
    found = await docs(world, "audit")
    return [(d["action"], d["target"]) for d in sorted(found, key=lambda d: d["at"])]


async def create(world: World, switch: str = "on") -> None:
    reply = await world.chat.run(ADMIN, CREATE.format(switch=switch))
    assert reply.status == 200 and "`team_dropbox`" in reply.text, reply.text


# -- parsing and usage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("", "Usage: /connection"),
        ("help", "Usage: /connection"),
        ("frobnicate x", "Unknown subcommand `frobnicate`"),
        ('create "Team Dropbox service=dropbox', "could not read that command"),
        ("create 'x service=dropbox", "could not read that command"),
        ("list colour=blue", "Unknown option(s): colour"),
        ("create X service=dropbox scopes=a service=dropbox", "`service` is given twice"),
        ("publish", "Name one connection link name"),
        ("publish a b", "Name one connection link name"),
        ("service", "Use `service add NAME"),
        ("service fly acme", "Use `service add NAME"),
    ],
)
async def test_malformed_input_gets_a_usage_reply(
    world: World, arguments: str, expected: str
) -> None:
    reply = await world.chat.run(ADMIN, arguments)
    assert reply.status == 200
    assert expected in reply.text, reply.text
    assert await docs(world, "connections") == []
    assert await docs(world, "audit") == []


async def test_usage_reply_after_an_error_shows_the_usage(world: World) -> None:
    reply = await world.chat.run(ANA, "nope")
    assert "Unknown subcommand" in reply.text and "Usage: /connection" in reply.text


async def test_quoted_names_and_options_with_spaces(world: World) -> None:
    reply = await world.chat.run(
        ADMIN, "create 'Sales  Files (EU)' service=dropbox scopes=files.content.write"
    )
    assert "`sales_files_eu`" in reply.text, reply.text
    [doc] = await docs(world, "connections")
    assert doc["_id"] == "sales_files_eu" and doc["name"] == "Sales  Files (EU)"
    reply = await world.chat.run(ADMIN, 'set sales_files_eu "name=Sales Files"')
    assert "*Sales Files*" in reply.text, reply.text


@pytest.mark.parametrize(
    ("name", "link"),
    [
        ("Team Dropbox", "team_dropbox"),
        ("  Team   Dropbox  ", "team_dropbox"),
        ("Team-Dropbox!!2", "team_dropbox_2"),
        ("ÄÖ files", "files"),
        ("UPPER", "upper"),
        ("!!!", ""),
    ],
)
def test_link_name_derivation(name: str, link: str) -> None:
    assert link_name(name) == link


# -- admins and refusals ------------------------------------------------------------------------


async def test_admins_by_email_by_id_and_by_payload(world: World) -> None:
    for i, user in enumerate((ADMIN, BEN, ROOT)):
        reply = await world.chat.run(user, f'create "Conn {i}" service=dropbox scopes=sharing.read')
        assert f"`conn_{i}`" in reply.text, (user, reply.text)
    links = {d["_id"]: d["owner_id"] for d in await docs(world, "connections")}
    assert links == {"conn_0": ADMIN.id, "conn_1": BEN.id, "conn_2": ROOT.id}


async def test_payload_admin_must_be_a_json_true(world: World) -> None:
    body = world.chat.command_event(CARL, "create X service=dropbox scopes=sharing.read")
    body["params"]["user"]["admin"] = "true"
    reply = await world.chat.post(body)
    assert "Only admins" in reply.text, reply.text
    assert await docs(world, "connections") == []


@pytest.mark.parametrize(
    "arguments",
    [
        "create Sneaky service=dropbox scopes=files.content.write",
        "set team_dropbox name=Mine",
        "set team_dropbox login_user_credentials=off",
        "publish team_dropbox",
        "unpublish team_dropbox",
        "delete team_dropbox",
        "revoke team_dropbox",
        SERVICE_ADD.replace("acme", "evil", 1),
        "service remove acme",
    ],
)
async def test_admin_only_subcommands_refuse_others_and_change_nothing(
    world: World, arguments: str
) -> None:
    await create(world)
    assert "Published" in (await world.chat.run(ADMIN, "publish team_dropbox")).text
    assert "Added" in (await world.chat.run(ADMIN, SERVICE_ADD)).text
    await world.connect(ADMIN, "owner@dropbox.example", "team_dropbox")
    before = {
        name: await docs(world, name)
        for name in ("connections", "services", "authorizations", "audit")
    }
    for user in (ANA, CARL):
        reply = await world.chat.run(user, arguments)
        assert reply.status == 200
        assert "nothing" in reply.text and "admin" in reply.text, reply.text
    after = {name: await docs(world, name) for name in before}
    assert after == before
    status = await world.chat.run(ADMIN, "status team_dropbox")
    assert "*Team Dropbox* (`team_dropbox`, dropbox): connected, published." in status.text


# -- create, uniqueness, immutability ------------------------------------------------------------


async def test_create_names_the_link_and_offers_to_connect(world: World) -> None:
    reply = await world.chat.run(ADMIN, CREATE.format(switch="off"))
    assert "Created the connection *Team Dropbox* with link name `team_dropbox`" in reply.text
    assert reply.button_url() and reply.button_url().startswith(world.bot_url + "/connect/")
    [doc] = await docs(world, "connections")
    assert doc["login_user_credentials"] is False and doc["published"] is False
    assert doc["scopes"] == ["account_info.read", "files.content.write"]
    reply = await world.chat.run(ADMIN, 'create "Other" service=dropbox scopes=sharing.read')
    [doc] = await docs(world, "connections", {"_id": "other"})
    assert doc["login_user_credentials"] is True  # the switch defaults to on


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("create X scopes=sharing.read", "Say which service"),
        ("create X service=dropbox", "Say which scopes"),
        ("create X service=dropbox scopes=,", "at least one scope"),
        ("create X service=nosuch scopes=a", "There is no service `nosuch`"),
        ("create X service=dropbox scopes=files.teleport", "does not offer files.teleport"),
        ("create X service=dropbox scopes=sharing.read login_user_credentials=maybe", "on or off"),
        ("create !!! service=dropbox scopes=sharing.read", "at least one letter or digit"),
        ("create A B service=dropbox scopes=sharing.read", "Name one connection"),
        ("create X service=dropbox scopes=sharing.read colour=red", "Unknown option(s): colour"),
    ],
)
async def test_create_refusals(world: World, arguments: str, expected: str) -> None:
    reply = await world.chat.run(ADMIN, arguments)
    assert expected in reply.text, reply.text
    assert await docs(world, "connections") == []


async def test_two_concurrent_creates_of_one_link_name_exactly_one_wins(world: World) -> None:
    replies = await asyncio.gather(
        world.chat.run(ADMIN, 'create "Team Dropbox" service=dropbox scopes=sharing.read'),
        world.chat.run(BEN, 'create "team-dropbox" service=dropbox scopes=sharing.write'),
    )
    won = [r for r in replies if "Created" in r.text]
    lost = [r for r in replies if "exists already" in r.text]
    assert len(won) == 1 and len(lost) == 1, [r.text for r in replies]
    assert len(await docs(world, "connections")) == 1
    assert [a for a, _ in await audit_actions(world)] == ["connection.create"]


async def test_link_name_never_changes(world: World) -> None:
    await create(world)
    reply = await world.chat.run(ADMIN, 'set team_dropbox "name=Marketing Box" scopes=sharing.read')
    assert "*Marketing Box*" in reply.text and "link name stays" in reply.text, reply.text
    [doc] = await docs(world, "connections")
    assert doc["_id"] == "team_dropbox" and doc["name"] == "Marketing Box"
    assert doc["scopes"] == ["sharing.read"]
    status = await world.chat.run(ADMIN, "status team_dropbox")
    assert "*Marketing Box* (`team_dropbox`" in status.text
    assert (
        "no connection `marketing_box`"
        in (await world.chat.run(ADMIN, "status marketing_box")).text
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("set team_dropbox", "Say what to change"),
        ("set team_dropbox name=", "name= cannot be empty"),
        ("set team_dropbox scopes=nope", "does not offer nope"),
        ("set team_dropbox link=other", "Unknown option(s): link"),
        ("set nosuch name=x", "There is no connection `nosuch`"),
    ],
)
async def test_set_refusals(world: World, arguments: str, expected: str) -> None:
    await create(world)
    reply = await world.chat.run(ADMIN, arguments)
    assert expected in reply.text, reply.text
    [doc] = await docs(world, "connections")
    assert doc["name"] == "Team Dropbox"


async def test_set_is_refused_while_the_owner_is_connected(world: World) -> None:
    await create(world)
    await world.connect(ADMIN, "owner@dropbox.example", "team_dropbox")
    reply = await world.chat.run(ADMIN, "set team_dropbox name=Renamed")
    assert "revoke it first" in reply.text, reply.text
    [doc] = await docs(world, "connections")
    assert doc["name"] == "Team Dropbox"
    reply = await world.chat.run(ADMIN, "revoke team_dropbox")
    assert "status is `disconnected`" in reply.text, reply.text
    reply = await world.chat.run(ADMIN, "set team_dropbox name=Renamed")
    assert "*Renamed*" in reply.text, reply.text


async def test_set_switch_off_on_a_published_connection_needs_the_owner(world: World) -> None:
    await create(world)
    await world.chat.run(ADMIN, "publish team_dropbox")
    reply = await world.chat.run(ADMIN, "set team_dropbox login_user_credentials=off")
    assert "owner is not connected" in reply.text, reply.text
    [doc] = await docs(world, "connections")
    assert doc["login_user_credentials"] is True


# -- publish, unpublish, delete ------------------------------------------------------------------


async def test_publish_with_switch_off_requires_the_owner_connected(world: World) -> None:
    await create(world, switch="off")
    reply = await world.chat.run(ADMIN, "publish team_dropbox")
    assert "owner is not connected" in reply.text, reply.text
    assert (await docs(world, "connections"))[0]["published"] is False
    await world.connect(ADMIN, "owner@dropbox.example", "team_dropbox")
    reply = await world.chat.run(ADMIN, "publish team_dropbox")
    assert "Published `team_dropbox`" in reply.text and "owner's account" in reply.text


async def test_publish_refuses_a_service_that_cannot_receive_files(world: World) -> None:
    assert "Added the custom service" in (await world.chat.run(ADMIN, SERVICE_ADD)).text
    reply = await world.chat.run(ADMIN, "create Acme service=acme scopes=read")
    assert "`acme`" in reply.text, reply.text
    reply = await world.chat.run(ADMIN, "publish acme")
    assert "cannot receive files" in reply.text and "Nothing was changed" in reply.text
    assert (await docs(world, "connections"))[0]["published"] is False
    assert ("connection.publish", "acme") not in await audit_actions(world)


async def test_publishing_another_unpublishes_the_first(world: World) -> None:
    await create(world)
    await world.chat.run(ADMIN, "create Second service=dropbox scopes=sharing.read")
    await world.chat.run(ADMIN, "publish team_dropbox")
    reply = await world.chat.run(ADMIN, "publish second")
    assert "`team_dropbox` is no longer published" in reply.text, reply.text
    published = [d["_id"] for d in await docs(world, "connections", {"published": True})]
    assert published == ["second"]
    assert "is not published" in (await world.chat.run(ADMIN, "unpublish team_dropbox")).text


async def test_delete_is_refused_while_published(world: World) -> None:
    await create(world)
    await world.chat.run(ADMIN, "publish team_dropbox")
    await world.connect(ANA, "ana@dropbox.example")
    reply = await world.chat.run(ADMIN, "delete team_dropbox")
    assert "unpublish first" in reply.text, reply.text
    assert len(await docs(world, "connections")) == 1
    assert "Unpublished" in (await world.chat.run(ADMIN, "unpublish team_dropbox")).text
    revokes = world.dropbox.calls["/2/auth/token/revoke"]
    reply = await world.chat.run(ADMIN, "delete team_dropbox")
    assert "Deleted `team_dropbox`" in reply.text, reply.text
    assert await docs(world, "connections") == []
    assert await docs(world, "authorizations") == []
    assert world.dropbox.calls["/2/auth/token/revoke"] == revokes + 1
    assert "There is no connection" in (await world.chat.run(ADMIN, "delete team_dropbox")).text


# -- services -------------------------------------------------------------------------------------


async def test_service_add_with_every_option_and_remove(world: World) -> None:
    reply = await world.chat.run(
        ADMIN,
        SERVICE_ADD + " refresh_url=https://acme.example/refresh"
        " revoke_url=https://acme.example/revoke scopes=read,write param_type=query"
        " scope_delimiter=plus userinfo_url=https://acme.example/me",
    )
    assert "Added the custom service `acme` (scopes: read, write)" in reply.text, reply.text
    [doc] = await docs(world, "services")
    assert doc["_id"] == "acme" and doc["param_type"] == "query"
    assert doc["scope_delimiter"] == "+" and doc["scopes"] == ["read", "write"]
    assert doc["refresh_url"] == "https://acme.example/refresh"
    assert doc["revoke_url"] == "https://acme.example/revoke"
    assert doc["userinfo_url"] == "https://acme.example/me"
    assert "acme-secret-value" not in repr(doc)  # the client secret is sealed
    listed = await world.chat.run(ANA, "services")
    rows = {r["Service"]: r for r in listed.output["slides"][0]["data"]["rows"]}
    kinds = {name: row["Kind"] for name, row in rows.items()}
    assert kinds["dropbox"] == "default" and kinds["acme"] == "custom"
    assert {name for name, kind in kinds.items() if kind == "custom"} == {"acme"}
    assert "files.content.write" in rows["dropbox"]["Scopes"]
    assert rows["acme"]["Scopes"] == "read, write"
    reply = await world.chat.run(ADMIN, "service remove ACME")
    assert "Removed the custom service `acme`" in reply.text, reply.text
    assert await docs(world, "services") == []


async def test_service_add_defaults(world: World) -> None:
    await world.chat.run(ADMIN, SERVICE_ADD)
    [doc] = await docs(world, "services")
    assert doc["param_type"] == "header" and doc["scope_delimiter"] == " "  # RFC 6749 §3.3
    assert doc["client_auth"] == "basic" and doc["authorize_params"] == []
    assert doc["scopes"] == [] and doc["refresh_url"] is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("service add acme authorize_url=https://a.example/x", "needs token_url=, client_id="),
        (SERVICE_ADD.replace("client_secret=acme-secret-value", ""), "needs client_secret="),
        (SERVICE_ADD.replace("https://acme.example/auth", "ftp://a/x"), "authorize_url must be"),
        (SERVICE_ADD.replace("https://acme.example/token", "not-a-url"), "token_url must be"),
        (SERVICE_ADD + " revoke_url=https://", "revoke_url must be"),
        (SERVICE_ADD + " param_type=body", "param_type must be header or query"),
        (SERVICE_ADD + " scope_delimiter=semicolon", "scope_delimiter must be space"),
        (SERVICE_ADD + " grant_type=implicit", "Unknown option(s): grant_type"),
        (SERVICE_ADD.replace("add acme", "add dropbox"), "`dropbox` is a default service"),
        (SERVICE_ADD.replace("add acme", "add 'ac me'"), "letters, digits"),
        (SERVICE_ADD.replace("add acme", "add ac me"), "Quote a service name"),
    ],
)
async def test_service_add_errors(world: World, arguments: str, expected: str) -> None:
    reply = await world.chat.run(ADMIN, arguments)
    assert expected in reply.text, reply.text
    assert await docs(world, "services") == []
    assert await docs(world, "audit") == []


async def test_service_add_twice_is_refused(world: World) -> None:
    await world.chat.run(ADMIN, SERVICE_ADD)
    reply = await world.chat.run(ADMIN, SERVICE_ADD.replace("add acme", "add ACME"))
    assert "exists already" in reply.text, reply.text
    assert len(await docs(world, "services")) == 1


async def test_service_remove_refusals(world: World) -> None:
    await world.chat.run(ADMIN, SERVICE_ADD + " scopes=read")
    await world.chat.run(ADMIN, "create Acme service=acme scopes=read")
    reply = await world.chat.run(ADMIN, "service remove acme")
    assert "used by `acme`" in reply.text, reply.text
    assert len(await docs(world, "services")) == 1
    reply = await world.chat.run(ADMIN, "service remove dropbox")
    assert "default service and cannot be removed" in reply.text, reply.text
    reply = await world.chat.run(ADMIN, "service remove nosuch")
    assert "There is no service `nosuch`" in reply.text, reply.text
    await world.chat.run(ADMIN, "delete acme")
    assert "Removed" in (await world.chat.run(ADMIN, "service remove acme")).text


# -- connect, revoke, disconnect ------------------------------------------------------------------


async def test_connect_on_a_switch_off_connection_is_for_the_owner_only(world: World) -> None:
    await create(world, switch="off")
    reply = await world.chat.run(ANA, "connect team_dropbox")
    assert "only the owner connects it" in reply.text and reply.button_url() is None
    reply = await world.chat.run(ADMIN, "connect team_dropbox")
    assert reply.button_url(), reply.text
    reply = await world.chat.run(ANA, "connect nosuch")
    assert "There is no connection `nosuch`" in reply.text
    assert "No connection is published" in (await world.chat.run(ANA, "connect")).text


async def test_revoke_by_owner_or_admin_only(world: World) -> None:
    await create(world, switch="off")
    await world.connect(ADMIN, "owner@dropbox.example", "team_dropbox")
    reply = await world.chat.run(ANA, "revoke team_dropbox")
    assert "Only the connection's owner or an admin" in reply.text, reply.text
    [auth] = await docs(world, "authorizations")
    assert auth["status"] == "connected"
    revokes = world.dropbox.calls["/2/auth/token/revoke"]
    reply = await world.chat.run(BEN, "revoke team_dropbox")  # an admin, not the owner
    assert reply.text == "Revoked `team_dropbox`; its status is `disconnected`.", reply.text
    assert world.dropbox.calls["/2/auth/token/revoke"] == revokes + 1
    [auth] = await docs(world, "authorizations")
    assert auth["status"] == "disconnected" and auth["access"] is None and auth["refresh"] is None
    status = await world.chat.run(ADMIN, "status team_dropbox")
    assert "(`team_dropbox`, dropbox): disconnected." in status.text, status.text
    reply = await world.chat.run(ADMIN, "revoke team_dropbox")
    assert "was not connected" in reply.text


async def test_disconnect_revokes_only_the_callers_own_authorization(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    await world.connect(CARL, "carl@dropbox.example")
    reply = await world.chat.run(ANA, "disconnect")
    assert "Disconnected your account from `team_dropbox`" in reply.text, reply.text
    users = {d["user_id"] for d in await docs(world, "authorizations")}
    assert users == {CARL.id}
    assert "You are not connected" in (await world.chat.run(ANA, "disconnect team_dropbox")).text


async def test_disconnect_on_switch_off_is_refused_for_non_owners(world: World) -> None:
    await world.setup_connection(switch="off", owner_email="owner@dropbox.example")
    reply = await world.chat.run(ANA, "disconnect")
    assert "nothing to disconnect" in reply.text, reply.text
    assert len(await docs(world, "authorizations", {"status": "connected"})) == 1


# -- list and status --------------------------------------------------------------------------


async def test_list_shows_my_and_shared_connections(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    mine = await world.chat.run(ADMIN, "list")
    assert mine.text.startswith("*My connections*\n- Team Dropbox (`team_dropbox`): not connected")
    assert mine.text.endswith("*Shared connections*\n- none")
    my_rows = mine.output["slides"][0]["data"]["rows"]
    assert my_rows == [
        {
            "Connection": "Team Dropbox",
            "Link name": "team_dropbox",
            "Service": "dropbox",
            "Status": "not connected",
            "Shared": "on",
            "Published": "yes",
        }
    ]
    theirs = await world.chat.run(ANA, "list")
    # Empty sections have no table (an empty table renders as a blank box), only the text line.
    assert [s["title"] for s in theirs.output["slides"]] == ["Shared connections"]
    [row] = theirs.output["slides"][0]["data"]["rows"]
    assert row["Link name"] == "team_dropbox" and row["Status"] == "connected"
    assert row["Account"] == "ana@dropbox.example"
    assert "- Team Dropbox (`team_dropbox`): connected" in theirs.text
    nobody = await world.chat.run(CARL, "list")
    assert nobody.text == "*My connections*\n- none\n*Shared connections*\n- none"
    assert "slides" not in nobody.output


async def test_status_for_admins_counts_users_and_waiting_files(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    kept = world.cliq.add_file("kept.txt", b"waiting for carl")
    reply = await world.chat.send_files(CARL, [kept])
    assert "kept" in reply.text, reply.text
    admin = await world.chat.run(ADMIN, "status")
    assert "Admin: 1 user(s) connected, 1 file(s) waiting." in admin.text, admin.text
    assert "You: not connected." in admin.text
    user = await world.chat.run(ANA, "status team_dropbox")
    assert "You: connected as ana@dropbox.example." in user.text, user.text
    assert "Admin:" not in user.text
    carl = await world.chat.run(CARL, "status")
    assert "kept.txt: kept, waiting for a connection" in carl.text, carl.text


async def test_status_without_a_published_connection(world: World) -> None:
    reply = await world.chat.run(ANA, "status")
    assert "No connection is published" in reply.text
    assert "There is no connection `x`" in (await world.chat.run(ANA, "status x")).text


# -- the audit trail --------------------------------------------------------------------------


async def test_every_admin_change_leaves_an_audit_record(world: World) -> None:
    await world.chat.run(ADMIN, SERVICE_ADD + " scopes=read")
    await create(world, switch="off")
    await world.chat.run(ADMIN, "set team_dropbox name=Renamed")
    await world.connect(ADMIN, "owner@dropbox.example", "team_dropbox")
    await world.chat.run(ADMIN, "publish team_dropbox")
    await world.chat.run(ANA, "list")  # reads leave no record
    await world.chat.run(ADMIN, "unpublish team_dropbox")
    await world.chat.run(ADMIN, "revoke team_dropbox")
    await world.chat.run(ADMIN, "delete team_dropbox")
    await world.chat.run(BEN, "service remove acme")
    assert await audit_actions(world) == [
        ("service.add", "acme"),
        ("connection.create", "team_dropbox"),
        ("connection.set", "team_dropbox"),
        ("connection.publish", "team_dropbox"),
        ("connection.unpublish", "team_dropbox"),
        ("connection.revoke", "team_dropbox"),
        ("connection.delete", "team_dropbox"),
        ("service.remove", "acme"),
    ]
    records = await docs(world, "audit")
    assert {r["actor_id"] for r in records} == {ADMIN.id, BEN.id}
    by_action = {r["action"]: r for r in records}
    assert by_action["connection.set"]["details"] == {"name": "Renamed"}
    assert by_action["connection.create"]["details"]["login_user_credentials"] is False
    assert by_action["service.remove"]["actor_email"] == BEN.email
    assert "acme-secret-value" not in repr(records)
