"""``flask --app portal orgs ...``: keeping the directory of schools and authorities up to date."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from portal.directory.gias import GiasImportError, ImportSummary, import_gias
from portal.extensions import db

orgs_cli = AppGroup("orgs", help="Schools and local authorities.")


@orgs_cli.command("import-gias")
@click.argument("extract", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_gias_command(extract: Path) -> None:
    """Create or update schools (and their authorities) from a GIAS establishment extract.

    Download the extract from https://get-information-schools.service.gov.uk/Downloads
    ("Establishment fields" CSV). Importing the same file again changes nothing.
    """
    try:
        summary = import_gias(db.session, extract)
    except GiasImportError as problem:
        raise click.ClickException(str(problem)) from None
    _print_summary(summary)


def _print_summary(summary: ImportSummary) -> None:
    click.echo(f"Read {summary.rows} rows ({summary.encoding}).")
    click.echo(
        f"Schools: {summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged; "
        f"{summary.closed} recorded as closed."
    )
    click.echo(f"Local authorities created: {summary.local_authorities_created}.")
    click.echo(f"Rows skipped: {summary.skipped_count}.")
    for skipped in summary.skipped:
        click.echo(f"  line {skipped.line}: {skipped.reason}")
    if summary.skipped_count > len(summary.skipped):
        click.echo(f"  ... and {summary.skipped_count - len(summary.skipped)} more.")
