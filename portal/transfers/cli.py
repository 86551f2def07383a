"""Scheduled jobs and maintenance commands (cron or systemd timers; all idempotent)."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from portal import notifications, services
from portal.extensions import db
from portal.transfers import maintenance, retention

storage_cli = AppGroup("storage", help="The encrypted object store.")
keys_cli = AppGroup("keys", help="Key-encryption keys.")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(purge_expired)
    app.cli.add_command(send_notifications)
    app.cli.add_command(storage_cli)
    app.cli.add_command(keys_cli)


@click.command("purge-expired")
@with_appcontext  # as the AppGroup commands are; app.cli (and its test runner) does not push one
def purge_expired() -> None:
    """Expire transfers past their date, then crypto-shred the documents of expired and withdrawn ones."""
    settings = services.settings()
    expired = retention.expire_due(db.session, settings.public_base_url)
    transfers, documents = retention.purge_ended(db.session, services.object_store())
    click.echo(
        f"Expired {expired} transfer(s); purged {transfers} transfer(s), destroying {documents} document(s)."
    )


@click.command("send-notifications")
@with_appcontext
def send_notifications() -> None:
    """Deliver held transfers, queue expiry reminders, and send every e-mail that is due (retrying failures)."""
    settings = services.settings()
    delivered = retention.deliver_all_waiting(db.session, settings.public_base_url)
    reminded = retention.send_expiry_reminders(db.session, settings.public_base_url)
    sent, failed = notifications.send_due(db.session, smtp_url=settings.smtp_url, sender=settings.mail_from)
    click.echo(
        f"Delivered {delivered} held transfer(s); queued {reminded} reminder(s); sent {sent} e-mail(s); {failed} failed and will be retried."
    )


@storage_cli.command("sweep")
@click.option("--grace-hours", type=int, default=24, show_default=True, help="Leave anything younger alone.")
def sweep(grace_hours: int) -> None:
    """Remove stored objects no document owns and uploads that never completed."""
    report = maintenance.sweep_storage(
        db.session, services.object_store(), grace=timedelta(hours=grace_hours)
    )
    click.echo(
        f"Removed {report.orphan_objects} orphaned object(s) and {report.abandoned_reservations} unfinished "
        f"upload(s), and {report.temporary_files} temporary file(s) left by interrupted uploads."
    )


@keys_cli.command("rotate")
def rotate() -> None:
    """Re-wrap every document key and TOTP seed under the newest key-encryption key (resumable)."""
    report = maintenance.rotate_keys(db.session, services.key_wrapper(), services.keyring())
    click.echo(f"Re-wrapped {report.document_keys} document key(s) and {report.totp_secrets} TOTP seed(s).")
