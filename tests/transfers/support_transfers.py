"""Helpers for the transfer attack and fault tests: raw multipart bodies, what the store and the
database hold, the audit trail, and a transfer already delivered to a designated teacher."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from portal.extensions import db
from portal.models import AuditEvent, Document, DownloadLink, Notification, Transfer
from tests.support import Factory, csrf_token
from tests.transfers.helpers import PDF_BYTES, World, create_draft, make_world, send, signed_in, upload

BOUNDARY = "handover-test-boundary-7d1f"
OBJECT_KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{32}")


# --- what is stored ---------------------------------------------------------------------------


def objects_dir(app: Flask) -> Path:
    """The local object store's directory (the default ``file://`` store in tests)."""
    return Path(app.instance_path) / "objects"


def stored_objects(app: Flask) -> list[Path]:
    """Every object file in the store, leaving out the ``.tmp`` directory."""
    root = objects_dir(app)
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.relative_to(root).parts)


def temp_files(app: Flask) -> list[Path]:
    """Files left in the store's ``.tmp`` directory (uploads in progress or abandoned)."""
    folder = objects_dir(app) / ".tmp"
    return sorted(folder.iterdir()) if folder.exists() else []


def document_rows(app: Flask, transfer_id: int | None = None) -> list[dict[str, Any]]:
    """Document rows (reservations included) as plain dicts."""
    with app.app_context():
        query = select(Document).order_by(Document.id)
        if transfer_id is not None:
            query = query.where(Document.transfer_id == transfer_id)
        return [_as_dict(row) for row in db.session.scalars(query)]


def transfer_row(app: Flask, transfer_id: int) -> dict[str, Any]:
    """Every column of a transfer."""
    with app.app_context():
        transfer = db.session.get(Transfer, transfer_id)
        assert transfer is not None
        return _as_dict(transfer)


def count_rows(
    app: Flask, model: type[Transfer] | type[Document] | type[DownloadLink] | type[Notification]
) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def notification_rows(app: Flask, kind: str | None = None) -> list[dict[str, Any]]:
    with app.app_context():
        query = select(Notification).order_by(Notification.id)
        if kind is not None:
            query = query.where(Notification.kind == kind)
        return [_as_dict(row) for row in db.session.scalars(query)]


def audit_rows(
    app: Flask, action: str | None = None, *, outcome: str | None = None, object_id: int | str | None = None
) -> list[dict[str, Any]]:
    """Audit events in chain order, filtered by action, outcome and object id."""
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.sequence)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        if outcome is not None:
            query = query.where(AuditEvent.outcome == outcome)
        if object_id is not None:
            query = query.where(AuditEvent.object_id == str(object_id))
        return [_as_dict(row) for row in db.session.scalars(query)]


def _as_dict(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in type(row).__table__.columns}


# --- raw uploads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePart:
    """The file part of a multipart body; ``disposition`` overrides the whole header value."""

    content: bytes
    filename: str = "document.pdf"
    disposition: bytes | None = None


def multipart_body(fields: Sequence[tuple[str, str | bytes]], file: FilePart | None) -> bytes:
    """A multipart/form-data body with ``fields`` in order, then the file (as browsers send the form)."""
    out = bytearray()
    for name, value in fields:
        raw = value if isinstance(value, bytes) else value.encode()
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += raw + b"\r\n"
    if file is not None:
        disposition = file.disposition or f'form-data; name="file"; filename="{file.filename}"'.encode()
        out += f"--{BOUNDARY}\r\n".encode() + b"Content-Disposition: " + disposition + b"\r\n"
        out += b"Content-Type: application/octet-stream\r\n\r\n" + file.content + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


def post_raw_upload(client: FlaskClient, transfer_id: int, body: bytes) -> TestResponse:
    return client.post(
        f"/transfers/{transfer_id}/documents",
        data=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )


def page_token(client: FlaskClient, transfer_id: int) -> str:
    """The CSRF token of the client's session, read from the transfer's page."""
    return csrf_token(client.get(f"/transfers/{transfer_id}"))


def session_token(client: FlaskClient) -> str:
    """The CSRF token of the client's session, read from the start page."""
    home = client.get("/")
    assert home.status_code == 200
    return csrf_token(home)


def flashed_page(client: FlaskClient, response: TestResponse) -> str:
    """Follow a redirect and return the page it shows (with any flashed message)."""
    assert response.status_code == 302, response.status_code
    return client.get(response.headers["Location"]).get_data(as_text=True)


def flashed(client: FlaskClient, response: TestResponse, category: str | None = None) -> str:
    """The messages flashed by the request that gave ``response`` (a redirect), one a line.

    Read from the session, not from the page, so the assertion does not depend on the markup and
    cannot be satisfied by text that is always on the page (such as the upload form's hint).
    """
    assert response.status_code == 302, response.status_code
    with client.session_transaction() as session:
        messages = list(session.get("_flashes", []))
    return "\n".join(text for kind, text in messages if category is None or kind == category)


# --- a delivered transfer -----------------------------------------------------------------------


@dataclass
class Delivered:
    """A transfer sent to ``world.teacher`` with one stored document."""

    world: World
    transfer_id: int
    document_id: int
    sender: FlaskClient
    teacher: FlaskClient


def draft_with_document(
    app: Flask, factory: Factory, *, content: bytes = PDF_BYTES, filename: str = "Report.pdf"
) -> Delivered:
    """A draft with one stored document (``teacher`` is signed in but cannot see it yet)."""
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    assert upload(sender, transfer_id, content, filename).status_code == 302
    documents = document_rows(app, transfer_id)
    assert len(documents) == 1 and documents[0]["stored_at"] is not None, documents
    return Delivered(world, transfer_id, documents[0]["id"], sender, signed_in(app, world.teacher))


def delivered_transfer(
    app: Flask, factory: Factory, *, content: bytes = PDF_BYTES, filename: str = "Report.pdf"
) -> Delivered:
    """A transfer sent to the receiving school's designated teacher, not yet opened."""
    made = draft_with_document(app, factory, content=content, filename=filename)
    assert send(made.sender, made.transfer_id).status_code == 302
    assert transfer_row(app, made.transfer_id)["status"].value == "sent"
    return made


def issue_link(client: FlaskClient, transfer_id: int, document_id: int) -> str:
    """Ask for a download link as the client's user; returns its path (``/transfers/download/…``)."""
    token = page_token(client, transfer_id)
    response = client.post(
        f"/transfers/{transfer_id}/documents/{document_id}/link", data={"csrf_token": token}
    )
    assert response.status_code == 302, response.status_code
    location = response.headers["Location"]
    assert "/transfers/download/" in location
    return location
