"""The life of a transfer: draft, send, deliver, open, download, confirm receipt, revoke, extend, expire.

Plain functions on a database session; each audits what it does and leaves committing to the
caller unless it says otherwise. Authorisation (who may call what on which transfer) is decided
in :mod:`portal.transfers.access` before these are called.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update

from portal import audit, notifications
from portal.models import (
    Document,
    DocumentCategory,
    DownloadLink,
    Organisation,
    Role,
    Transfer,
    TransferRecipient,
    TransferStatus,
    User,
    utcnow,
)
from portal.models.base import DbSession, today_in_england
from portal.transfers import states

S = TransferStatus
DEFAULT_LINK_MINUTES = 5
REMINDER_BEFORE_EXPIRY = timedelta(days=3)
# Child-protection files go only to designated teachers (the receiving role), never to general staff.
RECEIVING_ROLES = frozenset({Role.DESIGNATED_TEACHER})
_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class TransferError(Exception):
    """A request that cannot be carried out; the message is safe to show to the user."""


class DownloadLinkInvalid(Exception):
    """A download link that is unknown, used, expired, for someone else, or for a withdrawn document."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class ChildDetails:
    """What identifies the child, minimally."""

    initials: str
    date_of_birth: date
    upn: str | None
    looked_after: bool
    left_on: date


def new_reference() -> str:
    """A reference like ``HO-7K3M-Q2P9`` to quote in e-mails and on the phone."""
    chars = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(8))
    return f"HO-{chars[:4]}-{chars[4:]}"


def create_draft(
    session: DbSession,
    *,
    sender: User,
    receiving_school: Organisation,
    child: ChildDetails,
    responsible_authority: Organisation | None,
    note: str,
) -> Transfer:
    """Start a transfer from the sender's organisation. Nothing is delivered until :func:`send`."""
    if not receiving_school.is_school or not receiving_school.is_active:
        raise TransferError("Choose an open school to send the records to")
    if receiving_school.id == sender.organisation_id:
        raise TransferError("The receiving school must be a different school")
    if child.left_on > today_in_england():
        raise TransferError("The date the child left cannot be in the future")
    if child.left_on < child.date_of_birth:
        raise TransferError("The date the child left must be after their date of birth")
    transfer = Transfer(
        reference=new_reference(),
        sending_organisation_id=sender.organisation_id,
        receiving_organisation_id=receiving_school.id,
        responsible_authority_id=responsible_authority.id if responsible_authority else None,
        created_by_id=sender.id,
        child_initials=child.initials,
        child_date_of_birth=child.date_of_birth,
        child_upn=child.upn,
        looked_after=child.looked_after,
        left_on=child.left_on,
        note=note,
    )
    session.add(transfer)
    session.flush()
    audit.record(session, "transfer.create", object_type="transfer", object_id=transfer.id)
    return transfer


def stored_documents(transfer: Transfer) -> list[Document]:
    """The documents that are completely stored (reservations and failed uploads excluded)."""
    return [d for d in transfer.documents if d.stored_at is not None]


def designated_teachers(session: DbSession, school_id: int) -> list[User]:
    """The receiving school's active, enrolled designated teachers."""
    candidates = session.scalars(
        select(User).where(
            User.organisation_id == school_id, User.role.in_(RECEIVING_ROLES), User.is_active.is_(True)
        )
    ).all()
    return [user for user in candidates if user.is_enrolled]


def send(session: DbSession, transfer: Transfer, *, expiry_days: int, public_base_url: str) -> None:
    """Send a draft: deliver to the designated teachers, or hold it for the local authority if none."""
    if transfer.status is not S.DRAFT:
        raise TransferError("This transfer has already been sent")
    if not stored_documents(transfer):
        raise TransferError("Add at least one document before you send the records")
    now = utcnow()
    transfer.sent_at = now
    transfer.expires_at = now + timedelta(days=expiry_days)
    recipients = designated_teachers(session, transfer.receiving_organisation_id)
    if recipients:
        states.move(transfer, S.SENT)
        _deliver(session, transfer, recipients, public_base_url)
    else:
        states.move(transfer, S.AWAITING_DESIGNATED_TEACHER)
        _notify_holding_queue(session, transfer, public_base_url)
    audit.record(
        session,
        "transfer.send",
        object_type="transfer",
        object_id=transfer.id,
        details={"status": transfer.status.value, "documents": len(stored_documents(transfer))},
    )


def deliver_waiting(session: DbSession, school_id: int, public_base_url: str) -> int:
    """Deliver transfers held for a school that now has a designated teacher; returns how many."""
    recipients = designated_teachers(session, school_id)
    if not recipients:
        return 0
    # One past its expiry is left for the expiry job (which tells the sender it was never opened):
    # delivering it would hand out records the sender expects to be withdrawn by now.
    waiting = session.scalars(
        select(Transfer).where(
            Transfer.receiving_organisation_id == school_id,
            Transfer.status == S.AWAITING_DESIGNATED_TEACHER,
            Transfer.expires_at > utcnow(),
        )
    ).all()
    for transfer in waiting:
        states.move(transfer, S.SENT)
        _deliver(session, transfer, recipients, public_base_url)
        audit.record(
            session, "transfer.deliver", object_type="transfer", object_id=transfer.id, actor_user_id=None
        )
    return len(waiting)


def _deliver(session: DbSession, transfer: Transfer, recipients: list[User], public_base_url: str) -> None:
    transfer.delivered_at = utcnow()
    sender_name = transfer.sending_organisation.name
    for user in recipients:
        session.add(TransferRecipient(transfer_id=transfer.id, user_id=user.id))
        notifications.queue(
            session,
            kind="transfer_arrived",
            to=user,
            transfer_id=transfer.id,
            subject=f"Records have arrived from {sender_name} ({transfer.reference})",
            body=(
                f"{sender_name} has sent you records through Handover.\n\nReference: {transfer.reference}\n\n"
                f"Sign in to see them: {public_base_url}/transfers/incoming\n\n"
                "For your security, this e-mail does not say who the records are about.\n"
            ),
        )


def active_caseworkers(session: DbSession, authority_id: int | None) -> list[User]:
    """The caseworkers of a local authority's virtual school who can be told things."""
    if authority_id is None:
        return []
    return list(
        session.scalars(
            select(User).where(
                User.organisation_id == authority_id,
                User.role == Role.CASEWORKER,
                User.is_active.is_(True),
            )
        )
    )


def _notify_holding_queue(session: DbSession, transfer: Transfer, public_base_url: str) -> None:
    school = transfer.receiving_organisation.name
    notifications.queue_each(
        session,
        active_caseworkers(session, transfer.responsible_authority_id),
        kind="awaiting_designated_teacher",
        transfer_id=transfer.id,
        subject=f"Records are waiting for a designated teacher at {school} ({transfer.reference})",
        body=(
            f"Records sent to {school} are waiting because the school has no designated teacher "
            f"on Handover yet.\n\nReference: {transfer.reference}\n\n"
            f"Sign in to invite one: {public_base_url}/transfers/holding\n"
        ),
    )


def record_opened(session: DbSession, transfer: Transfer, user: User | None) -> None:
    """A recipient opened the transfer's page (the first opening moves it to "opened")."""
    if transfer.status is S.SENT:
        states.move(transfer, S.OPENED)
        transfer.first_opened_at = utcnow()
    audit.record(session, "transfer.open", object_type="transfer", object_id=transfer.id)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def issue_download_link(session: DbSession, document: Document, user: User, *, minutes: int) -> str:
    """A single-use link for ``user`` to fetch ``document`` within ``minutes``; returns its token."""
    if document.transfer.status not in states.DELIVERED or document.shredded_at or document.stored_at is None:
        raise TransferError("This document is no longer available")
    token = secrets.token_urlsafe(32)
    session.add(
        DownloadLink(
            token_hash=_token_hash(token),
            document_id=document.id,
            user_id=user.id,
            expires_at=utcnow() + timedelta(minutes=minutes),
        )
    )
    audit.record(
        session,
        "download_link.issue",
        object_type="document",
        object_id=document.id,
        details={"transfer_id": document.transfer_id},
    )
    return token


def redeem_download_link(session: DbSession, token: str, user: User) -> Document:
    """Use a link up (exactly once, even under races) and return its document, or raise why not.

    The caller commits the claim, reads the content, then calls :func:`record_download`.
    """
    link = session.scalars(select(DownloadLink).where(DownloadLink.token_hash == _token_hash(token))).first()
    if link is None:
        raise DownloadLinkInvalid("unknown", 404)
    if link.user_id != user.id:
        raise DownloadLinkInvalid("other_user", 404)
    if link.used_at is not None:
        raise DownloadLinkInvalid("already_used", 410)
    if link.expires_at <= utcnow():
        raise DownloadLinkInvalid("expired", 410)
    document = link.document
    transfer = document.transfer
    if transfer.status not in states.DELIVERED or _is_past_expiry(transfer):
        raise DownloadLinkInvalid("transfer_ended", 410)
    if document.shredded_at is not None or document.wrapped_key is None:
        raise DownloadLinkInvalid("document_shredded", 410)
    claimed = session.execute(
        update(DownloadLink)
        .where(DownloadLink.id == link.id, DownloadLink.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise DownloadLinkInvalid("already_used", 410)
    return document


def record_download(session: DbSession, document: Document) -> None:
    """Record that ``document`` is being downloaded, once its content has been read and verified.

    Called after :func:`redeem_download_link`, so a download that fails its integrity check is
    never recorded (or shown to the sender) as having happened.
    """
    transfer = document.transfer
    if transfer.status is S.SENT:
        # A download is an opening too (the page may not have been viewed, e.g. a second tab).
        record_opened(session, transfer, None)
    if transfer.status is S.OPENED:
        states.move(transfer, S.DOWNLOADED)
    if transfer.first_downloaded_at is None:
        transfer.first_downloaded_at = utcnow()
    audit.record(
        session,
        "document.download",
        object_type="document",
        object_id=document.id,
        details={"transfer_id": transfer.id, "size": document.plaintext_size},
    )


def confirm_receipt(session: DbSession, transfer: Transfer, user: User, comment: str) -> None:
    """The digital return label: the designated teacher confirms the records arrived."""
    if transfer.status not in (S.OPENED, S.DOWNLOADED):
        raise TransferError("Receipt can be confirmed once the transfer has been opened, and only once")
    states.move(transfer, S.RECEIPT_CONFIRMED)
    transfer.receipt_confirmed_at = utcnow()
    transfer.receipt_confirmed_by_id = user.id
    transfer.receipt_comment = comment
    audit.record(session, "transfer.confirm_receipt", object_type="transfer", object_id=transfer.id)
    notifications.queue(
        session,
        kind="receipt_confirmed",
        to=transfer.created_by,
        transfer_id=transfer.id,
        subject=f"Receipt confirmed by {transfer.receiving_organisation.name} ({transfer.reference})",
        body=(
            f"{transfer.receiving_organisation.name} has confirmed receipt of the records you sent.\n\n"
            f"Reference: {transfer.reference}\n"
        ),
    )


def revoke(session: DbSession, transfer: Transfer, user: User) -> None:
    """Withdraw a transfer: every outstanding link stops working at once."""
    if transfer.status not in states.IN_FLIGHT:
        raise TransferError("Only a transfer that is on its way can be withdrawn")
    states.move(transfer, S.REVOKED)
    transfer.revoked_at = utcnow()
    transfer.revoked_by_id = user.id
    audit.record(session, "transfer.revoke", object_type="transfer", object_id=transfer.id)


def extend(session: DbSession, transfer: Transfer, new_expiry: datetime, *, max_days: int) -> None:
    """Move the expiry later, within the organisation's maximum from the date it was sent."""
    if transfer.status not in states.IN_FLIGHT | {S.RECEIPT_CONFIRMED} or transfer.sent_at is None:
        raise TransferError("Only a transfer that has been sent and has not ended can be extended")
    if _is_past_expiry(transfer):
        # Expiry is final even before the expiry job has run: recipients already cannot download.
        raise TransferError("This transfer has expired and cannot be extended. Send the records again.")
    if transfer.expires_at and new_expiry <= transfer.expires_at:
        raise TransferError("The new expiry date must be later than the current one")
    if new_expiry > transfer.sent_at + timedelta(days=max_days):
        raise TransferError(f"Transfers can be kept for at most {max_days} days after they were sent")
    transfer.expires_at = new_expiry
    transfer.expiry_reminder_sent_at = None
    audit.record(
        session,
        "transfer.extend",
        object_type="transfer",
        object_id=transfer.id,
        details={"expires_at": new_expiry.isoformat()},
    )


def _is_past_expiry(transfer: Transfer) -> bool:
    return transfer.expires_at is not None and transfer.expires_at <= utcnow()


def is_available_to_recipients(transfer: Transfer) -> bool:
    """Delivered, not withdrawn, not past its expiry (even before the expiry job has run)."""
    return transfer.status in states.DELIVERED and not _is_past_expiry(transfer)


def category_allowed_for(category: DocumentCategory, user: User) -> bool:
    """Child-protection files are only ever delivered to designated teachers."""
    return category is not DocumentCategory.CHILD_PROTECTION or user.role in RECEIVING_ROLES
