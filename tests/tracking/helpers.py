"""Helpers for tracking tests: transfers written straight to the database (fast), and the term calendar."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from portal.extensions import db
from portal.models import (
    AuditEvent,
    Document,
    DocumentCategory,
    Role,
    Transfer,
    TransferRecipient,
    TransferStatus,
)
from portal.tracking import calendar, ics
from tests.support import Account, Factory, Org

TERM_DATES = Path(__file__).parent / "data" / "northshire-term-dates-2026-27.ics"


@dataclass
class Area:
    """An authority with two schools and its people, plus a second authority that must see nothing."""

    authority: Org
    oak: Org
    river: Org
    sender: Account
    teacher: Account
    caseworker: Account
    other_authority: Org
    other_caseworker: Account


def make_area(factory: Factory) -> Area:
    authority = factory.local_authority("Northshire County Council")
    oak = factory.school("Oak Primary", authority)
    river = factory.school("River Academy", authority)
    other = factory.local_authority("Southshire Council")
    return Area(
        authority,
        oak,
        river,
        factory.account(oak, Role.SCHOOL_STAFF),
        factory.account(river, Role.DESIGNATED_TEACHER),
        factory.account(authority, Role.CASEWORKER),
        other,
        factory.account(other, Role.CASEWORKER),
    )


def add_transfer(
    app: Flask,
    area: Area,
    *,
    left_on: date,
    categories: tuple[DocumentCategory, ...] = (DocumentCategory.COMMON_TRANSFER_FILE,),
    status: TransferStatus = TransferStatus.SENT,
    initials: str = "JS",
    upn: str | None = None,
    date_of_birth: date = date(2015, 4, 1),
    filename: str = "record.pdf",
    confirmed_at: datetime | None = None,
    authority: Org | None = None,
    sending: Org | None = None,
) -> int:
    """A transfer with stored documents, straight into the database; returns its id."""
    with app.app_context():
        transfer = Transfer(
            reference=f"HO-{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}",
            status=status,
            sending_organisation_id=(sending or area.oak).id,
            receiving_organisation_id=area.river.id,
            responsible_authority_id=(authority or area.authority).id,
            created_by_id=area.sender.user_id,
            child_initials=initials,
            child_date_of_birth=date_of_birth,
            child_upn=upn,
            looked_after=True,
            left_on=left_on,
            sent_at=None if status is TransferStatus.DRAFT else datetime(2026, 10, 1, 9, tzinfo=UTC),
            receipt_confirmed_at=confirmed_at,
        )
        db.session.add(transfer)
        db.session.flush()
        for n, category in enumerate(categories):
            content = f"{transfer.id}-{n}".encode()
            db.session.add(
                Document(
                    transfer_id=transfer.id,
                    category=category,
                    display_filename=filename,
                    content_type="application/pdf",
                    plaintext_size=len(content),
                    plaintext_sha256=hashlib.sha256(content).hexdigest(),
                    object_key=secrets.token_hex(16),
                    content_format="test",
                    uploaded_by_id=area.sender.user_id,
                    stored_at=datetime(2026, 10, 1, 9, tzinfo=UTC),
                )
            )
        if status not in (TransferStatus.DRAFT, TransferStatus.AWAITING_DESIGNATED_TEACHER):
            db.session.add(TransferRecipient(transfer_id=transfer.id, user_id=area.teacher.user_id))
        db.session.commit()
        return transfer.id


def import_term_dates(app: Flask, authority: Org) -> None:
    """Give the authority the 2026-27 term calendar of tests/tracking/data."""
    with app.app_context():
        parsed = ics.parse_term_dates(TERM_DATES.read_bytes())
        calendar.replace_calendar(db.session, authority.id, parsed.runs, user=None, source="ics")
        db.session.commit()


def actions(app: Flask) -> list[str]:
    """Every audit action so far, in order."""
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.sequence)))


def denied(app: Flask) -> list[tuple[int | None, str | None, str | None]]:
    """(actor, object type, object id) of each access.denied event."""
    with app.app_context():
        rows = db.session.execute(
            select(AuditEvent.actor_user_id, AuditEvent.object_type, AuditEvent.object_id)
            .where(AuditEvent.action == "access.denied")
            .order_by(AuditEvent.sequence)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def reference_of(app: Flask, transfer_id: int) -> str:
    """A transfer's reference (as pages, exports and e-mails show it)."""
    with app.app_context():
        transfer = db.session.get(Transfer, transfer_id)
        assert transfer is not None
        return transfer.reference
