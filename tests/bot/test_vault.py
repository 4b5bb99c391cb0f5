from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import VaultError
from bot.sealing import (
    ACCESS,
    REFRESH,
    authorization_aad,
    client_secret_aad,
    needs_rotation,
    open_client_secret,
    open_token,
    reseal_token,
    seal_tokens,
    sealed_parts,
    state_aad,
)
from bot.vault import (
    KEY_BYTES,
    KEY_FILE_NAME,
    Sealed,
    Vault,
    generate_key,
    key_id,
    load_or_create_key_file,
    parse_keys,
)
from storage.records import Authorization, ServiceRecord

AAD = "authorization:team_dropbox:user-1"


def _key() -> bytes:
    return os.urandom(KEY_BYTES)


def test_round_trip() -> None:
    vault = Vault([_key()])
    sealed = vault.seal("sl.secret-access-token", aad=AAD)
    assert sealed.kid == vault.primary_kid
    assert len(sealed.nonce) == 12
    assert b"secret-access-token" not in sealed.ciphertext
    assert vault.open(sealed, aad=AAD) == "sl.secret-access-token"
    assert not vault.needs_rotation(sealed)


def test_nonces_are_fresh() -> None:
    vault = Vault([_key()])
    first = vault.seal("same", aad=AAD)
    second = vault.seal("same", aad=AAD)
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


def test_moved_to_another_record_does_not_open() -> None:
    vault = Vault([_key()])
    sealed = vault.seal("token", aad=AAD)
    with pytest.raises(VaultError, match="cannot decrypt"):
        vault.open(sealed, aad="authorization:team_dropbox:user-2")


def test_tampered_ciphertext_does_not_open() -> None:
    vault = Vault([_key()])
    sealed = vault.seal("token", aad=AAD)
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(VaultError, match="cannot decrypt"):
        vault.open(Sealed(sealed.kid, sealed.nonce, flipped), aad=AAD)
    with pytest.raises(VaultError, match="cannot decrypt"):
        vault.open(Sealed(sealed.kid, bytes(12), sealed.ciphertext), aad=AAD)


def test_rotation() -> None:
    old, new = _key(), _key()
    sealed = Vault([old]).seal("refresh-token", aad=AAD)
    rotated = Vault([new, old])
    assert rotated.primary_kid == key_id(new)
    assert rotated.kids == (key_id(new), key_id(old))
    assert rotated.needs_rotation(sealed)
    assert rotated.open(sealed, aad=AAD) == "refresh-token"
    resealed = rotated.seal(rotated.open(sealed, aad=AAD), aad=AAD)
    assert not rotated.needs_rotation(resealed)
    assert Vault([new]).open(resealed, aad=AAD) == "refresh-token"


def test_unknown_key_id() -> None:
    sealed = Vault([_key()]).seal("token", aad=AAD)
    with pytest.raises(VaultError, match="unknown key id"):
        Vault([_key()]).open(sealed, aad=AAD)


def test_key_id_is_derived() -> None:
    key = bytes(range(32))
    kid = key_id(key)
    assert len(kid) == 16
    assert int(kid, 16) >= 0
    assert Vault([key]).primary_kid == kid


def test_vault_rejects_bad_keys() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Vault([])
    with pytest.raises(ValueError, match="key 2 is not 32 bytes"):
        Vault([_key(), b"short"])


def test_sealed_doc_round_trip() -> None:
    vault = Vault([_key()])
    sealed = vault.seal("token", aad=AAD)
    doc = sealed.to_doc()
    assert set(doc) == {"kid", "nonce", "ct"}
    assert isinstance(doc["nonce"], bytes)
    back = Sealed.from_doc(doc)
    assert back == sealed
    assert vault.open(back, aad=AAD) == "token"
    # bytes-like values (as a driver may hand back) are accepted too
    assert Sealed.from_doc({**doc, "ct": bytearray(sealed.ciphertext)}) == sealed


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"kid": "", "nonce": bytes(12), "ct": bytes(32)},
        {"kid": 7, "nonce": bytes(12), "ct": bytes(32)},
        {"kid": "abc", "nonce": bytes(11), "ct": bytes(32)},
        {"kid": "abc", "nonce": "not bytes", "ct": bytes(32)},
        {"kid": "abc", "nonce": bytes(12), "ct": bytes(15)},
        {"kid": "abc", "nonce": bytes(12)},
    ],
)
def test_sealed_from_malformed_doc(doc: dict[str, object]) -> None:
    with pytest.raises(VaultError, match="malformed"):
        Sealed.from_doc(doc)


def test_parse_keys() -> None:
    first, second = _key(), _key()
    padded = base64.urlsafe_b64encode(first).decode()
    unpadded = base64.urlsafe_b64encode(second).decode().rstrip("=")
    assert padded.endswith("=")
    assert parse_keys(f" {padded} ,{unpadded}") == [first, second]
    assert parse_keys(generate_key()) != parse_keys(generate_key())
    assert len(parse_keys(generate_key())[0]) == KEY_BYTES


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "no encryption key"),
        ("   ", "no encryption key"),
        ("{good},", "key 2 of 2 is empty"),
        ("{good},,{good}", "key 2 of 3 is empty"),
        ("{good},not-a-key", "key 2 of 2 is not 32 bytes"),
        ("{short}", "key 1 of 1 is not 32 bytes"),
        ("{good},{good},{std}", "key 3 of 3 is not 32 bytes"),
        ("{good},a!b", "key 2 of 2 is not"),
    ],
)
def test_parse_keys_names_the_bad_position(value: str, message: str) -> None:
    good = generate_key()
    short = base64.urlsafe_b64encode(os.urandom(16)).decode()
    # standard (not url-safe) alphabet with '+' and '/'
    std = base64.b64encode(b"\xfb\xff" * 16).decode()
    assert "+" in std or "/" in std
    text = value.format(good=good, short=short, std=std)
    with pytest.raises(ValueError, match=message) as info:
        parse_keys(text)
    for entry in text.split(","):
        if entry.strip():
            assert entry.strip() not in str(info.value)


def test_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "nested"
    key, created = load_or_create_key_file(data_dir)
    assert created
    assert len(key) == KEY_BYTES
    path = data_dir / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert parse_keys(path.read_text().strip()) == [key]

    again, created_again = load_or_create_key_file(data_dir)
    assert (again, created_again) == (key, False)


def test_key_file_open_to_others_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key, _ = load_or_create_key_file(tmp_path)
    path = tmp_path / KEY_FILE_NAME
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bot.vault"):
        again, created = load_or_create_key_file(tmp_path)
    assert (again, created) == (key, False)
    assert "chmod 600" in caplog.text
    assert path.read_text().strip() not in caplog.text


def test_key_file_with_garbage(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("garbage-secretish\n")
    (tmp_path / KEY_FILE_NAME).chmod(0o600)
    with pytest.raises(ValueError, match="does not hold") as info:
        load_or_create_key_file(tmp_path)
    assert "garbage-secretish" not in str(info.value)


def test_reprs_are_masked() -> None:
    key = _key()
    vault = Vault([key])
    sealed = vault.seal("plain-token", aad=AAD)
    texts = [repr(vault), str(vault), repr(sealed)]
    for text in texts:
        assert "plain-token" not in text
        assert key.hex() not in text
        assert repr(key) not in text
        assert base64.urlsafe_b64encode(key).decode().rstrip("=") not in text


@settings(max_examples=60, deadline=None)
@given(plaintext=st.text(), aad=st.text(max_size=40))
def test_round_trip_any_text(plaintext: str, aad: str) -> None:
    key = bytes(range(32))
    vault = Vault([key])
    sealed = vault.seal(plaintext, aad=aad)
    assert vault.open(Sealed.from_doc(sealed.to_doc()), aad=aad) == plaintext
    with pytest.raises(VaultError) as info:
        vault.open(sealed, aad=aad + "x")
    # The message depends on nothing secret: it is the same for any plaintext and aad.
    reference = vault.seal("something else", aad="other")
    with pytest.raises(VaultError) as reference_info:
        vault.open(reference, aad="another")
    assert str(info.value) == str(reference_info.value)
    assert repr(sealed) == (
        f"Sealed(kid={vault.primary_kid!r}, nonce=<12 bytes>, "
        f"ciphertext=<{len(sealed.ciphertext)} bytes>)"
    )


# -- the labels every sealed record is bound to (bot.sealing) -------------------------------------


def _authorization(access: dict[str, object], refresh: dict[str, object] | None) -> Authorization:
    return Authorization(
        link="team_dropbox",
        user_id="55501",
        user_email="ana@example.com",
        status="connected",
        account_id="dbid:ana",
        account_email="ana@dropbox.example",
        account_name="Ana",
        access=access,
        refresh=refresh,
        expires_at=None,
        version=1,
    )


def test_the_labels_are_the_stored_format() -> None:
    # Records sealed since the first release carry these labels; changing one makes every
    # stored token or secret unreadable.
    assert (ACCESS, REFRESH) == ("a", "r")
    assert (
        authorization_aad("team_dropbox", "55501", ACCESS) == "authorization:team_dropbox:55501:a"
    )
    assert authorization_aad("team_dropbox", "55501", REFRESH) == (
        "authorization:team_dropbox:55501:r"
    )
    assert client_secret_aad("Acme") == "service:acme:client_secret"
    assert state_aad("st-1") == "state:st-1"


def test_records_sealed_with_the_literal_labels_open_through_the_helpers() -> None:
    vault = Vault([_key()])
    access = vault.seal("at", aad="authorization:team_dropbox:55501:a").to_doc()
    refresh = vault.seal("rt", aad="authorization:team_dropbox:55501:r").to_doc()
    auth = _authorization(access, refresh)
    assert sealed_parts(auth) == {ACCESS: access, REFRESH: refresh}
    assert open_token(vault, "team_dropbox", "55501", ACCESS, access) == "at"
    assert open_token(vault, "team_dropbox", "55501", REFRESH, refresh) == "rt"
    with pytest.raises(VaultError):  # a part does not open as the other one
        open_token(vault, "team_dropbox", "55501", ACCESS, refresh)
    record = ServiceRecord(
        name="Acme",
        authorize_url="https://acme.example/a",
        token_url="https://acme.example/t",
        client_id="acme",
        client_secret_sealed=vault.seal("cs", aad="service:acme:client_secret").to_doc(),
    )
    assert open_client_secret(vault, record) == "cs"


def test_sealed_tokens_reseal_under_the_primary_key() -> None:
    old, new = _key(), _key()
    before = Vault([old])
    access, refresh = seal_tokens(before, "team_dropbox", "55501", "at", None)
    assert refresh is None
    auth = _authorization(access, refresh)
    assert sealed_parts(auth) == {ACCESS: access}
    rotated = Vault([new, old])
    assert needs_rotation(rotated, access)
    fresh = reseal_token(rotated, auth, ACCESS)
    assert not needs_rotation(rotated, fresh)
    assert open_token(Vault([new]), "team_dropbox", "55501", ACCESS, fresh) == "at"
