"""What ``ctx.invoke`` answers (CONTRACT §10): a service's HTTP answer, read and closed.

Part of the core: no aiohttp here. Whoever calls the service reads the body (at most 20 MiB)
and hands over plain values; a non-2xx answer is returned like any other, not raised.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["InvokeResponse"]


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
