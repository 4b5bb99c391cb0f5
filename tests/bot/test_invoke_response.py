"""``InvokeResponse`` (CONTRACT §10): status, headers, body, ``json()`` and ``text()``."""

from __future__ import annotations

import dataclasses

import pytest

from bot.invoke import InvokeResponse


def test_json_and_text_of_the_body() -> None:
    answer = InvokeResponse(200, {"Content-Type": "application/json"}, b'{"name": "Ana \\u00e9"}')
    assert answer.json() == {"name": "Ana é"}
    assert answer.text() == '{"name": "Ana \\u00e9"}'
    with pytest.raises(ValueError):
        InvokeResponse(502, {}, b"<html>bad gateway</html>").json()
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.status = 500  # type: ignore[misc]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/plain; charset=latin-1", "café"),
        ('text/plain; CHARSET="ISO-8859-1"', "café"),
        ("text/plain; charset=no-such-charset", "caf\ufffd"),
        ("text/plain", "caf\ufffd"),
    ],
)
def test_text_decodes_with_the_declared_charset(content_type: str, expected: str) -> None:
    body = "café".encode("latin-1")
    assert InvokeResponse(200, {"content-type": content_type}, body).text() == expected
