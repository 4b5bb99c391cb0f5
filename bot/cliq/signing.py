"""Authenticity of inbound events (CONTRACT §4), checked on the raw body before parsing.

Two schemes:

* HMAC, for events forwarded by a Deluge handler with a shared secret::

      X-Bot-Timestamp: <unix seconds>
      X-Bot-Signature: v1=<hex HMAC-SHA256(key=secret, msg=b"v1:" + timestamp + b":" + body)>

  valid only while the timestamp is within :data:`SKEW_SECONDS` of now, past or future;
* Cliq's own signature: ``X-Cliq-Signature: <base64 RSA PKCS#1 v1.5 SHA-256 of the body>``,
  verified with the extension's public key.

Every ``verify_*`` function answers ``False`` for anything it cannot use (missing header,
garbage, wrong key) and never raises. The module is web-framework free on purpose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "CLIQ_SIGNATURE_HEADER",
    "SKEW_SECONDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "delivery_key",
    "hmac_signature",
    "load_public_key",
    "sign_cliq_rsa",
    "verify_cliq_rsa",
    "verify_hmac",
]

SKEW_SECONDS: Final = 300
TIMESTAMP_HEADER: Final = "X-Bot-Timestamp"
SIGNATURE_HEADER: Final = "X-Bot-Signature"
CLIQ_SIGNATURE_HEADER: Final = "X-Cliq-Signature"

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


def delivery_key(signature: str) -> str:
    """A stable key for "same signature already processed": hex SHA-256 of the header value.

    Hashing keeps the stored key short and the raw header out of the store.
    """
    return hashlib.sha256(signature.strip().encode("utf-8", "replace")).hexdigest()
