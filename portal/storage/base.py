"""The object-store interface, its exceptions and object keys.

Every store keeps opaque bytes (document ciphertext) under keys the server generates with
:func:`new_object_key`; no key is ever derived from user input, so a file name chosen by a
user can never steer where bytes land.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import BinaryIO, Protocol

# 128 random bits as 32 lowercase hex digits, under a two-hex-digit shard directory taken from the
# name itself ("3f/3fa9...") so a local directory never holds more than ~1/256 of the objects.
_OBJECT_KEY = re.compile(r"([0-9a-f]{2})/\1[0-9a-f]{30}")
# A listing prefix is any leading part of such a key.
_KEY_PREFIX = re.compile(r"[0-9a-f]{0,2}|[0-9a-f]{2}/[0-9a-f]{0,32}")

READ_CHUNK_BYTES = 1024 * 1024


class StorageError(Exception):
    """The object store failed; the message is safe to log (no credentials, no secret URLs)."""


class StorageUnavailable(StorageError):
    """The object store could not be reached or stopped answering (refused, timed out, cut off)."""


class ObjectMissing(StorageError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object is stored under key {key!r}")
        self.key = key


class InvalidObjectKey(StorageError, ValueError):
    """A key or prefix does not have the shape :func:`new_object_key` produces."""


class ReadableStream(Protocol):
    """Anything with a binary ``read``: an open file, a request body, an ``EncryptingReader``."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` only at the end of the stream."""
        ...


class ObjectStore(Protocol):
    """Where document ciphertext is kept. Implementations: local directory, S3."""

    def put(self, key: str, stream: ReadableStream) -> int:
        """Store everything ``stream`` yields under ``key`` and return the byte count.

        All or nothing: if the stream or the store fails midway, no object (and no partial
        upload) is left under ``key`` and the exception propagates; an exception raised by the
        source stream itself propagates unchanged. An existing object under ``key`` is replaced.
        """
        ...

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A context manager yielding a readable binary stream of the object.

        Raises :class:`ObjectMissing` on entry if nothing is stored under ``key``.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a key that holds nothing is not an error."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def list_keys(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Every stored key starting with ``prefix``, with its last-modified time in UTC.

        Used to sweep objects that no database row points to; anything in the store that is not
        shaped like a generated key is skipped, so a sweep never touches what it did not create.
        """
        ...


def new_object_key() -> str:
    """A fresh random object key such as ``"3f/3fa94c..."`` (128 bits from ``secrets``)."""
    name = secrets.token_hex(16)
    return f"{name[:2]}/{name}"


def validate_object_key(key: str) -> str:
    """Return ``key`` if it has the generated shape; raise :class:`InvalidObjectKey` otherwise.

    The shape admits no ``/`` at either end, no ``.`` and no upper case, so no key can climb
    out of a directory or alias another key.
    """
    if not isinstance(key, str) or not _OBJECT_KEY.fullmatch(key):
        # The offending value is not echoed: it may come from a request and end up in a log.
        raise InvalidObjectKey("object key does not have the shape new_object_key() produces")
    return key


def validate_key_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is the start of some generated key (``""`` lists everything)."""
    if not isinstance(prefix, str) or not _KEY_PREFIX.fullmatch(prefix):
        raise InvalidObjectKey("listing prefix is not the start of a generated object key")
    return prefix


def iter_chunks(stream: ReadableStream, chunk_size: int = READ_CHUNK_BYTES) -> Iterator[bytes]:
    """Read ``stream`` to its end in chunks of at most ``chunk_size`` bytes."""
    while chunk := stream.read(chunk_size):
        yield chunk


class SourceReader:
    """Wraps a caller's stream for a store: optional full-length reads, a byte count, and blame.

    Full-length reads (``fill=True``) matter for S3: ``upload_fileobj`` takes each
    ``read(part_size)`` as one part, and a short read from a network-backed source would make
    an undersized part that S3 rejects. A file does not care, and joining short reads would
    cost a copy of every byte. ``failed`` records that the *source* raised, so a store re-raises
    that error as it is instead of reporting it as a storage fault.
    """

    def __init__(self, source: ReadableStream, *, fill: bool = True) -> None:
        self._source = source
        self._fill = fill
        self.bytes_read = 0
        self.failed = False
        self._at_end = False

    def readable(self) -> bool:
        """Always true; lets libraries that probe for it accept this object."""
        return True

    def read(self, size: int = -1, /) -> bytes:
        """Exactly ``size`` bytes unless the source ends first (all of it if ``size`` < 0)."""
        pieces: list[bytes] = []
        wanted = size
        while not self._at_end and (size < 0 or wanted > 0):
            try:
                piece = self._source.read(READ_CHUNK_BYTES if size < 0 else wanted)
            except BaseException:
                self.failed = True
                raise
            if not piece:
                self._at_end = True
                break
            pieces.append(piece)
            wanted -= len(piece)
            if not self._fill and size >= 0:
                break
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.bytes_read += len(data)
        return data
