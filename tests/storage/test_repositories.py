"""The repositories against a real server: typed errors with data, records, the store object."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest

from bot.cliq.events import CliqUser
from bot.errors import (
    AlreadyExists,
    Conflict,
    MalformedRecord,
    NotFound,
    StoreError,
    StoreUnavailable,
    UnknownRecord,
)
from storage.authorizations import Authorizations, ConnectLinks, OAuthStates
from storage.base import Store
from storage.connections import Connections, ServiceRecords
from storage.records import BROKEN, DONE, KEEP, QUEUED, Connection, ServiceRecord, auth_id
from storage.sessions import Sessions, SignInLinks
from storage.uploads import UploadJobs
from tests.sources import lines_matching


@pytest.fixture
async def store(mongo_uri: str, db_name: str) -> AsyncIterator[Store]:
    opened = Store.open(mongo_uri, db_name)
    try:
        yield opened
    finally:
        assert await opened.close(10.0)


def _connection(link: str = "team_dropbox") -> Connection:
    return Connection(
        link=link,
        name="Team Dropbox",
        service="dropbox",
        scopes=("files.content.write",),
        login_user_credentials=True,
        owner_id="1001",
        owner_email="admin@example.com",
    )


def _service(name: str = "Acme") -> ServiceRecord:
    return ServiceRecord(
        name=name,
        authorize_url="https://acme.example/authorize",
        token_url="https://acme.example/token",
        client_id="acme",
        client_secret_sealed={"kid": "k1", "nonce": b"n" * 12, "ct": b"c" * 16},
    )


async def test_a_second_connection_with_the_link_name_is_already_exists(store: Store) -> None:
    connections = Connections(store.db)
    await connections.create(_connection())
    with pytest.raises(AlreadyExists) as info:
        await connections.create(_connection())
    assert isinstance(info.value, Conflict)
    assert (info.value.kind, info.value.key) == ("connection", "team_dropbox")
    assert str(info.value) == (
        "A connection with the link name `team_dropbox` exists already; choose another name."
    )


async def test_an_unknown_connection_is_unknown_record(store: Store) -> None:
    connections = Connections(store.db)
    for attempt in (connections.require("nosuch"), connections.update("nosuch", {"name": "x"})):
        with pytest.raises(UnknownRecord) as info:
            await attempt
        assert isinstance(info.value, NotFound)
        assert (info.value.kind, info.value.key) == ("connection", "nosuch")
        assert str(info.value) == "There is no connection `nosuch`. `list` shows yours."


async def test_a_second_service_with_the_name_is_already_exists(store: Store) -> None:
    services = ServiceRecords(store.db)
    await services.add(_service("Acme"))
    with pytest.raises(AlreadyExists) as info:
        await services.add(_service("ACME"))  # names are unique whatever their case
    assert (info.value.kind, info.value.key) == ("service", "ACME")
    assert str(info.value) == "A service named 'ACME' exists already."


async def test_service_secrets_are_listed_and_replaced_for_rotation(store: Store) -> None:
    services = ServiceRecords(store.db)
    await services.add(_service("Acme"))
    [record] = [r async for r in services.every_sealed()]
    assert record.name == "Acme" and record.client_secret_sealed["kid"] == "k1"
    fresh = {"kid": "k2", "nonce": b"m" * 12, "ct": b"d" * 16}
    await services.replace_secret("Acme", fresh)
    stored = await services.get("acme")
    assert stored is not None and dict(stored.client_secret_sealed) == fresh


async def test_connect_links_and_states_name_their_connection(store: Store) -> None:
    links, states = ConnectLinks(store.db), OAuthStates(store.db)
    await links.create("opaque", "team_dropbox", "55501", "ana@example.com", ttl=60)
    link = await links.consume("opaque")
    assert link is not None and (link.id, link.connection) == ("opaque", "team_dropbox")
    assert await links.consume("opaque") is None  # single use
    verifier = {"kid": "k1", "nonce": b"n" * 12, "ct": b"c" * 16}
    await states.create("st", "team_dropbox", "55501", "ana@example.com", verifier, ttl=60)
    state = await states.consume("st")
    assert state is not None and (state.state, state.connection) == ("st", "team_dropbox")
    # The stored field stays `connection`: records written before the rename still read.
    assert await store.db["connect_links"].find_one({"connection": "team_dropbox"}) is not None


async def test_a_claimed_job_that_cannot_be_read_is_malformed_record(store: Store) -> None:
    jobs = UploadJobs(store.db)
    job = await jobs.create(
        sender_id="55501",
        attachment_id="a1",
        connection="team_dropbox",
        credential_user="55501",
        name="x.txt",
        url="http://files.example/x",
        state=QUEUED,
    )
    assert job is not None
    await store.db["upload_jobs"].update_one({"_id": job.id}, {"$unset": {"name": ""}})
    with pytest.raises(MalformedRecord) as info:
        await jobs.claim("holder", 30.0, (QUEUED,))
    err = info.value
    assert isinstance(err, StoreError)
    assert (err.kind, err.key, err.set_aside_as) == ("job", job.id, BROKEN)
    assert (err.owner, err.label) == ("55501", "")  # who to tell; the name is what is missing
    assert err.problem.startswith("KeyError")
    assert str(err) == f"job {job.id} is malformed ({err.problem}); set aside as broken"


async def test_the_store_answers_ping_and_a_spent_deadline_is_store_unavailable(
    store: Store,
) -> None:
    await store.ping(2.0)
    connections = Connections(store.db)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info, store.deadline(0.000001):
        await asyncio.sleep(0.01)  # the deadline runs out before the call is made
        await connections.get("team_dropbox")
    assert time.monotonic() - started < 2.0
    assert info.value.cause  # the driver error's name, for logs and /readyz
    assert str(info.value) == f"the database is not answering ({info.value.cause})"


# -- one-document writes without findAndModify (storage/base.py update_and_read) -------------

_FIND_AND_MODIFY = re.compile(r"\.find_one_and_(update|delete|replace)\(")


def test_no_repository_sends_find_and_modify() -> None:
    """On SecantusDB every findAndModify is a collection scan (update_and_read's docstring)."""
    found = lines_matching(_FIND_AND_MODIFY)
    assert found == [], "\n".join(found)


async def test_of_callers_racing_for_one_link_or_state_exactly_one_gets_it(store: Store) -> None:
    links, states, signins = ConnectLinks(store.db), OAuthStates(store.db), SignInLinks(store.db)
    await links.create("race", "team_dropbox", "55501", "ana@example.com", ttl=60)
    verifier = {"kid": "k1", "nonce": b"n" * 12, "ct": b"c" * 16}
    await states.create("race", "team_dropbox", "55501", "ana@example.com", verifier, ttl=60)
    ana = CliqUser(id="55501", email="ana@example.com", first_name="Ana", last_name="Lima")
    await signins.create("race", ana, ttl=60)
    for consume in (links.consume, states.consume, signins.consume):
        got = await asyncio.gather(*(consume("race") for _ in range(20)))
        assert len([g for g in got if g is not None]) == 1, (consume, got)


async def test_a_refresh_lease_is_taken_once_until_it_lapses(store: Store) -> None:
    auths = Authorizations(store.db)
    await store.db["authorizations"].insert_one({"_id": auth_id("team_dropbox", "55501")})
    taken = await asyncio.gather(
        *(auths.take_lease("team_dropbox", "55501", f"p{i}", 60) for i in range(10))
    )
    assert taken.count(True) == 1
    assert not await auths.take_lease("team_dropbox", "55501", "late", 60)
    await auths.release_lease("team_dropbox", "55501", f"p{taken.index(True)}")
    assert await auths.take_lease("team_dropbox", "55501", "next", 0.05)
    await asyncio.sleep(0.1)
    assert await auths.take_lease("team_dropbox", "55501", "after-lapse", 60)  # lapsed: free


async def test_a_flash_notice_is_handed_out_once(store: Store) -> None:
    sessions = Sessions(store.db)
    ana = CliqUser(id="55501", email="ana@example.com", first_name="Ana", last_name="Lima")
    await sessions.create("s1", ana, "csrf", ttl=60)
    assert await sessions.take_flash("s1") == ""
    await sessions.set_flash("s1", "Disconnected Team Dropbox.")
    got = await asyncio.gather(*(sessions.take_flash("s1") for _ in range(5)))
    assert sorted(got) == ["", "", "", "", "Disconnected Team Dropbox."]


async def test_a_kept_file_counts_as_kept_until_it_is_uploaded(store: Store) -> None:
    """Its download may end, and queue it, just after its user connected (the worker saw them
    connected): "Uploading the N file(s) I kept" still counts it."""
    jobs = UploadJobs(store.db)

    async def new(attachment: str, state: str) -> None:
        made = await jobs.create(
            sender_id="55501",
            attachment_id=attachment,
            connection="team_dropbox",
            credential_user="55501",
            name=f"{attachment}.txt",
            url="http://files.example/x",
            state=state,
        )
        assert made is not None

    await new("kept", KEEP)
    await new("never-kept", QUEUED)  # sent while connected: not a kept file
    assert await jobs.count_kept("team_dropbox", "55501") == 1
    claimed = await jobs.claim("holder", 30.0, (KEEP,))
    assert claimed is not None and claimed.name == "kept.txt"
    assert await jobs.finish(claimed, "holder", QUEUED, kept_file=None)
    assert await jobs.count_kept("team_dropbox", "55501") == 1
    uploading = await jobs.claim_batch("holder", 30.0, QUEUED, limit=10)
    for job in uploading:
        assert await jobs.finish(job, "holder", DONE)
    assert await jobs.count_kept("team_dropbox", "55501") == 0
