"""Demo transfers for `seed-demo`, so a newcomer sees every state and an overdue clock at once."""

from __future__ import annotations

import io
from datetime import timedelta

from portal.crypto.wrapping import KeyWrapper
from portal.models import DocumentCategory, Organisation, User, utcnow
from portal.models.base import DbSession, today_in_england
from portal.storage import ObjectStore
from portal.transfers import documents, service

# (initials, days since leaving, days since sending or None for a draft, looked after, documents)
DEMO_TRANSFERS = (
    (
        "AB",
        40,
        20,  # well past its 15-school-day deadline, yet not expired
        True,
        ((DocumentCategory.COMMON_TRANSFER_FILE, "ctf.xml"), (DocumentCategory.PEP, "pep.pdf")),
    ),
    ("CD", 3, 1, True, ((DocumentCategory.CHILD_PROTECTION, "cp-file.pdf"),)),
    ("EF", 12, 2, False, ((DocumentCategory.EDUCATIONAL_RECORD, "record.pdf"),)),
    ("GH", 5, None, True, ((DocumentCategory.PEP, "pep.pdf"),)),
)


def _content(filename: str, initials: str) -> bytes:
    if filename.endswith(".xml"):
        return f'<?xml version="1.0"?>\n<CTfile><Header><DocumentName>Demo CTF {initials}</DocumentName></Header></CTfile>\n'.encode()
    return b"%PDF-1.4\n% Handover demo document for " + initials.encode() + b"\n%%EOF\n"


def create_demo_transfers(
    session: DbSession,
    *,
    sender: User,
    receiving_school: Organisation,
    authority: Organisation,
    store: ObjectStore,
    wrapper: KeyWrapper,
    public_base_url: str,
) -> int:
    """Create the demo transfers (encrypted like any other); returns how many."""
    today = today_in_england()
    for initials, left_days_ago, sent_days_ago, looked_after, files in DEMO_TRANSFERS:
        transfer = service.create_draft(
            session,
            sender=sender,
            receiving_school=receiving_school,
            child=service.ChildDetails(
                initials=initials,
                date_of_birth=today.replace(year=today.year - 11),
                upn=None,
                looked_after=looked_after,
                left_on=today - timedelta(days=left_days_ago),
            ),
            responsible_authority=authority,
            note="Demo transfer: not a real child.",
        )
        session.commit()
        for category, filename in files:
            documents.store_document(
                session,
                store=store,
                wrapper=wrapper,
                transfer=transfer,
                uploader_id=sender.id,
                category=category,
                upload=documents.UploadedFile(filename, io.BytesIO(_content(filename, initials))),
            )
        if sent_days_ago is not None:
            service.send(
                session,
                transfer,
                expiry_days=receiving_school.max_transfer_days,
                public_base_url=public_base_url,
            )
            # Age the demo so clocks show: as if it had been sent that many days ago.
            shift = timedelta(days=sent_days_ago)
            transfer.sent_at = utcnow() - shift
            if transfer.expires_at is not None:
                transfer.expires_at -= shift
        session.commit()
    return len(DEMO_TRANSFERS)
