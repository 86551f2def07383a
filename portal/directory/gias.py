"""Import schools from a Get Information About Schools (GIAS) establishment extract.

GIAS (https://get-information-schools.service.gov.uk) publishes every establishment in England as one CSV
of about 50,000 rows and 130-odd columns. We read the few columns below and ignore the rest, so the
import survives the DfE adding columns. Each row creates or updates the school with that URN and, if
needed, the local authority for its LA code.

The extract is read as a stream and committed in batches, so a full file needs bounded memory and no
long-held transaction. The price is that an import stopped half-way (a database outage) leaves the
batches before it in place; running the import again finishes the job, since it is idempotent.
"""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from portal import audit
from portal.models import Organisation, OrganisationKind
from portal.models.base import DbSession

if TYPE_CHECKING:
    # Only the type stubs name the reader's class (the runtime calls it _csv.reader).
    from _csv import Reader as CsvReader

log = logging.getLogger(__name__)

URN = "URN"
LA_CODE = "LA (code)"
LA_NAME = "LA (name)"
ESTABLISHMENT_NUMBER = "EstablishmentNumber"
ESTABLISHMENT_NAME = "EstablishmentName"
STATUS = "EstablishmentStatus (name)"
PHASE = "PhaseOfEducation (name)"
REQUIRED_COLUMNS = (URN, LA_CODE, LA_NAME, ESTABLISHMENT_NUMBER, ESTABLISHMENT_NAME, STATUS, PHASE)

CLOSED_STATUS = "closed"
# GIAS's code and name for establishments outside any authority (e.g. some overseas and offshore schools).
NO_AUTHORITY_CODE = "000"
NO_AUTHORITY_NAME = "does not apply"

BATCH_SIZE = 1000
# A wholly wrong file would otherwise list 50,000 reasons; the count stays exact.
MAX_REPORTED_SKIPS = 500

_NAME_MAX = 200  # Organisation.name
_URN_MAX = 8  # Organisation.urn
_PHASE_MAX = 60  # Organisation.phase
_SNIFF_CHUNK = 1 << 16


class GiasImportError(Exception):
    """The extract cannot be imported; the message is safe to show to an administrator."""


class MissingColumns(GiasImportError):
    """The extract lacks columns the import needs; nothing was imported."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            "This is not a GIAS establishment extract: it has no "
            + ", ".join(f'"{name}"' for name in missing)
            + (" column." if len(missing) == 1 else " columns.")
            + " Nothing was imported."
        )


class UnreadableExtract(GiasImportError):
    """The CSV broke off part-way; rows before ``line`` in complete batches were imported."""

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        super().__init__(
            f"The extract cannot be read at line {line} ({problem}). Rows before it may have been "
            "imported; fix the file and import it again."
        )


@dataclass(frozen=True)
class SkippedRow:
    """A row left out of the import, and why."""

    line: int
    reason: str


@dataclass
class ImportSummary:
    """What an import did. ``closed`` counts schools this run recorded as closed (new or newly closed);
    they are also counted in ``created`` or ``updated``."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    local_authorities_created: int = 0
    skipped_count: int = 0
    # The first MAX_REPORTED_SKIPS skipped rows, in line order.
    skipped: list[SkippedRow] = field(default_factory=list)
    encoding: str = ""

    def audit_details(self) -> dict[str, str | int | bool | None]:
        """The counts, for the audit event (no names: the event says what the run did, not to what)."""
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "closed": self.closed,
            "skipped": self.skipped_count,
            "local_authorities_created": self.local_authorities_created,
        }


@dataclass(frozen=True)
class _SchoolRow:
    line: int
    urn: str
    name: str
    la_code: str
    la_name: str
    establishment_number: str | None
    phase: str | None
    is_active: bool


class _BadRow(ValueError):
    pass


def import_gias(session: DbSession, path: Path | str, *, batch_size: int = BATCH_SIZE) -> ImportSummary:
    """Create or update the schools in the GIAS extract at ``path``, and their local authorities.

    Schools are matched by URN; a school's name, LA code, establishment number, phase, authority and
    ``is_active`` (false when GIAS says Closed) follow the extract. A missing authority is created from
    ``LA (name)``; existing authorities are linked, never renamed. Rows that fail validation are skipped
    and reported by line number; the rest are imported. Importing the same file again changes nothing.

    Commits every ``batch_size`` rows and at the end, so ``session`` must hold no other pending work.
    Records one ``directory.import_gias`` audit event per run. Raises :class:`MissingColumns` before
    touching the database if required columns are absent, :class:`UnreadableExtract` if the CSV breaks.
    """
    source = Path(path)
    summary = ImportSummary(encoding=detect_encoding(source))
    with source.open(encoding=summary.encoding, newline="") as handle:
        rows = _read_rows(handle, summary)
        try:
            _import_rows(session, rows, summary, batch_size)
        except Exception:
            session.rollback()
            _record_failed_run(session, source, summary)
            raise
    audit.record(
        session,
        "directory.import_gias",
        object_type="directory",
        details={"file": source.name, **summary.audit_details()},
    )
    session.commit()
    summary.skipped.sort(key=lambda skipped: skipped.line)
    log.info("GIAS import from %s: %s", source.name, summary.audit_details())
    return summary


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` (BOM), ``utf-8``, ``cp1252`` (GIAS's usual) or, failing both, ``latin-1``.

    Reads the whole file once in chunks: a stray byte at row 40,000 must not abort an import half-done.
    """
    utf8 = codecs.getincrementaldecoder("utf-8")()
    cp1252 = codecs.getincrementaldecoder("cp1252")()
    utf8_ok = cp1252_ok = True
    with path.open("rb") as raw:
        if raw.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
            return "utf-8-sig"
        raw.seek(0)
        while chunk := raw.read(_SNIFF_CHUNK):
            utf8_ok = utf8_ok and _decodes(utf8, chunk)
            cp1252_ok = cp1252_ok and _decodes(cp1252, chunk)
            if not (utf8_ok or cp1252_ok):
                break
    if utf8_ok and _decodes(utf8, b"", final=True):
        return "utf-8"
    # cp1252 leaves five bytes undefined; latin-1 maps every byte, so it always reads.
    return "cp1252" if cp1252_ok else "latin-1"


def _decodes(decoder: codecs.IncrementalDecoder, chunk: bytes, *, final: bool = False) -> bool:
    try:
        decoder.decode(chunk, final)
    except UnicodeDecodeError:
        return False
    return True


def _read_rows(handle: Iterator[str], summary: ImportSummary) -> Iterator[_SchoolRow]:
    """Valid rows from the extract; invalid ones go to ``summary`` as skipped. Checks the header first."""
    reader = csv.reader(handle)
    try:
        header = [name.strip() for name in next(reader, [])]
    except csv.Error as problem:
        raise UnreadableExtract(1, str(problem)) from None
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise MissingColumns(missing)
    # First occurrence wins should a column ever repeat; the other 120-odd columns are never looked at.
    positions = {name: header.index(name) for name in REQUIRED_COLUMNS}
    return _parse_records(reader, positions, summary)


def _parse_records(
    reader: CsvReader, positions: dict[str, int], summary: ImportSummary
) -> Iterator[_SchoolRow]:
    seen_urns: set[int] = set()  # about 2 MB for a full extract: bounded by the DfE's register, not by us
    end_of_previous = reader.line_num
    while True:
        try:
            record = next(reader, None)
        except csv.Error as problem:
            raise UnreadableExtract(end_of_previous + 1, str(problem)) from None
        # csv counts physical lines, so a quoted field spanning lines still gives the record's first line.
        line, end_of_previous = end_of_previous + 1, reader.line_num
        if record is None:
            return
        if not any(value.strip() for value in record):
            continue
        summary.rows += 1
        try:
            row = _parse_record(line, record, positions)
        except _BadRow as problem:
            _skip(summary, line, str(problem))
            continue
        if int(row.urn) in seen_urns:
            _skip(summary, line, f"URN {row.urn} appears earlier in the file")
            continue
        seen_urns.add(int(row.urn))
        yield row


def _parse_record(line: int, record: list[str], positions: dict[str, int]) -> _SchoolRow:
    def value(column: str) -> str:
        index = positions[column]
        # A short row (truncated line) reads as blanks, which the checks below then refuse.
        return record[index].strip() if index < len(record) else ""

    given_urn = value(URN)
    if not (given_urn.isascii() and given_urn.isdigit()):
        raise _BadRow(f"URN {_shown(given_urn)} is not a number")
    # Leading zeros dropped so "0100001" and "100001" are one school; lengths checked before int().
    urn = given_urn.lstrip("0")
    if not urn:
        raise _BadRow(f"URN {_shown(given_urn)} is not a valid URN")
    if len(urn) > _URN_MAX:
        raise _BadRow(f"URN {_shown(given_urn)} is longer than {_URN_MAX} digits")
    la_code = value(LA_CODE)
    if not (la_code.isascii() and la_code.isdigit() and len(la_code) <= 3):
        raise _BadRow(f"LA code {_shown(la_code)} is not 3 digits")
    la_name = value(LA_NAME)
    if len(la_name) > _NAME_MAX:
        raise _BadRow(f"LA name is longer than {_NAME_MAX} characters")
    number = value(ESTABLISHMENT_NUMBER)
    # Some establishment types (e.g. children's centres, some proposed schools) have no number yet.
    if number and not (number.isascii() and number.isdigit() and len(number) <= 4):
        raise _BadRow(f"establishment number {_shown(number)} is not 4 digits")
    name = " ".join(value(ESTABLISHMENT_NAME).split())
    if not name:
        raise _BadRow("establishment name is blank")
    if len(name) > _NAME_MAX:
        raise _BadRow(f"establishment name is longer than {_NAME_MAX} characters")
    status = value(STATUS)
    if not status:
        raise _BadRow("establishment status is blank")
    return _SchoolRow(
        line=line,
        urn=urn,
        name=name,
        la_code=la_code.zfill(3),
        la_name=la_name,
        establishment_number=number.zfill(4) if number else None,
        # Phase is descriptive only, so an overlong one is cut rather than losing the school.
        phase=value(PHASE)[:_PHASE_MAX] or None,
        is_active=status.casefold() != CLOSED_STATUS,
    )


def _skip(summary: ImportSummary, line: int, reason: str) -> None:
    summary.skipped_count += 1
    if len(summary.skipped) < MAX_REPORTED_SKIPS:
        summary.skipped.append(SkippedRow(line, reason))


def _shown(value: str) -> str:
    return repr(value[:40]) if value else "(blank)"


def _import_rows(
    session: DbSession, rows: Iterator[_SchoolRow], summary: ImportSummary, batch_size: int
) -> None:
    authorities = _AuthorityIndex(session, summary)
    batch: list[_SchoolRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            _import_batch(session, batch, authorities, summary)
            batch = []
    if batch:
        _import_batch(session, batch, authorities, summary)


def _import_batch(
    session: DbSession, batch: list[_SchoolRow], authorities: _AuthorityIndex, summary: ImportSummary
) -> None:
    # One query per batch rather than one per row: 50 round trips for a full extract, not 50,000.
    existing = {
        organisation.urn: organisation
        for organisation in session.scalars(
            select(Organisation).where(Organisation.urn.in_([row.urn for row in batch]))
        )
    }
    for row in batch:
        school = existing.get(row.urn)
        if school is not None and school.kind is not OrganisationKind.SCHOOL:
            _skip(summary, row.line, f"URN {row.urn} belongs to an organisation that is not a school")
            continue
        if row.la_code == NO_AUTHORITY_CODE or not row.la_name or row.la_name.casefold() == NO_AUTHORITY_NAME:
            authority_id = None
        else:
            authority_id = authorities.id_for(row.la_code, row.la_name)
        if school is None:
            session.add(_new_school(row, authority_id))
            summary.created += 1
            newly_closed = not row.is_active
        else:
            newly_closed = school.is_active and not row.is_active
            if _update_school(school, row, authority_id):
                summary.updated += 1
            else:
                summary.unchanged += 1
        if newly_closed:
            summary.closed += 1
    session.commit()


def _new_school(row: _SchoolRow, authority_id: int | None) -> Organisation:
    return Organisation(
        kind=OrganisationKind.SCHOOL,
        name=row.name,
        urn=row.urn,
        la_code=row.la_code,
        establishment_number=row.establishment_number,
        phase=row.phase,
        local_authority_id=authority_id,
        is_active=row.is_active,
    )


def _update_school(school: Organisation, row: _SchoolRow, authority_id: int | None) -> bool:
    """Bring ``school`` in line with ``row``; True if anything changed (so a re-import counts nothing)."""
    changed = False
    if school.name != row.name:
        school.name, changed = row.name, True
    if school.la_code != row.la_code:
        school.la_code, changed = row.la_code, True
    if school.establishment_number != row.establishment_number:
        school.establishment_number, changed = row.establishment_number, True
    if school.phase != row.phase:
        school.phase, changed = row.phase, True
    if school.local_authority_id != authority_id:
        school.local_authority_id, changed = authority_id, True
    if school.is_active != row.is_active:
        school.is_active, changed = row.is_active, True
    return changed


class _AuthorityIndex:
    """LA code -> id of that local authority's organisation, creating missing ones (England has ~155)."""

    def __init__(self, session: DbSession, summary: ImportSummary) -> None:
        self._session = session
        self._summary = summary
        self._ids: dict[str, int] = {}
        found = session.execute(
            select(Organisation.la_code, Organisation.id)
            .where(Organisation.kind == OrganisationKind.LOCAL_AUTHORITY, Organisation.la_code.is_not(None))
            .order_by(Organisation.id)
        )
        for la_code, organisation_id in found:
            # Should an authority have been entered twice, keep linking schools to the older one.
            if la_code is not None:
                self._ids.setdefault(la_code, organisation_id)

    def id_for(self, la_code: str, la_name: str) -> int:
        if la_code not in self._ids:
            authority = Organisation(kind=OrganisationKind.LOCAL_AUTHORITY, name=la_name, la_code=la_code)
            self._session.add(authority)
            self._session.flush()
            self._ids[la_code] = authority.id
            self._summary.local_authorities_created += 1
        return self._ids[la_code]


def _record_failed_run(session: DbSession, source: Path, summary: ImportSummary) -> None:
    # Earlier batches are committed: the trail must say a run happened and stopped, with how far it got.
    try:
        audit.record(
            session,
            "directory.import_gias",
            outcome=audit.Outcome.ERROR,
            object_type="directory",
            details={"file": source.name, "rows_read": summary.rows},
        )
        session.commit()
    except Exception:
        session.rollback()
        log.exception("could not audit the failed GIAS import of %s", source.name)
