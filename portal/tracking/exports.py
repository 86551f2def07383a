"""CSV and JSON-lines exports that are safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return, which some
spreadsheets skip before reading a formula) is run as a formula when the file is opened: a
school's filename ``=HYPERLINK(...)`` would run on a caseworker's machine (OWASP "CSV injection").
Such text cells get a leading apostrophe, which spreadsheets show as text. Numbers stay numbers.
No Flask here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime

from portal.models.base import ENGLAND

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
# Excel only reads a CSV as UTF-8 when it starts with a byte-order mark.
UTF8_BOM = "\ufeff"

Cell = str | int | float | bool | date | datetime | None


def neutralise(text: str) -> str:
    """Text that a spreadsheet will show rather than evaluate."""
    # Leading spaces do not stop some spreadsheets from evaluating what follows.
    if text.lstrip(" ").startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def csv_cell(value: Cell) -> str | int | float:
    """One value as a CSV cell: dates in England's time, text neutralised, numbers untouched."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, datetime):
        return value.astimezone(ENGLAND).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return neutralise(str(value))


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Iterator[str]:
    """A CSV file, a line at a time (so large exports stream instead of filling memory)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise(name) for name in header])
    yield UTF8_BOM + buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([csv_cell(value) for value in row])
        yield buffer.getvalue()


def _json_value(value: Cell) -> str | int | float | bool | None:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def jsonl_lines(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Iterator[str]:
    """One JSON object per line, keyed by ``header`` (not a spreadsheet format: nothing to neutralise)."""
    for row in rows:
        record = {name: _json_value(value) for name, value in zip(header, row, strict=True)}
        yield json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"


def export_filename(stem: str, extension: str, today: date) -> str:
    """``handover-dashboard-2026-10-23.csv``: a fixed, safe name (never built from user input)."""
    return f"handover-{stem}-{today.isoformat()}.{extension}"
