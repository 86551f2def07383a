"""No plaintext lands in any store: every stored byte is scanned for a known marker."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

from portal.crypto import EncryptingReader, decrypt_stream, document_context, new_data_key
from portal.storage import ObjectStore, iter_chunks, new_object_key

MARKER = b"PUPIL-RECORD-MARKER-7f3c9a"


def document_with_marker() -> bytes:
    # The marker at the start, straddling a 16 KiB Cobblestone chunk boundary, and at the end;
    # over 5 MiB, so the S3 upload is multipart.
    body = bytearray(MARKER + b"." * (5 * 1024 * 1024 + 40_000) + MARKER)
    body[16_384 - 10 : 16_384 - 10 + len(MARKER)] = MARKER
    return bytes(body)


def test_the_scan_finds_the_marker_when_plaintext_is_stored(
    store: ObjectStore, stored_bytes: Callable[[ObjectStore], list[bytes]]
) -> None:
    # Control: proves the scan below would catch a leak.
    store.put(new_object_key(), io.BytesIO(document_with_marker()))

    assert any(MARKER in blob for blob in stored_bytes(store))


def test_an_encrypted_upload_stores_no_plaintext_and_decrypts_back(
    store: ObjectStore, stored_bytes: Callable[[ObjectStore], list[bytes]]
) -> None:
    document = document_with_marker()
    key, context = new_data_key(), document_context(41, 7)
    object_key = new_object_key()
    reader = EncryptingReader(io.BytesIO(document), key, context)

    store.put(object_key, reader)

    blobs = stored_bytes(store)
    assert blobs, "nothing was stored"
    assert not any(MARKER in blob for blob in blobs)
    assert not any(document[:1000] in blob for blob in blobs)
    with store.open(object_key) as stream:
        plaintext = b"".join(
            decrypt_stream(
                iter_chunks(stream, 10_000),
                key,
                context,
                expected_size=reader.plaintext_size,
                expected_sha256=reader.plaintext_sha256,
            )
        )
    assert plaintext == document
    assert reader.plaintext_sha256 == hashlib.sha256(document).hexdigest()
