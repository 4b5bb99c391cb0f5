"""The file flow's edges (CONTRACT §7), end to end over HTTP against the stand-ins."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Settings
from bot.files.names import clean_name
from tests.conftest import ADMIN, ANA, BEN, World


async def test_a_revoked_authorization_keeps_the_file_and_prompts(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    world.dropbox.revoke_all("ana@dropbox.example")
    a = world.cliq.add_file("late.txt", b"kept after revoke")
    reply = await world.chat.send_files(ANA, [a])
    assert "started" in reply.text
    prompt = await world.messages_for(ANA, "no longer works")
    assert prompt["buttons"], prompt
    status = await world.chat.say(ANA, "status")
    assert "late.txt: kept" in status.text, status.text
    assert "disconnected" in status.text
    await world.connect(ANA, "ana@dropbox.example")
    await world.messages_for(ANA, "Saved late.txt")
    assert world.dropbox.read_file("ana@dropbox.example", "/Cliq Uploads/late.txt") == (
        b"kept after revoke"
    )


async def test_an_expired_access_token_is_refreshed_once(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    world.dropbox.expire_access_tokens("ana@dropbox.example")
    await world.chat.send_files(ANA, [world.cliq.add_file("r.txt", b"refresh me")])
    await world.messages_for(ANA, "Saved r.txt")
    assert world.dropbox.calls["token:refresh_token"] == 1


async def test_names_are_cleaned_and_conflicts_autorenamed(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(BEN, "ben@dropbox.example")
    evil = world.cliq.add_file("../../etc/pass\x07wd", b"one")
    first = world.cliq.add_file("report.pdf", b"two")
    second = world.cliq.add_file("report.pdf", b"three")
    unicode = world.cliq.add_file("Relatório 🚀\x7f.pdf", b"four")
    nothing = world.cliq.add_file("/\x00/", b"five")
    await world.chat.send_files(BEN, [evil, first, second, unicode, nothing])
    for name in ("_.._etc_passwd", "report.pdf", "report (1).pdf", "Relatório 🚀.pdf", "file"):
        await world.messages_for(BEN, f"Saved {name} ")
    assert set(world.dropbox.files("ben@dropbox.example")) == {
        "/Cliq Uploads/_.._etc_passwd",
        "/Cliq Uploads/report.pdf",
        "/Cliq Uploads/report (1).pdf",
        "/Cliq Uploads/Relatório 🚀.pdf",
        "/Cliq Uploads/file",
    }


@pytest.fixture
def world_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, max_file_bytes=4096, kept_file_ttl=1.0)


async def test_a_file_over_the_limit_is_refused_clearly(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    await world.chat.send_files(ANA, [world.cliq.add_file("big.bin", b"x" * 5000)])
    message = await world.messages_for(ANA, "big.bin")
    assert "larger than the limit of 4096 bytes" in message["text"]
    assert world.dropbox.files("ana@dropbox.example") == {}


async def test_kept_files_expire_and_the_user_is_told(world: World) -> None:
    await world.setup_connection(switch="on")
    reply = await world.chat.send_files(ANA, [world.cliq.add_file("old.txt", b"old")])
    assert "kept" in reply.text
    await world.messages_for(ANA, "old.txt waited", timeout=20)
    await world.connect(ANA, "ana@dropbox.example")
    status = await world.chat.say(ANA, "status")
    assert "old.txt" not in status.text
    assert world.dropbox.files("ana@dropbox.example") == {}


async def test_switch_off_keeps_files_until_the_owner_connects(world: World) -> None:
    await world.chat.run(
        ADMIN,
        'create "Owner Box" service=dropbox scopes=files.content.write login_user_credentials=off',
    )
    refused = await world.chat.run(ADMIN, "publish owner_box")
    assert "owner is not connected" in refused.text
    await world.connect(ADMIN, "owner@dropbox.example", "owner_box")
    assert "Published" in (await world.chat.run(ADMIN, "publish owner_box")).text
    reply = await world.chat.say(ANA, "connect")
    assert "need not connect" in reply.text


@given(st.text(max_size=300))
def test_clean_name_is_one_safe_path_component(name: str) -> None:
    cleaned = clean_name(name)
    assert cleaned
    assert "/" not in cleaned and "\\" not in cleaned
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in cleaned)
    assert len(cleaned.encode()) <= 200
    assert cleaned not in (".", "..")
