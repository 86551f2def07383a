from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Organisation
from tests.directory.extracts import SAMPLE, sample_header_and_rows, sample_variant, write_extract


def test_import_gias_command_prints_the_summary(app):
    result = app.test_cli_runner().invoke(args=["orgs", "import-gias", str(SAMPLE)])

    assert result.exit_code == 0, result.output
    assert "Read 15 rows (cp1252)." in result.output
    assert "Schools: 15 created, 0 updated, 0 unchanged; 1 recorded as closed." in result.output
    assert "Local authorities created: 3." in result.output
    assert "Rows skipped: 0." in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Organisation)) == 18


def test_import_gias_command_lists_skipped_rows_by_line(app, tmp_path):
    path = sample_variant(tmp_path / "bad.csv", {"990005": {"URN": "abc"}})

    result = app.test_cli_runner().invoke(args=["orgs", "import-gias", str(path)])

    assert result.exit_code == 0, result.output
    assert "Rows skipped: 1." in result.output
    assert "  line 6: URN 'abc' is not a number" in result.output


def test_import_gias_command_fails_naming_missing_columns(app, tmp_path):
    header, rows = sample_header_and_rows()
    path = write_extract(tmp_path / "wrong.csv", [name for name in header if name != "URN"], rows)

    result = app.test_cli_runner().invoke(args=["orgs", "import-gias", str(path)])

    assert result.exit_code == 1
    assert 'it has no "URN" column. Nothing was imported.' in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Organisation)) == 0


def test_import_gias_command_refuses_a_missing_file(app, tmp_path):
    result = app.test_cli_runner().invoke(args=["orgs", "import-gias", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
