from __future__ import annotations

import base64
import json
import math
import random
import shutil
import struct
import subprocess
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bot.cliq.signing import (
    SKEW_SECONDS,
    hmac_signature,
    js_stringify,
    load_public_key,
    sign_cliq_rsa,
    verify_cliq,
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


# -- JSON.stringify ------------------------------------------------------------------------------
# Expected strings are what JSON.stringify writes in a browser or node (ECMAScript 2019+), by hand.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        ({}, "{}"),
        ([], "[]"),
        ({"a": 1, "b": [True, False, None], "c": "x"}, '{"a":1,"b":[true,false,null],"c":"x"}'),
        ({"z": 1, "a": {"y": [], "b": {}}}, '{"z":1,"a":{"y":[],"b":{}}}'),  # order kept
        ((1, 2), "[1,2]"),
        # numbers: JavaScript has only doubles, written by Number.prototype.toString
        (0, "0"),
        (-7, "-7"),
        (1.0, "1"),
        (-0.0, "0"),
        (100.0, "100"),
        (0.1, "0.1"),
        (-1.5, "-1.5"),
        (123.456, "123.456"),
        (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e21, "1.5e+21"),
        (123456789012345680000.0, "123456789012345680000"),
        (0.000001, "0.000001"),
        (0.0000015, "0.0000015"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123e-20, "1.23e-18"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (2**53 - 1, "9007199254740991"),
        (2**53 + 1, "9007199254740992"),  # rounded to the nearest double
        (12345678901234567890, "12345678901234567000"),
        (-12345678901234567890, "-12345678901234567000"),
        (10**21, "1e+21"),
        (10**400, "null"),  # Infinity in JavaScript
        (float("inf"), "null"),
        (float("-inf"), "null"),
        (float("nan"), "null"),
        # strings: non-ASCII as is, U+2028/U+2029, DEL and "/" too
        ("é中😀", '"é中😀"'),
        ("\u2028\u2029", '"\u2028\u2029"'),
        ("\x7f/", '"\x7f/"'),
        ('say "hi" \\ bye', '"say \\"hi\\" \\\\ bye"'),
        ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
        ("\x00\x01\x0b\x1b\x1f ", '"\\u0000\\u0001\\u000b\\u001b\\u001f "'),
        ("\ud800", '"\\ud800"'),  # lone surrogates, lowercase hex
        ("a\udfffb", '"a\\udfffb"'),
        ("\udbff\ud800", '"\\udbff\\ud800"'),  # two highs are no pair
        ("\ud83d\ude00", '"😀"'),  # a pair is one character
        ({"\n": "k"}, '{"\\n":"k"}'),  # keys are escaped like strings
        # keys that are array indices come first, ascending; the rest keep their order
        (
            {"b": 1, "2": 2, "1": 3, "01": 4, "4294967295": 5, "4294967294": 6, "-1": 7},
            '{"1":3,"2":2,"4294967294":6,"b":1,"01":4,"4294967295":5,"-1":7}',
        ),
        ({"a": {"10": 1, "9": 2}}, '{"a":{"9":2,"10":1}}'),
    ],
)
def test_js_stringify_matches_json_stringify(value: object, expected: str) -> None:
    assert js_stringify(value) == expected


@pytest.mark.parametrize("value", [{1: "x"}, {"a": {None: 1}}, b"bytes", {1, 2}, object()])
def test_js_stringify_refuses_what_is_not_json(value: object) -> None:
    with pytest.raises(TypeError):
        js_stringify(value)


# Numbers as JSON texts, so that JSON.parse's rounding is compared too.
_NODE_CASES = [
    "-0",
    "-0.0",
    "1E400",
    "-1e400",
    "9007199254740993",
    "1" + "0" * 30,
    "0.1",
    "1e-7",
    "1e21",
    '"\\ud800"',
    '"\\udfff x"',
    '"\\ud83d\\ude00"',
    '"\\u2028\\u2029\\u007f/"',
    '"\\u0000\\u001f\\b\\f\\n\\r\\t\\"\\\\"',
    '{"b":1,"2":2,"1":3,"01":4,"4294967295":5,"a":{"10":1,"9":[1.50,{"0":0}]}}',
    '{"a":1,"a":2,"b":3,"__proto__":4}',
    '"é中😀"',
]


def _random_number_texts(count: int) -> list[str]:
    rnd = random.Random(20240501)
    texts = []
    for _ in range(count):
        pick = rnd.random()
        if pick < 0.3:  # any finite double
            x = struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0]
            texts.append(repr(x) if math.isfinite(x) else "0")
        elif pick < 0.5:
            texts.append(str(rnd.randint(-(10**30), 10**30)))
        elif pick < 0.7:
            texts.append(f"{rnd.randint(1, 999)}e{rnd.randint(-330, 330)}")
        else:
            texts.append(f"{rnd.random() * 10 ** rnd.randint(-10, 25):.{rnd.randint(1, 20)}g}")
    return texts


_NODE_STRINGIFY = (
    "const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
    "process.stdout.write(JSON.stringify(texts.map(t => JSON.stringify(JSON.parse(t)))));"
)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_stringify_agrees_with_node() -> None:
    texts = _NODE_CASES + _random_number_texts(2000)
    node = subprocess.run(
        ["node", "-e", _NODE_STRINGIFY],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = json.loads(node.stdout)
    mismatches = [
        (text, js_stringify(json.loads(text)), want)
        for text, want in zip(texts, expected, strict=True)
        if js_stringify(json.loads(text)) != want
    ]
    assert not mismatches, mismatches[:10]


# -- Cliq's three RSA forms -----------------------------------------------------------------------

EVENT: dict[str, Any] = {
    "name": "filesbot",
    "type": "bot",
    "handler": {"type": "message_handler"},
    "timestamp": 1764300000000,
    "params": {
        "user": {"id": "55501", "first_name": "Zoë", "admin": False, "score": 1.0},
        "message": "héllo — “quoted” \u2028 😀",
        "chat": {"id": 42, "title": None},
    },
}


def _compact(value: object) -> bytes:
    return js_stringify(value).encode("utf-8")


def _with_body_signature(
    key: rsa.RSAPrivateKey, event: dict[str, Any], *, first: bool = False
) -> dict[str, Any]:
    signature = sign_cliq_rsa(key, _compact(event))
    if first:
        return {"signature": signature, **event}
    return {**event, "signature": signature}


def test_raw_form_hands_back_the_raw_body(rsa_key: rsa.RSAPrivateKey) -> None:
    public = rsa_key.public_key()
    raw = json.dumps(EVENT, indent=2).encode()
    verdict = verify_cliq(public, sign_cliq_rsa(rsa_key, raw), raw)
    assert (verdict.form, verdict.content, verdict.signed) == ("raw", raw, True)


def test_raw_form_holds_for_a_body_that_is_not_json(rsa_key: rsa.RSAPrivateKey) -> None:
    raw = b"\xff{not json"
    verdict = verify_cliq(rsa_key.public_key(), sign_cliq_rsa(rsa_key, raw), raw)
    assert verdict.form == "raw" and verdict.content == raw


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(EVENT, indent=2).encode(),  # whitespace, non-ASCII as \\u escapes
        json.dumps(EVENT, indent="\t", separators=(" , ", " : ")).encode(),
        json.dumps(EVENT, ensure_ascii=False).encode(),  # ", " and ": "
        b"\r\n " + json.dumps(EVENT).encode() + b" \n",
        # a key given twice: JSON.parse keeps the last value at the first position
        b'{"name":"other",' + _compact(EVENT)[1:],
    ],
)
def test_compact_form_hands_back_the_compact_json(rsa_key: rsa.RSAPrivateKey, raw: bytes) -> None:
    compact = _compact(EVENT)
    assert compact != raw
    verdict = verify_cliq(rsa_key.public_key(), sign_cliq_rsa(rsa_key, compact), raw)
    assert verdict.form == "compact"
    assert verdict.content == compact
    assert json.loads(verdict.content) == EVENT


def test_compact_form_rounds_numbers_as_javascript_does(rsa_key: rsa.RSAPrivateKey) -> None:
    raw = b'{"type":"bot","n":12345678901234567890,"f":2.50,"z":-0}'
    compact = b'{"type":"bot","n":12345678901234567000,"f":2.5,"z":0}'
    verdict = verify_cliq(rsa_key.public_key(), sign_cliq_rsa(rsa_key, compact), raw)
    assert verdict.form == "compact" and verdict.content == compact


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["params"].update(message="hello"),
        lambda e: e["params"]["user"].update(admin=True),
        lambda e: e.update(extra=1),
        lambda e: e["params"]["user"].update(score=1.5),
        lambda e: e.update(timestamp=1764300000001),
    ],
)
def test_compact_form_refuses_other_content(rsa_key: rsa.RSAPrivateKey, change: Any) -> None:
    signature = sign_cliq_rsa(rsa_key, _compact(EVENT))
    other = json.loads(json.dumps(EVENT))
    change(other)
    raw = json.dumps(other, indent=2).encode()
    verdict = verify_cliq(rsa_key.public_key(), signature, raw)
    assert verdict.form is None and verdict.signed and verdict.content == b""


def test_compact_form_does_not_reorder_keys(rsa_key: rsa.RSAPrivateKey) -> None:
    signature = sign_cliq_rsa(rsa_key, _compact(EVENT))
    reordered = json.dumps(dict(reversed(list(EVENT.items())))).encode()
    assert not verify_cliq(rsa_key.public_key(), signature, reordered).form


@pytest.mark.parametrize("first", [False, True])
def test_body_field_form_hands_back_the_body_without_signature(
    rsa_key: rsa.RSAPrivateKey, first: bool
) -> None:
    body = _with_body_signature(rsa_key, EVENT, first=first)
    raw = json.dumps(body, indent=1).encode()
    verdict = verify_cliq(rsa_key.public_key(), None, raw)
    assert verdict.form == "body" and verdict.signed
    assert verdict.content == _compact(EVENT)
    assert "signature" not in json.loads(verdict.content)


def test_body_field_form_holds_despite_a_bad_header(rsa_key: rsa.RSAPrivateKey) -> None:
    raw = _compact(_with_body_signature(rsa_key, EVENT))
    verdict = verify_cliq(rsa_key.public_key(), sign_cliq_rsa(rsa_key, b"other"), raw)
    assert verdict.form == "body" and verdict.content == _compact(EVENT)


def test_a_header_over_the_raw_body_wins_and_keeps_the_field(rsa_key: rsa.RSAPrivateKey) -> None:
    raw = _compact(_with_body_signature(rsa_key, EVENT))
    verdict = verify_cliq(rsa_key.public_key(), sign_cliq_rsa(rsa_key, raw), raw)
    assert verdict.form == "raw" and verdict.content == raw


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.update(extra="field"),
        lambda b: b["params"].update(message="hello"),
        lambda b: b["handler"].update(type="welcome_handler"),
        lambda b: b.update(signature=b["signature"][:-4] + "AAA="),
        lambda b: b.update(signature=sign_cliq_rsa(rsa.generate_private_key(65537, 1024), b"x")),
    ],
)
def test_body_field_form_refuses_a_changed_body(rsa_key: rsa.RSAPrivateKey, change: Any) -> None:
    body = _with_body_signature(rsa_key, EVENT)
    change(body)
    verdict = verify_cliq(rsa_key.public_key(), None, json.dumps(body).encode())
    assert verdict.form is None and verdict.signed


@pytest.mark.parametrize("field", [None, 7, "", ["sig"], {"v": "sig"}])
def test_a_signature_field_that_is_not_a_string_is_no_signature(
    rsa_key: rsa.RSAPrivateKey, field: object
) -> None:
    raw = json.dumps({**EVENT, "signature": field}).encode()
    verdict = verify_cliq(rsa_key.public_key(), None, raw)
    assert verdict.form is None and not verdict.signed


def test_the_signature_field_only_counts_at_the_top_level(rsa_key: rsa.RSAPrivateKey) -> None:
    inner = json.loads(json.dumps(EVENT))
    inner["params"]["signature"] = sign_cliq_rsa(rsa_key, _compact(EVENT))
    verdict = verify_cliq(rsa_key.public_key(), None, json.dumps(inner).encode())
    assert verdict.form is None and not verdict.signed


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"bot","n":NaN}',
        b'{"type":"bot","n":Infinity}',
        b'{"type":"bot","s":"\xff"}',  # not UTF-8
        b'\xef\xbb\xbf{"type":"bot"}',  # a BOM: JSON.parse refuses it
        b'{"type":"bot",}',
        b"[" * 100_000 + b"]" * 100_000,  # nested too deeply for Python, never raises
        b'{"type":"bot","n":' + b"9" * 5000 + b"}",  # beyond Python's int-digits limit
        b"",
    ],
)
def test_json_forms_never_raise_on_odd_bodies(rsa_key: rsa.RSAPrivateKey, raw: bytes) -> None:
    signature = sign_cliq_rsa(rsa_key, raw + b"!")
    verdict = verify_cliq(rsa_key.public_key(), signature, raw)
    assert verdict.form is None


def test_a_very_long_integer_is_infinity_as_in_javascript(rsa_key: rsa.RSAPrivateKey) -> None:
    raw = b'{"type":"bot","n":' + b"9" * 5000 + b"}"
    compact = b'{"type":"bot","n":null}'
    verdict = verify_cliq(rsa_key.public_key(), sign_cliq_rsa(rsa_key, compact), raw)
    assert verdict.form == "compact" and verdict.content == compact


@pytest.mark.parametrize("header", [None, "", "garbage!", "QUJD", "A" * 5000])
def test_unusable_headers_are_not_authentic(rsa_key: rsa.RSAPrivateKey, header: str | None) -> None:
    verdict = verify_cliq(rsa_key.public_key(), header, _compact(EVENT))
    assert verdict.form is None and verdict.signed == bool(header)


_NODE_SIGN = """
const crypto = require('crypto');
const {key, bodies} = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const sign = s => crypto.createSign('RSA-SHA256').update(s).sign(key, 'base64');
process.stdout.write(JSON.stringify(bodies.map(raw => {
  const header = sign(JSON.stringify(JSON.parse(raw)));
  const body = JSON.parse(raw);
  body.signature = sign(JSON.stringify(body));
  return {header, inBody: JSON.stringify(body, null, 2)};
})));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_signatures_made_by_node_verify(rsa_key: rsa.RSAPrivateKey) -> None:
    """Signed the way Cliq's JavaScript servers verify: over JSON.stringify(JSON.parse(body))."""
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    bodies = [
        json.dumps(EVENT, indent=2),
        '{"type":"bot","b":1,"2":[1.0,-0,1e21,12345678901234567890],"1":"\\ud800\\u2028é\\n"}',
        '{ "type" : "bot", "x": 0.000001, "y": 1.5e-7, "z": "\\u00e9\\u001f/" }',
    ]
    node = subprocess.run(
        ["node", "-e", _NODE_SIGN],
        input=json.dumps({"key": pem, "bodies": bodies}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    public = rsa_key.public_key()
    for raw, signed in zip(bodies, json.loads(node.stdout), strict=True):
        verdict = verify_cliq(public, signed["header"], raw.encode())
        assert verdict.form == "compact", raw
        assert verdict.content == _compact(json.loads(raw))
        in_body = verify_cliq(public, None, signed["inBody"].encode())
        assert in_body.form == "body", raw
        assert in_body.content == verdict.content
