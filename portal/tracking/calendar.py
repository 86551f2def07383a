"""School days: weekdays in term, less closures and bank holidays of England.

An authority's calendar is a set of terms and closures (imported from the term-dates .ics file
authorities publish, or typed by an admin). Inside the academic years its terms cover, only term
weekdays that are not closures or bank holidays are school days; outside them (years the
authority has not published yet) the England default applies: weekdays that are not bank holidays.
No Flask here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import holidays
from sqlalchemy import delete, select

from portal import audit
from portal.models import CalendarEntry, CalendarEntryKind, SchoolCalendar, User, utcnow
from portal.models.base import DbSession

# Counting never walks further than this (a deadline of 60 school days spans at most a few months);
# the cap keeps a corrupt calendar (a year of closures) from turning a page view into a long loop.
MAX_WALK_DAYS = 3 * 366


@dataclass(frozen=True)
class DateRun:
    """Dates from ``starts_on`` to ``ends_on``, both included."""

    kind: CalendarEntryKind
    starts_on: date
    ends_on: date
    summary: str = ""

    def days(self) -> Iterable[date]:
        """Every date of the run."""
        day = self.starts_on
        while day <= self.ends_on:
            yield day
            day += timedelta(days=1)


@functools.lru_cache(maxsize=64)
def _bank_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year).keys())


def is_bank_holiday(day: date) -> bool:
    """True on a bank holiday in England (from the maintained ``holidays`` package)."""
    return day in _bank_holidays(day.year)


class SchoolDays:
    """Which dates are school days, and counting in them."""

    def __init__(self, runs: Iterable[DateRun] = ()) -> None:
        runs = list(runs)
        terms = [run for run in runs if run.kind is CalendarEntryKind.TERM]
        self._term_days = frozenset(day for run in terms for day in run.days())
        self._closed_days = frozenset(
            day for run in runs if run.kind is CalendarEntryKind.CLOSURE for day in run.days()
        )
        first = min((run.starts_on for run in terms), default=None)
        last = max((run.ends_on for run in terms), default=None)
        # A published calendar speaks for whole academic years (1 August to 31 August a year later):
        # the summer holiday after its last term is a holiday, not "unknown, so weekdays".
        self.covers_from = date(first.year if first.month >= 8 else first.year - 1, 8, 1) if first else None
        self.covers_to = date(last.year if last.month <= 8 else last.year + 1, 8, 31) if last else None
        self._counts: dict[date, int] = {}
        self._origin = self._last_counted = date.min

    @property
    def is_default(self) -> bool:
        """True when no term dates are known: England's weekdays less bank holidays."""
        return self.covers_from is None

    def _covered(self, day: date) -> bool:
        return (
            self.covers_from is not None
            and self.covers_to is not None
            and self.covers_from <= day <= self.covers_to
        )

    def is_school_day(self, day: date) -> bool:
        """True if pupils are in school on ``day``."""
        if day.weekday() >= 5 or is_bank_holiday(day) or day in self._closed_days:
            return False
        return day in self._term_days if self._covered(day) else True

    def add_school_days(self, start: date, count: int) -> date:
        """The ``count``-th school day after ``start`` (``start`` itself is day 0, as regulations count)."""
        if count < 0:
            raise ValueError("count must not be negative")
        day, found = start, 0
        for _ in range(MAX_WALK_DAYS):
            if found == count:
                return day
            day += timedelta(days=1)
            if self.is_school_day(day):
                found += 1
        return day

    def school_days_between(self, start: date, end: date) -> int:
        """School days after ``start`` up to and including ``end``; negative when ``end`` comes first."""
        if end < start:
            return -self.school_days_between(end, start)
        if (end - start).days > MAX_WALK_DAYS:
            end = start + timedelta(days=MAX_WALK_DAYS)
        return self._ordinal(end) - self._ordinal(start)

    def _ordinal(self, day: date) -> int:
        # School days counted from a fixed origin, filled in lazily and kept: a dashboard page asks
        # about the same few hundred dates for fifty rows, and each answer is then a subtraction.
        # (Threads may extend it at once: each writes the same deterministic values.)
        if not self._counts:
            self._origin = self._last_counted = day
            self._counts[day] = 0
        while day > self._last_counted:
            following = self._last_counted + timedelta(days=1)
            self._counts[following] = self._counts[self._last_counted] + self.is_school_day(following)
            self._last_counted = following
        while day < self._origin:
            # Going back: the origin's count drops by one for each school day at or after the new origin.
            earlier = self._origin - timedelta(days=1)
            self._counts[earlier] = self._counts[self._origin] - self.is_school_day(self._origin)
            self._origin = earlier
        return self._counts[day]

    def term_containing(self, day: date) -> tuple[date, date]:
        """The term ``day`` falls in (or the last one before it, during a holiday).

        Without published terms: autumn 1 Sep–31 Dec, spring 1 Jan–31 Mar, summer 1 Apr–31 Aug,
        an approximation only used for "confirmed this term" counts.
        """
        starts = sorted(self._term_starts())
        earlier = [run for run in starts if run[0] <= day]
        if earlier:
            return earlier[-1]
        if day.month >= 9:
            return date(day.year, 9, 1), date(day.year, 12, 31)
        if day.month <= 3:
            return date(day.year, 1, 1), date(day.year, 3, 31)
        return date(day.year, 4, 1), date(day.year, 8, 31)

    def _term_starts(self) -> list[tuple[date, date]]:
        runs: list[tuple[date, date]] = []
        for day in sorted(self._term_days):
            if runs and (day - runs[-1][1]).days <= 1:
                runs[-1] = (runs[-1][0], day)
            else:
                runs.append((day, day))
        # Weekend-separated pieces of one term join up: a gap of up to 3 days is not a holiday.
        merged: list[tuple[date, date]] = []
        for run in runs:
            if merged and (run[0] - merged[-1][1]).days <= 3:
                merged[-1] = (merged[-1][0], run[1])
            else:
                merged.append(run)
        return merged


ENGLAND_DEFAULT = SchoolDays()


def entries_of(session: DbSession, authority_id: int) -> list[CalendarEntry]:
    """The authority's calendar entries (with their ids, for editing), in date order."""
    return list(
        session.scalars(
            select(CalendarEntry)
            .join(SchoolCalendar, SchoolCalendar.id == CalendarEntry.calendar_id)
            .where(SchoolCalendar.authority_id == authority_id)
            .order_by(CalendarEntry.starts_on, CalendarEntry.id)
        )
    )


def stored_runs(session: DbSession, authority_id: int) -> list[DateRun]:
    """The terms and closures saved for an authority, in date order."""
    rows = session.scalars(
        select(CalendarEntry)
        .join(SchoolCalendar, SchoolCalendar.id == CalendarEntry.calendar_id)
        .where(SchoolCalendar.authority_id == authority_id)
        .order_by(CalendarEntry.starts_on, CalendarEntry.id)
    )
    return [DateRun(row.kind, row.starts_on, row.ends_on, row.summary) for row in rows]


def school_days_for(session: DbSession, authority_id: int | None) -> SchoolDays:
    """An authority's school days (the England default when it has published none)."""
    if authority_id is None:
        return ENGLAND_DEFAULT
    runs = stored_runs(session, authority_id)
    return SchoolDays(runs) if runs else ENGLAND_DEFAULT


def authorities_with_calendars(session: DbSession) -> frozenset[int]:
    """Ids of the authorities that have saved at least one term."""
    return frozenset(
        session.scalars(
            select(SchoolCalendar.authority_id)
            .join(CalendarEntry, CalendarEntry.calendar_id == SchoolCalendar.id)
            .where(CalendarEntry.kind == CalendarEntryKind.TERM)
            .distinct()
        )
    )


def _calendar_row(session: DbSession, authority_id: int, user: User | None, source: str) -> SchoolCalendar:
    calendar = session.scalars(
        select(SchoolCalendar).where(SchoolCalendar.authority_id == authority_id)
    ).first()
    if calendar is None:
        calendar = SchoolCalendar(authority_id=authority_id, source=source)
        session.add(calendar)
    calendar.source = source
    calendar.updated_at = utcnow()
    calendar.updated_by_id = user.id if user else None
    session.flush()
    return calendar


def replace_calendar(
    session: DbSession, authority_id: int, runs: list[DateRun], *, user: User | None, source: str
) -> None:
    """Replace an authority's whole calendar (one transaction: a failure leaves the old one)."""
    from portal.tracking import deadlines  # deadlines depends on this module

    calendar = _calendar_row(session, authority_id, user, source)
    session.execute(delete(CalendarEntry).where(CalendarEntry.calendar_id == calendar.id))
    session.add_all(
        CalendarEntry(
            calendar_id=calendar.id,
            kind=run.kind,
            starts_on=run.starts_on,
            ends_on=run.ends_on,
            summary=run.summary,
        )
        for run in runs
    )
    deadlines.forget_for_calendar(session, authority_id)
    audit.record(
        session,
        "calendar.replace",
        object_type="organisation",
        object_id=authority_id,
        details={
            "source": source,
            "terms": sum(run.kind is CalendarEntryKind.TERM for run in runs),
            "closures": sum(run.kind is CalendarEntryKind.CLOSURE for run in runs),
        },
    )


def add_entry(session: DbSession, authority_id: int, run: DateRun, *, user: User | None) -> None:
    """Add one term or closure typed by an admin."""
    from portal.tracking import deadlines

    if run.ends_on < run.starts_on:
        raise ValueError("The last day must be on or after the first day")
    calendar = _calendar_row(session, authority_id, user, "admin")
    session.add(
        CalendarEntry(
            calendar_id=calendar.id,
            kind=run.kind,
            starts_on=run.starts_on,
            ends_on=run.ends_on,
            summary=run.summary,
        )
    )
    deadlines.forget_for_calendar(session, authority_id)
    audit.record(
        session,
        "calendar.entry_add",
        object_type="organisation",
        object_id=authority_id,
        details={
            "kind": run.kind.value,
            "starts_on": run.starts_on.isoformat(),
            "ends_on": run.ends_on.isoformat(),
        },
    )


def remove_entry(session: DbSession, authority_id: int, entry_id: int, *, user: User | None) -> bool:
    """Remove one entry of the authority's own calendar; False if it is not one of theirs."""
    from portal.tracking import deadlines

    entry = session.get(CalendarEntry, entry_id)
    calendar = session.get(SchoolCalendar, entry.calendar_id) if entry else None
    if entry is None or calendar is None or calendar.authority_id != authority_id:
        return False
    session.delete(entry)
    _calendar_row(session, authority_id, user, "admin")
    deadlines.forget_for_calendar(session, authority_id)
    audit.record(
        session,
        "calendar.entry_remove",
        object_type="organisation",
        object_id=authority_id,
        details={"kind": entry.kind.value, "starts_on": entry.starts_on.isoformat()},
    )
    return True
