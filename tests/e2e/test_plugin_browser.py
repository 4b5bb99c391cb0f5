"""The demo's example plugin in a real browser: Ana and Ben, side by side in the chat emulator,
each connect their own Dropbox, send a file, and ask ``files``: each sees only their own.

Needs Debian's ``/usr/bin/chromium``; skipped without it. Set ``CLIQBOT_SCREENSHOT_FILES=x.png``
to save the screenshot of both conversations (``docs/plugin-files.png`` is made this way).
"""

# ruff: noqa: F811 (the browser and sandbox fixtures are imported from test_browser)

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bot.sandbox.demo import ANA, ANA_DROPBOX, BEN, BEN_DROPBOX, Sandbox
from bot.sandbox.driver import ChatUser
from tests.e2e.test_browser import TIMEOUT_MS, browser, sandbox  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

from playwright.async_api import (  # noqa: E402
    Browser,
    FilePayload,
    FrameLocator,
    Page,
    expect,
)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 980})
    context.set_default_timeout(TIMEOUT_MS)
    yield await context.new_page()
    await context.close()


async def _say(frame: FrameLocator, words: str) -> None:
    await frame.get_by_label("Message").fill(words)
    await frame.get_by_role("button", name="Send").click()


async def _connect_send_and_list(
    page: Page, frame: FrameLocator, email: str, names: tuple[str, ...], others: tuple[str, ...]
) -> None:
    transcript = frame.locator("#transcript")
    await _say(frame, "connect")
    connect = transcript.get_by_role("link", name="Connect").last
    async with page.context.expect_page() as opened:
        await connect.click()
    consent = await opened.value
    await consent.get_by_label("Or sign in with another email address").fill(email)
    await consent.get_by_role("button", name="Allow").click()
    await expect(consent.locator("body")).to_contain_text(
        f"Connected as {email}", timeout=TIMEOUT_MS
    )
    await consent.close()
    for size, name in enumerate(names, start=1):
        content = b"quarterly numbers\n" * 90 * size
        payload: FilePayload = {"name": name, "mimeType": "text/plain", "buffer": content}
        await frame.locator("#file").set_input_files(files=[payload])
        await expect(transcript).to_contain_text(f"Saved {name}", timeout=TIMEOUT_MS)
    await _say(frame, "files")
    answer = transcript.locator("li").filter(has_text="file(s) in your /Cliq Uploads").last
    for name in names:
        await expect(answer).to_contain_text(name, timeout=TIMEOUT_MS)
    for other in others:
        await expect(answer).not_to_contain_text(other)


async def test_files_lists_each_users_own_dropbox(sandbox: Sandbox, page: Page) -> None:
    users: list[tuple[ChatUser, str, tuple[str, ...]]] = [
        (ANA, ANA_DROPBOX, ("ana-q3-report.txt", "ana-budget.csv")),
        (BEN, BEN_DROPBOX, ("ben-holiday-plan.txt",)),
    ]
    frames = "".join(
        f'<iframe id="u{user.id}" title="{user.first_name}" src="{sandbox.emulator_url}'
        f'?user={user.id}" style="width:690px;height:960px;border:1px solid #999"></iframe>'
        for user, _, _ in users
    )
    await page.set_content(f"<body style='margin:4px;display:flex;gap:8px'>{frames}</body>")
    for (user, email, names), (_, _, others) in zip(users, reversed(users), strict=True):
        frame = page.frame_locator(f"#u{user.id}")
        await expect(frame.locator("#user-info")).to_contain_text(user.email)
        await _connect_send_and_list(page, frame, email, names, others)
    screenshot = os.environ.get("CLIQBOT_SCREENSHOT_FILES")
    if screenshot:
        await page.screenshot(path=screenshot)
    for _, email, names in users:
        assert sorted(f.name for f in sandbox.standin().files(email).values()) == sorted(names)
