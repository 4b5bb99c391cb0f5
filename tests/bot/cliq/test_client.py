from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.cliq.client import CliqClient
from bot.cliq.messages import Button, Message, text
from bot.errors import ApiError, ServerError
from bot.sandbox.cliq_standin import CliqStandin
from bot.secret import Secret

TOKEN = "zapi-secret-token-1234"
BOT = "filesbot"


@pytest.fixture
async def standin(aiohttp_server: Any) -> CliqStandin:
    standin = CliqStandin(bot_name=BOT, webhook_token=TOKEN)
    server: TestServer = await aiohttp_server(standin.app())
    standin.base_url = str(server.make_url("")).rstrip("/")
    return standin


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_client(
    session: aiohttp.ClientSession,
    standin: CliqStandin,
    sleeps: Sleeps,
    *,
    token: str = TOKEN,
    bot: str = BOT,
    max_attempts: int = 5,
) -> CliqClient:
    return CliqClient(
        session,
        standin.api_base,
        bot,
        Secret(token),
        max_attempts=max_attempts,
        base_delay=0.5,
        sleep=sleeps,
    )


def bot_log(caplog: pytest.LogCaptureFixture) -> str:
    """What our own loggers wrote (the test server's access log shows the query on purpose)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot."))


def assert_no_token(exc: BaseException, token: str = TOKEN) -> None:
    rendered = "".join(traceback.format_exception(exc))
    assert token not in rendered
    assert token not in repr(exc)


async def test_message_is_recorded_with_userids(
    session: aiohttp.ClientSession, standin: CliqStandin
) -> None:
    sleeps = Sleeps()
    client = make_client(session, standin, sleeps)
    message = Message(
        "Saved q3.pdf to your Dropbox",
        card_title="Dropbox",
        buttons=(Button.open_url("Open", "https://www.dropbox.com/home"),),
    )
    await client.post_message(["55501", "55502"], message)
    assert len(standin.messages) == 1
    posted = standin.messages[0]
    assert posted.bot_name == BOT
    assert posted.userids == ["55501", "55502"]
    assert posted.payload["text"] == "Saved q3.pdf to your Dropbox"
    assert posted.payload["userids"] == "55501,55502"
    assert posted.payload["card"] == {"title": "Dropbox", "theme": "modern-inline"}
    assert posted.payload["buttons"][0]["action"]["data"]["web"] == "https://www.dropbox.com/home"
    assert sleeps.delays == []
    assert await standin.wait_for_message("55502", timeout=1) == posted.payload


async def test_retries_429_and_500_then_succeeds(
    session: aiohttp.ClientSession, standin: CliqStandin
) -> None:
    sleeps = Sleeps()
    client = make_client(session, standin, sleeps)
    standin.inject_fault("429")
    standin.inject_fault("500")
    standin.inject_fault("drop")
    await client.post_message(["55501"], text("hello"))
    assert [m.payload["text"] for m in standin.messages] == ["hello"]
    assert len(sleeps.delays) == 3
    assert sleeps.delays[0] == 0  # Retry-After: 0
    # exponential backoff with jitter: attempt n waits within [base*2^(n-1)/2, base*2^(n-1)]
    assert 0.5 <= sleeps.delays[1] <= 1.0
    assert 1.0 <= sleeps.delays[2] <= 2.0


async def test_gives_up_after_max_attempts(
    session: aiohttp.ClientSession, standin: CliqStandin, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps = Sleeps()
    client = make_client(session, standin, sleeps, max_attempts=3)
    standin.inject_fault("500", count=5)
    with caplog.at_level(logging.DEBUG), pytest.raises(ServerError) as info:
        await client.post_message(["55501"], text("hello"))
    assert info.value.status == 500
    assert "3 attempts" in str(info.value)
    assert len(sleeps.delays) == 2  # no sleep after the last attempt
    assert standin.messages == []
    assert_no_token(info.value)
    ours = bot_log(caplog)
    assert TOKEN not in ours
    assert "/bots/filesbot/message" in ours


async def test_gives_up_on_connection_errors_without_token(
    session: aiohttp.ClientSession, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps = Sleeps()
    client = CliqClient(
        session,
        f"http://127.0.0.1:{unused_tcp_port}/api/v2",
        BOT,
        Secret(TOKEN),
        max_attempts=2,
        sleep=sleeps,
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ServerError) as info:
        await client.post_message(["55501"], text("hello"))
    assert info.value.status == 0
    assert len(sleeps.delays) == 1
    assert_no_token(info.value)
    assert TOKEN not in bot_log(caplog)


async def test_bad_zapikey_is_api_error_not_retried(
    session: aiohttp.ClientSession, standin: CliqStandin
) -> None:
    sleeps = Sleeps()
    wrong = "zapi-wrong-token-9876"
    client = make_client(session, standin, sleeps, token=wrong)
    with pytest.raises(ApiError) as info:
        await client.post_message(["55501"], text("hello"))
    assert info.value.status == 401
    assert sleeps.delays == []
    assert_no_token(info.value, wrong)
    assert standin.messages == []


async def test_other_bot_is_api_error(session: aiohttp.ClientSession, standin: CliqStandin) -> None:
    client = make_client(session, standin, Sleeps(), bot="otherbot")
    with pytest.raises(ApiError) as info:
        await client.post_message(["55501"], text("hello"))
    assert info.value.status == 404


async def test_token_echoed_in_error_body_is_redacted(
    session: aiohttp.ClientSession, aiohttp_server: Any
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=400, text=f"bad request {request.query_string}")

    app = web.Application()
    app.router.add_post("/api/v2/bots/{bot}/message", echo)
    server: TestServer = await aiohttp_server(app)
    client = CliqClient(session, str(server.make_url("/api/v2")), BOT, Secret(TOKEN))
    with pytest.raises(ApiError) as info:
        await client.post_message(["1"], text("x"))
    assert "***" in info.value.summary
    assert TOKEN not in info.value.summary
    assert_no_token(info.value)


async def test_retry_after_header_is_bounded(
    session: aiohttp.ClientSession, aiohttp_server: Any
) -> None:
    calls = 0

    async def limited(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=429, headers={"Retry-After": "3600"})
        if calls == 2:
            return web.Response(status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00"})
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/api/v2/bots/{bot}/message", limited)
    server: TestServer = await aiohttp_server(app)
    sleeps = Sleeps()
    client = CliqClient(
        session, str(server.make_url("/api/v2")), BOT, Secret(TOKEN), max_delay=10, sleep=sleeps
    )
    await client.post_message(["1"], text("x"))
    assert sleeps.delays[0] == 10  # capped
    assert 0.5 <= sleeps.delays[1] <= 1.0  # unparseable: backoff for attempt 2


async def test_needs_userids(session: aiohttp.ClientSession, standin: CliqStandin) -> None:
    client = make_client(session, standin, Sleeps())
    with pytest.raises(ValueError, match="user id"):
        await client.post_message([], text("x"))
