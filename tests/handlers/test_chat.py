"""Text messages to the bot (CONTRACT §4): ``help``, ``status``, ``connect``, ``disconnect``."""

from __future__ import annotations

import pytest

from bot.keys import RUNTIME
from tests.conftest import ADMIN, ANA, BEN, World


@pytest.mark.parametrize("text", ["help", "HELP me", "", "hello there", "123456", "12345"])
async def test_anything_else_gets_help(world: World, text: str) -> None:
    reply = await world.chat.say(ANA, text)
    assert reply.status == 200
    assert reply.text.startswith("Send me a file") and "`/connection help`" in reply.text


@pytest.mark.parametrize("word", ["status", "connect", "disconnect"])
async def test_words_without_a_published_connection(world: World, word: str) -> None:
    reply = await world.chat.say(ANA, word)
    assert "No connection is published yet" in reply.text, reply.text
    assert reply.button_url() is None


async def test_connect_gives_a_single_use_link_for_the_sender(world: World) -> None:
    await world.setup_connection(switch="on")
    reply = await world.chat.say(ANA, "  Connect  ")
    url = reply.button_url()
    assert url and url.startswith(f"{world.bot_url}/connect/"), reply.text
    assert "works once and for 10 minutes" in reply.text
    assert reply.output["buttons"][0]["label"] == "Connect"
    [link] = [d async for d in world.app[RUNTIME].db["connect_links"].find({"user_id": ANA.id})]
    assert link["user_id"] == ANA.id and link["connection"] == "team_dropbox"
    status, page = await world.chat.consent(url, "ana@dropbox.example")
    assert status == 200 and "Connected as ana@dropbox.example" in page
    status, _ = await world.chat.consent(url, "ana@dropbox.example")
    assert status == 410


async def test_connect_with_the_switch_off_is_not_needed(world: World) -> None:
    await world.setup_connection(switch="off", owner_email="owner@dropbox.example")
    reply = await world.chat.say(ANA, "connect")
    assert "runs on its owner's account" in reply.text and reply.button_url() is None
    reply = await world.chat.say(ADMIN, "connect")  # the owner may connect again
    assert reply.button_url(), reply.text


async def test_status_and_disconnect_after_connecting(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    await world.connect(BEN, "ben@dropbox.example")
    reply = await world.chat.say(ANA, "status")
    assert "You: connected as ana@dropbox.example." in reply.text, reply.text
    assert "Admin:" not in reply.text
    reply = await world.chat.say(ANA, "disconnect")
    assert "Disconnected your account from `team_dropbox`" in reply.text, reply.text
    assert "You: not connected." in (await world.chat.say(ANA, "status")).text
    assert "You: connected as ben@dropbox.example." in (await world.chat.say(BEN, "status")).text
    assert "Admin: 1 user(s) connected" in (await world.chat.say(ADMIN, "status")).text


async def test_the_bot_answers_text_in_the_message_details_shape(world: World) -> None:
    body = world.chat.message(ANA, "")
    body["params"]["message"] = {"text": "status"}
    reply = await world.chat.post(body)
    assert "No connection is published" in reply.text, reply.text


async def test_status_of_a_shared_connection_leads_with_the_users_own_state(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    reply = await world.chat.say(ANA, "status")
    first = reply.text.splitlines()[0]
    assert first == "*Team Dropbox* (`team_dropbox`, dropbox), published.", first
    assert "You: connected as ana@dropbox.example." in reply.text
