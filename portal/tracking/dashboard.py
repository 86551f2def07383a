"""The virtual school's dashboard: every transfer of the authority's children, with its clock.

All filtering, sorting, counting and paging happens in SQL on ``transfer_deadlines`` joined to
``transfers`` (indexed on authority + due date), so a page costs the same with 100 or 100,000
transfers. Only the rows of the page are then decorated (categories, last access, clock).
No Flask here.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, and_, func, select, union

from portal.models import (
    AuditEvent,
    Document,
    DocumentCategory,
    Organisation,
    Transfer,
    TransferDeadline,
    TransferStatus,
)
from portal.models.base import ENGLAND, DbSession
from portal.tracking import deadlines
from portal.tracking.calendar import SchoolDays, school_days_for
from portal.tracking.deadlines import Clock, clock_for

S = TransferStatus
PER_PAGE = 50
# OFFSET paging gets slower the deeper it goes; nobody reads past page 200 (10,000 rows): filter instead.
MAX_PAGE = 200
EXPORT_LIMIT = 50_000
ACCESS_ACTIONS = ("transfer.open", "document.download")


class View(enum.StrEnum):
    """The quick filters across the top of the dashboard."""

    ALL = "all"
    OVERDUE = "overdue"
    DUE_THIS_WEEK = "due_this_week"
    AWAITING = "awaiting_designated_teacher"

    @property
    def label(self) -> str:
        """How the filter reads on screen."""
        return {
            View.ALL: "All",
            View.OVERDUE: "Overdue",
            View.DUE_THIS_WEEK: "Due this week",
            View.AWAITING: "Awaiting a designated teacher",
        }[self]


class Sort(enum.StrEnum):
    """Orders the dashboard offers (each ends on the id, so pages never overlap)."""

    DEADLINE = "deadline"
    DEADLINE_LATEST = "-deadline"
    LEFT = "left"
    CHILD = "child"
    STATUS = "status"


@dataclass(frozen=True)
class Filters:
    """What the caseworker asked to see."""

    view: View = View.ALL
    status: TransferStatus | None = None
    school_id: int | None = None
    sort: Sort = Sort.DEADLINE
    page: int = 1


@dataclass(frozen=True)
class Row:
    """One transfer as the dashboard shows it."""

    transfer_id: int
    reference: str
    child_initials: str
    child_upn: str | None
    from_school: str
    to_school: str
    categories: list[DocumentCategory]
    status: TransferStatus
    left_on: date
    clock: Clock
    last_access: datetime | None


@dataclass(frozen=True)
class Counts:
    """The figures at the top of the dashboard."""

    in_flight: int
    overdue: int
    awaiting_designated_teacher: int
    confirmed_this_term: int


@dataclass
class Page:
    """One page of rows and where it sits."""

    rows: list[Row]
    total: int
    page: int
    per_page: int = PER_PAGE
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = min(MAX_PAGE, max(1, -(-self.total // self.per_page)))


def _day_start_utc(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ENGLAND).astimezone(UTC)


def _filtered(authority_id: int, filters: Filters, today: date) -> Select[Transfer, TransferDeadline]:
    query = (
        select(Transfer, TransferDeadline)
        .join(TransferDeadline, TransferDeadline.transfer_id == Transfer.id)
        .where(
            TransferDeadline.responsible_authority_id == authority_id,
            Transfer.responsible_authority_id == authority_id,
        )
    )
    if filters.view is View.OVERDUE:
        query = query.where(Transfer.status.in_(deadlines.RUNNING), TransferDeadline.due_on < today)
    elif filters.view is View.DUE_THIS_WEEK:
        sunday = today + timedelta(days=6 - today.weekday())
        query = query.where(
            Transfer.status.in_(deadlines.RUNNING), TransferDeadline.due_on.between(today, sunday)
        )
    elif filters.view is View.AWAITING:
        query = query.where(Transfer.status == S.AWAITING_DESIGNATED_TEACHER)
    if filters.status is not None:
        query = query.where(Transfer.status == filters.status)
    if filters.school_id is not None:
        query = query.where(
            (Transfer.sending_organisation_id == filters.school_id)
            | (Transfer.receiving_organisation_id == filters.school_id)
        )
    order = {
        Sort.DEADLINE: (TransferDeadline.due_on, Transfer.id),
        Sort.DEADLINE_LATEST: (TransferDeadline.due_on.desc(), Transfer.id.desc()),
        Sort.LEFT: (Transfer.left_on.desc(), Transfer.id.desc()),
        Sort.CHILD: (Transfer.child_initials, Transfer.id),
        Sort.STATUS: (Transfer.status, TransferDeadline.due_on, Transfer.id),
    }[filters.sort]
    return query.order_by(*order)


def page(session: DbSession, authority_id: int, filters: Filters, today: date) -> Page:
    """One page of the authority's transfers (deadlines brought up to date first; the caller commits)."""
    deadlines.refresh(session, authority_id=authority_id)
    query = _filtered(authority_id, filters, today)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    number = max(1, min(filters.page, MAX_PAGE))
    found = session.execute(query.limit(PER_PAGE).offset((number - 1) * PER_PAGE)).all()
    return Page(_decorate(session, [(t, d) for t, d in found], today), total, number)


def iter_rows(session: DbSession, authority_id: int, filters: Filters, today: date) -> Iterator[Row]:
    """Every row matching the filters (up to :data:`EXPORT_LIMIT`), for exports, in batches."""
    deadlines.refresh(session, authority_id=authority_id)
    query = _filtered(authority_id, filters, today)
    for offset in range(0, EXPORT_LIMIT, 1000):
        batch = session.execute(query.limit(1000).offset(offset)).all()
        yield from _decorate(session, [(t, d) for t, d in batch], today)
        if len(batch) < 1000:
            return


def counts(session: DbSession, authority_id: int, today: date) -> Counts:
    """In flight, overdue, awaiting a designated teacher, and receipts confirmed this term."""
    term_start, term_end = school_days_for(session, authority_id).term_containing(today)
    start, end = _day_start_utc(term_start), _day_start_utc(term_end + timedelta(days=1))
    running = Transfer.status.in_(deadlines.RUNNING)
    row = session.execute(
        select(
            func.count().filter(Transfer.status.in_(_IN_FLIGHT)),
            func.count().filter(and_(running, TransferDeadline.due_on < today)),
            func.count().filter(Transfer.status == S.AWAITING_DESIGNATED_TEACHER),
            func.count().filter(
                and_(Transfer.receipt_confirmed_at >= start, Transfer.receipt_confirmed_at < end)
            ),
        )
        .select_from(Transfer)
        .join(TransferDeadline, TransferDeadline.transfer_id == Transfer.id)
        .where(
            TransferDeadline.responsible_authority_id == authority_id,
            Transfer.responsible_authority_id == authority_id,
        )
    ).one()
    return Counts(*(int(value or 0) for value in row))


_IN_FLIGHT = frozenset({S.AWAITING_DESIGNATED_TEACHER, S.SENT, S.OPENED, S.DOWNLOADED})


def schools(session: DbSession, authority_id: int, limit: int = 500) -> list[tuple[int, str]]:
    """The schools that appear in the authority's transfers (the school filter's choices)."""
    ids = union(
        select(Transfer.sending_organisation_id).where(Transfer.responsible_authority_id == authority_id),
        select(Transfer.receiving_organisation_id).where(Transfer.responsible_authority_id == authority_id),
    ).subquery()
    rows = session.execute(
        select(Organisation.id, Organisation.name)
        .where(Organisation.id.in_(select(ids.c[0])))
        .order_by(Organisation.name)
        .limit(limit)
    )
    return [(row.id, row.name) for row in rows]


def last_access(session: DbSession, transfer_ids: list[int]) -> dict[int, datetime]:
    """When each transfer was last opened or one of its documents downloaded (from the audit trail)."""
    if not transfer_ids:
        return {}
    found: dict[int, datetime] = {}
    opened = session.execute(
        select(AuditEvent.object_id, func.max(AuditEvent.occurred_at))
        .where(
            AuditEvent.object_type == "transfer",
            AuditEvent.object_id.in_([str(i) for i in transfer_ids]),
            AuditEvent.action == "transfer.open",
        )
        .group_by(AuditEvent.object_id)
    )
    for object_id, when in opened:
        found[int(object_id or 0)] = _aware(when)
    documents = dict(
        session.execute(
            select(Document.id, Document.transfer_id).where(Document.transfer_id.in_(transfer_ids))
        ).all()
    )
    if documents:
        downloaded = session.execute(
            select(AuditEvent.object_id, func.max(AuditEvent.occurred_at))
            .where(
                AuditEvent.object_type == "document",
                AuditEvent.object_id.in_([str(i) for i in documents]),
                AuditEvent.action == "document.download",
                AuditEvent.outcome == "success",
            )
            .group_by(AuditEvent.object_id)
        )
        for object_id, when in downloaded:
            transfer_id = documents[int(object_id or 0)]
            when = _aware(when)
            if transfer_id not in found or when > found[transfer_id]:
                found[transfer_id] = when
    return found


def _aware(value: datetime) -> datetime:
    # func.max() bypasses the UTCDateTime column type, so the naive UTC value comes back as stored.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def categories(session: DbSession, transfer_ids: list[int]) -> dict[int, list[DocumentCategory]]:
    """The categories of each transfer's stored documents, in a stable order."""
    found: dict[int, set[DocumentCategory]] = defaultdict(set)
    if transfer_ids:
        rows = session.execute(
            select(Document.transfer_id, Document.category)
            .where(Document.transfer_id.in_(transfer_ids), Document.stored_at.is_not(None))
            .distinct()
        )
        for transfer_id, category in rows:
            found[transfer_id].add(category)
    order = list(DocumentCategory)
    return {key: sorted(value, key=order.index) for key, value in found.items()}


def _decorate(session: DbSession, found: list[tuple[Transfer, TransferDeadline]], today: date) -> list[Row]:
    ids = [transfer.id for transfer, _ in found]
    names = _organisation_names(
        session, {o for t, _ in found for o in (t.sending_organisation_id, t.receiving_organisation_id)}
    )
    kinds = categories(session, ids)
    accessed = last_access(session, ids)
    calendars: dict[int | None, SchoolDays] = {}
    rows = []
    for transfer, deadline in found:
        owner = deadline.calendar_authority_id
        if owner not in calendars:
            calendars[owner] = school_days_for(session, owner)
        confirmed = (
            transfer.receipt_confirmed_at.astimezone(ENGLAND).date()
            if transfer.receipt_confirmed_at
            else None
        )
        rows.append(
            Row(
                transfer_id=transfer.id,
                reference=transfer.reference,
                child_initials=transfer.child_initials,
                child_upn=transfer.child_upn,
                from_school=names.get(transfer.sending_organisation_id, ""),
                to_school=names.get(transfer.receiving_organisation_id, ""),
                categories=kinds.get(transfer.id, []),
                status=transfer.status,
                left_on=transfer.left_on,
                clock=clock_for(
                    transfer.status, deadline.due_on, deadline.category, confirmed, today, calendars[owner]
                ),
                last_access=accessed.get(transfer.id),
            )
        )
    return rows


def _organisation_names(session: DbSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(
        session.execute(select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids))).all()
    )
