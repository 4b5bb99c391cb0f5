"""The seed scenario end to end, over HTTP: each file lands in its sender's own Dropbox."""

from __future__ import annotations

from tests.conftest import ADMIN, ANA, BEN, World


async def test_each_file_lands_in_the_senders_own_dropbox(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    await world.connect(BEN, "ben@dropbox.example")
    a = world.cliq.add_file("q3 report.pdf", b"ana's bytes" * 1000)
    b = world.cliq.add_file("photo.jpg", b"ben's bytes" * 777)
    reply = await world.chat.send_files(ANA, [a])
    assert reply.status == 200 and "started" in reply.text, reply.text
    reply = await world.chat.send_files(BEN, [b])
    assert "started" in reply.text, reply.text
    await world.messages_for(ANA, "Saved q3 report.pdf")
    await world.messages_for(BEN, "Saved photo.jpg")
    assert world.dropbox.read_file("ana@dropbox.example", "/Cliq Uploads/q3 report.pdf") == (
        b"ana's bytes" * 1000
    )
    assert world.dropbox.read_file("ben@dropbox.example", "/Cliq Uploads/photo.jpg") == (
        b"ben's bytes" * 777
    )
    assert "/Cliq Uploads/photo.jpg" not in world.dropbox.files("ana@dropbox.example")


async def test_switch_off_lands_everything_in_the_owners_dropbox(world: World) -> None:
    await world.setup_connection(switch="off", owner_email="owner@dropbox.example")
    a = world.cliq.add_file("a.txt", b"from ana")
    b = world.cliq.add_file("b.txt", b"from ben")
    await world.chat.send_files(ANA, [a])
    await world.chat.send_files(BEN, [b])
    await world.messages_for(ANA, "Saved a.txt")
    await world.messages_for(BEN, "Saved b.txt")
    files = world.dropbox.files("owner@dropbox.example")
    assert {"/Cliq Uploads/a.txt", "/Cliq Uploads/b.txt"} <= set(files)


async def test_a_file_sent_before_connecting_lands_after_connecting(world: World) -> None:
    await world.setup_connection(switch="on")
    first = world.cliq.add_file("first.txt", b"one")
    second = world.cliq.add_file("second.txt", b"two")
    reply = await world.chat.send_files(ANA, [first, second])
    assert reply.button_url(), reply.text
    assert "kept" in reply.text
    await world.connect(ANA, "ana@dropbox.example")
    await world.messages_for(ANA, "Uploading the 2 file(s) I kept")
    await world.messages_for(ANA, "Saved first.txt")
    await world.messages_for(ANA, "Saved second.txt")
    files = world.dropbox.files("ana@dropbox.example")
    assert world.dropbox.read_file("ana@dropbox.example", "/Cliq Uploads/second.txt") == b"two"
    assert len(files) == 2


async def test_the_same_delivery_twice_uploads_once(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    a = world.cliq.add_file("once.txt", b"only once")
    body = world.chat.message(ANA, "", [a])
    first = await world.chat.post(body)
    again = await world.chat.post(body)
    assert first.body == again.body
    await world.messages_for(ANA, "Saved once.txt")
    assert list(world.dropbox.files("ana@dropbox.example")) == ["/Cliq Uploads/once.txt"]


async def test_no_published_connection_stores_nothing(world: World) -> None:
    a = world.cliq.add_file("x.txt", b"x")
    reply = await world.chat.send_files(ANA, [a])
    assert "No connection is published" in reply.text
    assert ADMIN.id


async def test_metrics_count_events_uploads_refreshes_and_callbacks(world: World) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    world.dropbox.expire_access_tokens("ana@dropbox.example")
    await world.chat.send_files(ANA, [world.cliq.add_file("m.txt", b"12345")])
    await world.messages_for(ANA, "Saved m.txt")
    async with world.chat.http.get(f"{world.bot_url}/metrics") as resp:
        text = await resp.text()
    assert 'cliqbot_events_total{handler="execution_handler",outcome="ok"}' in text
    assert 'cliqbot_events_total{handler="message_handler",outcome="ok"} 1' in text
    assert 'cliqbot_uploads_total{outcome="ok"} 1' in text
    assert "cliqbot_uploaded_bytes_total 5" in text
    assert 'cliqbot_token_refreshes_total{outcome="ok"} 1' in text
    assert 'cliqbot_oauth_callbacks_total{outcome="connected"} 1' in text
    assert "cliqbot_event_seconds_bucket" in text
    assert "cliqbot_upload_seconds_count 1" in text
