"""OAuth 2.0 wire helpers shared by the client (:mod:`bot.providers.oauth2`) and the hooks.

* :func:`with_client_auth`: a token or revoke request's form and headers, client authenticated;
* :func:`basic_authorization`: the client's HTTP Basic credentials (RFC 6749 §2.3.1);
* :func:`parse_answer`: a JSON object, or the form-encoded answer of an old provider;
* :func:`description`: a provider's ``error_description``, shortened, every secret scrubbed;
* :func:`normalise_scope`: granted scopes as space-separated text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, quote

if TYPE_CHECKING:
    from bot.providers.oauth2 import OAuth2Service

__all__ = [
    "basic_authorization",
    "description",
    "normalise_scope",
    "parse_answer",
    "with_client_auth",
]

_DESCRIPTION_LIMIT: Final = 200


def with_client_auth(
    service: OAuth2Service, form: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """``(form, headers)`` of a token or revoke request, with the client authenticated.

    ``basic``: RFC 6749 §2.3.1, id and secret each form-encoded, then HTTP Basic. ``post``
    (OpenID's ``client_secret_post``): ``client_id`` and ``client_secret`` in the form.
    """
    secret = service.client_secret.reveal()
    headers = {"Accept": "application/json"}
    if service.client_auth == "post":
        return {**form, "client_id": service.client_id, "client_secret": secret}, headers
    headers["Authorization"] = basic_authorization(service)
    return dict(form), headers


def basic_authorization(service: OAuth2Service) -> str:
    """``Basic`` credentials of the service's client, id and secret form-encoded first."""
    secret = service.client_secret.reveal()
    pair = f"{quote(service.client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def parse_answer(body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """A JSON object, or a form-encoded answer (old providers), else ``None``."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    content_type = headers.get("Content-Type", "")
    if parsed is None and content_type.startswith("application/x-www-form-urlencoded"):
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            return None
        return dict(pairs) if pairs else None
    return None


def description(answer: Mapping[str, Any] | None, scrub: Iterable[str]) -> str:
    """The provider's ``error_description``, shortened and with every secret we sent removed."""
    if answer is None:
        return ""
    raw = answer.get("error_description")
    if not isinstance(raw, str):
        return ""
    text = " ".join(raw.split())
    for secret in scrub:
        if secret:
            text = text.replace(secret, "[redacted]")
    if len(text) > _DESCRIPTION_LIMIT:
        text = text[:_DESCRIPTION_LIMIT] + "..."
    return text


def normalise_scope(scope: object, delimiter: str) -> str:
    if isinstance(scope, list):
        parts = [item for item in scope if isinstance(item, str)]
    elif isinstance(scope, str):
        parts = scope.split(delimiter) if delimiter != " " else scope.split()
    else:
        return ""
    return " ".join(part.strip() for part in parts if part.strip())
