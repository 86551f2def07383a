"""Chasing: a caseworker e-mails the sender or the recipients a reminder about one transfer.

The e-mail names the transfer by its reference and the schools, never the child. A party can be
chased once a day per transfer, so a double click (or an impatient caseworker) sends one e-mail.
No Flask here.
"""

from __future__ import annotations

import enum
from datetime import timedelta

from sqlalchemy import select

from portal import audit, notifications
from portal.models import Notification, Role, Transfer, TransferRecipient, User, utcnow
from portal.models.base import DbSession, today_in_england
from portal.tracking import deadlines

CHASE_INTERVAL = timedelta(hours=20)
SENDING_ROLES = frozenset({Role.SCHOOL_STAFF, Role.DESIGNATED_TEACHER, Role.CASEWORKER})


class Party(enum.StrEnum):
    """Who is chased."""

    SENDER = "sender"
    RECIPIENTS = "recipients"


class ChaseRefused(Exception):
    """The chase cannot be sent; the message is safe to show."""


def _people(session: DbSession, transfer: Transfer, party: Party) -> list[User]:
    if party is Party.SENDER:
        creator = transfer.created_by
        if creator.is_active:
            return [creator]
        # The person who sent it has left: anyone who can send from that school can act on it.
        return list(
            session.scalars(
                select(User).where(
                    User.organisation_id == transfer.sending_organisation_id,
                    User.role.in_(SENDING_ROLES),
                    User.is_active.is_(True),
                )
            )
        )
    return list(
        session.scalars(
            select(User)
            .join(TransferRecipient, TransferRecipient.user_id == User.id)
            .where(TransferRecipient.transfer_id == transfer.id, User.is_active.is_(True))
        )
    )


def chase(session: DbSession, transfer: Transfer, party: Party, *, public_base_url: str) -> int:
    """Queue the reminders and audit the chase; returns how many e-mails. The caller commits."""
    if transfer.status not in deadlines.RUNNING:
        raise ChaseRefused(
            "Only a transfer whose records have not yet been confirmed as received can be chased"
        )
    kind = f"chase_{party.value}"
    recent = session.scalars(
        select(Notification.id).where(
            Notification.transfer_id == transfer.id,
            Notification.kind == kind,
            Notification.created_at > utcnow() - CHASE_INTERVAL,
        )
    ).first()
    if recent is not None:
        raise ChaseRefused(f"The {party.value} was already chased about this transfer today")
    people = _people(session, transfer, party)
    if not people:
        raise ChaseRefused(
            "There is nobody to chase yet: the school has no designated teacher on Handover"
            if party is Party.RECIPIENTS
            else "Nobody at the sending school can be contacted through Handover"
        )
    deadline = deadlines.clock_of(session, transfer, today_in_england())
    sender, receiver = transfer.sending_organisation.name, transfer.receiving_organisation.name
    if party is Party.SENDER:
        subject = f"Reminder: records for transfer {transfer.reference} are due"
        action = f"Please send the records and check they have reached {receiver}."
        link = f"{public_base_url}/transfers/{transfer.id}"
    else:
        subject = f"Reminder: please confirm receipt of records ({transfer.reference})"
        action = f"Records from {sender} are waiting for you. Please download them and confirm receipt."
        link = f"{public_base_url}/transfers/incoming"
    body = (
        f"The virtual school at the local authority is checking on transfer {transfer.reference} "
        f"from {sender} to {receiver}.\n\n{action}\n\n"
        f"The statutory deadline is {deadline.due_on.strftime('%-d %B %Y')}.\n\n"
        f"Sign in to see it: {link}\n\n"
        "For your security, this e-mail does not say who the records are about.\n"
    )
    for person in people:
        notifications.queue(
            session, kind=kind, to=person, subject=subject, body=body, transfer_id=transfer.id
        )
    audit.record(
        session,
        "transfer.chase",
        object_type="transfer",
        object_id=transfer.id,
        details={"to": party.value, "messages": len(people)},
    )
    return len(people)
