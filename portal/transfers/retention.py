"""Expiry, reminders and purging. Safe to run from cron at any frequency: every step is idempotent,
and an interrupted purge continues where it stopped (each document is shredded in its own commit)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from portal import audit, notifications
from portal.models import Transfer, TransferStatus, utcnow
from portal.models.base import DbSession
from portal.storage import ObjectStore
from portal.transfers import states
from portal.transfers.documents import delete_object_of_shredded, shred_document
from portal.transfers.service import (
    REMINDER_BEFORE_EXPIRY,
    active_caseworkers,
    deliver_waiting,
    designated_teachers,
)

log = logging.getLogger(__name__)
S = TransferStatus
_EXPIRABLE = states.IN_FLIGHT | {S.RECEIPT_CONFIRMED}


@dataclass(frozen=True)
class RetentionReport:
    """What a run did."""

    expired: int
    reminded: int
    purged_transfers: int
    shredded_documents: int


def expire_due(session: DbSession, public_base_url: str) -> int:
    """Expire transfers past their expiry; tell sender and caseworkers about those never opened."""
    now = utcnow()
    due = session.scalars(
        select(Transfer).where(Transfer.status.in_(_EXPIRABLE), Transfer.expires_at <= now)
    ).all()
    for transfer in due:
        unopened = transfer.status in (S.SENT, S.AWAITING_DESIGNATED_TEACHER)
        states.move(transfer, S.EXPIRED)
        transfer.expired_at = now
        audit.record(
            session,
            "transfer.expire",
            object_type="transfer",
            object_id=transfer.id,
            actor_user_id=None,
            details={"unopened": unopened},
        )
        if unopened:
            notifications.queue_each(
                session,
                [transfer.created_by, *active_caseworkers(session, transfer.responsible_authority_id)],
                kind="expired_unopened",
                transfer_id=transfer.id,
                subject=f"Records expired before they were opened ({transfer.reference})",
                body=(
                    f"Records sent to {transfer.receiving_organisation.name} expired before anyone opened "
                    f"them.\n\nReference: {transfer.reference}\n\nSign in to send them again: "
                    f"{public_base_url}/transfers/{transfer.id}\n"
                ),
            )
        session.commit()
    return len(due)


def send_expiry_reminders(session: DbSession, public_base_url: str) -> int:
    """Remind recipients 3 days before a delivered, unconfirmed transfer expires (once)."""
    now = utcnow()
    due = session.scalars(
        select(Transfer).where(
            Transfer.status.in_([S.SENT, S.OPENED, S.DOWNLOADED]),
            Transfer.expires_at <= now + REMINDER_BEFORE_EXPIRY,
            Transfer.expires_at > now,
            Transfer.expiry_reminder_sent_at.is_(None),
        )
    ).all()
    for transfer in due:
        notifications.queue_each(
            session,
            designated_teachers(session, transfer.receiving_organisation_id),
            kind="expiry_reminder",
            transfer_id=transfer.id,
            subject=f"Records from {transfer.sending_organisation.name} expire soon ({transfer.reference})",
            body=(
                f"Records sent to you by {transfer.sending_organisation.name} will expire in less than "
                f"3 days.\n\nReference: {transfer.reference}\n\nSign in to download them and confirm "
                f"receipt: {public_base_url}/transfers/{transfer.id}\n"
            ),
        )
        transfer.expiry_reminder_sent_at = now
        session.commit()
    return len(due)


def purge_ended(session: DbSession, store: ObjectStore) -> tuple[int, int]:
    """Crypto-shred the documents of expired and withdrawn transfers; keep metadata and history.

    A transfer is marked purged only once every one of its objects is gone: if the store refuses a
    delete, or the run is stopped midway, the next run finds the transfer again, skips the keys
    already destroyed and deletes what is left. Returns (transfers purged, documents shredded).
    """
    ended = session.scalars(
        select(Transfer).where(Transfer.status.in_([S.EXPIRED, S.REVOKED]), Transfer.purged_at.is_(None))
    ).all()
    purged = shredded = 0
    for transfer in ended:
        complete = True
        for document in transfer.documents:
            if document.shredded_at is None:
                gone = shred_document(session, store, document, reason=f"transfer_{transfer.status.value}")
                shredded += 1
            else:
                gone = delete_object_of_shredded(store, document)
            complete = complete and gone
        if not complete:
            log.warning("transfer %s: objects remain after shredding; the next purge retries", transfer.id)
            continue
        transfer.purged_at = utcnow()
        audit.record(
            session, "transfer.purge", object_type="transfer", object_id=transfer.id, actor_user_id=None
        )
        session.commit()
        purged += 1
    return purged, shredded


def deliver_all_waiting(session: DbSession, public_base_url: str) -> int:
    """Deliver every held transfer whose school now has a designated teacher."""
    school_ids = set(
        session.scalars(
            select(Transfer.receiving_organisation_id).where(Transfer.status == S.AWAITING_DESIGNATED_TEACHER)
        )
    )
    delivered = 0
    for school_id in sorted(school_ids):
        delivered += deliver_waiting(session, school_id, public_base_url)
        session.commit()
    return delivered
