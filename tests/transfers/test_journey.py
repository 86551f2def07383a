"""The whole journey over HTTP: send, notify, open, download, confirm, and the caseworker sees it."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Document, Notification, Transfer, TransferStatus
from tests.support import csrf_token
from tests.transfers.helpers import (
    PDF_BYTES,
    create_draft,
    make_world,
    request_download,
    send,
    signed_in,
    upload,
)


def test_records_go_from_sender_to_designated_teacher_who_downloads_and_confirms(app, factory):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    assert upload(sender, transfer_id, PDF_BYTES, "PEP autumn.pdf").status_code == 302
    assert send(sender, transfer_id).status_code == 302

    with app.app_context():
        transfer = db.session.get(Transfer, transfer_id)
        assert transfer is not None and transfer.status is TransferStatus.SENT
        document = db.session.scalars(select(Document).where(Document.transfer_id == transfer_id)).one()
        document_id = document.id
        notice = db.session.scalars(select(Notification)).one()
        assert notice.to_address == world.teacher.email
        # The reference is random letters and may contain "JS" itself; everything else must not.
        body_without_reference = notice.body.replace(transfer.reference, "")
        assert "JS" not in body_without_reference and "PEP autumn" not in notice.body

    teacher = signed_in(app, world.teacher)
    page = teacher.get(f"/transfers/{transfer_id}")
    assert page.status_code == 200 and "PEP autumn.pdf" in page.get_data(as_text=True)
    link = request_download(teacher, transfer_id, document_id)
    assert link.status_code == 302
    download = teacher.get(link.headers["Location"])
    assert download.status_code == 200
    assert download.data == PDF_BYTES
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''PEP%20autumn.pdf" in download.headers["Content-Disposition"]
    assert download.headers["Cache-Control"] == "no-store"
    with app.app_context():
        completed = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "document.download_complete")
        ).all()
        assert [(e.object_id, e.actor_user_id) for e in completed] == [
            (str(document_id), world.teacher.user_id)
        ]
    again = teacher.get(link.headers["Location"])
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)

    page = teacher.get(f"/transfers/{transfer_id}")
    confirmed = teacher.post(
        f"/transfers/{transfer_id}/confirm-receipt",
        data={"csrf_token": csrf_token(page), "comment": "Thanks"},
    )
    assert confirmed.status_code == 302

    caseworker = signed_in(app, world.caseworker)
    seen = caseworker.get(f"/transfers/{transfer_id}").get_data(as_text=True)
    assert "Receipt confirmed" in seen
    assert "PEP autumn.pdf" not in seen  # status and history, not contents
    assert re.search(r"Receipt confirmed</dt><dd>.*Thanks", seen, re.S)
