from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bot.cliq.signing import (
    SKEW_SECONDS,
    delivery_key,
    hmac_signature,
    load_public_key,
    sign_cliq_rsa,
    verify_cliq_rsa,
    verify_hmac,
)

SECRET = "test-secret"
BODY = b'{"type":"bot"}'
TS = "1764300000"
# printf 'v1:1764300000:{"type":"bot"}' | openssl dgst -sha256 -hmac 'test-secret' -hex
VECTOR = "v1=83221d4da80742edbca1027dc30e6b00ce523160c48a96ef31ff6e82cf7312fa"


def test_hmac_signature_matches_hand_computed_vector() -> None:
    assert hmac_signature(SECRET, TS, BODY) == VECTOR


def test_verify_hmac_accepts_the_vector() -> None:
    assert verify_hmac(SECRET, TS, VECTOR, BODY, now=float(TS))


@pytest.mark.parametrize("delta", [-SKEW_SECONDS, -1, 0, 1, SKEW_SECONDS])
def test_within_skew_both_directions(delta: int) -> None:
    assert verify_hmac(SECRET, TS, VECTOR, BODY, now=float(TS) + delta)


@pytest.mark.parametrize("delta", [-SKEW_SECONDS - 1, SKEW_SECONDS + 1, 10_000, -10_000])
def test_outside_skew_both_directions(delta: int) -> None:
    # the timestamp is in the future (now behind) or in the past (now ahead)
    assert not verify_hmac(SECRET, TS, VECTOR, BODY, now=float(TS) + delta)


@pytest.mark.parametrize(
    ("secret", "timestamp", "signature", "body"),
    [
        ("other-secret", TS, VECTOR, BODY),
        (SECRET, TS, VECTOR, BODY + b" "),
        (SECRET, "1764300001", VECTOR, BODY),
        (SECRET, TS, VECTOR.upper(), BODY),
        (SECRET, TS, VECTOR[3:], BODY),
        (SECRET, TS, "v1=", BODY),
        (SECRET, TS, "", BODY),
        (SECRET, TS, "v1=ünïcödé", BODY),
        (SECRET, None, VECTOR, BODY),
        (SECRET, TS, None, BODY),
        (SECRET, "", VECTOR, BODY),
        (SECRET, "1764300000.0", VECTOR, BODY),
        (SECRET, "-1764300000", VECTOR, BODY),
        (SECRET, "١٧٦٤٣٠٠٠٠٠", VECTOR, BODY),  # Arabic-Indic digits are not an integer here
        (SECRET, "9" * 40, VECTOR, BODY),
        ("", TS, hmac_signature("", TS, BODY), BODY),
    ],
)
def test_verify_hmac_rejects(
    secret: str, timestamp: str | None, signature: str | None, body: bytes
) -> None:
    assert not verify_hmac(secret, timestamp, signature, body, now=float(TS))


def test_hmac_over_raw_bytes_not_reparsed_json() -> None:
    spaced = b'{ "type" : "bot" }'
    sig = hmac_signature(SECRET, TS, spaced)
    assert verify_hmac(SECRET, TS, sig, spaced, now=float(TS))
    assert not verify_hmac(SECRET, TS, sig, BODY, now=float(TS))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_rsa_round_trip(rsa_key: rsa.RSAPrivateKey) -> None:
    public = load_public_key(_pem(rsa_key))
    signature = sign_cliq_rsa(rsa_key, BODY)
    assert verify_cliq_rsa(public, signature, BODY)


def test_rsa_rejects_other_body_and_other_key(rsa_key: rsa.RSAPrivateKey) -> None:
    public = load_public_key(_pem(rsa_key))
    signature = sign_cliq_rsa(rsa_key, BODY)
    assert not verify_cliq_rsa(public, signature, BODY + b"\n")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not verify_cliq_rsa(public, sign_cliq_rsa(other, BODY), BODY)


@pytest.mark.parametrize(
    "garbage",
    [None, "", "!!!not base64!!!", "YWJj", "é", "=" * 10, "A" * 5000, base64.b64encode(b"x" * 256)],
)
def test_rsa_garbage_is_false(rsa_key: rsa.RSAPrivateKey, garbage: str | bytes | None) -> None:
    public = load_public_key(_pem(rsa_key))
    value = garbage.decode() if isinstance(garbage, bytes) else garbage
    assert not verify_cliq_rsa(public, value, BODY)


def test_load_public_key_accepts_bare_base64_der(rsa_key: rsa.RSAPrivateKey) -> None:
    der = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = load_public_key(base64.b64encode(der).decode())
    assert verify_cliq_rsa(public, sign_cliq_rsa(rsa_key, BODY), BODY)


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "   ",
        "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
        "not a key at all",
        "QUJD",
    ],
)
def test_load_public_key_errors_are_value_errors(pem: str) -> None:
    with pytest.raises(ValueError, match="Cliq public key"):
        load_public_key(pem)


def test_load_public_key_refuses_non_rsa() -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValueError, match="RSA"):
        load_public_key(ec_pem)


def test_delivery_key_is_stable_and_distinct() -> None:
    assert delivery_key(VECTOR) == delivery_key(VECTOR)
    assert delivery_key(VECTOR) != delivery_key(hmac_signature(SECRET, "1764300001", BODY))
    assert VECTOR not in delivery_key(VECTOR)
    assert len(delivery_key(VECTOR)) == 64
