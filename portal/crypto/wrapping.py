"""Wrapping document data keys under key-encryption keys (KEKs).

A :class:`KeyWrapper` turns a 32-byte data key into a :class:`WrappedKey` bound to a context
(``dict[str, str]``, e.g. from :func:`~portal.crypto.envelope.document_key_context`) and back.
The database stores all three fields of the :class:`WrappedKey`; the context is rebuilt from
the row's ids, never stored.

Implementations:

``local-aes256gcm-v1`` (:class:`LocalKeyWrapper`)
    The KEKs of the :class:`~portal.crypto.keyring.LocalKeyring`. ``wrapped`` is exactly what
    ``LocalKeyring.seal(data_key, context=...)`` returns: ``0x01 | key-id length | key id |
    96-bit random nonce | AES-256-GCM ciphertext and tag`` with associated data
    ``header | b"handover-data-key/v1:" | canonical JSON of the context`` (keys sorted, no
    spaces, ASCII). AES-GCM rather than AES key wrap (RFC 3394/5649) because key wrap has no
    associated data and so could not bind the context; random 96-bit nonces are safe for far
    more data keys per KEK (< 2**32) than Handover will ever wrap.

``aws-kms-symmetric-default`` (:class:`~portal.crypto.kms.KmsKeyWrapper`)
    ``wrapped`` is the ``CiphertextBlob`` of KMS ``Encrypt`` under a symmetric KMS key with the
    context as ``EncryptionContext``; ``key_id`` is that key's ARN.

Rotation: :meth:`KeyWrapper.rewrap` moves a wrapped key to the newest KEK and returns it
unchanged (the very same object) when it is already there, so a ``keys rotate`` run can be
interrupted and started again at any point; :meth:`KeyWrapper.needs_rewrap` says which rows
still have work without any cryptography.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from portal.crypto.errors import KeyUnwrapFailed
from portal.crypto.keyring import KeyringError, LocalKeyring, SealedValueInvalid

LOCAL_ALGORITHM = "local-aes256gcm-v1"
KMS_ALGORITHM = "aws-kms-symmetric-default"
DATA_KEY_BYTES = 32
_LOCAL_CONTEXT_LABEL = b"handover-data-key/v1:"


@dataclass(frozen=True)
class WrappedKey:
    """A data key as stored in the database: which KEK, the wrapped bytes, and how."""

    key_id: str
    wrapped: bytes
    algorithm: str

    def __repr__(self) -> str:
        # Short on purpose: wrapped bytes are not secret, but they are noise in a log line.
        return f"WrappedKey(key_id={self.key_id!r}, algorithm={self.algorithm!r}, {len(self.wrapped)} bytes)"


class UnsupportedWrapAlgorithm(KeyringError):
    """The wrapped key was made by another kind of wrapper than the one configured."""

    def __init__(self, found: str, expected: str) -> None:
        super().__init__(f"wrapped key uses {found!r} but this portal is configured for {expected!r}")
        self.found = found
        self.expected = expected


class KeyWrapper(Protocol):
    """Wraps and unwraps document data keys under the configured key-encryption keys."""

    @property
    def algorithm(self) -> str:
        """The value recorded in :attr:`WrappedKey.algorithm` by this wrapper."""
        ...

    @property
    def current_key_id(self) -> str:
        """The KEK new data keys are wrapped under (the newest one)."""
        ...

    def wrap(self, data_key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        """Wrap ``data_key`` under the newest KEK, bound to ``context``."""
        ...

    def unwrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        """The data key, if ``context`` is the one it was wrapped under.

        Raises :class:`~portal.crypto.keyring.UnknownKeyError` (naming the key id) when the KEK
        is not available, :class:`~portal.crypto.errors.KeyUnwrapFailed` when the wrapped key was
        altered or the context differs.
        """
        ...

    def needs_rewrap(self, wrapped_key: WrappedKey) -> bool:
        """Whether ``wrapped_key`` is under an older KEK than :attr:`current_key_id`."""
        ...

    def rewrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> WrappedKey:
        """``wrapped_key`` under the newest KEK; the same object if it already is."""
        ...


def canonical_context(context: Mapping[str, str]) -> bytes:
    """The context as canonical JSON bytes (sorted keys, no spaces, ASCII only).

    Canonical so that the same mapping always authenticates, whatever order it was built in.
    """
    if not context:
        raise ValueError("a key-wrapping context must not be empty")
    for name, value in context.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise ValueError("a key-wrapping context maps non-empty strings to strings")
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def check_data_key(data_key: bytes) -> None:
    """Refuse anything but a 32-byte data key (a slip here would be silent data loss)."""
    if not isinstance(data_key, bytes | bytearray) or len(data_key) != DATA_KEY_BYTES:
        raise ValueError("a document data key is 32 bytes")


class LocalKeyWrapper:
    """Data keys sealed with the portal's own :class:`LocalKeyring` (AES-256-GCM)."""

    algorithm = LOCAL_ALGORITHM

    def __init__(self, keyring: LocalKeyring) -> None:
        self._keyring = keyring

    @property
    def current_key_id(self) -> str:
        """The keyring's newest key id."""
        return self._keyring.current_key_id

    def wrap(self, data_key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        """Seal ``data_key`` under the newest key with the context as associated data."""
        check_data_key(data_key)
        sealed = self._keyring.seal(
            bytes(data_key), context=_LOCAL_CONTEXT_LABEL + canonical_context(context)
        )
        return WrappedKey(self._keyring.sealed_key_id(sealed), sealed, LOCAL_ALGORITHM)

    def unwrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        """Open a sealed data key; see :meth:`KeyWrapper.unwrap`."""
        self._check_algorithm(wrapped_key)
        try:
            sealed_by = self._keyring.sealed_key_id(wrapped_key.wrapped)
        except SealedValueInvalid:
            raise KeyUnwrapFailed("wrapped data key is malformed") from None
        if sealed_by != wrapped_key.key_id:
            # The id inside the sealed value is authenticated; the column beside it is not.
            raise KeyUnwrapFailed("wrapped data key's recorded key id disagrees with the key that sealed it")
        try:
            data_key = self._keyring.open(
                wrapped_key.wrapped, context=_LOCAL_CONTEXT_LABEL + canonical_context(context)
            )
        except SealedValueInvalid:
            raise KeyUnwrapFailed(
                "wrapped data key failed authentication (altered, or belongs to another document)"
            ) from None
        if len(data_key) != DATA_KEY_BYTES:
            raise KeyUnwrapFailed("wrapped data key does not hold a 32-byte key")
        return data_key

    def needs_rewrap(self, wrapped_key: WrappedKey) -> bool:
        """True unless already sealed by the keyring's newest key."""
        self._check_algorithm(wrapped_key)
        return wrapped_key.key_id != self._keyring.current_key_id

    def rewrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> WrappedKey:
        """Unwrap and wrap again under the newest key; unchanged if already under it."""
        if not self.needs_rewrap(wrapped_key):
            return wrapped_key
        return self.wrap(self.unwrap(wrapped_key, context=context), context=context)

    def _check_algorithm(self, wrapped_key: WrappedKey) -> None:
        if wrapped_key.algorithm != LOCAL_ALGORITHM:
            raise UnsupportedWrapAlgorithm(wrapped_key.algorithm, LOCAL_ALGORITHM)


def key_wrapper_from_spec(spec: str, *, keyring: LocalKeyring | None = None) -> KeyWrapper:
    """The wrapper a setting names: ``"local"`` (the given keyring) or ``"aws-kms:?key_id=..."``."""
    if spec == "local":
        if keyring is None:
            raise KeyringError("key wrapping is set to 'local' but no keyring is configured")
        return LocalKeyWrapper(keyring)
    if spec.startswith("aws-kms:"):
        from portal.crypto.kms import KmsKeyWrapper

        return KmsKeyWrapper.from_spec(spec)
    raise KeyringError("key wrapping must be 'local' or 'aws-kms:?key_id=...'")
