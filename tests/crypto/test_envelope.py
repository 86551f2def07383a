"""Document encryption: streaming round trips and every way a ciphertext can be damaged."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from portal.crypto import (
    DecryptionFailed,
    EncryptingReader,
    IntegrityMismatch,
    ciphertext_size,
    decrypt_stream,
    document_context,
    document_key_context,
    new_data_key,
)
from portal.crypto.envelope import SEGMENT_BYTES

HEADER = 56
SEALED_SEGMENT = SEGMENT_BYTES + 16


def encrypt(plaintext: bytes, key: bytes, context: bytes, read_size: int = 65_536) -> bytes:
    reader = EncryptingReader(io.BytesIO(plaintext), key, context)
    return b"".join(iter(lambda: reader.read(read_size), b""))


def pieces(data: bytes, size: int = 7_000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def decrypt_collecting(
    ciphertext: bytes, key: bytes, context: bytes, plaintext: bytes
) -> tuple[bytes, BaseException | None]:
    """Everything decrypt_stream yielded before it raised, and what it raised."""
    released = bytearray()
    try:
        for piece in decrypt_stream(
            pieces(ciphertext),
            key,
            context,
            expected_size=len(plaintext),
            expected_sha256=hashlib.sha256(plaintext).hexdigest(),
        ):
            released += piece
    except Exception as exc:
        return bytes(released), exc
    return bytes(released), None


@pytest.fixture
def document() -> bytes:
    return os.urandom(5 * SEGMENT_BYTES + 1234)  # five full segments and a short final one


@pytest.mark.parametrize(
    "size", [0, 1, SEGMENT_BYTES - 1, SEGMENT_BYTES, SEGMENT_BYTES + 1, 3 * 1024 * 1024 + 5]
)
def test_documents_of_any_size_round_trip_with_size_and_digest(size: int) -> None:
    plaintext = os.urandom(size)
    key, context = new_data_key(), document_context(1, 2)
    reader = EncryptingReader(io.BytesIO(plaintext), key, context)

    ciphertext = b"".join(iter(lambda: reader.read(100_000), b""))

    assert reader.finished
    assert reader.plaintext_size == size
    assert reader.plaintext_sha256 == hashlib.sha256(plaintext).hexdigest()
    assert len(ciphertext) == ciphertext_size(size)
    assert size < 16 or plaintext[:16] not in ciphertext
    released, error = decrypt_collecting(ciphertext, key, context, plaintext)
    assert error is None
    assert released == plaintext


@pytest.mark.parametrize("asked", [1, 1000, 16_400, 65_536, 1_000_000])
def test_reads_never_exceed_the_size_asked_and_only_the_end_is_empty(asked: int) -> None:
    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            return super().read(min(size, 999) if size is not None and size >= 0 else 999)

    plaintext = os.urandom(200_000)
    key, context = new_data_key(), document_context(1, 2)
    reader = EncryptingReader(Trickle(plaintext), key, context)

    chunks = list(iter(lambda: reader.read(asked), b""))

    assert all(0 < len(chunk) <= asked for chunk in chunks)
    assert reader.read(asked) == b""
    ciphertext = b"".join(chunks)
    assert len(ciphertext) == ciphertext_size(200_000)
    assert decrypt_collecting(ciphertext, key, context, plaintext) == (plaintext, None)


def test_read_without_a_size_returns_the_whole_ciphertext() -> None:
    reader = EncryptingReader(io.BytesIO(b"abc"), new_data_key(), document_context(1, 2))

    assert len(reader.read()) == ciphertext_size(3)
    assert reader.read() == b""


def test_the_digest_is_not_available_before_the_end() -> None:
    reader = EncryptingReader(io.BytesIO(b"x" * 100_000), new_data_key(), document_context(1, 2))
    reader.read(10)

    with pytest.raises(RuntimeError):
        _ = reader.plaintext_sha256


def test_the_same_document_encrypts_differently_each_time() -> None:
    key, context = new_data_key(), document_context(1, 2)

    assert encrypt(b"same", key, context) != encrypt(b"same", key, context)


def test_a_flipped_byte_fails_and_nothing_from_the_bad_segment_is_released(document: bytes) -> None:
    key, context = new_data_key(), document_context(1, 2)
    ciphertext = bytearray(encrypt(document, key, context))
    ciphertext[HEADER + 2 * SEALED_SEGMENT + 100] ^= 0x01  # inside the third segment

    released, error = decrypt_collecting(bytes(ciphertext), key, context, document)

    assert isinstance(error, DecryptionFailed)
    assert released == document[: 2 * SEGMENT_BYTES]


@pytest.mark.parametrize("position", ["header", "tag", "last byte"])
def test_damage_anywhere_is_detected(document: bytes, position: str) -> None:
    key, context = new_data_key(), document_context(1, 2)
    ciphertext = bytearray(encrypt(document, key, context))
    offset = {"header": 3, "tag": HEADER + SEALED_SEGMENT - 1, "last byte": len(ciphertext) - 1}[position]
    ciphertext[offset] ^= 0x80

    released, error = decrypt_collecting(bytes(ciphertext), key, context, document)

    assert isinstance(error, DecryptionFailed)
    assert document.startswith(released)
    assert len(released) < len(document)


def test_a_truncated_object_fails_and_its_final_segment_is_never_released(document: bytes) -> None:
    key, context = new_data_key(), document_context(1, 2)
    ciphertext = encrypt(document, key, context)

    for cut in (len(ciphertext) - 1, HEADER + 5 * SEALED_SEGMENT, HEADER + 3 * SEALED_SEGMENT + 9, 30, 0):
        released, error = decrypt_collecting(ciphertext[:cut], key, context, document)

        assert isinstance(error, DecryptionFailed), cut
        # Whole authenticated segments may have been released; never the document's end.
        assert len(released) % SEGMENT_BYTES == 0
        assert document.startswith(released)
        assert len(released) < len(document)


def test_trailing_bytes_after_the_final_segment_fail(document: bytes) -> None:
    key, context = new_data_key(), document_context(1, 2)

    _, error = decrypt_collecting(encrypt(document, key, context) + b"\x00", key, context, document)

    assert isinstance(error, DecryptionFailed)


@pytest.mark.parametrize("damage", ["swap", "drop", "duplicate"])
def test_reordered_dropped_or_repeated_segments_fail_at_the_first_one_out_of_place(
    document: bytes, damage: str
) -> None:
    key, context = new_data_key(), document_context(1, 2)
    ciphertext = encrypt(document, key, context)
    header, body = ciphertext[:HEADER], ciphertext[HEADER:]
    segments = [body[i : i + SEALED_SEGMENT] for i in range(0, len(body), SEALED_SEGMENT)]
    if damage == "swap":
        segments[1], segments[2] = segments[2], segments[1]
    elif damage == "drop":
        del segments[1]
    else:
        segments.insert(1, segments[0])

    released, error = decrypt_collecting(header + b"".join(segments), key, context, document)

    assert isinstance(error, DecryptionFailed)
    assert released == document[:SEGMENT_BYTES]


def test_ciphertext_copied_onto_another_document_fails(document: bytes) -> None:
    key = new_data_key()
    ciphertext = encrypt(document, key, document_context(41, 7))

    for other in (document_context(41, 8), document_context(42, 7)):
        released, error = decrypt_collecting(ciphertext, key, other, document)

        assert isinstance(error, DecryptionFailed)
        assert released == b""


def test_the_wrong_data_key_fails(document: bytes) -> None:
    context = document_context(1, 2)
    ciphertext = encrypt(document, new_data_key(), context)

    released, error = decrypt_collecting(ciphertext, new_data_key(), context, document)

    assert isinstance(error, DecryptionFailed)
    assert released == b""


def test_a_recorded_size_or_digest_that_differs_fails_before_the_end_is_released(document: bytes) -> None:
    key, context = new_data_key(), document_context(1, 2)
    ciphertext = encrypt(document, key, context)
    good_digest = hashlib.sha256(document).hexdigest()

    for size, digest in ((len(document) + 1, good_digest), (len(document), "0" * 64)):
        released = bytearray()
        with pytest.raises(IntegrityMismatch):
            for piece in decrypt_stream(
                pieces(ciphertext), key, context, expected_size=size, expected_sha256=digest
            ):
                released += piece
        assert len(released) == 5 * SEGMENT_BYTES  # the final 1234 bytes were held back

    with pytest.raises(IntegrityMismatch, match="longer"):
        list(decrypt_stream(pieces(ciphertext), key, context, expected_size=100, expected_sha256=good_digest))


@pytest.mark.parametrize(
    ("transfer_id", "document_id"), [("1/document:2", 3), ("1", "2/x"), ("", 1), (1, "a:b"), (True, 1)]
)
def test_ids_that_could_make_two_contexts_collide_are_refused(
    transfer_id: int | str, document_id: int | str
) -> None:
    with pytest.raises(ValueError):
        document_context(transfer_id, document_id)


def test_contexts_have_the_documented_shape() -> None:
    assert document_context(41, "7") == b"handover/v1/transfer:41/document:7"
    assert document_key_context(organisation_id=3, transfer_id=41, document_id=7) == {
        "purpose": "handover-document-key/v1",
        "organisation": "3",
        "transfer": "41",
        "document": "7",
    }


def test_only_32_byte_data_keys_are_accepted() -> None:
    with pytest.raises(ValueError):
        EncryptingReader(io.BytesIO(b""), b"k" * 16, document_context(1, 2))
    with pytest.raises(ValueError):
        list(decrypt_stream([b""], b"k" * 16, b"c", expected_size=0, expected_sha256=""))
