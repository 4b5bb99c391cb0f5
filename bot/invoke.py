"""``ctx.invoke`` as the core sees it (CONTRACT §10): what it answers and what does the calling.

* :class:`InvokeResponse` is a service's HTTP answer, read and closed: whoever calls the service
  reads the body (at most :data:`MAX_BODY`, 20 MiB) and hands over plain values; a non-2xx
  answer is returned like any other, not raised.
* :class:`Invoker` is the Protocol of what calls it with a connection's token; the aiohttp
  implementation is :class:`bot.invoker.HttpInvoker`, wired in by ``create_app``.
  :meth:`bot.context.Context.invoke` decides whose token (the switch) and delegates to it.

Part of the core: no aiohttp here.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias

from storage.records import Connection

__all__ = ["DEFAULT_TIMEOUT", "MAX_BODY", "InvokeResponse", "Invoker", "Params", "ServiceUsage"]

#: Seconds an invoke may take, retries and a ``Retry-After`` wait included (CONTRACT §10).
DEFAULT_TIMEOUT: Final = 40.0
#: The most of an answer's body that is read; a larger one is an error.
MAX_BODY: Final = 20 * 1024 * 1024

#: Query parameters: a mapping, or pairs when a name repeats.
Params: TypeAlias = "Mapping[str, str | int | float] | list[tuple[str, str]]"


@dataclass(frozen=True)
class InvokeResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`ValueError` when it is not JSON."""
        return json.loads(self.body)

    def text(self) -> str:
        """The body decoded with the ``Content-Type`` charset (UTF-8 when none or unknown)."""
        return self.body.decode(self._charset(), errors="replace")

    def _charset(self) -> str:
        content_type = next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                try:
                    return codecs.lookup(value.strip().strip('"')).name
                except LookupError:
                    return "utf-8"
        return "utf-8"


@dataclass(frozen=True)
class ServiceUsage:
    """How ``ctx.invoke`` calls a service, for ``/connection sample``: how the token goes
    (``param_type``: ``header`` or ``query``) and one call that works there."""

    param_type: str
    method: str
    url: str


class Invoker(Protocol):
    """Calls a service's API with a connection's access token (CONTRACT §10)."""

    async def invoke(
        self,
        conn: Connection,
        credential_user: str,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | str | Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> InvokeResponse:
        """``credential_user``'s token on ``conn``: refreshed when expired and once on a 401,
        one ``Retry-After`` wait on a 429. Raises ``NotAuthorized`` (with ``link`` and
        ``user_id``) without a usable authorization, ``ChatError`` on network errors,
        timeouts and answers over :data:`MAX_BODY`."""
        ...

    async def usage(self, service: str) -> ServiceUsage:
        """How calls to ``service`` carry the token, and an example call."""
        ...
