"""The local keyring: named 256-bit key-encryption keys (KEKs).

The newest key seals new material; every key in the ring can open what it sealed, so a
rotation adds a key and re-wraps at leisure. Sealed values use AES-256-GCM (a vetted AEAD
from ``cryptography``) in this fixed layout::

    version (1 byte, 0x01) | key-id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext+tag

The caller's ``context`` (e.g. ``b"totp-secret:user:42"``) is authenticated as associated
data, so a sealed value moved to another row fails to open.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED_FORMAT_VERSION = 0x01
_NONCE_BYTES = 12
_KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class KeyringError(Exception):
    """The keyring's configuration is unusable."""


class UnknownKeyError(KeyringError):
    """Sealed material names a key id that is not in the keyring."""

    def __init__(self, key_id: str, *, where: str = "the keyring") -> None:
        super().__init__(f"key-encryption key {key_id!r} is not in {where}")
        self.key_id = key_id


class SealedValueInvalid(Exception):
    """A sealed value is malformed, was altered, or belongs to another context."""


@dataclass(frozen=True)
class NamedKey:
    """One key-encryption key and the id it is stored under."""

    key_id: str
    material: bytes


class LocalKeyring:
    """Key-encryption keys held by the portal itself (from ``PORTAL_KEYRING`` or a key file)."""

    def __init__(self, keys: list[NamedKey]) -> None:
        if not keys:
            raise KeyringError("the keyring holds no key-encryption key")
        seen: set[str] = set()
        for key in keys:
            if not _KEY_ID_PATTERN.match(key.key_id):
                raise KeyringError(f"key id {key.key_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")
            if len(key.material) != 32:
                raise KeyringError(f"key {key.key_id!r} must be 32 bytes (256 bits)")
            if key.key_id in seen:
                raise KeyringError(f"key id {key.key_id!r} appears twice in the keyring")
            seen.add(key.key_id)
        self._keys = {key.key_id: key.material for key in keys}
        self.current_key_id = keys[-1].key_id

    @classmethod
    def from_spec(cls, spec: str) -> LocalKeyring:
        """Parse ``"id1:base64key,id2:base64key"``; the last key listed is the newest."""
        keys = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            key_id, sep, encoded = item.partition(":")
            if not sep:
                raise KeyringError("each keyring entry must read KEY_ID:BASE64_KEY")
            try:
                material = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise KeyringError(f"key {key_id!r} is not valid base64") from exc
            keys.append(NamedKey(key_id.strip(), material))
        return cls(keys)

    @staticmethod
    def generate_spec(key_id: str) -> str:
        """A new random keyring entry, for first start on a laptop or for rotation."""
        return f"{key_id}:{base64.b64encode(os.urandom(32)).decode('ascii')}"

    @property
    def key_ids(self) -> list[str]:
        """The ids of every key in the ring, oldest first."""
        return list(self._keys)

    def material(self, key_id: str) -> bytes:
        """The raw key for ``key_id``; raises :class:`UnknownKeyError` naming it if absent."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(key_id) from None

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        """Encrypt a small secret under the newest key, bound to ``context``."""
        key_id = self.current_key_id.encode("ascii")
        nonce = os.urandom(_NONCE_BYTES)
        header = bytes([SEALED_FORMAT_VERSION, len(key_id)]) + key_id
        ciphertext = AESGCM(self._keys[self.current_key_id]).encrypt(nonce, plaintext, header + context)
        return header + nonce + ciphertext

    def open(self, sealed: bytes, *, context: bytes) -> bytes:
        """Decrypt what :meth:`seal` produced with the same ``context``."""
        key_id, header, nonce, ciphertext = self._split(sealed)
        try:
            return AESGCM(self.material(key_id)).decrypt(nonce, ciphertext, header + context)
        except InvalidTag:
            raise SealedValueInvalid("sealed value failed authentication") from None

    def sealed_key_id(self, sealed: bytes) -> str:
        """Which key sealed this value (to find what a rotation still has to re-wrap)."""
        return self._split(sealed)[0]

    def reseal(self, sealed: bytes, *, context: bytes) -> bytes:
        """Open and seal again under the newest key; unchanged if already under it."""
        if self.sealed_key_id(sealed) == self.current_key_id:
            return sealed
        return self.seal(self.open(sealed, context=context), context=context)

    @staticmethod
    def _split(sealed: bytes) -> tuple[str, bytes, bytes, bytes]:
        if len(sealed) < 2 or sealed[0] != SEALED_FORMAT_VERSION:
            raise SealedValueInvalid("sealed value has an unknown format")
        id_end = 2 + sealed[1]
        if len(sealed) < id_end + _NONCE_BYTES + 16:
            raise SealedValueInvalid("sealed value is truncated")
        try:
            key_id = sealed[2:id_end].decode("ascii")
        except UnicodeDecodeError:
            raise SealedValueInvalid("sealed value has a malformed key id") from None
        nonce_end = id_end + _NONCE_BYTES
        return key_id, sealed[:id_end], sealed[id_end:nonce_end], sealed[nonce_end:]
