"""Reading the term-dates .ics files local authorities publish.

Files come from outside, so they are treated as hostile: a size cap, an event cap, dates that must
be real all-day dates in a sane range, no repeating rules (they could expand without end), and
every problem reported in words an admin can act on. Parsing finishes before anything is saved,
so a bad file leaves the calendar as it was.

Recognised events, by their SUMMARY (case does not matter):
* a term as one event spanning it: "Autumn term", "Spring Term 2027";
* a term as two single-day events: "Autumn term starts" / "Autumn term ends" (also begins/opens, finishes/closes);
* closures: anything naming a half term, holiday, INSET or training day, bank holiday, or closure.
Other events (parents' evenings, sports days) are skipped and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from icalendar import Calendar

from portal.models import CalendarEntryKind
from portal.tracking.calendar import DateRun

MAX_FILE_BYTES = 512 * 1024
MAX_EVENTS = 2000
MAX_RUN_DAYS = 200  # longer than any term; a longer "closure" is a mistake, not a holiday
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100

_CLOSURE = re.compile(
    r"half[\s-]*term|holiday|inset|training day|closure|closed|staff development|strike", re.I
)
_TERM = re.compile(r"\bterm\b", re.I)
_TERM_START = re.compile(r"\b(autumn|spring|summer)\b.*\bterm\b.*\b(starts?|begins?|opens?)\b", re.I)
_TERM_END = re.compile(r"\b(autumn|spring|summer)\b.*\bterm\b.*\b(ends?|finish(es)?|closes?)\b", re.I)


class CalendarFileRefused(Exception):
    """The file cannot be used; the message says why, safe to show."""


@dataclass
class ParsedCalendar:
    """What a file held: runs to save and the number of events that were not about school days."""

    runs: list[DateRun] = field(default_factory=list)
    skipped: int = 0


def _all_day_date(value: object, name: str, summary: str) -> date:
    # A date-time means a timed event (a parents' evening), not a day of term or closure.
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        raise CalendarFileRefused(f"The event “{summary}” has a {name} that is not a date")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise CalendarFileRefused(f"The event “{summary}” has a date outside {EARLIEST_YEAR}–{LATEST_YEAR}")
    return value


def _summary(component: object) -> str:
    raw = component.get("SUMMARY", "")  # type: ignore[attr-defined]
    # Control characters would end up in pages and logs: keep printable text only.
    text = "".join(ch for ch in str(raw) if ch.isprintable())
    return " ".join(text.split())[:200]


def parse_term_dates(data: bytes) -> ParsedCalendar:
    """Terms and closures from an .ics file, or :class:`CalendarFileRefused` naming the problem."""
    if len(data) > MAX_FILE_BYTES:
        raise CalendarFileRefused(
            f"The file is larger than {MAX_FILE_BYTES // 1024} KB: is it a term-dates file?"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CalendarFileRefused("The file is not an iCalendar (.ics) file: it is not UTF-8 text") from None
    if "BEGIN:VCALENDAR" not in text.upper():
        raise CalendarFileRefused("The file is not an iCalendar (.ics) file: it has no BEGIN:VCALENDAR")
    if text.upper().count("BEGIN:VEVENT") > MAX_EVENTS:
        raise CalendarFileRefused(f"The file has more than {MAX_EVENTS} events")
    try:
        calendar = Calendar.from_ical(text)
    except (ValueError, IndexError, KeyError) as problem:
        raise CalendarFileRefused(f"The file could not be read as iCalendar: {str(problem)[:120]}") from None
    if isinstance(calendar, list):  # several calendars concatenated
        raise CalendarFileRefused("The file holds more than one calendar; upload one at a time")

    parsed = ParsedCalendar()
    starts: dict[str, date] = {}
    ends: dict[str, date] = {}
    for event in calendar.walk("VEVENT"):
        summary = _summary(event) or "(no title)"
        if event.get("RRULE") is not None or event.get("RDATE") is not None:
            raise CalendarFileRefused(
                f"The event “{summary}” repeats; term-dates files must list each date, so it cannot be used"
            )
        if event.get("DTSTART") is None:
            raise CalendarFileRefused(f"The event “{summary}” has no start date")
        first = _all_day_date(event.decoded("DTSTART"), "start", summary)
        if event.get("DTEND") is not None:
            # DTEND of an all-day event is the day after the last one (RFC 5545, 3.6.1).
            end_value = event.decoded("DTEND")
            last = _all_day_date(end_value, "end", summary)
            last = last - timedelta(days=1) if not isinstance(end_value, datetime) and last > first else last
        else:
            last = first
        if last < first:
            raise CalendarFileRefused(f"The event “{summary}” ends before it starts")
        if (last - first).days > MAX_RUN_DAYS:
            raise CalendarFileRefused(f"The event “{summary}” lasts more than {MAX_RUN_DAYS} days")

        if _CLOSURE.search(summary):
            parsed.runs.append(DateRun(CalendarEntryKind.CLOSURE, first, last, summary))
        elif (found := _TERM_START.search(summary)) and first == last:
            starts[f"{found.group(1).lower()}-{first.year if first.month >= 8 else first.year - 1}"] = first
        elif (found := _TERM_END.search(summary)) and first == last:
            ends[f"{found.group(1).lower()}-{first.year if first.month >= 8 else first.year - 1}"] = first
        elif _TERM.search(summary) and last > first:
            parsed.runs.append(DateRun(CalendarEntryKind.TERM, first, last, summary))
        else:
            parsed.skipped += 1

    parsed.runs.extend(_paired_terms(starts, ends))
    if not any(run.kind is CalendarEntryKind.TERM for run in parsed.runs):
        raise CalendarFileRefused(
            "No term dates were found. Events need titles like “Autumn term” (spanning the term) "
            "or “Autumn term starts” and “Autumn term ends”"
        )
    parsed.runs.sort(key=lambda run: (run.starts_on, run.kind.value))
    return parsed


def _paired_terms(starts: dict[str, date], ends: dict[str, date]) -> list[DateRun]:
    """Terms given as start and end events; keys are term name + academic year (spring 2027 is 2026-27)."""
    runs = []
    for key in sorted(set(starts) | set(ends)):
        if key not in starts or key not in ends:
            name = key.split("-")[0].capitalize()
            raise CalendarFileRefused(f"{name} term has a start or an end date but not both")
        if ends[key] < starts[key]:
            raise CalendarFileRefused(f"{key.split('-')[0].capitalize()} term ends before it starts")
        runs.append(
            DateRun(CalendarEntryKind.TERM, starts[key], ends[key], f"{key.split('-')[0].capitalize()} term")
        )
    return runs
