"""Notifications over real SMTP (aiosmtpd on 127.0.0.1): who is told, what an e-mail may say (never
the child's details or a file name), and what happens when the mail server is down or hangs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from flask import Flask

from portal import create_app, mail, notifications
from portal.extensions import db
from portal.models import NotificationStatus, Role, User
from portal.upn import upn_check_letter
from tests.support import Factory
from tests.transfers.helpers import PDF_BYTES, World, create_draft, make_world, send, signed_in, upload
from tests.transfers.support_smtp import Received, SmtpServer, free_port, silent_server, smtp_server
from tests.transfers.support_transfers import (
    audit_rows,
    notification_rows,
    session_token,
    transfer_row,
)

# Initials that cannot occur by chance in a reference (its alphabet has no I or O).
INITIALS = "IO"
UPN = upn_check_letter("820200125001") + "820200125001"
FILENAME = "Zebra-safeguarding-7731.pdf"
BASE_URL = "http://127.0.0.1:8000"


def _send_with_child_details(app: Flask, world: World) -> int:
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(
        sender, world, child_initials=INITIALS, child_date_of_birth="2015-04-01", child_upn=UPN
    )
    assert upload(sender, transfer_id, PDF_BYTES, FILENAME).status_code == 302
    assert send(sender, transfer_id).status_code == 302
    return transfer_id


def _assert_says_nothing_about_the_child(received: Received) -> None:
    raw = received.raw.decode("utf-8", "replace")
    visible = f"{received.message['Subject']}\n{received.body}"
    assert not re.search(rf"\b{INITIALS}\b", visible)
    assert UPN not in raw
    assert "Zebra" not in raw and "7731" not in raw
    for date_of_birth in ("2015-04-01", "1 April 2015", "01/04/2015", "April 2015"):
        assert date_of_birth not in visible


def _deactivate(app: Flask, user_id: int) -> None:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        user.is_active = False
        db.session.commit()


def test_the_arrival_email_goes_to_every_active_designated_teacher_and_says_nothing_about_the_child(
    smtp: SmtpServer, app, factory
):
    world = make_world(factory)
    second = factory.account(world.receiving, Role.DESIGNATED_TEACHER)
    departed = factory.account(world.receiving, Role.DESIGNATED_TEACHER)
    _deactivate(app, departed.user_id)
    staff = factory.account(world.receiving, Role.SCHOOL_STAFF)
    elsewhere = factory.account(factory.school("Unrelated School"), Role.DESIGNATED_TEACHER)

    transfer_id = _send_with_child_details(app, world)

    reference = transfer_row(app, transfer_id)["reference"]
    recipients = sorted(address for r in smtp.all() for address in r.recipients)
    assert recipients == sorted([world.teacher.email, second.email])
    for account in (departed, staff, elsewhere):
        assert smtp.messages_to(account.email) == []
    for received in smtp.all():
        text = f"{received.message['Subject']}\n{received.body}"
        assert world.sending.name in text
        assert reference in text
        assert re.search(rf"{re.escape(BASE_URL)}/transfers/\S*", received.body), received.body
        _assert_says_nothing_about_the_child(received)
    assert {n["status"] for n in notification_rows(app, "transfer_arrived")} == {NotificationStatus.SENT}


def test_the_receipt_email_goes_to_the_sender_and_says_nothing_about_the_child(
    smtp: SmtpServer, app, factory
):
    world = make_world(factory)
    transfer_id = _send_with_child_details(app, world)
    teacher = signed_in(app, world.teacher)
    teacher.get(f"/transfers/{transfer_id}")

    confirmed = teacher.post(
        f"/transfers/{transfer_id}/confirm-receipt",
        data={"csrf_token": session_token(teacher), "comment": "Thanks"},
    )

    assert confirmed.status_code == 302
    (receipt,) = smtp.messages_to(world.sender.email)
    reference = transfer_row(app, transfer_id)["reference"]
    assert "Receipt confirmed" in receipt.message["Subject"]
    assert world.receiving.name in receipt.message["Subject"] and reference in receipt.body
    _assert_says_nothing_about_the_child(receipt)


def test_a_transfer_is_still_sent_when_the_mail_server_is_down_and_the_email_goes_later(
    environ, factory_port
):
    app, factory, port = factory_port
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    assert upload(sender, transfer_id, PDF_BYTES, "Plan.pdf").status_code == 302

    assert send(sender, transfer_id).status_code == 302

    assert transfer_row(app, transfer_id)["status"].value == "sent"
    (pending,) = notification_rows(app, "transfer_arrived")
    assert pending["status"] is NotificationStatus.PENDING
    assert pending["attempts"] == 1
    assert "refused or was unreachable" in pending["last_error"]
    page = sender.get(f"/transfers/{transfer_id}").get_data(as_text=True)
    assert "has not been delivered yet" in page and world.teacher.email in page

    with smtp_server(port) as server:
        result = app.test_cli_runner().invoke(args=["send-notifications"])  # not due yet
        assert result.exit_code == 0, result.output
        assert server.all() == []
        with time_machine.travel(pending["next_attempt_at"] + timedelta(seconds=1), tick=True):
            result = app.test_cli_runner().invoke(args=["send-notifications"])
        assert result.exit_code == 0, result.output
        assert "sent 1 e-mail" in result.output
        (delivered,) = server.messages_to(world.teacher.email)

    assert transfer_row(app, transfer_id)["reference"] in delivered.body
    (done,) = notification_rows(app, "transfer_arrived")
    assert done["status"] is NotificationStatus.SENT and done["attempts"] == 2 and done["last_error"] == ""
    assert "has not been delivered yet" not in sender.get(f"/transfers/{transfer_id}").get_data(as_text=True)


@pytest.fixture
def factory_port(environ):
    """An app whose mail server address is a closed port on 127.0.0.1, its factory and that port."""
    port = free_port()
    environ["PORTAL_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    application = create_app(environ)
    yield application, Factory(application), port
    with application.app_context():
        db.engine.dispose()


def test_a_hung_mail_server_is_tried_once_per_round_not_once_per_message(environ, monkeypatch, factory_hung):
    app, factory, accepted = factory_hung
    world = make_world(factory)
    factory.account(world.receiving, Role.DESIGNATED_TEACHER)
    factory.account(world.receiving, Role.DESIGNATED_TEACHER)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    assert upload(sender, transfer_id, PDF_BYTES, "Plan.pdf").status_code == 302

    assert send(sender, transfer_id).status_code == 302

    assert len(accepted) == 1, "every queued message waited for the hung server in turn"
    rows = notification_rows(app, "transfer_arrived")
    assert len(rows) == 3
    assert all(
        r["status"] is NotificationStatus.PENDING and r["attempts"] == 1 and r["last_error"] for r in rows
    )


@pytest.fixture
def factory_hung(environ, monkeypatch):
    monkeypatch.setattr(mail, "SMTP_TIMEOUT_SECONDS", 0.5)
    with silent_server() as (port, accepted):
        environ["PORTAL_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        application = create_app(environ)
        yield application, Factory(application), accepted
        with application.app_context():
            db.engine.dispose()


def test_a_school_name_with_a_line_break_cannot_break_or_block_the_email(smtp: SmtpServer, app, factory):
    authority = factory.local_authority()
    sending = factory.school("Oak Primary\r\nBcc: everyone@example.org", authority)
    receiving = factory.school("River Academy", authority)
    world = World(
        authority,
        sending,
        receiving,
        factory.account(sending, Role.SCHOOL_STAFF),
        factory.account(receiving, Role.DESIGNATED_TEACHER),
        factory.account(authority, Role.CASEWORKER),
    )

    transfer_id = _send_with_child_details(app, world)

    (arrived,) = smtp.messages_to(world.teacher.email)
    assert "\n" not in arrived.message["Subject"] and "\r" not in arrived.message["Subject"]
    assert arrived.message["Bcc"] is None
    assert sorted(arrived.recipients) == [world.teacher.email]
    assert transfer_row(app, transfer_id)["status"].value == "sent"
    assert {n["status"] for n in notification_rows(app)} == {NotificationStatus.SENT}


def test_a_mail_failure_is_never_recorded_with_the_servers_password(environ, factory_port):
    app, factory, port = factory_port
    with app.app_context():
        user = db.session.get(User, factory.account(factory.school("Any School"), Role.SCHOOL_STAFF).user_id)
        assert user is not None
        notifications.queue(db.session, kind="test", to=user, subject="Hello", body="Hello")
        db.session.commit()
        sent, failed = notifications.send_due(
            db.session, smtp_url=f"smtp+starttls://portal:s3cret-pw@127.0.0.1:{port}", sender="a@b.example"
        )
    assert (sent, failed) == (0, 1)
    (row,) = notification_rows(app, "test")
    assert "s3cret-pw" not in row["last_error"]
    assert all("s3cret-pw" not in repr(r) for r in audit_rows(app))
