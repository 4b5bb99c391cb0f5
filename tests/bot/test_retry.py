"""bot.retry: Retry-After (seconds, HTTP-date, a body's number) and backoff with jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bot.retry import DEFAULT_RETRY_AFTER, backoff, parse_retry_after, retry_after

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # IMF-fixdate, RFC 9110 §5.6.7
        ("Wednesday, 21-Oct-15 07:30:00 GMT", 120.0),  # the obsolete RFC 850 form
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [None, "", "soon", "-1", "nan", "inf", "Wed, 21 Oct 2015 07:28:00", "32 Foo 2015 GMT"],
    ids=["missing", "empty", "words", "negative", "nan", "inf", "no-zone", "no-date"],
)
def test_parse_retry_after_says_none_when_nothing_is_usable(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_parse_retry_after_measures_dates_from_the_clock() -> None:
    later = datetime.now(UTC).replace(microsecond=0).timestamp() + 3600
    stamp = datetime.fromtimestamp(later, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    seconds = parse_retry_after(stamp)
    assert seconds is not None
    assert 3590 < seconds <= 3600


def test_retry_after_prefers_the_header_in_any_case() -> None:
    assert retry_after({"Retry-After": "2"}, body_seconds=3) == 2.0
    assert retry_after({"retry-after": "2"}, body_seconds=3) == 2.0  # a plain dict, lower case
    assert retry_after({"RETRY-AFTER": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=NOW) == 10.0


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({}, 3, 3.0),
        ({}, 0.5, 0.5),
        ({"Retry-After": "soon"}, 4, 4.0),  # an unreadable header: the body says it
        ({}, None, DEFAULT_RETRY_AFTER),
        ({}, True, DEFAULT_RETRY_AFTER),  # a bool is not a number of seconds
        ({}, -2, DEFAULT_RETRY_AFTER),
        ({}, float("inf"), DEFAULT_RETRY_AFTER),
        ({}, "3", DEFAULT_RETRY_AFTER),
        ({"Retry-After": "-5"}, None, DEFAULT_RETRY_AFTER),
    ],
)
def test_retry_after_falls_back_to_the_body_then_the_default(
    headers: dict[str, str], body: object, expected: float
) -> None:
    assert retry_after(headers, body_seconds=body) == expected


def test_retry_after_default_is_the_callers() -> None:
    assert retry_after({}, default=1.25) == 1.25
    assert DEFAULT_RETRY_AFTER == 5.0


def test_backoff_full_jitter_is_between_zero_and_the_capped_pause() -> None:
    for attempt in range(12):
        for _ in range(20):
            assert 0 <= backoff(attempt, base=1.0, cap=10.0) <= min(10.0, 2.0**attempt)


def test_backoff_half_jitter_keeps_at_least_half() -> None:
    for attempt in range(8):
        ceiling = min(30.0, 0.5 * 2**attempt)
        for _ in range(20):
            assert ceiling / 2 <= backoff(attempt, base=0.5, cap=30.0, jitter=0.5) <= ceiling


def test_backoff_without_jitter_is_exact_and_draws_nothing() -> None:
    state = random.getstate()
    assert [backoff(n, base=0.1, cap=60.0, jitter=0) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]
    assert backoff(20, base=0.1, cap=60.0, jitter=0) == 60.0
    assert random.getstate() == state


def test_backoff_never_overflows_and_starts_at_base() -> None:
    assert backoff(10_000, base=1.0, cap=5.0, jitter=0) == 5.0
    assert backoff(-3, base=2.0, cap=5.0, jitter=0) == 2.0
    assert backoff(0, base=0.0, cap=5.0) == 0.0
