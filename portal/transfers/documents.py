"""Storing and reading a transfer's documents: sniff, encrypt while streaming, wrap the key, record.

Order of work, so that nothing is ever recorded as stored unless it is (ASVS 2.3.3):
1. a document row is committed *without* ``stored_at`` (a reservation: it names the object key);
2. the content streams through encryption into the store (no database lock is held meanwhile);
3. the wrapped key, size and SHA-256 are recorded with ``stored_at`` in one commit.
If step 2 fails the object store has already discarded the partial object and the reservation is
deleted; if step 3 fails the object is deleted (a compensating action). A crash between steps
leaves a reservation that ``flask --app portal storage sweep`` removes, with any object, after a
grace period. Listings only ever show documents with ``stored_at`` set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from portal import audit, notifications
from portal.audit import Outcome
from portal.crypto.envelope import (
    CONTENT_FORMAT,
    EncryptingReader,
    decrypt_stream,
    document_context,
    document_key_context,
    new_data_key,
)
from portal.crypto.wrapping import KeyWrapper, WrappedKey
from portal.models import Document, DocumentCategory, Transfer, utcnow
from portal.models.base import DbSession
from portal.storage import ObjectStore, new_object_key
from portal.storage.base import ReadableStream, iter_chunks
from portal.transfers.filetypes import SNIFF_BYTES, FileKind, identify, sanitise_filename

log = logging.getLogger(__name__)


class DocumentUnavailable(Exception):
    """The document's content can no longer be read (crypto-shredded or never stored)."""


@dataclass(frozen=True)
class UploadedFile:
    """What the view hands over: the name the browser sent and a stream of the content."""

    filename: str
    stream: ReadableStream


class _PrefixedReader:
    """The sniffed head, then the rest of the stream."""

    def __init__(self, head: bytes, rest: ReadableStream) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)


def _read_head(stream: ReadableStream) -> bytes:
    head = b""
    while len(head) < SNIFF_BYTES:
        piece = stream.read(SNIFF_BYTES - len(head))
        if not piece:
            break
        head += piece
    return head


def store_document(
    session: DbSession,
    *,
    store: ObjectStore,
    wrapper: KeyWrapper,
    transfer: Transfer,
    uploader_id: int,
    category: DocumentCategory,
    upload: UploadedFile,
) -> Document:
    """Encrypt and store one document of ``transfer``; raises ``FileRefused``, ``UploadTooLarge``,
    ``StorageError`` or a database error, and in every case leaves nothing recorded as stored."""
    head = _read_head(upload.stream)
    if not head:
        from portal.transfers.filetypes import FileRefused

        raise FileRefused("The file is empty. Choose the file again.")
    display_filename = sanitise_filename(upload.filename)
    # The type is checked against the name the recipient will see and save, not the raw one.
    kind: FileKind = identify(head, display_filename)
    document = Document(
        transfer_id=transfer.id,
        category=category,
        display_filename=display_filename,
        content_type=kind.content_type,
        object_key=new_object_key(),
        content_format=CONTENT_FORMAT,
        uploaded_by_id=uploader_id,
    )
    session.add(document)
    session.commit()  # the reservation (step 1)
    data_key = new_data_key()
    reader = EncryptingReader(
        _PrefixedReader(head, upload.stream), data_key, document_context(transfer.id, document.id)
    )
    object_key, document_id = document.object_key, document.id
    try:
        store.put(object_key, reader)
    except BaseException:
        _drop_reservation(session, document)
        raise
    try:
        wrapped = wrapper.wrap(data_key, context=_key_context(transfer, document))
        document.wrapped_key = wrapped.wrapped
        document.key_id = wrapped.key_id
        document.wrap_algorithm = wrapped.algorithm
        document.plaintext_size = reader.plaintext_size
        document.plaintext_sha256 = reader.plaintext_sha256
        document.stored_at = utcnow()
        audit.record(
            session,
            "document.upload",
            object_type="document",
            object_id=document.id,
            details={
                "transfer_id": transfer.id,
                "size": reader.plaintext_size,
                "sha256": reader.plaintext_sha256,
            },
        )
        session.commit()
    except BaseException:
        # Not recorded (the database or the key service failed): the object must not outlive it.
        session.rollback()
        log.warning("recording document %s failed; deleting its object", document_id)
        try:
            store.delete(object_key)
        except Exception:
            log.warning("object %s of an unrecorded upload not deleted; the sweeper will", object_key)
        _drop_reservation(session, document)
        raise
    return document


def _drop_reservation(session: DbSession, document: Document) -> None:
    identity = inspect(document).identity  # read without a query: the database may be what failed
    try:
        session.rollback()
        session.delete(document)
        session.commit()
    except SQLAlchemyError:
        # The sweeper removes reservations left behind; nothing here claims to be stored.
        session.rollback()
        log.warning("could not remove the reservation of document %s; the sweeper will", identity)


def _key_context(transfer: Transfer, document: Document) -> dict[str, str]:
    return document_key_context(
        organisation_id=transfer.sending_organisation_id, transfer_id=transfer.id, document_id=document.id
    )


def plaintext_chunks(store: ObjectStore, wrapper: KeyWrapper, document: Document) -> Iterator[bytes]:
    """The decrypted content, one authenticated chunk at a time; raises ``DecryptionFailed`` on tampering."""
    if (
        document.wrapped_key is None
        or document.stored_at is None
        or document.plaintext_size is None
        or document.plaintext_sha256 is None
        or document.key_id is None
        or document.wrap_algorithm is None
    ):
        raise DocumentUnavailable("the document's key has been destroyed or it was never stored")
    transfer = document.transfer
    data_key = wrapper.unwrap(
        WrappedKey(document.key_id, document.wrapped_key, document.wrap_algorithm),
        context=_key_context(transfer, document),
    )
    with store.open(document.object_key) as stream:
        yield from decrypt_stream(
            iter_chunks(stream),
            data_key,
            document_context(transfer.id, document.id),
            expected_size=document.plaintext_size,
            expected_sha256=document.plaintext_sha256,
        )


def shred_document(session: DbSession, store: ObjectStore, document: Document, *, reason: str) -> bool:
    """Crypto-shred: destroy the wrapped key in a committed transaction, then delete the object.

    Once the key is gone no copy of the object — old versions, backups — can be decrypted, so a
    failure to delete the object afterwards is logged, not raised; returns whether the object is
    gone, so a purge can come back for it (:func:`delete_object_of_shredded`).
    """
    if document.shredded_at is None:
        document.wrapped_key = None
        document.shredded_at = utcnow()
        audit.record(
            session,
            "document.shred",
            object_type="document",
            object_id=document.id,
            actor_user_id=None,
            details={"transfer_id": document.transfer_id, "reason": reason},
        )
        session.commit()
    return delete_object_of_shredded(store, document)


def delete_object_of_shredded(store: ObjectStore, document: Document) -> bool:
    """Delete a shredded document's object (again); True once it is gone. Deleting twice is harmless."""
    if document.shredded_at is None or document.wrapped_key is not None:
        raise ValueError("only a shredded document's object may be deleted")
    try:
        store.delete(document.object_key)
    except Exception:  # the key is gone: the object is unreadable whatever happens here
        log.warning("object of shredded document %s not deleted yet; the next purge retries", document.id)
        return False
    return True


def record_integrity_failure(
    session: DbSession, document: Document, *, actor: tuple[int, int] | None = None
) -> None:
    """Mark a document whose content failed authentication (or is lost), audit it, and the first
    time tell the person who sent it, so they can send the records again.

    ``actor`` (user id, organisation id) names who was downloading when the request's own
    objects can no longer be used (while a response streams); by default it is the current user.
    """
    session.rollback()
    first_time = document.integrity_failed_at is None
    document.integrity_failed_at = utcnow()
    audit.record(
        session,
        "document.integrity_failure",
        outcome=Outcome.ERROR,
        object_type="document",
        object_id=document.id,
        actor_user_id=actor[0] if actor else None,
        actor_organisation_id=actor[1] if actor else None,
        details={"transfer_id": document.transfer_id},
    )
    if first_time:
        transfer = document.transfer
        receiver = transfer.receiving_organisation.name
        notifications.queue(
            session,
            kind="document_damaged",
            to=transfer.created_by,
            transfer_id=transfer.id,
            subject=f"A document you sent could not be downloaded ({transfer.reference})",
            body=(
                f"A document you sent to {receiver} failed its integrity check when they tried to "
                "download it, so nothing was downloaded.\n\nPlease send the records again as a new "
                f"transfer.\n\nReference: {transfer.reference}\n"
            ),
        )
    session.commit()
