"""When to try again: ``Retry-After`` and exponential backoff, written once for every client.

* :func:`parse_retry_after` reads one ``Retry-After`` value (RFC 9110 §10.2.3): delay-seconds or
  an HTTP-date; ``None`` when it is missing or says nothing usable.
* :func:`retry_after` is the wait a 429 asks for: the header, else a number the body carried
  (Dropbox's ``error.retry_after``), else a default.
* :func:`backoff` is exponential backoff with jitter, capped.

The OAuth client, the Dropbox destination, the upload relay, the Cliq client and the upload
worker all wait through these.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["DEFAULT_RETRY_AFTER", "backoff", "parse_retry_after", "retry_after"]

#: The wait when a 429 does not say how long (the official Dropbox SDK waits 5 s too).
DEFAULT_RETRY_AFTER: Final = 5.0
#: ``2 ** attempt`` stops growing here: far past any cap, and never an overflow.
_MAX_EXPONENT: Final = 62


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` if there is none to use.

    Delay-seconds (``"120"``, also ``"1.5"``) must be finite and not negative. An HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``) must name its zone; one in the past means now (0).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(text: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # no zone, so no instant: not an HTTP-date
        return None
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def retry_after(
    headers: Mapping[str, str],
    *,
    body_seconds: object = None,
    default: float = DEFAULT_RETRY_AFTER,
    now: datetime | None = None,
) -> float:
    """The wait a rate-limited answer asks for: its ``Retry-After`` header, else
    ``body_seconds`` (a non-negative number from the body, if the service sends one there),
    else ``default``. Header names match in any case, also in a plain ``dict``."""
    from_header = parse_retry_after(_header(headers, "Retry-After"), now=now)
    if from_header is not None:
        return from_header
    if (
        isinstance(body_seconds, int | float)
        and not isinstance(body_seconds, bool)
        and math.isfinite(body_seconds)
        and body_seconds >= 0
    ):
        return float(body_seconds)
    return default


def backoff(attempt: int, *, base: float, cap: float, jitter: float = 1.0) -> float:
    """The pause before retry number ``attempt + 1``: ``base * 2**attempt``, at most ``cap``.

    ``jitter`` is the part of that pause drawn at random: ``1.0`` ("full jitter") waits anywhere
    from 0 to the pause, ``0.5`` from half of it to all of it, ``0.0`` exactly the pause.
    """
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    if jitter <= 0:
        return ceiling
    return random.uniform(ceiling * (1.0 - min(jitter, 1.0)), ceiling)  # jitter, not secrecy


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, found in headers.items():
        if key.lower() == lowered:
            return found
    return None
