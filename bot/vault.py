"""Tokens at rest: AES-256-GCM with the key id stored beside each ciphertext.

* :func:`parse_keys` reads ``BOT_ENCRYPTION_KEYS`` (comma-separated base64url 32-byte keys).
* :func:`load_or_create_key_file` keeps a generated key in ``BOT_DATA_DIR/encryption.key``
  (created with mode 0600) for installs that configure none.
* :class:`Vault` seals text with the *first* key and opens with *any* key, so keys can be
  rotated: put the new key first, keep the old ones after it until :meth:`Vault.needs_rotation`
  is false for every stored record (re-seal on read or in a sweep), then drop them.

Every ciphertext is bound to the identity of the record it belongs to through the AES-GCM
associated data (``aad``; the labels are built in :mod:`bot.sealing`): a ciphertext copied onto
another record does not open. Error messages and reprs never contain plaintext or key
material; the key id is a truncated hash, safe to store and log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.errors import VaultError

__all__ = [
    "KEY_BYTES",
    "KEY_FILE_NAME",
    "NONCE_BYTES",
    "Sealed",
    "Vault",
    "generate_key",
    "key_id",
    "load_or_create_key_file",
    "parse_keys",
]

logger = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE_NAME = "encryption.key"
_TAG_BYTES = 16
_KID_PREFIX = b"cliqbot-kid"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def _decode_key(text: str) -> bytes | None:
    """The key encoded by ``text`` (base64url, padding optional), or ``None`` if it is not one."""
    if not _BASE64URL.fullmatch(text):
        return None
    unpadded = text.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == KEY_BYTES else None


def parse_keys(value: str) -> list[bytes]:
    """Parse comma-separated base64url keys; the first one encrypts.

    Surrounding whitespace is ignored. A bad entry raises :class:`ValueError` naming its
    position (1-based), never its value.
    """
    entries = [entry.strip() for entry in value.split(",")]
    if entries == [""]:
        raise ValueError("no encryption key given")
    keys: list[bytes] = []
    for position, entry in enumerate(entries, start=1):
        if not entry:
            raise ValueError(f"encryption key {position} of {len(entries)} is empty")
        key = _decode_key(entry)
        if key is None:
            raise ValueError(
                f"encryption key {position} of {len(entries)} is not {KEY_BYTES} bytes "
                "of base64url text"
            )
        keys.append(key)
    return keys


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")


def generate_key() -> str:
    """Base64url text (unpadded) of a fresh random key."""
    return _encode_key(os.urandom(KEY_BYTES))


def load_or_create_key_file(data_dir: Path) -> tuple[bytes, bool]:
    """The key kept in ``data_dir/encryption.key``; created (mode 0600) if missing.

    Returns ``(key, created)``. The file is created with ``O_CREAT | O_EXCL`` and mode 0600,
    so it is never readable by others, even for an instant, and two processes starting at once
    cannot both create it (the loser reads the winner's key). An existing file that group or
    others may read is used anyway, with a warning naming the path: refusing would lock the
    operator out of every stored token. A file that does not hold one key raises
    :class:`ValueError` naming the path.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE_NAME
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path), False
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(_encode_key(key) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # never leave a half-written key behind
        raise
    logger.info("generated a new encryption key in %s", path)
    return key, True


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "the encryption key file %s is accessible by group or others (mode %o); "
            "run: chmod 600 %s",
            path,
            stat.S_IMODE(mode),
            path,
        )
    key = _decode_key(path.read_text(encoding="ascii", errors="replace").strip())
    if key is None:
        raise ValueError(f"{path} does not hold one {KEY_BYTES}-byte base64url key")
    return key


def key_id(key: bytes) -> str:
    """The public id of ``key``: first 16 hex chars of ``sha256(b"cliqbot-kid" + key)``."""
    return hashlib.sha256(_KID_PREFIX + key).hexdigest()[:16]


def _as_bytes(value: object) -> bytes | None:
    # BSON binary (subtype 0) decodes to ``bytes``; ``bson.Binary`` is a ``bytes`` subclass.
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return None


@dataclass(frozen=True)
class Sealed:
    """A ciphertext and what is needed to open it (nonce, key id). Holds no secret."""

    kid: str
    nonce: bytes
    ciphertext: bytes

    def to_doc(self) -> dict[str, object]:
        """The stored form; ``bytes`` become BSON binary in MongoDB."""
        return {"kid": self.kid, "nonce": self.nonce, "ct": self.ciphertext}

    @classmethod
    def from_doc(cls, doc: Mapping[str, object]) -> Sealed:
        """Read the stored form back; :class:`VaultError` if it is malformed."""
        kid = doc.get("kid")
        nonce = _as_bytes(doc.get("nonce"))
        ciphertext = _as_bytes(doc.get("ct"))
        if not isinstance(kid, str) or not kid:
            raise VaultError("malformed sealed value: missing key id")
        if nonce is None or len(nonce) != NONCE_BYTES:
            raise VaultError(f"malformed sealed value: the nonce must be {NONCE_BYTES} bytes")
        if ciphertext is None or len(ciphertext) < _TAG_BYTES:
            raise VaultError("malformed sealed value: ciphertext missing or too short")
        return cls(kid=kid, nonce=nonce, ciphertext=ciphertext)

    def __repr__(self) -> str:
        return (
            f"Sealed(kid={self.kid!r}, nonce=<{len(self.nonce)} bytes>, "
            f"ciphertext=<{len(self.ciphertext)} bytes>)"
        )


class Vault:
    """Seals with the first key, opens with any of them (key rotation)."""

    __slots__ = ("_ciphers", "primary_kid")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a vault needs at least one key")
        ciphers: dict[str, AESGCM] = {}
        for position, key in enumerate(keys, start=1):
            if len(key) != KEY_BYTES:
                raise ValueError(f"encryption key {position} is not {KEY_BYTES} bytes")
            ciphers.setdefault(key_id(key), AESGCM(bytes(key)))
        self._ciphers = ciphers
        self.primary_kid: str = key_id(keys[0])

    @property
    def kids(self) -> tuple[str, ...]:
        """Ids of every key this vault can open with, the primary first."""
        return tuple(self._ciphers)

    def seal(self, plaintext: str, *, aad: str) -> Sealed:
        """Encrypt ``plaintext`` with the primary key, bound to the record identity ``aad``."""
        nonce = os.urandom(NONCE_BYTES)
        cipher = self._ciphers[self.primary_kid]
        ciphertext = cipher.encrypt(nonce, plaintext.encode("utf-8"), aad.encode("utf-8"))
        return Sealed(kid=self.primary_kid, nonce=nonce, ciphertext=ciphertext)

    def open(self, sealed: Sealed, *, aad: str) -> str:
        """Decrypt ``sealed``; :class:`VaultError` for an unknown key id or a failed check."""
        cipher = self._ciphers.get(sealed.kid)
        if cipher is None:
            raise VaultError(
                f"unknown key id {sealed.kid!r}: the key that sealed this value is not "
                "configured (add it to BOT_ENCRYPTION_KEYS after the primary key)"
            )
        try:
            plaintext = cipher.decrypt(sealed.nonce, sealed.ciphertext, aad.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise VaultError(
                f"cannot decrypt the value sealed with key id {sealed.kid!r}: it was altered "
                "or belongs to another record"
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise VaultError("cannot decrypt: the sealed value is not UTF-8 text") from None

    def reseal(self, sealed: Sealed, *, aad: str) -> Sealed:
        """``sealed`` opened (with any key) and sealed again with the primary key."""
        return self.seal(self.open(sealed, aad=aad), aad=aad)

    def needs_rotation(self, sealed: Sealed) -> bool:
        """True when ``sealed`` was not sealed with the primary key (re-seal it)."""
        return sealed.kid != self.primary_kid

    def __repr__(self) -> str:
        return f"Vault(primary_kid={self.primary_kid!r}, keys={len(self._ciphers)})"
