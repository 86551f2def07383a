"""Named failures of document encryption and key wrapping.

``KeyringError``/``UnknownKeyError`` (configuration) and ``SealedValueInvalid`` live in
:mod:`portal.crypto.keyring`; these cover document content and data keys.
"""

from __future__ import annotations


class DecryptionFailed(Exception):
    """A document cannot be trusted: altered, truncated, reordered, or bound to another document.

    Callers treat every subclass the same way: stop, discard what was produced, report the
    document as damaged. No detail of *why* is meant for the user.
    """


class IntegrityMismatch(DecryptionFailed):
    """The ciphertext authenticated, but its plaintext's size or SHA-256 is not the recorded one.

    (Not called ``IntegrityError`` so it cannot be confused with SQLAlchemy's.)
    """


class KeyUnwrapFailed(DecryptionFailed):
    """A wrapped data key was altered, or is being opened with another document's context."""


class KeyServiceError(Exception):
    """The key service (AWS KMS) refused a request: disabled key, access denied, bad request."""


class KeyServiceUnavailable(KeyServiceError):
    """The key service could not be reached or timed out."""
