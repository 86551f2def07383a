"""Storage faults through the app (SECURITY.md items 44, 49, 53, 55): an unreachable object store or
key service, a database commit that fails after the object was written, a damaged object, and the
sweeper that removes what crashed uploads leave behind."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from portal import create_app
from portal.crypto.errors import DecryptionFailed, KeyServiceUnavailable
from portal.crypto.wrapping import KeyWrapper, WrappedKey
from portal.extensions import db
from portal.models import Document, DocumentCategory, utcnow
from portal.storage import LocalDirectoryStore, ReadableStream, new_object_key
from tests.support import Factory
from tests.transfers.helpers import PDF_BYTES, create_draft, make_world, signed_in, upload
from tests.transfers.support_smtp import free_port
from tests.transfers.support_transfers import (
    audit_rows,
    delivered_transfer,
    document_rows,
    issue_link,
    notification_rows,
    objects_dir,
    stored_objects,
    temp_files,
    transfer_row,
)


def _refused_upload_left_nothing(app: Flask, transfer_id: int, reason: str) -> None:
    assert document_rows(app, transfer_id) == []
    assert transfer_row(app, transfer_id)["status"].value == "draft"
    refused = audit_rows(app, "document.upload", outcome="failure", object_id=transfer_id)
    assert [row["details"] for row in refused] == [f'{{"reason":"{reason}"}}']
    assert audit_rows(app, "document.upload", outcome="success") == []


# --- upload faults ------------------------------------------------------------------------------


@pytest.fixture
def unreachable_s3(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Flask:
    """The app with an S3 store whose endpoint refuses connections."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIATESTTESTTESTTEST",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key-not-real",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    environ["PORTAL_STORAGE_URL"] = (
        f"s3://handover-test?endpoint_url=http://127.0.0.1:{free_port()}&region=eu-west-2"
        "&max_attempts=1&connect_timeout=1"
    )
    return create_app(environ)


def test_an_unreachable_object_store_gives_a_clear_503_and_the_transfer_stays_a_draft(unreachable_s3):
    app = unreachable_s3
    factory = Factory(app)
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)

    response = upload(sender, transfer_id, PDF_BYTES, "Plan.pdf")

    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "could not be reached" in page and "nothing was stored" in page
    assert "handover-test" not in page and "127.0.0.1" not in page and "Traceback" not in page
    _refused_upload_left_nothing(app, transfer_id, "storage_unavailable")
    with app.app_context():
        db.engine.dispose()


class _ArmingStore(LocalDirectoryStore):
    """The local store; it calls ``after_put`` once an object has been written."""

    def __init__(self, root: str, after_put: Any) -> None:
        super().__init__(root)
        self.after_put = after_put

    def put(self, key: str, stream: ReadableStream) -> int:
        written = super().put(key, stream)
        self.after_put()
        return written


def test_a_database_failure_after_the_object_is_written_deletes_the_object(app, factory, monkeypatch):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    armed = {"commit_fails": False}
    real_commit = Session.commit

    def commit(self: Session) -> None:
        if armed["commit_fails"]:
            armed["commit_fails"] = False
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        real_commit(self)

    monkeypatch.setattr(Session, "commit", commit)
    app.extensions["portal.object_store"] = _ArmingStore(
        str(objects_dir(app)), lambda: armed.update(commit_fails=True)
    )

    response = upload(sender, transfer_id, PDF_BYTES, "Plan.pdf")

    assert armed["commit_fails"] is False, "the commit after the object was written was never tried"
    assert response.status_code == 503
    assert "could not be recorded" in response.get_data(as_text=True)
    assert stored_objects(app) == [] and temp_files(app) == []
    _refused_upload_left_nothing(app, transfer_id, "database_unavailable")


class _KeyServiceDown:
    """A key wrapper whose service is unreachable (as AWS KMS can be)."""

    algorithm = "aws-kms-symmetric-default"
    current_key_id = "arn:aws:kms:eu-west-2:000000000000:key/test"

    def wrap(self, data_key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        raise KeyServiceUnavailable("the key service could not be reached")

    def unwrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        raise KeyServiceUnavailable("the key service could not be reached")

    def needs_rewrap(self, wrapped_key: WrappedKey) -> bool:
        return False

    def rewrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> WrappedKey:
        raise KeyServiceUnavailable("the key service could not be reached")


def test_an_unreachable_key_service_on_upload_gives_503_and_keeps_no_object(app, factory):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    down: KeyWrapper = _KeyServiceDown()
    app.extensions["portal.key_wrapper"] = down

    response = upload(sender, transfer_id, PDF_BYTES, "Plan.pdf")

    assert response.status_code == 503
    assert stored_objects(app) == [] and temp_files(app) == []
    _refused_upload_left_nothing(app, transfer_id, "key_service_unavailable")


def test_an_unreachable_key_service_on_download_fails_closed_without_calling_the_document_damaged(
    app, factory
):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)
    app.extensions["portal.key_wrapper"] = _KeyServiceDown()

    response = made.teacher.get(link)

    assert response.status_code == 503
    assert PDF_BYTES not in response.data
    (document,) = document_rows(app, made.transfer_id)
    assert document["integrity_failed_at"] is None
    assert audit_rows(app, "document.download", outcome="success") == []
    assert audit_rows(app, "document.download", outcome="error")


# --- damaged objects ----------------------------------------------------------------------------


def _flip_byte(app: Flask, transfer_id: int, offset: int) -> None:
    (document,) = document_rows(app, transfer_id)
    path = objects_dir(app) / document["object_key"]
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_stored_object_fails_the_download_before_any_byte_is_sent(app, factory):
    made = delivered_transfer(app, factory)
    made.teacher.get(f"/transfers/{made.transfer_id}")
    _flip_byte(app, made.transfer_id, 56 + 100)  # inside the first (and only) chunk

    response = made.teacher.get(issue_link(made.teacher, made.transfer_id, made.document_id))

    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Content-Disposition" not in response.headers
    assert PDF_BYTES[:200] not in response.data
    assert "could not be checked" in response.get_data(as_text=True)
    (document,) = document_rows(app, made.transfer_id)
    assert document["integrity_failed_at"] is not None
    assert len(audit_rows(app, "document.integrity_failure", object_id=made.document_id)) == 1
    # Nothing was downloaded, so nothing says it was.
    assert audit_rows(app, "document.download", outcome="success") == []
    row = transfer_row(app, made.transfer_id)
    assert row["status"].value == "opened" and row["first_downloaded_at"] is None
    (told,) = notification_rows(app, "document_damaged")
    assert told["to_address"] == made.world.sender.email
    assert "Report" not in told["body"] and "JS" not in told["subject"]


def test_a_flipped_byte_later_in_a_large_object_aborts_the_stream_and_marks_the_document(app, factory):
    # 2.5 MB: the object is read 1 MiB at a time, so the damage at 2 MB is met after the first
    # megabyte has been verified and sent.
    content = b"%PDF-1.7\n" + bytes(range(256)) * 10_000
    made = delivered_transfer(app, factory, content=content)
    _flip_byte(app, made.transfer_id, 2_000_000)

    response = made.teacher.get(issue_link(made.teacher, made.transfer_id, made.document_id))
    assert response.status_code == 200  # headers went with the first, good, chunk
    with pytest.raises(DecryptionFailed):
        response.get_data()  # the stream is aborted, never ended cleanly with a short file
    response.close()

    (document,) = document_rows(app, made.transfer_id)
    assert document["integrity_failed_at"] is not None
    (failure,) = audit_rows(app, "document.integrity_failure", object_id=made.document_id)
    assert failure["actor_user_id"] == made.world.teacher.user_id
    assert notification_rows(app, "document_damaged")


def test_a_missing_object_fails_the_download_as_damaged(app, factory):
    made = delivered_transfer(app, factory)
    (document,) = document_rows(app, made.transfer_id)
    (objects_dir(app) / document["object_key"]).unlink()

    response = made.teacher.get(issue_link(made.teacher, made.transfer_id, made.document_id))

    assert response.status_code == 500
    assert document_rows(app, made.transfer_id)[0]["integrity_failed_at"] is not None


# --- the sweeper --------------------------------------------------------------------------------


def _abandoned_reservation(app: Flask, transfer_id: int, uploader_id: int) -> tuple[int, str]:
    """A document row whose upload never finished, with the object its crash left behind."""
    key = new_object_key()
    with app.app_context():
        document = Document(
            transfer_id=transfer_id,
            category=DocumentCategory.PEP,
            display_filename="Never finished.pdf",
            content_type="application/pdf",
            object_key=key,
            content_format="cobblestone256/v1",
            uploaded_by_id=uploader_id,
            uploaded_at=utcnow() - timedelta(hours=1),
        )
        db.session.add(document)
        db.session.commit()
        document_id = document.id
    LocalDirectoryStore(str(objects_dir(app))).put(key, io.BytesIO(b"partial ciphertext"))
    return document_id, key


def test_the_sweeper_removes_an_orphan_object_and_an_abandoned_reservation_and_nothing_else(app, factory):
    made = delivered_transfer(app, factory)
    store = LocalDirectoryStore(str(objects_dir(app)))
    orphan = new_object_key()
    store.put(orphan, io.BytesIO(b"ciphertext of a row that is gone"))
    reservation_id, reservation_key = _abandoned_reservation(app, made.transfer_id, made.world.sender.user_id)
    crashed_upload = objects_dir(app) / ".tmp" / "put-killed-mid-upload"
    crashed_upload.write_bytes(b"ciphertext written before the worker was killed")
    an_hour_ago = time.time() - 3600
    os.utime(crashed_upload, (an_hour_ago, an_hour_ago))
    runner = app.test_cli_runner()

    cautious = runner.invoke(args=["storage", "sweep"])  # default grace: 24 hours
    assert cautious.exit_code == 0, cautious.output
    assert store.exists(orphan) and store.exists(reservation_key) and crashed_upload.exists()

    result = runner.invoke(args=["storage", "sweep", "--grace-hours", "0"])

    assert result.exit_code == 0, result.output
    assert "Removed 1 orphaned object(s) and 1 unfinished upload(s), and 1 temporary file(s)" in result.output
    assert not store.exists(orphan) and not store.exists(reservation_key)
    assert temp_files(app) == []
    assert [row["id"] for row in document_rows(app)] == [made.document_id]
    assert reservation_id not in [row["id"] for row in document_rows(app)]
    assert audit_rows(app, "storage.sweep")
    download = made.teacher.get(issue_link(made.teacher, made.transfer_id, made.document_id))
    assert download.status_code == 200 and download.data == PDF_BYTES
    again = runner.invoke(args=["storage", "sweep", "--grace-hours", "0"])
    assert "Removed 0 orphaned object(s) and 0 unfinished upload(s), and 0 temporary" in again.output
