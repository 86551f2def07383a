"""Tracking commands: the daily digest (cron) and importing an authority's term dates."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from portal import notifications, services
from portal.extensions import db
from portal.models import Organisation
from portal.models.base import today_in_england
from portal.tracking import calendar, digests, ics

calendar_cli = AppGroup("calendar", help="Authorities' school calendars (term dates and closures).")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(send_digests)
    app.cli.add_command(calendar_cli)


@click.command("send-digests")
@with_appcontext
@click.option(
    "--date", "on", type=click.DateTime(formats=["%Y-%m-%d"]), help="The day to send for (default: today)"
)
def send_digests(on: click.DateTime | None) -> None:
    """E-mail each caseworker what became overdue or is due within 2 school days (once a day; safe to rerun)."""
    settings = services.settings()
    today: date = on.date() if on is not None else today_in_england()  # type: ignore[attr-defined]
    report = digests.send_digests(db.session, today=today, public_base_url=settings.public_base_url)
    sent, failed = notifications.send_due(db.session, smtp_url=settings.smtp_url, sender=settings.mail_from)
    click.echo(
        f"Digests for {today.isoformat()}: {report.queued} queued, {report.nothing_to_report} with nothing to report, "
        f"{report.already_sent} already sent today. E-mails sent: {sent}; {failed} failed and will be retried."
    )


@calendar_cli.command("import")
@click.option("--authority-id", type=int, required=True, help="Id of the local authority")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_calendar(authority_id: int, path: Path) -> None:
    """Replace an authority's calendar with the terms and closures of an .ics file."""
    authority = db.session.get(Organisation, authority_id)
    if authority is None or authority.is_school:
        raise click.ClickException(f"No local authority with id {authority_id}")
    try:
        parsed = ics.parse_term_dates(path.read_bytes()[: ics.MAX_FILE_BYTES + 1])
    except ics.CalendarFileRefused as refused:
        raise click.ClickException(f"The calendar was not changed. {refused}") from None
    calendar.replace_calendar(db.session, authority.id, parsed.runs, user=None, source="ics")
    db.session.commit()
    click.echo(
        f"Imported {len(parsed.runs)} terms and closures for {authority.name}; skipped {parsed.skipped} other events."
    )
