"""Durations worded for people, for every message that says how long something lasts.

``words(seconds)`` names the duration exactly in the largest unit that divides it evenly::

    words(7 * 86400) == "7 days"      words(86400) == "1 day"     words(7200) == "2 hours"
    words(300) == "5 minutes"         words(90) == "90 seconds"

so a configured value (``BOT_KEPT_FILE_TTL``, ``BOT_CONNECT_LINK_TTL``) is never rounded into
something it is not. Fractions of a second are rounded to the nearest second, and anything
positive is at least "1 second".
"""

from __future__ import annotations

__all__ = ["words"]

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def words(seconds: float) -> str:
    """``seconds`` as "N unit(s)": days, hours or minutes when it is a whole number of them."""
    if seconds < 0:
        raise ValueError(f"a duration is not negative, got {seconds}")
    total = max(1, round(seconds)) if seconds > 0 else 0
    for unit, size in _UNITS:
        if total >= size and total % size == 0:
            return _plural(total // size, unit)
    return _plural(total, "second")


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
