"""Authenticity of inbound events (CONTRACT §4), checked before the event is handled.

Accepted forms — any one of them is enough:

* HMAC, for events forwarded by a Deluge handler with a shared secret, over the raw body::

      X-Bot-Timestamp: <unix seconds>
      X-Bot-Signature: v1=<hex HMAC-SHA256(key=secret, msg=b"v1:" + timestamp + b":" + body)>

  valid only while the timestamp is within :data:`SKEW_SECONDS` of now, past or future;
* Cliq's own signature, ``X-Cliq-Signature: <base64 RSA PKCS#1 v1.5 SHA-256>`` verified with the
  extension's public key, over

  - the raw body (:func:`verify_cliq_rsa`), or
  - the compact JSON of the parsed body as JavaScript's ``JSON.stringify`` writes it
    (:func:`js_stringify`), for a body Cliq signed in its own serialization but that arrives
    re-serialized (whitespace, escaped non-ASCII, ...);

* the same RSA signature carried as a top-level ``signature`` string field of the body instead
  of a header: the field is removed and the rest verified as :func:`js_stringify` writes it.

:func:`verify_cliq` tries the three RSA forms and answers which one held and the exact bytes it
verified: those, and only those, are what gets handled — the raw body for the raw form, the
``JSON.stringify`` bytes otherwise (for the in-body form: the body without ``signature``).

Every ``verify_*`` function answers ``False`` (or a verdict without a form) for anything it
cannot use (missing header, garbage, wrong key, a body that is not JSON) and never raises. The
module is web-framework free on purpose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "BODY_SIGNATURE_FIELD",
    "CLIQ_SIGNATURE_HEADER",
    "SKEW_SECONDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "CliqForm",
    "CliqVerdict",
    "hmac_signature",
    "js_stringify",
    "load_public_key",
    "sign_cliq_rsa",
    "verify_cliq",
    "verify_cliq_rsa",
    "verify_hmac",
]

SKEW_SECONDS: Final = 300
TIMESTAMP_HEADER: Final = "X-Bot-Timestamp"
SIGNATURE_HEADER: Final = "X-Bot-Signature"
CLIQ_SIGNATURE_HEADER: Final = "X-Cliq-Signature"
BODY_SIGNATURE_FIELD: Final = "signature"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MAX_SIGNATURE_CHARS: Final = 4096


def hmac_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``"v1=" + hex HMAC-SHA256(key=secret, msg=b"v1:" + timestamp + b":" + body)``."""
    message = b"v1:" + timestamp.encode("utf-8") + b":" + body
    return "v1=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_hmac(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> bool:
    """True when ``signature`` is :func:`hmac_signature` of the body and the timestamp is an
    integer number of unix seconds within :data:`SKEW_SECONDS` of ``now``. Constant time."""
    if not secret or timestamp is None or signature is None:
        return False
    if not _TIMESTAMP.fullmatch(timestamp) or abs(now - int(timestamp)) > SKEW_SECONDS:
        return False
    expected = hmac_signature(secret, timestamp, body).encode("ascii")
    given = signature.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def load_public_key(pem: str) -> RSAPublicKey:
    """An RSA public key from PEM text (or the bare base64 DER body Cliq displays).

    Raises :class:`ValueError` saying what is wrong; the key text is not repeated.
    """
    text = pem.strip()
    if not text:
        raise ValueError("the Cliq public key is empty")
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            der = base64.b64decode("".join(text.split()), validate=True)
            key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error) as exc:
        raise ValueError(
            f"the Cliq public key is not a valid PEM RSA public key ({type(exc).__name__})"
        ) from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"the Cliq public key must be an RSA key, not {type(key).__name__}")
    return key


def verify_cliq_rsa(key: RSAPublicKey, signature_b64: str | None, body: bytes) -> bool:
    """True when ``signature_b64`` is a base64 RSA PKCS#1 v1.5 SHA-256 signature of ``body``."""
    if not signature_b64 or len(signature_b64) > _MAX_SIGNATURE_CHARS:
        return False
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        return False
    return True


def sign_cliq_rsa(private_key: RSAPrivateKey, body: bytes) -> str:
    """What Cliq puts in ``X-Cliq-Signature`` (for the stand-in and tests)."""
    signature = private_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


# -- JSON.stringify -----------------------------------------------------------------------------

# What JSON.stringify escapes in a string: '"', '\', the control characters below U+0020 and
# lone surrogates (well-formed JSON.stringify, ES2019). Not U+2028/U+2029, DEL or '/'. A high
# surrogate followed by a low one is a pair (one character in JavaScript): written as is.
_JS_ESCAPE = re.compile('[\ud800-\udbff][\udc00-\udfff]|["\\\\\x00-\x1f\ud800-\udfff]')
_JS_SHORT_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_SAFE_INTEGER: Final = 2**53
_MAX_ARRAY_INDEX: Final = 2**32 - 2


def _js_escape(match: re.Match[str]) -> str:
    text = match.group()
    if len(text) == 2:  # a surrogate pair: the character it stands for
        return chr(0x10000 + ((ord(text[0]) - 0xD800) << 10) + (ord(text[1]) - 0xDC00))
    return _JS_SHORT_ESCAPES.get(text) or f"\\u{ord(text):04x}"


def _js_string(text: str) -> str:
    return '"' + _JS_ESCAPE.sub(_js_escape, text) + '"'


def _js_number(value: int | float) -> str:
    """``Number.prototype.toString`` of the double nearest ``value``; ``null`` if not finite."""
    if isinstance(value, int):
        if -_SAFE_INTEGER < value < _SAFE_INTEGER:
            return str(value)
        try:
            value = float(value)
        except OverflowError:  # JavaScript would have Infinity
            return "null"
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"  # -0 too
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, as ECMAScript's Number::toString asks.
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    n = (int(exponent) if exponent else 0) + len(whole)
    significant = digits.lstrip("0")
    n -= len(digits) - len(significant)
    digits = significant.rstrip("0")
    k = len(digits)  # value = 0.<digits> x 10^n, i.e. digits x 10^(n - k)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-")
        text += str(abs(e))
    return sign + text


def _is_array_index(key: str) -> bool:
    """A key JavaScript orders first, ascending: the canonical decimal of 0 .. 2**32 - 2."""
    return (
        0 < len(key) <= 10
        and key.isascii()
        and key.isdigit()
        and (key == "0" or key[0] != "0")
        and int(key) <= _MAX_ARRAY_INDEX
    )


def _js_key_order(obj: dict[str, object]) -> list[str]:
    keys = list(obj)
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"object keys must be strings, not {type(key).__name__}")
    indices = [key for key in keys if _is_array_index(key)]
    if not indices:
        return keys
    indices.sort(key=int)
    return indices + [key for key in keys if not _is_array_index(key)]


def _stringify(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_js_string(value))
    elif isinstance(value, int | float):
        out.append(_js_number(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key in _js_key_order(value):
            if not first:
                out.append(",")
            first = False
            out.append(_js_string(key))
            out.append(":")
            _stringify(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _stringify(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def js_stringify(value: object) -> str:
    """``JSON.stringify(value)`` as JavaScript writes it, for the values ``JSON.parse`` makes.

    Compact; non-ASCII (U+2028/U+2029 included) written as is; ``"``, ``\\``, control
    characters and lone surrogates escaped (``\\n`` ... or ``\\u00XX``, lowercase hex); numbers
    as doubles are written in JavaScript (``1.0`` → ``1``, ``-0`` → ``0``, ``1e21`` → ``1e+21``,
    integers beyond 2**53 rounded, infinities ``null``); object keys that are array indices
    ("0", "7", "42") first in ascending order, then the others in insertion order.

    Raises :class:`TypeError` for anything that is not a JSON value and
    :class:`RecursionError` for nesting deeper than Python's recursion limit.
    """
    out: list[str] = []
    _stringify(value, out)
    return "".join(out)


class _NotJson(ValueError):
    pass


def _no_constant(name: str) -> object:
    raise _NotJson(f"{name} is not JSON")


def _js_parse_int(text: str) -> int | float:
    # JavaScript has only doubles; a long integer would also hit Python's int-digits limit.
    return int(text) if len(text) <= 18 else float(text)


_NOT_JSON: Final = object()


def _js_parse(body: bytes) -> object:
    """``JSON.parse`` of a UTF-8 body, or :data:`_NOT_JSON`; never raises."""
    try:
        return json.loads(
            body.decode("utf-8"), parse_constant=_no_constant, parse_int=_js_parse_int
        )
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return _NOT_JSON


def _js_bytes(value: object) -> bytes | None:
    try:
        return js_stringify(value).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return None


# -- Cliq's forms -------------------------------------------------------------------------------

CliqForm = Literal["raw", "compact", "body"]


@dataclass(frozen=True, slots=True)
class CliqVerdict:
    """What :func:`verify_cliq` found.

    ``form`` is the form that held (``None``: none did); ``content`` the exact bytes it verified,
    the ones to parse and handle (empty when no form held); ``signed`` whether a Cliq signature
    was offered at all (the header, or a string ``signature`` field of a JSON object body).
    """

    form: CliqForm | None
    content: bytes = b""
    signed: bool = False


def _plausible(key: RSAPublicKey, signature_b64: str) -> bool:
    """Cheap pre-check before re-serializing a body: base64 of exactly one key-sized block."""
    if len(signature_b64) > _MAX_SIGNATURE_CHARS:
        return False
    try:
        raw = base64.b64decode(signature_b64.strip(), validate=True)
    except (ValueError, binascii.Error):
        return False
    return len(raw) == (key.key_size + 7) // 8


def verify_cliq(key: RSAPublicKey, header_signature: str | None, body: bytes) -> CliqVerdict:
    """Try Cliq's RSA forms in order: the header over the raw body, the header over the compact
    JSON of the parsed body, a top-level ``signature`` field over the compact JSON of the rest.

    Never raises. A body that is not JSON (not UTF-8, malformed, ``NaN``) can only pass the raw
    form.
    """
    signed = bool(header_signature)
    if signed and verify_cliq_rsa(key, header_signature, body):
        return CliqVerdict("raw", body, signed=True)
    parsed = _js_parse(body)
    if parsed is _NOT_JSON:
        return CliqVerdict(None, signed=signed)
    if header_signature and _plausible(key, header_signature):
        compact = _js_bytes(parsed)
        if (
            compact is not None
            and compact != body
            and verify_cliq_rsa(key, header_signature, compact)
        ):
            return CliqVerdict("compact", compact, signed=True)
    if isinstance(parsed, dict):
        in_body = parsed.get(BODY_SIGNATURE_FIELD)
        if isinstance(in_body, str) and in_body:
            signed = True
            rest = {k: v for k, v in parsed.items() if k != BODY_SIGNATURE_FIELD}
            compact = _js_bytes(rest) if _plausible(key, in_body) else None
            if compact is not None and verify_cliq_rsa(key, in_body, compact):
                return CliqVerdict("body", compact, signed=True)
    return CliqVerdict(None, signed=signed)
