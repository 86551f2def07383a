"""A transfer's timeline: what happened to it, when, by whom and from where.

Built from the audit trail (the record that cannot be quietly edited) plus the rows only the
tables hold: the e-mails sent. Who may see it is decided by the caller through
:mod:`portal.transfers.access`; this module only decides what a caseworker who may not see
contents is shown (documents by number, not by file name). No Flask here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select

from portal.models import AuditEvent, Document, Notification, Organisation, Transfer, User
from portal.models.base import DbSession
from portal.templating import filesize

_LABELS = {
    "transfer.create": "Created",
    "document.upload": "Document uploaded",
    "transfer.send": "Sent",
    "transfer.deliver": "Delivered to the school's designated teachers",
    "transfer.open": "Opened",
    "document.download": "Downloaded",
    "transfer.confirm_receipt": "Receipt confirmed",
    "transfer.revoke": "Withdrawn",
    "transfer.extend": "Expiry extended",
    "transfer.expire": "Expired",
    "document.shred": "Document destroyed",
    "transfer.purge": "Purged",
    "transfer.chase": "Chased",
    "document.integrity_failure": "Document failed an integrity check",
}
_NOTIFICATION_LABELS = {
    "transfer_arrived": "designated teacher told the records have arrived",
    "awaiting_designated_teacher": "local authority told the school has no designated teacher",
    "receipt_confirmed": "sender told receipt was confirmed",
    "chase_sender": "reminder to the sender",
    "chase_recipients": "reminder to the designated teacher",
}
_SHRED_REASONS = {"removed_from_draft": "removed from the draft", "purged": "retention period ended"}


@dataclass(frozen=True)
class Entry:
    """One line of the timeline."""

    occurred_at: datetime
    what: str
    who: str = ""
    organisation: str = ""
    address: str = ""
    detail: str = ""
    outcome: str = "success"
    sequence: int = 0


def _document_label(document: Document, number: int, show_contents: bool) -> str:
    return document.display_filename if show_contents else f"Document {number}"


def _details(event: AuditEvent) -> dict[str, object]:
    try:
        value = json.loads(event.details or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def events_for(session: DbSession, transfer: Transfer) -> list[AuditEvent]:
    """Every audit event about the transfer or one of its documents, in chain order."""
    document_ids = [str(d.id) for d in transfer.documents]
    about = [and_(AuditEvent.object_type == "transfer", AuditEvent.object_id == str(transfer.id))]
    if document_ids:
        about.append(and_(AuditEvent.object_type == "document", AuditEvent.object_id.in_(document_ids)))
    return list(
        session.scalars(
            select(AuditEvent)
            .where(or_(*about), AuditEvent.action != "download_link.issue")
            .order_by(AuditEvent.sequence)
        )
    )


def build(session: DbSession, transfer: Transfer, *, show_contents: bool) -> list[Entry]:
    """The transfer's timeline, oldest first."""
    documents = {d.id: (d, n) for n, d in enumerate(transfer.documents, start=1)}
    events = events_for(session, transfer)
    people = _people(session, {e.actor_user_id for e in events if e.actor_user_id is not None})
    organisations = _organisations(
        session, {e.actor_organisation_id for e in events if e.actor_organisation_id}
    )
    entries = []
    for event in events:
        if event.action not in _LABELS:
            continue
        details = _details(event)
        detail = ""
        what = _LABELS[event.action]
        if event.object_type == "document" and event.object_id and int(event.object_id) in documents:
            document, number = documents[int(event.object_id)]
            detail = f"{_document_label(document, number, show_contents)} ({document.category.label})"
            if event.action == "document.upload" and event.outcome == "success":
                size = details.get("size")
                detail += f", {filesize(size if isinstance(size, int) else None)}, SHA-256 {details.get('sha256', '')}"
            if event.action == "document.shred":
                reason = str(details.get("reason", ""))
                detail += f", {_SHRED_REASONS.get(reason, reason.replace('_', ' '))}"
        if event.action == "transfer.send" and details.get("status") == "awaiting_designated_teacher":
            detail = "held: the school has no designated teacher on Handover yet"
        if event.action == "transfer.extend" and isinstance(details.get("expires_at"), str):
            detail = f"new expiry {str(details['expires_at'])[:10]}"
        if event.action == "transfer.chase":
            detail = f"reminder e-mailed to the {details.get('to', '')}"
        if event.action == "document.download" and event.outcome != "success":
            what = "Download refused"
            detail = f"{detail} ({str(details.get('reason', '')).replace('_', ' ')})".strip()
        if event.action == "document.upload" and event.outcome != "success":
            what = "Upload refused"
        who = people.get(event.actor_user_id or 0, "")
        entries.append(
            Entry(
                occurred_at=event.occurred_at,
                what=what,
                who=who or ("Handover (scheduled job)" if event.actor_user_id is None else ""),
                organisation=organisations.get(event.actor_organisation_id or 0, ""),
                address=event.client_address or "",
                detail=detail,
                outcome=event.outcome,
                sequence=event.sequence,
            )
        )
    entries.extend(_notifications(session, transfer))
    return sorted(entries, key=lambda e: (e.occurred_at, e.sequence))


def _notifications(session: DbSession, transfer: Transfer) -> list[Entry]:
    rows = session.execute(
        select(Notification, User.display_name)
        .outerjoin(User, User.id == Notification.recipient_user_id)
        .where(Notification.transfer_id == transfer.id)
        .order_by(Notification.id)
    ).all()
    entries = []
    for notification, name in rows:
        state = {"sent": "sent", "failed": "not delivered"}.get(notification.status.value, "queued")
        entries.append(
            Entry(
                occurred_at=notification.sent_at or notification.created_at,
                what="E-mail " + state,
                who=name or "",
                detail=_NOTIFICATION_LABELS.get(notification.kind, notification.kind.replace("_", " ")),
                outcome="success" if state != "not delivered" else "failure",
                # After the audit events of the same instant (the action that queued it comes first).
                sequence=2**62,
            )
        )
    return entries


def _people(session: DbSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())


def _organisations(session: DbSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(
        session.execute(select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids))).all()
    )


def as_utc(value: datetime) -> datetime:
    """Timezone-aware UTC (rows read through raw SQL come back naive)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
