"""The connections page in a real browser (CONTRACT §11), on the whole sandbox of ``cliqbot demo``.

- a user signs in from the link the bot gives in the chat emulator, connects from the page,
  forwards a 64 MiB file and watches its progress bar move to 100% without a reload;
- an admin creates a connection (the link name shown as typed), connects it, publishes it, is
  refused an edit while connected, revokes, edits; a second user then finds it under "Shared
  connections" once connected.

Needs Debian's ``/usr/bin/chromium`` (never a downloaded browser); skipped without it. Set
``CLIQBOT_PAGE_SCREENSHOTS=docs`` to save ``connections-user.png`` and ``connections-admin.png``
into that folder.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import time
from collections.abc import AsyncIterator

import pytest

from bot.sandbox.demo import ADMIN, ANA, BEN, DEMO_LINK, Sandbox
from bot.sandbox.driver import ChatUser

TIMEOUT_MS = 20_000
BIG = 64 * 1024 * 1024
SHOTS = os.environ.get("CLIQBOT_PAGE_SCREENSHOTS", "")

pytestmark = pytest.mark.browser

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402

# How the project launches Debian's Chromium; the import skips this module without one.
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(port=0, log_level="WARNING") as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    launch = {"executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}
    async with async_playwright() as pw, await pw.chromium.launch(**launch) as launched:
        yield launched


async def _new_page(browser: Browser, width: int = 1000) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    return await context.new_page()


async def _sign_in(sandbox: Sandbox, page: Page, user: ChatUser) -> None:
    """Open the sign-in link the bot answers ``connections`` with."""
    reply = await sandbox.driver().say(user, "connections")
    url = reply.button_url()
    assert url, reply.text
    await page.goto(url)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your connections")
    await expect(page.locator(".who")).to_contain_text(user.email)


async def _consent(page: Page, email: str) -> None:
    """On the Dropbox stand-in's consent page: allow as ``email``; back on the bot's page."""
    await expect(page.get_by_role("heading", level=1)).to_contain_text("wants to access")
    await page.get_by_label("Or sign in with another email address").fill(email)
    await page.get_by_role("button", name="Allow").click()
    await expect(page.locator("body")).to_contain_text(f"Connected as {email}")


async def _shoot(page: Page, name: str) -> None:
    """A full-page screenshot into ``CLIQBOT_PAGE_SCREENSHOTS`` (the folder must exist)."""
    if SHOTS:
        await page.screenshot(path=str(pathlib.Path(SHOTS) / name), full_page=True)


async def _watch_bar(page: Page, name: str, timeout: float = 30.0) -> list[float]:
    """The values the file's progress bar took until it reached 100."""
    bar = page.get_by_label(f"Progress of {name}")
    await expect(bar).to_be_visible()
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = float(await bar.evaluate("el => el.position < 0 ? -1 : el.value"))
        if not seen or seen[-1] != value:
            seen.append(value)
        if value >= 100:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"the bar of {name} stopped at {seen}")


async def test_a_user_signs_in_from_chat_connects_and_watches_a_64_mib_upload(
    sandbox: Sandbox, browser: Browser
) -> None:
    await sandbox.create_connection("Demo Dropbox", DEMO_LINK, switch="on")
    await sandbox.publish(DEMO_LINK)
    chat = await _new_page(browser)
    await chat.goto(sandbox.emulator_url)
    await chat.get_by_label("Chat as").select_option(ANA.id)
    await chat.get_by_label("Message").fill("connections")
    await chat.get_by_role("button", name="Send").click()
    link = chat.locator("#transcript").get_by_role("link", name="Open the page").last
    async with chat.context.expect_page() as opened:
        await link.click()
    page = await opened.value
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your connections")
    await expect(page.locator(".who")).to_contain_text(ANA.email)

    await page.get_by_role("button", name="Connect Demo Dropbox").click()
    await _consent(page, "ana@dropbox.example")
    await page.goto(f"{sandbox.bot_url}/connections")
    shared = page.locator("#shared")
    await expect(shared.locator("#conn-demo_dropbox")).to_contain_text(
        "Connected as ana@dropbox.example"
    )

    # Dropbox answers a few chunks 429 (Retry-After 0.6 s), so the upload takes long enough for
    # the once-a-second poll to see it on the way.
    sandbox.standin().inject_fault(
        "/2/files/upload_session/append_v2", "429", count=3, retry_after=0.6
    )
    await page.evaluate("window.notReloaded = true")
    attachment = sandbox.cliq.add_generated_file("big-video.bin", BIG, seed=7)
    reply = await sandbox.driver().send_files(ANA, [attachment])
    assert reply.status == 200, reply.text
    seen = await _watch_bar(page, "big-video.bin")
    assert seen[-1] == 100
    assert any(0 < value < 100 for value in seen), seen  # it moved, it did not jump
    row = page.locator("li.file", has_text="big-video.bin")
    await expect(row.locator(".file-state")).to_have_text("Saved to /Cliq Uploads/big-video.bin")
    await expect(row.locator(".file-bytes")).to_have_text("64.0 MB of 64.0 MB")
    assert await page.evaluate("window.notReloaded === true")
    stored = sandbox.standin().files("ana@dropbox.example")["/Cliq Uploads/big-video.bin"]
    assert stored.size == BIG
    await _shoot(page, "connections-user.png")
    await page.context.close()
    await chat.context.close()


async def test_an_admin_manages_a_connection_and_a_second_user_sees_it_shared(
    sandbox: Sandbox, browser: Browser
) -> None:
    page = await _new_page(browser)
    await _sign_in(sandbox, page, ADMIN)
    create = page.locator("#create")
    await create.get_by_label("Connection name").press_sequentially("Team Dropbox!")
    await expect(create.locator("#create-link")).to_have_text("team_dropbox")
    await create.get_by_label("Service").select_option("dropbox")
    await create.get_by_label("account_info.read").check()
    await create.get_by_label("files.content.write").check()
    await create.get_by_role("button", name="Create").click()
    await expect(page.locator("#notice")).to_contain_text("link name team_dropbox")
    card = page.locator("#mine #conn-team_dropbox")
    await expect(card).to_contain_text("not connected")

    await card.get_by_role("button", name="Connect Team Dropbox!").click()
    await _consent(page, "owner@dropbox.example")
    await page.goto(f"{sandbox.bot_url}/connections")
    await expect(card).to_contain_text("Connected as owner@dropbox.example")
    await card.get_by_role("button", name="Publish Team Dropbox!").click()
    await expect(page.locator("#notice")).to_contain_text("Published team_dropbox")

    await card.locator("summary").click()
    await card.get_by_label("Scopes (comma-separated)").fill(
        "account_info.read,files.content.write,files.metadata.read"
    )
    await card.get_by_role("button", name="Save changes to Team Dropbox!").click()
    refused = page.locator("#edit-team_dropbox-form-error")
    await expect(refused).to_contain_text("revoke it first")
    await expect(page.locator("#edit-team_dropbox")).to_be_visible()  # the form, still open

    await card.get_by_role("button", name="Revoke Team Dropbox!").click()
    await expect(card.locator(".status")).to_have_text("disconnected")
    await card.locator("summary").click()
    await card.get_by_label("Connection name").fill("Team Files")
    await card.get_by_label("Scopes (comma-separated)").fill(
        "account_info.read,files.content.write,files.metadata.read"
    )
    await card.get_by_role("button", name="Save changes to Team Dropbox!").click()
    await expect(page.locator("#notice")).to_contain_text("Updated team_dropbox")
    await expect(card.locator("h3")).to_have_text("Team Files")
    await expect(card.locator(".link-name")).to_have_text("team_dropbox")
    await expect(card).to_contain_text("files.metadata.read")
    actions = page.locator("#audit tbody tr td:nth-child(3)")
    await expect(actions).to_have_text(
        ["connection.set", "connection.revoke", "connection.publish", "connection.create"]
    )
    await _shoot(page, "connections-admin.png")

    ben = await _new_page(browser, width=390)  # a phone's width
    await _sign_in(sandbox, ben, BEN)
    await expect(ben.locator("#shared")).to_contain_text("None")
    await ben.get_by_role("button", name="Connect Team Files").click()
    await _consent(ben, "ben@dropbox.example")
    await ben.goto(f"{sandbox.bot_url}/connections")
    shared = ben.locator("#shared #conn-team_dropbox")
    await expect(shared).to_contain_text("Team Files")
    await expect(shared).to_contain_text("Connected as ben@dropbox.example")
    await expect(ben.locator("#mine")).to_contain_text("None")
    assert await ben.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await ben.context.close()
    await page.context.close()
