"""Object storage for Handover: where document ciphertext lives.

Callers get an :class:`ObjectStore` from :func:`store_from_url` and address objects only by
keys from :func:`new_object_key`. Nothing here knows about Flask or about encryption: the
bytes handed to a store are already ciphertext (see :mod:`portal.crypto.envelope`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from portal.storage.base import (
    InvalidObjectKey,
    ObjectMissing,
    ObjectStore,
    ReadableStream,
    StorageError,
    StorageUnavailable,
    iter_chunks,
    new_object_key,
    validate_object_key,
)
from portal.storage.local import LocalDirectoryStore

if TYPE_CHECKING:
    from portal.storage.s3 import S3ObjectStore, S3Settings

__all__ = [
    "InvalidObjectKey",
    "LocalDirectoryStore",
    "ObjectMissing",
    "ObjectStore",
    "ReadableStream",
    "S3ObjectStore",
    "S3Settings",
    "StorageError",
    "StorageUnavailable",
    "iter_chunks",
    "new_object_key",
    "store_from_url",
    "validate_object_key",
]


def store_from_url(url: str) -> ObjectStore:
    """The store a URL names: ``file:///abs/dir`` or ``s3://bucket/prefix?options``.

    Raises :class:`StorageError` for anything else or for a malformed URL; the message never
    repeats the URL, which might hold a secret someone pasted into it.
    """
    scheme = urlsplit(url).scheme
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise StorageError("a file storage URL reads file:///absolute/path, with nothing else")
        return LocalDirectoryStore(unquote(parts.path))
    if scheme == "s3":
        # Imported here: boto3 is slow to import and a file:// deployment never needs it.
        from portal.storage.s3 import S3ObjectStore, S3Settings

        return S3ObjectStore(S3Settings.from_url(url))
    raise StorageError("the storage URL must start with file:/// or s3://")


def __getattr__(name: str) -> object:
    # Lazy exports of the S3 classes, for the same reason as above.
    if name in ("S3ObjectStore", "S3Settings"):
        from portal.storage import s3

        return getattr(s3, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
