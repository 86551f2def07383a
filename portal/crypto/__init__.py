"""Encryption for Handover: key-encryption keys, sealed secrets and document envelopes.

Nothing in this package knows about Flask; callers pass keys and contexts explicitly.

* :mod:`portal.crypto.keyring`: the local key-encryption keys and small sealed secrets.
* :mod:`portal.crypto.envelope`: the document format (specified in its docstring), streaming
  encryption (:class:`EncryptingReader`) and verified decryption (:func:`decrypt_stream`).
* :mod:`portal.crypto.wrapping` and :mod:`portal.crypto.kms`: wrapping per-document data keys
  under the local keyring or AWS KMS, and rewrapping them after a rotation.
"""

from portal.crypto.envelope import (
    CONTENT_FORMAT,
    EncryptingReader,
    ciphertext_size,
    decrypt_stream,
    document_context,
    document_key_context,
    new_data_key,
)
from portal.crypto.errors import (
    DecryptionFailed,
    IntegrityMismatch,
    KeyServiceError,
    KeyServiceUnavailable,
    KeyUnwrapFailed,
)
from portal.crypto.keyring import KeyringError, LocalKeyring, SealedValueInvalid, UnknownKeyError
from portal.crypto.wrapping import (
    KeyWrapper,
    LocalKeyWrapper,
    UnsupportedWrapAlgorithm,
    WrappedKey,
    key_wrapper_from_spec,
)

__all__ = [
    "CONTENT_FORMAT",
    "DecryptionFailed",
    "EncryptingReader",
    "IntegrityMismatch",
    "KeyServiceError",
    "KeyServiceUnavailable",
    "KeyUnwrapFailed",
    "KeyWrapper",
    "KeyringError",
    "LocalKeyWrapper",
    "LocalKeyring",
    "SealedValueInvalid",
    "UnknownKeyError",
    "UnsupportedWrapAlgorithm",
    "WrappedKey",
    "ciphertext_size",
    "decrypt_stream",
    "document_context",
    "document_key_context",
    "key_wrapper_from_spec",
    "new_data_key",
]
