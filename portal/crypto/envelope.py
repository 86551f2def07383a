"""Document encryption: the Handover envelope format, version 1.

Every document is encrypted on its own, with vetted parts only (no home-made format):

Data key
    32 random bytes from ``Cobblestone256Encryptor.generate_key()``, one per document, never
    reused and never stored in the clear. Destroying its wrapped copy destroys the document in
    every copy of the object (crypto-shredding, SECURITY.md section 5).

Object (what the object store holds, under a random key from ``new_object_key()``)
    The raw Cobblestone-256 ciphertext of the plaintext (``cryptography.cobblestone``, the C2SP
    chunked-encryption scheme with SHA-512 and AES-256-GCM) and nothing else: no header of
    ours, no key id, no file name. Cobblestone itself lays it out as a 56-byte header, then the
    plaintext in 16 KiB chunks each sealed with a 16-byte GCM tag, the last chunk (possibly
    empty) flagged final. Its size is exactly :func:`ciphertext_size` of the plaintext size::

        56 + n + 16 * (n // 16384 + 1)

Content context (never stored; rebuilt from the database row at decryption)
    ``b"handover/v1/transfer:<transfer id>/document:<document id>"`` from
    :func:`document_context`. Cobblestone authenticates it, so ciphertext copied onto another
    document, or another transfer, fails to decrypt.

Database row of a document (written by the transfers service)
    * ``object_key``: where the ciphertext is;
    * ``content_format``: :data:`CONTENT_FORMAT` (``"cobblestone256/v1"``);
    * ``plaintext_size`` and ``plaintext_sha256`` (lower-case hex), measured by
      :class:`EncryptingReader` while encrypting, checked by :func:`decrypt_stream`;
    * the wrapped data key, as the three fields of
      :class:`~portal.crypto.wrapping.WrappedKey`: ``key_id`` (the key-encryption key, KEK),
      ``wrapped`` (bytes) and ``algorithm`` (the KEK algorithm: ``"local-aes256gcm-v1"`` or
      ``"aws-kms-symmetric-default"``; see :mod:`portal.crypto.wrapping`), wrapped under the
      key context from :func:`document_key_context`.

Decryption streams: Cobblestone releases plaintext one authenticated 16 KiB chunk at a time
and holds back the final chunk until ``finalize()``, so a flipped bit, a reordered or dropped
chunk or a truncation raises :class:`~portal.crypto.errors.DecryptionFailed` before a single
byte of the bad chunk is released. Truncation at a chunk boundary can only be detected at the
end, after earlier chunks were released: a streaming HTTP response must therefore *abort* the
connection (not end it cleanly) when :func:`decrypt_stream` raises, so the recipient's client
sees a failed download rather than a short file.

Typical use::

    key = new_data_key()
    context = document_context(transfer.id, document.id)
    reader = EncryptingReader(upload_stream, key, context)
    store.put(object_key, reader)
    wrapped = wrapper.wrap(key, context=document_key_context(
        organisation_id=org.id, transfer_id=transfer.id, document_id=document.id))
    # store reader.plaintext_size, reader.plaintext_sha256, wrapped.* in the row

    with store.open(object_key) as stream:
        for piece in decrypt_stream(iter_chunks(stream), key, context,
                                    expected_size=row.size, expected_sha256=row.sha256):
            ...
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator
from typing import Protocol

from cryptography.cobblestone import Cobblestone256Decryptor, Cobblestone256Encryptor
from cryptography.exceptions import AlreadyFinalized, InvalidTag

from portal.crypto.errors import DecryptionFailed, IntegrityMismatch

CONTENT_FORMAT = "cobblestone256/v1"
DATA_KEY_BYTES = 32
SEGMENT_BYTES = 16 * 1024  # Cobblestone's plaintext chunk
_HEADER_BYTES = 56
_TAG_BYTES = 16
_SEALED_SEGMENT_BYTES = SEGMENT_BYTES + _TAG_BYTES
_MAX_PULL_BYTES = 16 * 1024 * 1024  # a caller asking for more still gets at most about this
# Ids go into a "/"- and ":"-separated context: they must not contain either, or two
# different (transfer, document) pairs could produce the same context.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def new_data_key() -> bytes:
    """A fresh random 256-bit data key for one document."""
    return Cobblestone256Encryptor.generate_key()


def _check_id(name: str, value: int | str) -> str:
    text = str(value)
    if isinstance(value, bool) or not _ID.fullmatch(text):
        raise ValueError(f"{name} must be 1-64 of A-Z a-z 0-9 _ -")
    return text


def document_context(transfer_id: int | str, document_id: int | str) -> bytes:
    """The Cobblestone context binding a document's ciphertext to its transfer and itself."""
    transfer = _check_id("transfer_id", transfer_id)
    document = _check_id("document_id", document_id)
    return f"handover/v1/transfer:{transfer}/document:{document}".encode("ascii")


def document_key_context(
    *, organisation_id: int | str, transfer_id: int | str, document_id: int | str
) -> dict[str, str]:
    """The context a document's data key is wrapped under (KMS ``EncryptionContext``).

    ``organisation_id`` is the sending organisation, owner of the transfer; binding it lets a
    KMS key policy scope decryption per organisation and makes a wrapped key moved to another
    organisation's row useless.
    """
    return {
        "purpose": "handover-document-key/v1",
        "organisation": _check_id("organisation_id", organisation_id),
        "transfer": _check_id("transfer_id", transfer_id),
        "document": _check_id("document_id", document_id),
    }


def ciphertext_size(plaintext_size: int) -> int:
    """Exact size of the stored object for a plaintext of ``plaintext_size`` bytes."""
    if plaintext_size < 0:
        raise ValueError("plaintext_size must not be negative")
    return _HEADER_BYTES + plaintext_size + _TAG_BYTES * (plaintext_size // SEGMENT_BYTES + 1)


class EncryptingReader:
    """A read-only stream of ciphertext made from a plaintext source as it is read.

    Hand it to an object store's ``put`` (or boto3's ``upload_fileobj``): memory stays at about
    one requested block whatever the document's size. While reading it
    measures the plaintext's size and SHA-256, which are final once :attr:`finished` is true.
    """

    def __init__(self, source: _Readable, key: bytes, context: bytes) -> None:
        if len(key) != DATA_KEY_BYTES:
            raise ValueError("a document data key is 32 bytes")
        self._source = source
        self._encryptor = Cobblestone256Encryptor(key, context)
        self._pending = b""
        # Inline SHA-256 (1.8 GB/s with SHA-NI here) is the slowest step; hashing on a worker
        # thread was measured and gained nothing on two cores, so it stays simple.
        self._digest = hashlib.sha256()
        self._sha256: str | None = None
        self._size = 0
        self._finished = False

    def readable(self) -> bool:
        """Always true (libraries probe for it)."""
        return True

    def seekable(self) -> bool:
        """Never: the ciphertext exists only as it is produced."""
        return False

    @property
    def finished(self) -> bool:
        """Whether the source was read to its end and the ciphertext completed."""
        return self._finished

    @property
    def plaintext_size(self) -> int:
        """Plaintext bytes read so far (the document's size once :attr:`finished`)."""
        return self._size

    @property
    def plaintext_sha256(self) -> str:
        """Lower-case hex SHA-256 of the whole plaintext; only once :attr:`finished`."""
        if self._sha256 is None:
            raise RuntimeError("the plaintext digest is known only after the source was read to its end")
        return self._sha256

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes of ciphertext (all the rest if ``size`` < 0); ``b""`` only at the end.

        Like a raw file, a read may return fewer bytes than asked: handing back what the
        encryptor produced, instead of re-buffering it to an exact length, saves two copies of
        every byte. (The S3 store fills its parts to full length itself.)
        """
        if size < 0:
            pieces = [self._take_pending()]
            while not self._finished:
                self._pull(_MAX_PULL_BYTES)
                pieces.append(self._take_pending())
            return b"".join(pieces)
        if size == 0:
            return b""
        while not self._pending and not self._finished:
            # Whole segments of plaintext that encrypt to no more than ``size`` bytes in the
            # steady state (Cobblestone emits one sealed segment per segment taken in).
            self._pull(
                min(max(SEGMENT_BYTES, size // _SEALED_SEGMENT_BYTES * SEGMENT_BYTES), _MAX_PULL_BYTES)
            )
        if len(self._pending) <= size:
            return self._take_pending()
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def _take_pending(self) -> bytes:
        data, self._pending = self._pending, b""
        return data

    def _pull(self, plaintext_bytes: int) -> None:
        chunk = self._source.read(plaintext_bytes)
        if chunk:
            self._digest.update(chunk)
            self._size += len(chunk)
            self._pending += self._encryptor.update(chunk)
        else:
            self._pending += self._encryptor.finalize()
            self._sha256 = self._digest.hexdigest()
            self._finished = True


def decrypt_stream(
    chunks: Iterable[bytes],
    key: bytes,
    context: bytes,
    *,
    expected_size: int,
    expected_sha256: str,
) -> Iterator[bytes]:
    """Decrypt ciphertext ``chunks`` and yield plaintext that has been authenticated.

    Raises :class:`DecryptionFailed` as soon as a chunk fails authentication (bit flip,
    reordering, wrong key or context) or at the end if the ciphertext was truncated or has
    trailing bytes, and :class:`IntegrityMismatch` if the plaintext is longer than
    ``expected_size`` or, at the end, its size or SHA-256 differ from the recorded ones. The
    last piece is yielded only after every check has passed. Pieces already yielded were
    authenticated, but the caller must still treat the whole document as failed when this
    raises (see the module docstring on aborting HTTP responses).
    """
    if len(key) != DATA_KEY_BYTES:
        raise ValueError("a document data key is 32 bytes")
    decryptor = Cobblestone256Decryptor(key, context)
    digest = hashlib.sha256()
    seen = 0
    try:
        for chunk in chunks:
            plaintext = decryptor.update(chunk)
            if not plaintext:
                continue
            seen += len(plaintext)
            if seen > expected_size:
                raise IntegrityMismatch("document is longer than its recorded size")
            digest.update(plaintext)
            yield plaintext
        final = decryptor.finalize()
    except (InvalidTag, AlreadyFinalized):
        raise DecryptionFailed(
            "document ciphertext failed authentication "
            "(altered, truncated, reordered, or belongs to another document)"
        ) from None
    seen += len(final)
    digest.update(final)
    if seen != expected_size:
        raise IntegrityMismatch("document size differs from its recorded size")
    if not hmac.compare_digest(digest.hexdigest(), expected_sha256.lower()):
        raise IntegrityMismatch("document SHA-256 differs from its recorded digest")
    if final:
        yield final
