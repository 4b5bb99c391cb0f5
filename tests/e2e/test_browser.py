"""The chat emulator in a real browser: two users connect their own Dropbox and forward files.

Needs Debian's ``/usr/bin/chromium`` (never a downloaded browser); skipped without it. Set
``CLIQBOT_SCREENSHOT=path.png`` to save a screenshot of the emulator with the conversation.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator

import pytest

from bot.sandbox.demo import ANA, BEN, DEMO_LINK, Sandbox
from bot.sandbox.driver import ChatUser

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    pytest.skip("needs /usr/bin/chromium", allow_module_level=True)

from playwright.async_api import (  # noqa: E402
    Browser,
    FilePayload,
    Page,
    async_playwright,
    expect,
)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(port=0, log_level="WARNING") as running:
        await running.create_connection("Demo Dropbox", DEMO_LINK, switch="on")
        await running.publish(DEMO_LINK)
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _connect_and_forward(
    page: Page, user: ChatUser, email: str, name: str, content: bytes
) -> None:
    transcript = page.locator("#transcript")
    await page.get_by_label("Chat as").select_option(user.id)
    await expect(page.locator("#user-info")).to_contain_text(user.email)
    await page.get_by_label("Message").fill("connect")
    await page.get_by_role("button", name="Send").click()
    connect = transcript.get_by_role("link", name="Connect").last
    await expect(connect).to_be_visible()
    async with page.context.expect_page() as opened:
        await connect.click()
    consent = await opened.value
    await consent.wait_for_load_state()
    await expect(consent.get_by_role("heading", level=1)).to_contain_text("wants to access")
    await consent.get_by_label("Or sign in with another email address").fill(email)
    await consent.get_by_role("button", name="Allow").click()
    await expect(consent.locator("body")).to_contain_text(f"Connected as {email}")
    await consent.close()
    await expect(transcript).to_contain_text(f"Connected as {email}")
    payload: FilePayload = {"name": name, "mimeType": "text/plain", "buffer": content}
    await page.locator("#file").set_input_files(files=[payload])
    await expect(transcript).to_contain_text(f"Saved {name}")


async def test_two_users_forward_files_into_their_own_dropbox(
    sandbox: Sandbox, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(sandbox.emulator_url)
    await expect(page.locator("#transcript")).to_contain_text("Ana")  # the welcome reply
    await _connect_and_forward(
        page, ANA, "ana@dropbox.example", "ana-notes.txt", b"Ana's notes\n" * 50
    )
    screenshot = os.environ.get("CLIQBOT_SCREENSHOT")
    if screenshot:
        await page.screenshot(path=screenshot, full_page=True)
    await _connect_and_forward(page, BEN, "ben@dropbox.example", "ben-plan.txt", b"Ben's plan\n")

    await page.get_by_label("Message").fill("/connection list")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#transcript")).to_contain_text("Shared connections")

    files = await context.new_page()
    await files.goto(sandbox.files_page("ana@dropbox.example"))
    await expect(files.locator("table")).to_contain_text("/Cliq Uploads/ana-notes.txt")
    await expect(files.locator("main")).not_to_contain_text("ben-plan.txt")
    await files.goto(sandbox.files_page("ben@dropbox.example"))
    await expect(files.locator("table")).to_contain_text("/Cliq Uploads/ben-plan.txt")
    await expect(files.locator("main")).not_to_contain_text("ana-notes.txt")
    assert sandbox.standin().read_file("ana@dropbox.example", "/Cliq Uploads/ana-notes.txt") == (
        b"Ana's notes\n" * 50
    )
    await context.close()
