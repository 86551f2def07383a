"""Statutory clocks: each transfer's deadline in school days from the date the child left.

* Common Transfer File and educational record: 15 school days (Education (Pupil Information)
  (England) Regulations 2005, reg. 9); child-protection file: 5 (as authorities apply KCSIE);
  anything else: 15. An authority may set its own numbers (``deadline_rules``).
* A transfer's deadline is the earliest of its documents' deadlines.
* Days are counted on the calendar of the sending school's authority (it is that school's days
  that count), else the responsible authority's, else England's weekdays less bank holidays.
* The clock stops when receipt is confirmed; a withdrawn or expired transfer stops it too.

Computed deadlines are stored (``transfer_deadlines``) so the dashboard can filter and sort in SQL;
rows are deleted when a calendar or rule changes and recomputed on the next read.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from portal import audit
from portal.models import (
    DeadlineRule,
    Document,
    DocumentCategory,
    Organisation,
    Transfer,
    TransferDeadline,
    TransferStatus,
    User,
    utcnow,
)
from portal.models.base import ENGLAND, DbSession
from portal.tracking.calendar import SchoolDays, authorities_with_calendars, school_days_for

C = DocumentCategory
S = TransferStatus
STATUTORY_SCHOOL_DAYS: dict[DocumentCategory, int] = {
    C.COMMON_TRANSFER_FILE: 15,
    C.EDUCATIONAL_RECORD: 15,
    C.CHILD_PROTECTION: 5,
}
OTHER_SCHOOL_DAYS = 15
# The clock runs while the records have not been confirmed as received and the transfer has not ended.
RUNNING = frozenset({S.DRAFT, S.AWAITING_DESIGNATED_TEACHER, S.SENT, S.OPENED, S.DOWNLOADED})
ENDED_WITHOUT_RECEIPT = frozenset({S.REVOKED, S.EXPIRED})
_REFRESH_BATCH = 2000


def default_rules() -> dict[DocumentCategory, int]:
    """The statutory number of school days for every category."""
    return {category: STATUTORY_SCHOOL_DAYS.get(category, OTHER_SCHOOL_DAYS) for category in DocumentCategory}


def rules_for(session: DbSession, authority_id: int | None) -> dict[DocumentCategory, int]:
    """An authority's school days per category: its own rules over the statutory defaults."""
    rules = default_rules()
    if authority_id is not None:
        for rule in session.scalars(select(DeadlineRule).where(DeadlineRule.authority_id == authority_id)):
            rules[rule.category] = rule.school_days
    return rules


def set_rules(
    session: DbSession, authority_id: int, wanted: dict[DocumentCategory, int], *, user: User
) -> None:
    """Save an authority's rules (a rule equal to the default is stored all the same: it was chosen)."""
    for days in wanted.values():
        if not 1 <= days <= 60:
            raise ValueError("A deadline must be between 1 and 60 school days")
    existing = {
        rule.category: rule
        for rule in session.scalars(select(DeadlineRule).where(DeadlineRule.authority_id == authority_id))
    }
    for category, days in wanted.items():
        if category in existing:
            existing[category].school_days = days
        else:
            session.add(DeadlineRule(authority_id=authority_id, category=category, school_days=days))
    session.execute(delete(TransferDeadline).where(TransferDeadline.responsible_authority_id == authority_id))
    audit.record(
        session,
        "calendar.rules_change",
        object_type="organisation",
        object_id=authority_id,
        details={category.value: days for category, days in sorted(wanted.items())},
    )


@dataclass(frozen=True)
class Deadline:
    """When the records are due, and why."""

    due_on: date
    school_days: int
    category: DocumentCategory


def deadline_for(
    left_on: date, categories: set[DocumentCategory], rules: dict[DocumentCategory, int], days: SchoolDays
) -> Deadline:
    """The earliest of the categories' deadlines (no documents yet: the rule for "other")."""
    candidates = categories or {C.OTHER}
    # Fewest school days wins; ties go to the statutory categories first (they name the reason best).
    category = min(candidates, key=lambda c: (rules[c], c not in STATUTORY_SCHOOL_DAYS, c.value))
    return Deadline(days.add_school_days(left_on, rules[category]), rules[category], category)


def forget_for_calendar(session: DbSession, authority_id: int) -> None:
    """Drop the deadlines an authority's calendar could affect (they are recomputed when next read)."""
    sending = aliased(Organisation)
    affected = (
        select(Transfer.id)
        .join(sending, sending.id == Transfer.sending_organisation_id)
        .where(
            or_(sending.local_authority_id == authority_id, Transfer.responsible_authority_id == authority_id)
        )
    )
    session.execute(
        delete(TransferDeadline).where(
            or_(
                TransferDeadline.calendar_authority_id == authority_id,
                TransferDeadline.transfer_id.in_(affected),
            )
        )
    )


class _Calendars:
    """School days per authority, loaded once per refresh, with memoised counting."""

    def __init__(self, session: DbSession) -> None:
        self.session = session
        self.with_calendar = authorities_with_calendars(session)
        self._days: dict[int | None, SchoolDays] = {}
        self._due: dict[tuple[int | None, date, int], date] = {}

    def owner(self, sending_authority_id: int | None, responsible_authority_id: int | None) -> int | None:
        for candidate in (sending_authority_id, responsible_authority_id):
            if candidate is not None and candidate in self.with_calendar:
                return candidate
        return None

    def days(self, owner: int | None) -> SchoolDays:
        if owner not in self._days:
            self._days[owner] = school_days_for(self.session, owner)
        return self._days[owner]


def _categories(session: DbSession, transfer_ids: list[int]) -> dict[int, set[DocumentCategory]]:
    found: dict[int, set[DocumentCategory]] = defaultdict(set)
    rows = session.execute(
        select(Document.transfer_id, Document.category, Document.shredded_at, Transfer.status)
        .join(Transfer, Transfer.id == Document.transfer_id)
        .where(Document.transfer_id.in_(transfer_ids), Document.stored_at.is_not(None))
    )
    for transfer_id, category, shredded_at, status in rows:
        # A document removed from a draft no longer counts; after sending, a purged one still does.
        if shredded_at is not None and status is S.DRAFT:
            continue
        found[transfer_id].add(category)
    return found


def refresh(
    session: DbSession, *, authority_id: int | None = None, transfer_ids: list[int] | None = None
) -> int:
    """Compute missing deadlines, and those of drafts whose documents changed since; returns how many.

    Limit it to one responsible authority, or to some transfers. The caller commits.
    """
    sending = aliased(Organisation)
    # A draft's row is stale once a document was stored or removed after it was computed; every
    # other row stays right until a calendar or rule changes (which deletes it).
    changed_since = exists().where(
        Document.transfer_id == Transfer.id,
        or_(
            Document.stored_at >= TransferDeadline.computed_at,
            Document.shredded_at >= TransferDeadline.computed_at,
        ),
    )
    query = (
        select(
            Transfer.id,
            Transfer.left_on,
            Transfer.responsible_authority_id,
            sending.local_authority_id,
        )
        .join(sending, sending.id == Transfer.sending_organisation_id)
        .outerjoin(TransferDeadline, TransferDeadline.transfer_id == Transfer.id)
        .where(
            or_(
                TransferDeadline.transfer_id.is_(None),
                and_(Transfer.status == S.DRAFT, changed_since),
            )
        )
    )
    if authority_id is not None:
        query = query.where(Transfer.responsible_authority_id == authority_id)
    if transfer_ids is not None:
        query = query.where(Transfer.id.in_(transfer_ids))
    pending = session.execute(query).all()
    if not pending:
        return 0
    calendars = _Calendars(session)
    rules_cache: dict[int | None, dict[DocumentCategory, int]] = {}
    for start in range(0, len(pending), _REFRESH_BATCH):
        batch = pending[start : start + _REFRESH_BATCH]
        categories = _categories(session, [row.id for row in batch])
        rows = []
        for row in batch:
            if row.responsible_authority_id not in rules_cache:
                rules_cache[row.responsible_authority_id] = rules_for(session, row.responsible_authority_id)
            owner = calendars.owner(row.local_authority_id, row.responsible_authority_id)
            deadline = deadline_for(
                row.left_on,
                categories.get(row.id, set()),
                rules_cache[row.responsible_authority_id],
                calendars.days(owner),
            )
            rows.append(
                TransferDeadline(
                    transfer_id=row.id,
                    responsible_authority_id=row.responsible_authority_id,
                    calendar_authority_id=owner,
                    due_on=deadline.due_on,
                    school_days=deadline.school_days,
                    category=deadline.category,
                    computed_at=utcnow(),
                )
            )
        _save(session, rows)
    return len(pending)


def _save(session: DbSession, rows: list[TransferDeadline]) -> None:
    existing = {
        row.transfer_id: row
        for row in session.scalars(
            select(TransferDeadline).where(TransferDeadline.transfer_id.in_([r.transfer_id for r in rows]))
        )
    }
    fresh = []
    for row in rows:
        old = existing.get(row.transfer_id)
        if old is None:
            fresh.append(row)
        elif (old.due_on, old.school_days, old.category, old.calendar_authority_id) != (
            row.due_on,
            row.school_days,
            row.category,
            row.calendar_authority_id,
        ):
            # Only a draft whose documents changed gets here; reads of unchanged drafts write nothing.
            old.due_on, old.school_days, old.category = row.due_on, row.school_days, row.category
            old.calendar_authority_id, old.computed_at = row.calendar_authority_id, row.computed_at
    if not fresh:
        return
    # Two requests may compute the same missing rows at once; if the other commits first, its
    # (identical) answer stands and this one is dropped.
    try:
        with session.begin_nested():
            session.add_all(fresh)
    except IntegrityError:
        for row in fresh:
            try:
                with session.begin_nested():
                    session.add(_copy(row))
            except IntegrityError:
                continue


def _copy(row: TransferDeadline) -> TransferDeadline:
    return TransferDeadline(
        transfer_id=row.transfer_id,
        responsible_authority_id=row.responsible_authority_id,
        calendar_authority_id=row.calendar_authority_id,
        due_on=row.due_on,
        school_days=row.school_days,
        category=row.category,
        computed_at=row.computed_at,
    )


def clock_of(session: DbSession, transfer: Transfer, today: date) -> Clock:
    """One transfer's clock, computed now without writing anything (for pages and e-mails)."""
    calendars = _Calendars(session)
    sending_authority = session.scalar(
        select(Organisation.local_authority_id).where(Organisation.id == transfer.sending_organisation_id)
    )
    owner = calendars.owner(sending_authority, transfer.responsible_authority_id)
    days = calendars.days(owner)
    deadline = deadline_for(
        transfer.left_on,
        _categories(session, [transfer.id]).get(transfer.id, set()),
        rules_for(session, transfer.responsible_authority_id),
        days,
    )
    confirmed = (
        transfer.receipt_confirmed_at.astimezone(ENGLAND).date() if transfer.receipt_confirmed_at else None
    )
    return clock_for(transfer.status, deadline.due_on, deadline.category, confirmed, today, days)


class ClockState(enum.StrEnum):
    """Where the statutory clock stands."""

    RUNNING = "running"
    OVERDUE = "overdue"
    MET = "met"
    LATE = "late"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Clock:
    """A transfer's clock as people read it."""

    due_on: date
    state: ClockState
    # School days left (0: due today); negative: school days overdue (or late, once confirmed).
    school_days_left: int
    category: DocumentCategory

    @property
    def label(self) -> str:
        """``3 school days left``, ``2 school days overdue``, ``Met``, ``Late by 4 school days``…"""
        n = abs(self.school_days_left)
        plural = "s" if n != 1 else ""
        if self.state is ClockState.RUNNING:
            return "Due today" if n == 0 else f"{n} school day{plural} left"
        if self.state is ClockState.OVERDUE:
            return f"{n} school day{plural} overdue"
        if self.state is ClockState.MET:
            return "Met"
        if self.state is ClockState.LATE:
            return f"Late by {n} school day{plural}"
        return "Stopped (withdrawn or expired)"


def clock_for(
    status: TransferStatus,
    due_on: date,
    category: DocumentCategory,
    confirmed_on: date | None,
    today: date,
    days: SchoolDays,
) -> Clock:
    """The clock on ``today``; after receipt it shows whether the deadline was met."""
    if status is S.RECEIPT_CONFIRMED and confirmed_on is not None:
        late_by = days.school_days_between(due_on, confirmed_on)
        if late_by > 0:
            return Clock(due_on, ClockState.LATE, -late_by, category)
        return Clock(due_on, ClockState.MET, days.school_days_between(confirmed_on, due_on), category)
    if status in ENDED_WITHOUT_RECEIPT:
        return Clock(due_on, ClockState.STOPPED, 0, category)
    left = days.school_days_between(today, due_on)
    # A deadline falling on a holiday counts as passed only once the day itself has gone.
    if due_on < today:
        return Clock(due_on, ClockState.OVERDUE, min(left, -1), category)
    return Clock(due_on, ClockState.RUNNING, left, category)
