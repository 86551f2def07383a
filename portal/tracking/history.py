"""A child's history across transfers, for subject access requests and breach investigations.

Transfers are matched within one responsible authority (need-to-know): on the UPN when it is
known, and on initials + date of birth, which can match two different children. Each transfer
says which way it matched so a caseworker can check before relying on it. No Flask here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, or_, select

from portal.models import Transfer
from portal.models.base import DbSession
from portal.tracking.exports import Cell
from portal.tracking.timeline import Entry, build

MAX_TRANSFERS = 200


class Match(enum.StrEnum):
    """How a transfer was matched to the child."""

    UPN = "upn"
    INITIALS_AND_BIRTH_DATE = "initials_dob"

    @property
    def label(self) -> str:
        """How the match reads on screen."""
        return "UPN" if self is Match.UPN else "Initials and date of birth (check this is the same child)"


@dataclass(frozen=True)
class ChildKey:
    """What identifies the child: a UPN, initials and a date of birth, or both."""

    initials: str | None = None
    date_of_birth: date | None = None
    upn: str | None = None

    @classmethod
    def of(cls, transfer: Transfer) -> ChildKey:
        """The child of a transfer."""
        return cls(transfer.child_initials, transfer.child_date_of_birth, transfer.child_upn)


@dataclass(frozen=True)
class HistoryItem:
    """One transfer of the child, with its timeline."""

    transfer: Transfer
    match: Match
    entries: list[Entry]


def find(session: DbSession, authority_id: int, child: ChildKey) -> list[tuple[Transfer, Match]]:
    """The authority's transfers for the child, oldest first."""
    conditions = []
    if child.upn:
        conditions.append(Transfer.child_upn == child.upn)
    if child.initials and child.date_of_birth:
        conditions.append(
            and_(
                Transfer.child_initials == child.initials.upper(),
                Transfer.child_date_of_birth == child.date_of_birth,
            )
        )
    if not conditions:
        return []
    transfers = session.scalars(
        select(Transfer)
        .where(Transfer.responsible_authority_id == authority_id, or_(*conditions))
        .order_by(Transfer.left_on, Transfer.id)
        .limit(MAX_TRANSFERS)
    ).all()
    return [
        (t, Match.UPN if child.upn and t.child_upn == child.upn else Match.INITIALS_AND_BIRTH_DATE)
        for t in transfers
    ]


def history(session: DbSession, authority_id: int, child: ChildKey) -> list[HistoryItem]:
    """Each matching transfer with its timeline (documents by number: caseworkers do not see contents)."""
    return [
        HistoryItem(transfer, match, build(session, transfer, show_contents=False))
        for transfer, match in find(session, authority_id, child)
    ]


EXPORT_HEADER = (
    "Reference",
    "Matched on",
    "Child initials",
    "Date of birth",
    "UPN",
    "Left on",
    "From school",
    "To school",
    "Status",
    "When",
    "What",
    "Who",
    "Organisation",
    "Address",
    "Detail",
    "Outcome",
)


def export_rows(items: list[HistoryItem]) -> Iterator[list[Cell]]:
    """One spreadsheet row per timeline entry, the transfer's columns repeated."""
    for item in items:
        t = item.transfer
        lead: list[Cell] = [
            t.reference,
            item.match.label,
            t.child_initials,
            t.child_date_of_birth,
            t.child_upn,
            t.left_on,
            t.sending_organisation.name,
            t.receiving_organisation.name,
            t.status.label,
        ]
        if not item.entries:
            yield [*lead, None, None, None, None, None, None, None]
        for entry in item.entries:
            yield [
                *lead,
                entry.occurred_at,
                entry.what,
                entry.who,
                entry.organisation,
                entry.address,
                entry.detail,
                entry.outcome,
            ]
