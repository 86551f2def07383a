"""School days and deadlines on a real 2026-27 term calendar, checked against hand-counted days;
and term-dates files that are malformed or hostile."""

from __future__ import annotations

from datetime import date

import pytest

from portal.models import CalendarEntryKind, DocumentCategory
from portal.tracking import ics
from portal.tracking.calendar import ENGLAND_DEFAULT, SchoolDays
from portal.tracking.deadlines import deadline_for, default_rules
from tests.tracking.helpers import TERM_DATES

C = DocumentCategory


@pytest.fixture(scope="module")
def northshire() -> SchoolDays:
    return SchoolDays(ics.parse_term_dates(TERM_DATES.read_bytes()).runs)


def test_the_published_file_gives_three_terms_and_their_closures_and_skips_other_events():
    parsed = ics.parse_term_dates(TERM_DATES.read_bytes())
    terms = [(r.starts_on, r.ends_on) for r in parsed.runs if r.kind is CalendarEntryKind.TERM]
    closures = [(r.starts_on, r.ends_on) for r in parsed.runs if r.kind is CalendarEntryKind.CLOSURE]
    assert terms == [
        (date(2026, 9, 2), date(2026, 12, 18)),  # DTEND 19 Dec is exclusive
        (date(2027, 1, 4), date(2027, 3, 25)),  # from "starts" and "ends" events
        (date(2027, 4, 12), date(2027, 7, 21)),
    ]
    assert closures == [
        (date(2026, 10, 26), date(2026, 10, 30)),
        (date(2026, 11, 27), date(2026, 11, 27)),
        (date(2027, 2, 15), date(2027, 2, 19)),
        (date(2027, 5, 31), date(2027, 6, 4)),
    ]
    assert parsed.skipped == 1  # the parents' evening


@pytest.mark.parametrize(
    ("left_on", "category", "due_on", "why"),
    [
        # Fri 16 Oct: 19–23 Oct are days 1–5, half-term 26–30 Oct skipped, 2–6 Nov 6–10, 9–13 Nov 11–15.
        (date(2026, 10, 16), C.COMMON_TRANSFER_FILE, date(2026, 11, 13), "across the autumn half-term"),
        (date(2026, 10, 16), C.EDUCATIONAL_RECORD, date(2026, 11, 13), "educational record is 15 too"),
        # Wed 21 Oct: 22, 23 Oct, then (half-term) 2, 3, 4 Nov. Counted in weekdays it would be Wed 28 Oct, a holiday.
        (date(2026, 10, 21), C.CHILD_PROTECTION, date(2026, 11, 4), "would fall in the half-term holiday"),
        # Fri 11 Dec: 14–18 Dec are days 1–5; Fri 18 Dec is the last day of the autumn term.
        (date(2026, 12, 11), C.CHILD_PROTECTION, date(2026, 12, 18), "on the last day of term"),
        # ...and 15 days runs through the Christmas holiday: 14–18 Dec, 4–8 Jan, 11–15 Jan.
        (date(2026, 12, 11), C.COMMON_TRANSFER_FILE, date(2027, 1, 15), "across the Christmas holiday"),
        # Mon 23 Nov: 24, 25, 26 Nov, INSET Fri 27 Nov skipped, 30 Nov, 1 Dec.
        (date(2026, 11, 23), C.CHILD_PROTECTION, date(2026, 12, 1), "over an INSET day"),
        # Mon 22 Mar: 23, 24, 25 Mar (the spring term ends Thu 25), Easter holiday, then 12, 13 Apr.
        (date(2027, 3, 22), C.CHILD_PROTECTION, date(2027, 4, 13), "across the end of the spring term"),
        # Fri 23 Apr: 26–30 Apr 1–5, May Day bank holiday Mon 3 May skipped, 4–7 May 6–9, 10–14 May 10–14, 17 May 15.
        (date(2027, 4, 23), C.PEP, date(2027, 5, 17), "over the early May bank holiday"),
        # Left on the last day of the autumn term: the count starts with the spring term.
        (date(2026, 12, 18), C.CHILD_PROTECTION, date(2027, 1, 8), "left on the last day of term"),
    ],
)
def test_deadlines_match_hand_counted_school_days(northshire, left_on, category, due_on, why):
    deadline = deadline_for(left_on, {category}, default_rules(), northshire)
    assert deadline.due_on == due_on, why
    assert northshire.is_school_day(deadline.due_on)


def test_the_earliest_category_sets_the_deadline(northshire):
    deadline = deadline_for(
        date(2026, 10, 16), {C.COMMON_TRANSFER_FILE, C.CHILD_PROTECTION, C.PEP}, default_rules(), northshire
    )
    assert (deadline.due_on, deadline.school_days, deadline.category) == (
        date(2026, 10, 23),
        5,
        C.CHILD_PROTECTION,
    )


def test_a_transfer_without_documents_gets_the_rule_for_other_records(northshire):
    deadline = deadline_for(date(2026, 10, 16), set(), default_rules(), northshire)
    assert (deadline.category, deadline.school_days) == (C.OTHER, 15)


def test_without_a_calendar_weekdays_less_english_bank_holidays_count():
    # Fri 18 Dec 2026: 21–24 Dec are days 1–4; Christmas (Fri 25) and Boxing Day's substitute (Mon 28) skipped.
    assert ENGLAND_DEFAULT.add_school_days(date(2026, 12, 18), 5) == date(2026, 12, 29)
    # No half-term without a calendar: Wed 21 Oct + 5 weekdays is Wed 28 Oct.
    assert ENGLAND_DEFAULT.add_school_days(date(2026, 10, 21), 5) == date(2026, 10, 28)


def test_the_summer_holiday_is_not_school_days_and_unpublished_years_fall_back_to_the_default(northshire):
    assert not northshire.is_school_day(date(2027, 7, 23))  # a Friday in the summer holiday
    assert not northshire.is_school_day(date(2026, 9, 1))  # the day before the autumn term
    assert not northshire.is_school_day(date(2027, 8, 30))  # summer bank holiday
    assert northshire.is_school_day(date(2027, 9, 6))  # 2027-28 is not published: weekdays count
    assert ENGLAND_DEFAULT.is_school_day(date(2027, 7, 23))


def test_school_days_between_counts_forwards_and_backwards(northshire):
    assert northshire.school_days_between(date(2026, 10, 23), date(2026, 11, 2)) == 1  # half-term between
    assert northshire.school_days_between(date(2026, 11, 2), date(2026, 10, 23)) == -1
    assert northshire.school_days_between(date(2026, 11, 2), date(2026, 11, 2)) == 0


def _ics(*events: str) -> bytes:
    body = "".join(
        f"BEGIN:VEVENT\r\nUID:{n}@x\r\nDTSTAMP:20260101T000000Z\r\n{e}END:VEVENT\r\n"
        for n, e in enumerate(events)
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{body}END:VCALENDAR\r\n".encode()


TERM = "DTSTART;VALUE=DATE:20260902\r\nDTEND;VALUE=DATE:20261219\r\nSUMMARY:Autumn term\r\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no BEGIN:VCALENDAR"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"<html><body>Term dates</body></html>", "no BEGIN:VCALENDAR"),
        (b"BEGIN:VCALENDAR\r\nthis is not a content line\r\nEND:VCALENDAR\r\n", "could not be read"),
        (_ics("DTSTART;VALUE=DATE:2026xx02\r\nSUMMARY:Autumn term\r\n"), "not a date"),
        (_ics("SUMMARY:Autumn term\r\n"), "no start date"),
        (
            _ics("DTSTART;VALUE=DATE:20261219\r\nDTEND;VALUE=DATE:20260902\r\nSUMMARY:Autumn term\r\n"),
            "ends before it starts",
        ),
        (_ics("DTSTART;VALUE=DATE:99991231\r\nSUMMARY:Autumn term\r\n"), "outside"),
        (
            _ics("DTSTART;VALUE=DATE:20260101\r\nDTEND;VALUE=DATE:20271231\r\nSUMMARY:Holiday\r\n", TERM),
            "lasts more than",
        ),
        (_ics(TERM, "DTSTART;VALUE=DATE:20261026\r\nRRULE:FREQ=DAILY\r\nSUMMARY:Half term\r\n"), "repeats"),
        (
            _ics("DTSTART;VALUE=DATE:20261026\r\nDTEND;VALUE=DATE:20261031\r\nSUMMARY:Half term\r\n"),
            "No term dates",
        ),
        (_ics("DTSTART;VALUE=DATE:20270104\r\nSUMMARY:Spring term starts\r\n"), "not both"),
        (
            b"BEGIN:VCALENDAR\r\n" + b"BEGIN:VEVENT\r\nEND:VEVENT\r\n" * 2001 + b"END:VCALENDAR\r\n",
            "more than 2000 events",
        ),
        (b"BEGIN:VCALENDAR\r\n" + b"X" * (600 * 1024), "larger than"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_or_hostile_files_are_refused_with_a_clear_message(data, message):
    with pytest.raises(ics.CalendarFileRefused, match=message):
        ics.parse_term_dates(data)


def test_control_characters_in_titles_are_dropped():
    parsed = ics.parse_term_dates(
        _ics("DTSTART;VALUE=DATE:20260902\r\nDTEND;VALUE=DATE:20261219\r\nSUMMARY:Autumn\\n\x1b[31m term\r\n")
    )
    assert "\x1b" not in parsed.runs[0].summary and "\n" not in parsed.runs[0].summary
