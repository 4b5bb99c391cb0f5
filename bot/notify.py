"""Posting to chat after the reply (CONTRACT §6), through the Cliq client."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.cliq.client import CliqClient
from bot.cliq.messages import Message
from bot.errors import BotError

log = logging.getLogger(__name__)


class CliqNotifier:
    """Best effort: the client already retries 429/5xx; a final failure is logged, not raised,
    so an outcome that could not be posted never undoes the work it reports."""

    def __init__(self, client: CliqClient | None) -> None:
        self._client = client

    async def notify(self, user_ids: Sequence[str], message: Message) -> None:
        if self._client is None:
            log.warning(
                "CLIQ_BOT_NAME / CLIQ_WEBHOOK_TOKEN unset; message to %s not posted",
                ",".join(user_ids),
            )
            return
        try:
            await self._client.post_message(list(user_ids), message)
        except BotError as err:
            log.warning("posting to %s failed: %s", ",".join(user_ids), err)
