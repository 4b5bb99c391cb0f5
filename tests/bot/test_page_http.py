"""The connections page over HTTP (CONTRACT §11), without a browser: the way in, sessions,
CSRF, one user's session against another's data, the admin rule, logout.

Each "browser" is its own aiohttp session with its own cookie jar; the bot, the Dropbox and the
Cliq stand-ins are the real ones of the ``world`` fixture.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from html import unescape
from typing import Any

import aiohttp
import pytest

from bot.keys import RUNTIME
from bot.sandbox.driver import ChatUser
from bot.web.page import COOKIE, SECURE_COOKIE
from storage.sessions import SignInLinks
from tests.conftest import ADMIN, ANA, BEN, World

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SCOPES = "account_info.read,files.content.write"


class Browser:
    """One person's browser: a cookie jar, and what they opened last."""

    def __init__(self, world: World, http: aiohttp.ClientSession) -> None:
        self.world = world
        self.http = http
        self.html = ""

    async def sign_in_link(self, user: ChatUser, word: str = "connections") -> str:
        reply = await self.world.chat.say(user, word)
        url = reply.button_url()
        assert url, reply.text
        return url

    async def sign_in(self, user: ChatUser) -> None:
        async with self.http.get(await self.sign_in_link(user), allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            assert resp.headers["Location"] == "/connections"
        status = await self.open()
        assert status == 200, self.html

    async def open(self, path: str = "/connections") -> int:
        async with self.http.get(self.world.bot_url + path, allow_redirects=False) as resp:
            self.html = await resp.text()
            return resp.status

    @property
    def csrf(self) -> str:
        found = _CSRF.search(self.html)
        assert found, "no form on the page"
        return unescape(found.group(1))

    async def post(
        self, path: str, data: dict[str, str], *, csrf: str | None = None
    ) -> tuple[int, str, str]:
        """POST a form (with this page's token unless ``csrf`` says otherwise); the status,
        the redirect target and the page answered."""
        fields = dict(data)
        token = self.csrf if csrf is None else csrf
        if token:
            fields["csrf"] = token
        url = f"{self.world.bot_url}/connections/{path}"
        async with self.http.post(url, data=fields, allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Location", ""), await resp.text()


@pytest.fixture
async def browsers(world: World) -> AsyncIterator[Any]:
    sessions: list[aiohttp.ClientSession] = []

    def new() -> Browser:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        return Browser(world, http)

    yield new
    for http in sessions:
        await http.close()


async def create_team(world: World, switch: str = "on") -> None:
    reply = await world.chat.run(
        ADMIN,
        f'create "Team Dropbox" service=dropbox scopes={SCOPES} login_user_credentials={switch}',
    )
    assert "team_dropbox" in reply.text, reply.text


async def audit_count(world: World) -> int:
    return int(await world.app[RUNTIME].db["audit"].count_documents({}))


async def test_a_sign_in_link_works_once_and_sets_a_strict_session_cookie(
    world: World, browsers: Any
) -> None:
    ana = browsers()
    for word in ("connections", "/connection page"):
        if word.startswith("/"):
            reply = await world.chat.run(ANA, "page")
            link = reply.button_url()
        else:
            link = await ana.sign_in_link(ANA, word)
        assert link is not None
        assert link.startswith(f"{world.bot_url}/signin/")
    help_text = (await world.chat.say(ANA, "help")).text
    assert "`connections`: your connections page" in help_text
    assert "page" in (await world.chat.run(ANA, "help")).text
    async with ana.http.get(link, allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/connections"
        cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # BOT_PUBLIC_URL is http here
    assert await ana.open() == 200
    assert "Signed in as" in ana.html and ANA.email in ana.html

    again = browsers()
    async with again.http.get(link, allow_redirects=False) as resp:
        assert resp.status == 410
        assert "connections" in await resp.text()
        assert "Set-Cookie" not in resp.headers
    async with again.http.get(f"{world.bot_url}/signin/never-made", allow_redirects=False) as r:
        assert r.status == 410
    assert await again.open() == 401
    assert "Sign in from chat" in again.html and "<code>connections</code>" in again.html
    assert await again.open("/connections/files.json") == 401


async def test_an_expired_sign_in_link_is_410(world: World, browsers: Any) -> None:
    await SignInLinks(world.app[RUNTIME].db).create("old-link", _cliq(ANA), ttl=-1.0)
    async with browsers().http.get(f"{world.bot_url}/signin/old-link") as resp:
        assert resp.status == 410


async def test_the_session_cookie_is_secure_when_the_public_url_is_https(
    world: World, browsers: Any
) -> None:
    world.app[RUNTIME].public_url = "https://bot.example"
    link = await browsers().sign_in_link(ANA)
    assert link.startswith("https://bot.example/signin/")
    local = world.bot_url + link.removeprefix("https://bot.example")
    async with browsers().http.get(local, allow_redirects=False) as resp:
        assert resp.status == 303
        cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{SECURE_COOKIE}=") and "Secure" in cookie and "HttpOnly" in cookie


async def test_the_page_shows_what_connection_list_shows(world: World, browsers: Any) -> None:
    await create_team(world)
    await world.chat.run(ADMIN, "publish team_dropbox")
    await world.connect(ANA, "ana@dropbox.example")
    listed = (await world.chat.run(ANA, "list")).text
    assert "Team Dropbox (`team_dropbox`): connected" in listed

    ana = browsers()
    await ana.sign_in(ANA)
    mine, shared = _sections(ana.html)
    assert "None: you have created no connection." in mine
    assert "Team Dropbox" in shared and "team_dropbox" in shared
    assert "Connected as ana@dropbox.example" in shared
    assert "account_info.read, files.content.write" in shared
    assert "Disconnect" in shared

    admin = browsers()
    await admin.sign_in(ADMIN)
    mine, shared = _sections(admin.html)
    assert "Team Dropbox" in mine and "not connected" in mine and "Published</dt><dd>yes" in mine
    assert "Audit log" in admin.html and "connection.publish" in admin.html


async def test_a_post_without_or_with_a_wrong_csrf_token_is_403_and_changes_nothing(
    world: World, browsers: Any
) -> None:
    admin = browsers()
    await admin.sign_in(ADMIN)
    other = browsers()
    await other.sign_in(BEN)
    form = {"name": "Sneaky", "service": "dropbox", "scope:dropbox": "files.content.write"}
    for token in ("", "not-the-token", other.csrf):  # missing, made up, another session's
        status, _, page = await admin.post("create", form, csrf=token)
        assert status == 403, page
        assert "nothing was changed" in page
    assert await world.app[RUNTIME].db["connections"].count_documents({}) == 0
    assert await audit_count(world) == 0
    status, _, _ = await admin.post("logout", {}, csrf="")
    assert status == 403
    assert await admin.open() == 200  # still signed in

    status, location, _ = await admin.post("create", form)
    assert (status, location) == (303, "/connections#mine")
    assert await admin.open() == 200
    assert "Created the connection <strong>Sneaky</strong>" in admin.html


async def test_a_session_sees_and_changes_only_its_own_users_data(
    world: World, browsers: Any
) -> None:
    await world.setup_connection()
    await world.connect(ANA, "ana@dropbox.example")
    world.dropbox.inject_fault("/2/files/upload", "500", count=20)
    attachment = world.cliq.add_file("ana-secret-plan.txt", b"Ana's plan\n" * 100)
    await world.chat.send_files(ANA, [attachment])
    job_id = f"{ANA.id}:{attachment['id']}"

    ana, ben = browsers(), browsers()
    await ana.sign_in(ANA)
    await ben.sign_in(BEN)
    assert "ana-secret-plan.txt" in ana.html
    assert "ana-secret-plan.txt" not in ben.html and "ana@dropbox.example" not in ben.html
    assert await ben.open("/connections/files.json") == 200
    assert "ana-secret-plan" not in ben.html
    await ben.open()
    # Ben, with his own valid token, names Ana's job and Ana's connection: nothing of hers moves.
    jobs = world.app[RUNTIME].db["upload_jobs"]
    before = await jobs.find_one({"_id": job_id})
    status, _, _ = await ben.post("files/cancel", {"job": job_id})
    assert status == 303
    await ben.open()
    assert "That file cannot be cancelled now" in ben.html
    after = await jobs.find_one({"_id": job_id})
    assert after is not None and before is not None and after["state"] == before["state"]
    status, _, _ = await ben.post("disconnect", {"link": "team_dropbox"})
    assert status == 303
    auth = await world.app[RUNTIME].db["authorizations"].find_one({"_id": f"team_dropbox:{ANA.id}"})
    assert auth is not None and auth["status"] == "connected"
    # Ana's cookie in Ben's jar is Ana's session, but Ben's page token does not go with it.
    ben.http.cookie_jar.update_cookies(
        {COOKIE: _cookie(ana.http)}, response_url=aiohttp.client.URL(world.bot_url)
    )
    status, _, _ = await ben.post("files/cancel", {"job": job_id})
    assert status == 403
    after = await jobs.find_one({"_id": job_id})
    assert after is not None and after["state"] == before["state"]


async def test_a_non_admins_admin_form_is_refused_and_changes_nothing(
    world: World, browsers: Any
) -> None:
    await create_team(world)
    ana = browsers()
    await ana.sign_in(ANA)
    assert "Create a connection" not in ana.html and "Audit log" not in ana.html
    conns = world.app[RUNTIME].db["connections"]
    before = await conns.find_one({"_id": "team_dropbox"})
    audited = await audit_count(world)
    posts = [
        ("create", {"name": "Mine", "service": "dropbox", "scope:dropbox": "files.content.write"}),
        ("edit", {"link": "team_dropbox", "name": "Renamed", "scopes": "account_info.read"}),
        ("publish", {"link": "team_dropbox"}),
        ("delete", {"link": "team_dropbox"}),
        ("revoke", {"link": "team_dropbox"}),
        ("services/remove", {"name": "dropbox"}),
        ("services/add", {"name": "gh", "authorize_url": "https://x.example/a"}),
        ("services/configure", {"name": "github", "client_id": "x", "client_secret": "y"}),
    ]
    for path, form in posts:
        status, _, page = await ana.post(path, form)
        assert status == 403, (path, page)
        assert "Only" in page and "nothing" in page, path
    assert await conns.find_one({"_id": "team_dropbox"}) == before
    assert await conns.count_documents({}) == 1
    assert await world.app[RUNTIME].db["services"].count_documents({}) == 0
    assert await audit_count(world) == audited


async def test_edit_is_refused_while_connected_and_delete_while_published(
    world: World, browsers: Any
) -> None:
    await create_team(world, switch="off")
    await world.connect(ADMIN, "owner@dropbox.example", "team_dropbox")
    admin = browsers()
    await admin.sign_in(ADMIN)
    status, _, page = await admin.post(
        "edit", {"link": "team_dropbox", "name": "Team Dropbox", "scopes": "account_info.read"}
    )
    assert status == 409
    assert 'id="edit-team_dropbox-form-error"' in page and "revoke it first" in page
    assert '<details class="edit" open>' in page
    status, _, _ = await admin.post("publish", {"link": "team_dropbox"})
    assert status == 303
    status, _, page = await admin.post("delete", {"link": "team_dropbox"})
    assert status == 409 and "unpublish first" in page
    assert await world.app[RUNTIME].db["connections"].count_documents({}) == 1


async def test_a_create_error_is_shown_next_to_its_field(world: World, browsers: Any) -> None:
    admin = browsers()
    await admin.sign_in(ADMIN)
    status, _, page = await admin.post("create", {"name": "Team", "service": "dropbox"})
    assert status == 400
    assert 'id="create-scopes-error"' in page and "scopes must name" in page
    status, _, page = await admin.post(
        "create", {"name": "!!!", "service": "dropbox", "scope:dropbox": "files.content.write"}
    )
    assert status == 400 and 'id="create-name-error"' in page
    assert 'value="!!!"' in page  # what was typed is kept


async def test_logout_ends_the_session(world: World, browsers: Any) -> None:
    ana = browsers()
    await ana.sign_in(ANA)
    stolen = _cookie(ana.http)
    status, _, page = await ana.post("logout", {})
    assert status == 200 and "Signed out" in page
    assert await ana.open() == 401
    replay = browsers()
    replay.http.cookie_jar.update_cookies(
        {COOKIE: stolen}, response_url=aiohttp.client.URL(world.bot_url)
    )
    assert await replay.open() == 401
    assert await world.app[RUNTIME].db["page_sessions"].count_documents({}) == 0


async def test_connect_is_a_post_that_redirects_to_a_fresh_connect_link(
    world: World, browsers: Any
) -> None:
    await world.setup_connection()
    ben = browsers()
    await ben.sign_in(BEN)
    assert "Files you send the bot go to Team Dropbox" in ben.html
    status, location, _ = await ben.post("connect", {"link": "team_dropbox"})
    assert status == 303 and location.startswith(f"{world.bot_url}/connect/")
    status, page = await world.chat.consent(location, "ben@dropbox.example")
    assert status == 200 and "Connected as ben@dropbox.example" in page
    await ben.open()
    _, shared = _sections(ben.html)
    assert "Connected as ben@dropbox.example" in shared


def _cliq(user: ChatUser) -> Any:
    from bot.cliq.events import CliqUser

    return CliqUser(id=user.id, email=user.email, first_name=user.first_name)


def _cookie(http: aiohttp.ClientSession) -> str:
    return next(c.value for c in http.cookie_jar if c.key == COOKIE)


def _sections(html: str) -> tuple[str, str]:
    mine = html.split('id="mine-h"', 1)[1].split('id="shared-h"', 1)[0]
    shared = html.split('id="shared-h"', 1)[1].split('id="files-h"', 1)[0]
    return mine, shared


async def test_an_admin_configures_a_default_service_and_adds_a_custom_one(
    world: World, browsers: Any
) -> None:
    admin = browsers()
    await admin.sign_in(ADMIN)
    assert 'id="configure-github"' in admin.html
    status, _, page = await admin.post(
        "services/configure", {"name": "github", "client_secret": "very-secret-value"}
    )
    assert status == 400 and 'id="configure-github-client_id-error"' in page
    assert "very-secret-value" not in page
    status, _, _ = await admin.post(
        "services/configure",
        {"name": "github", "client_id": "gh-client", "client_secret": "very-secret-value"},
    )
    assert status == 303
    await admin.open()
    github = admin.html.split('id="service-github"', 1)[1].split("</li>", 1)[0]
    assert "Status: ready" in github
    assert "very-secret-value" not in admin.html

    form = {
        "name": "acme",
        "authorize_url": "https://acme.example/authorize",
        "token_url": "not a url",
        "client_id": "acme-id",
        "client_secret": "acme-secret",
        "scopes": "read,write",
    }
    status, _, page = await admin.post("services/add", form)
    assert status == 400 and 'id="service-add-token_url-error"' in page
    assert await world.app[RUNTIME].db["services"].count_documents({"_id": "acme"}) == 0
    status, _, _ = await admin.post("services/add", {**form, "token_url": "https://acme.example/t"})
    assert status == 303
    await admin.open()
    assert 'id="service-acme"' in admin.html and "Scopes: read, write" in admin.html
    status, _, _ = await admin.post("services/remove", {"name": "acme"})
    assert status == 303
    await admin.open()
    assert 'id="service-acme"' not in admin.html
    actions = [e["action"] async for e in world.app[RUNTIME].db["audit"].find().sort("at", 1)]
    assert actions == ["service.configure", "service.add", "service.remove"]


async def _job_state(world: World, job_id: str, state: str, timeout: float = 15.0) -> None:
    jobs = world.app[RUNTIME].db["upload_jobs"]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        doc = await jobs.find_one({"_id": job_id})
        if doc is not None and doc["state"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {state}")


async def test_kept_files_show_their_expiry_and_failed_ones_retry_and_cancel(
    world: World, browsers: Any
) -> None:
    await world.setup_connection()
    kept = world.cliq.add_file("kept-notes.txt", b"kept\n" * 10)
    await world.chat.send_files(BEN, [kept])
    kept_id = f"{BEN.id}:{kept['id']}"
    await _job_state(world, kept_id, "waiting")
    broken = {
        "name": "broken.txt",
        "id": "att-broken",
        "url": f"{world.cliq.base_url}/files/no-such-file",
        "contenttype": "text/plain",
    }
    await world.chat.send_files(BEN, [broken])
    broken_id = f"{BEN.id}:att-broken"
    await _job_state(world, broken_id, "failed")

    ben = browsers()
    await ben.sign_in(BEN)
    created = (await world.app[RUNTIME].db["upload_jobs"].find_one({"_id": kept_id}))["created_at"]
    until = (created + timedelta(seconds=world.settings.kept_file_ttl)).strftime("%Y-%m-%d %H:%M")
    item = ben.html.split('data-job="' + kept_id + '"', 1)[1].split("</li>", 1)[0]
    assert f'Kept until <span class="file-expiry">{until} UTC</span>' in item
    failed = ben.html.split('data-job="' + broken_id + '"', 1)[1].split("</li>", 1)[0]
    assert "Failed" in failed and 'class="actions file-actions">' in failed  # not hidden
    assert await ben.open("/connections/files.json") == 200
    states = {f["id"]: f["state"] for f in json.loads(ben.html)["files"]}
    assert states == {kept_id: "waiting", broken_id: "failed"}

    await ben.open()
    status, location, _ = await ben.post("files/retry", {"job": broken_id})
    assert (status, location) == (303, "/connections#files")
    await ben.open()
    assert "Trying that file again." in ben.html
    await _job_state(world, broken_id, "failed")  # the URL is still broken
    status, _, _ = await ben.post("files/cancel", {"job": broken_id})
    await ben.open()
    assert "Cancelled broken.txt." in ben.html
    await _job_state(world, broken_id, "cancelled")
