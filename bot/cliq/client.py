"""Outbound messages to Cliq (CONTRACT §6).

``POST {api_base}/bots/{bot_name}/message?zapikey={token}`` with ``{"text": ..., "userids":
"a,b", ...}``. 429 waits ``Retry-After`` (seconds or an HTTP-date, at most ``max_delay``; else
backs off); 5xx, lost connections and timeouts back off exponentially with jitter
(:mod:`bot.retry`); after ``max_attempts`` the call gives up with
:class:`~bot.errors.ServerError`. Any other 4xx is :class:`~bot.errors.ApiError`, not retried.

The webhook token travels in the query string, so it never goes into a log line or an exception
message: logs name the path only and error texts are redacted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import quote

import aiohttp

from bot.cliq.messages import CliqFunction, Message
from bot.errors import ApiError, ServerError
from bot.retry import backoff, parse_retry_after
from bot.secret import Secret

__all__ = ["CliqClient"]

logger = logging.getLogger(__name__)

_SUMMARY_CHARS = 200


class CliqClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_base: str,
        bot_name: str,
        webhook_token: Secret,
        *,
        function: CliqFunction | None = None,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._session = session
        self._path = f"/bots/{quote(bot_name, safe='')}/message"
        self._url = api_base.rstrip("/") + self._path
        self._bot_name = bot_name
        self._token = webhook_token
        self._function = function
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sleep = sleep

    async def post_message(self, userids: Sequence[str], message: Message) -> None:
        """Post ``message`` to the bot's chat with each of ``userids``."""
        ids = [u for u in userids if u]
        if not ids:
            raise ValueError("post_message needs at least one user id")
        payload = {**message.to_dict(self._function), "userids": ",".join(ids)}
        problem = ""
        status = 0
        for attempt in range(1, self._max_attempts + 1):
            # Exponential with jitter: between half and all of base * 2^(attempt-1).
            delay = backoff(attempt - 1, base=self._base_delay, cap=self._max_delay, jitter=0.5)
            try:
                async with self._session.post(
                    self._url,
                    params={"zapikey": self._token.reveal()},
                    json=payload,
                    timeout=self._timeout,
                ) as resp:
                    status = resp.status
                    if status < 300:
                        logger.debug("POST %s -> %s for %d users", self._path, status, len(ids))
                        return
                    summary = self._redact(await resp.text(errors="replace"))[:_SUMMARY_CHARS]
                    if status == 429:
                        asked = parse_retry_after(resp.headers.get("Retry-After"))
                        if asked is not None:  # else (missing, unreadable) back off instead
                            delay = min(asked, self._max_delay)
                        problem = "rate limited (HTTP 429)"
                    elif status >= 500:
                        problem = f"HTTP {status}"
                    else:
                        raise ApiError(
                            f"Cliq refused the message to bot {self._bot_name}: HTTP {status}",
                            status=status,
                            summary=summary,
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = 0
                problem = self._redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
            if attempt < self._max_attempts:
                logger.warning(
                    "POST %s failed (%s); attempt %d/%d, retrying in %.2f s",
                    self._path,
                    problem,
                    attempt,
                    self._max_attempts,
                    delay,
                )
                await self._sleep(delay)
        raise ServerError(
            f"posting to Cliq bot {self._bot_name} failed after {self._max_attempts} attempts:"
            f" {problem}",
            status=status,
        )

    def _redact(self, text: str) -> str:
        token = self._token.reveal()
        if not token:
            return text
        for form in {token, quote(token, safe=""), quote(token)}:
            text = text.replace(form, "***")
        return text
