import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from portal.directory import ImportSummary, MissingColumns, UnreadableExtract, import_gias
from portal.directory.gias import REQUIRED_COLUMNS, detect_encoding
from portal.extensions import db
from portal.models import AuditEvent, Organisation, OrganisationKind
from tests.directory.extracts import SAMPLE, sample_header_and_rows, sample_variant, write_extract


def _import(app: Flask, path: Path, batch_size: int = 1000) -> ImportSummary:
    with app.app_context():
        return import_gias(db.session, path, batch_size=batch_size)


def _organisation_count(app: Flask) -> int | None:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Organisation))


def _school(app: Flask, urn: str) -> Organisation:
    with app.app_context():
        school = db.session.scalars(select(Organisation).where(Organisation.urn == urn)).one()
        db.session.expunge(school)
        return school


def _import_events(app: Flask) -> Sequence[AuditEvent]:
    with app.app_context():
        return db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "directory.import_gias")
            .order_by(AuditEvent.sequence)
        ).all()


def test_sample_extract_creates_its_schools_and_their_local_authorities(app):
    summary = _import(app, SAMPLE)

    assert summary.encoding == "cp1252"
    assert (summary.rows, summary.created, summary.updated, summary.unchanged) == (15, 15, 0, 0)
    assert summary.closed == 1
    assert summary.local_authorities_created == 3
    assert summary.skipped_count == 0
    assert _organisation_count(app) == 18
    with app.app_context():
        authorities = db.session.scalars(
            select(Organisation)
            .where(Organisation.kind == OrganisationKind.LOCAL_AUTHORITY)
            .order_by(Organisation.la_code)
        ).all()
        assert [(la.la_code, la.name) for la in authorities] == [
            ("990", "Wealdshire (fictional)"),
            ("991", "Fenmouth (fictional)"),
            ("992", "Ambervale (fictional)"),
        ]
        school = db.session.scalars(select(Organisation).where(Organisation.urn == "990008")).one()
        assert school.kind is OrganisationKind.SCHOOL
        assert school.name == "Fenmouth High School"
        assert school.dfe_number == "991/4101"
        assert school.phase == "Secondary"
        assert school.is_active
        assert school.local_authority is not None
        assert school.local_authority.la_code == "991"


def test_reimporting_the_same_extract_changes_nothing(app):
    _import(app, SAMPLE)
    with app.app_context():
        before = [
            (
                o.id,
                o.name,
                o.urn,
                o.la_code,
                o.establishment_number,
                o.phase,
                o.local_authority_id,
                o.is_active,
            )
            for o in db.session.scalars(select(Organisation).order_by(Organisation.id))
        ]

    again = _import(app, SAMPLE)

    assert (again.created, again.updated, again.unchanged, again.closed) == (0, 0, 15, 0)
    assert again.local_authorities_created == 0
    with app.app_context():
        after = [
            (
                o.id,
                o.name,
                o.urn,
                o.la_code,
                o.establishment_number,
                o.phase,
                o.local_authority_id,
                o.is_active,
            )
            for o in db.session.scalars(select(Organisation).order_by(Organisation.id))
        ]
    assert after == before


def test_renamed_school_is_updated_in_place(app, tmp_path):
    _import(app, SAMPLE)
    original = _school(app, "990006")
    renamed = sample_variant(
        tmp_path / "renamed.csv", {"990006": {"EstablishmentName": "Fenmouth Primary Academy"}}
    )

    summary = _import(app, renamed)

    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 14)
    school = _school(app, "990006")
    assert school.id == original.id
    assert school.name == "Fenmouth Primary Academy"


def test_closed_school_is_imported_inactive(app):
    _import(app, SAMPLE)
    assert not _school(app, "990004").is_active
    # "Open, but proposed to close" and "Proposed to open" are not closed.
    assert _school(app, "990009").is_active
    assert _school(app, "990013").is_active


def test_school_closing_and_reopening_follows_the_extract(app, tmp_path):
    _import(app, SAMPLE)
    closing = sample_variant(
        tmp_path / "closing.csv",
        {"990001": {"EstablishmentStatus (name)": "Closed", "EstablishmentStatus (code)": "2"}},
    )

    summary = _import(app, closing)

    assert (summary.updated, summary.closed) == (1, 1)
    assert not _school(app, "990001").is_active
    reopened = _import(app, SAMPLE)
    assert (reopened.updated, reopened.closed) == (1, 0)
    assert _school(app, "990001").is_active


def test_missing_columns_are_named_and_nothing_is_imported(app, tmp_path):
    header, rows = sample_header_and_rows()
    header = [name for name in header if name not in ("LA (code)", "EstablishmentStatus (name)")]
    path = write_extract(tmp_path / "wrong.csv", header, rows)

    with pytest.raises(MissingColumns) as caught:
        _import(app, path)

    assert caught.value.missing == ["LA (code)", "EstablishmentStatus (name)"]
    assert '"LA (code)", "EstablishmentStatus (name)" columns' in str(caught.value)
    assert "Nothing was imported" in str(caught.value)
    assert _organisation_count(app) == 0
    assert _import_events(app) == []


def test_empty_file_is_missing_every_column(app, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(MissingColumns) as caught:
        _import(app, path)
    assert caught.value.missing == list(REQUIRED_COLUMNS)


def test_bad_rows_are_skipped_with_line_numbers_and_the_rest_imported(app, tmp_path):
    # Line 1 is the header, so the sample's URN 99000n is on line n + 1.
    path = sample_variant(
        tmp_path / "bad.csv",
        {
            "990002": {"URN": "99O002"},
            "990003": {"LA (code)": "9901"},
            "990005": {"EstablishmentNumber": "70A1"},
            "990007": {"EstablishmentName": "  "},
            "990010": {"EstablishmentStatus (name)": ""},
            "990012": {"LA (code)": "x"},
            "990014": {"URN": "9" * 5000},
            "990015": {"URN": "000"},
        },
    )

    summary = _import(app, path)

    assert [(skipped.line, skipped.reason) for skipped in summary.skipped] == [
        (3, "URN '99O002' is not a number"),
        (4, "LA code '9901' is not 3 digits"),
        (6, "establishment number '70A1' is not 4 digits"),
        (8, "establishment name is blank"),
        (11, "establishment status is blank"),
        (13, "LA code 'x' is not 3 digits"),
        (15, f"URN {'9' * 40!r} is longer than 8 digits"),
        (16, "URN '000' is not a valid URN"),
    ]
    assert summary.skipped_count == 8
    assert (summary.rows, summary.created) == (15, 7)
    assert _organisation_count(app) == 7 + 3


def test_repeated_urn_is_skipped_after_its_first_row(app, tmp_path):
    header, rows = sample_header_and_rows()
    rows.append({**rows[0], "EstablishmentName": "Impostor School"})
    path = write_extract(tmp_path / "repeat.csv", header, rows)

    summary = _import(app, path)

    assert [(s.line, s.reason) for s in summary.skipped] == [(17, "URN 990001 appears earlier in the file")]
    assert _school(app, "990001").name == "Oakridge Primary School"


def test_line_numbers_count_blank_lines_and_fields_spanning_lines(app, tmp_path):
    header, rows = sample_header_and_rows()
    rows[0]["Street"] = "1 School Lane\r\nWealdbury"  # quoted field over two physical lines
    path = write_extract(tmp_path / "multi.csv", header, rows[:3])
    text = path.read_bytes().replace(b"\r\n990002", b"\r\n\r\n990002")  # a blank line before row 2
    path.write_bytes(text.replace(b"\r\n990003,", b"\r\n990003x,"))

    summary = _import(app, path)

    # Header 1, first record 2-3, blank 4, second record 5, third record 6.
    assert [(s.line, s.reason) for s in summary.skipped] == [(6, "URN '990003x' is not a number")]
    assert summary.created == 2


def test_short_codes_are_zero_padded(app, tmp_path):
    header, rows = sample_header_and_rows()
    row = {
        **rows[0],
        "URN": "990100",
        "LA (code)": "5",
        "LA (name)": "Tiny Borough",
        "EstablishmentNumber": "42",
    }
    path = write_extract(tmp_path / "short.csv", header, [row])

    _import(app, path)

    school = _school(app, "990100")
    assert (school.la_code, school.establishment_number, school.dfe_number) == ("005", "0042", "005/0042")


def test_school_without_an_authority_is_not_linked(app, tmp_path):
    header, rows = sample_header_and_rows()
    row = {**rows[0], "URN": "990101", "LA (code)": "000", "LA (name)": "Does not apply"}
    path = write_extract(tmp_path / "offshore.csv", header, [row])

    summary = _import(app, path)

    assert summary.local_authorities_created == 0
    assert _school(app, "990101").local_authority_id is None


def test_existing_authority_is_linked_and_not_renamed(app, factory):
    authority = factory.local_authority("Wealdshire County Council", la_code="990")

    summary = _import(app, SAMPLE)

    assert summary.local_authorities_created == 2
    assert _school(app, "990001").local_authority_id == authority.id
    with app.app_context():
        authority_row = db.session.get(Organisation, authority.id)
        assert authority_row is not None
        assert authority_row.name == "Wealdshire County Council"


def test_urn_belonging_to_a_local_authority_is_skipped(app, tmp_path):
    with app.app_context():
        db.session.add(
            Organisation(kind=OrganisationKind.LOCAL_AUTHORITY, name="Odd", la_code="998", urn="990001")
        )
        db.session.commit()

    summary = _import(app, SAMPLE)

    assert [(s.line, s.reason) for s in summary.skipped] == [
        (2, "URN 990001 belongs to an organisation that is not a school")
    ]
    assert summary.created == 14


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8-sig", "utf-8"])
def test_extracts_in_each_encoding_keep_curly_apostrophes(app, tmp_path, encoding):
    path = sample_variant(tmp_path / "sample.csv", encoding=encoding)

    summary = _import(app, path)

    assert summary.encoding == encoding
    assert summary.created == 15
    assert _school(app, "990002").name == "St Mary\u2019s Church of England Primary School"


def test_encoding_falls_back_to_latin_1_for_bytes_cp1252_leaves_undefined(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes("URN,name\r\n1,Caf\u00e9".encode("latin-1") + b"\x81\r\n")
    assert detect_encoding(path) == "latin-1"


def test_small_batches_give_the_same_result(app):
    summary = _import(app, SAMPLE, batch_size=4)
    assert (summary.created, summary.closed, summary.local_authorities_created) == (15, 1, 3)
    assert _organisation_count(app) == 18
    assert len(_import_events(app)) == 1


def test_each_run_records_one_audit_event_with_its_counts(app):
    _import(app, SAMPLE, batch_size=4)
    _import(app, SAMPLE)

    events = _import_events(app)

    assert [event.outcome for event in events] == ["success", "success"]
    assert json.loads(events[0].details) == {
        "file": "sample_gias.csv",
        "rows": 15,
        "created": 15,
        "updated": 0,
        "unchanged": 0,
        "closed": 1,
        "skipped": 0,
        "local_authorities_created": 3,
    }
    assert json.loads(events[1].details)["unchanged"] == 15


def test_extract_breaking_part_way_keeps_earlier_batches_and_audits_the_failure(app, tmp_path):
    header, rows = sample_header_and_rows()
    rows[5]["Street"] = "x" * 200_000  # longer than the csv module's field limit
    path = write_extract(tmp_path / "broken.csv", header, rows)

    with pytest.raises(UnreadableExtract, match="at line 7"):
        _import(app, path, batch_size=2)

    with app.app_context():
        schools = db.session.scalar(
            select(func.count()).select_from(Organisation).where(Organisation.kind == OrganisationKind.SCHOOL)
        )
    assert schools == 4  # two complete batches; the third (rows 5 and the broken 6th) was rolled back
    events = _import_events(app)
    assert [event.outcome for event in events] == ["error"]
    assert json.loads(events[0].details) == {"file": "broken.csv", "rows_read": 5}
