"""Need-to-know for transfers, in one place.

* the sending organisation's senders see their own outgoing transfers;
* the receiving school's designated teachers see a transfer once it has been delivered to them;
* caseworkers of the responsible local authority see status and history (not contents, unless
  their authority sent it).
Anyone else gets 404, and the attempt is audited.
"""

from __future__ import annotations

import enum

from portal import policy
from portal.extensions import db
from portal.models import Document, Role, Transfer, TransferStatus, User
from portal.transfers import states

SENDING_ROLES = frozenset({Role.SCHOOL_STAFF, Role.DESIGNATED_TEACHER, Role.CASEWORKER})


class Relation(enum.Enum):
    """How a user stands to a transfer."""

    SENDER = "sender"
    RECIPIENT = "recipient"
    CASEWORKER = "caseworker"


def relations_to(user: User, transfer: Transfer) -> frozenset[Relation]:
    """Every way ``user`` is entitled to see ``transfer`` (empty: not at all)."""
    found = set()
    if user.organisation_id == transfer.sending_organisation_id and user.role in SENDING_ROLES:
        found.add(Relation.SENDER)
    if (
        user.organisation_id == transfer.receiving_organisation_id
        and user.role is Role.DESIGNATED_TEACHER
        and (transfer.status in states.DELIVERED or transfer.delivered_at is not None)
    ):
        found.add(Relation.RECIPIENT)
    if user.role is Role.CASEWORKER and user.organisation_id == transfer.responsible_authority_id:
        found.add(Relation.CASEWORKER)
    return frozenset(found)


def transfer_for(user: User, transfer_id: int, *, needs: set[Relation] | None = None) -> Transfer:
    """The transfer if ``user`` may see it (in one of the ``needs`` ways, if given); else 404, audited."""
    transfer = db.session.get(Transfer, transfer_id)
    relations = relations_to(user, transfer) if transfer else frozenset()
    if transfer is None or not relations or (needs is not None and not relations & needs):
        policy.deny("transfer", transfer_id)
    assert transfer is not None
    return transfer


def document_for(user: User, transfer: Transfer, document_id: int) -> Document:
    """A document of a transfer the user may already see; 404 (audited) if it is not one of its documents."""
    document = db.session.get(Document, document_id)
    if document is None or document.transfer_id != transfer.id:
        policy.deny("document", document_id)
    assert document is not None
    return document


def may_see_contents(user: User, transfer: Transfer) -> bool:
    """Caseworkers see status and history, not contents — unless their authority sent it."""
    relations = relations_to(user, transfer)
    return Relation.SENDER in relations or Relation.RECIPIENT in relations


def is_draft(transfer: Transfer) -> bool:
    """True while the sender is still preparing the transfer."""
    return transfer.status is TransferStatus.DRAFT
