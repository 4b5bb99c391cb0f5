"""Durations worded for people (bot.durations)."""

from __future__ import annotations

import pytest

from bot.durations import words


@pytest.mark.parametrize(
    ("seconds", "worded"),
    [
        (7 * 86400, "7 days"),
        (7 * 86400.0, "7 days"),
        (86400, "1 day"),
        (36 * 3600, "36 hours"),
        (7200, "2 hours"),
        (3600, "1 hour"),
        (600, "10 minutes"),
        (300, "5 minutes"),
        (60, "1 minute"),
        (90, "90 seconds"),
        (3601, "3601 seconds"),
        (1, "1 second"),
        (1.0, "1 second"),
        (0.2, "1 second"),
        (59.6, "1 minute"),
        (0, "0 seconds"),
    ],
)
def test_a_duration_is_worded_in_the_largest_exact_unit(seconds: float, worded: str) -> None:
    assert words(seconds) == worded


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        words(-1)
