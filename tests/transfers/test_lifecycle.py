"""The transfer state machine over HTTP: illegal moves are refused with a clear message and change
nothing; every legal move is audited; transfers to a school without a designated teacher wait in the
local authority's holding queue until one exists."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from portal.extensions import db
from portal.models import Role, Transfer, TransferStatus, utcnow
from portal.models.base import today_in_england
from portal.transfers import service
from tests.support import Factory
from tests.transfers.helpers import PDF_BYTES, World, create_draft, make_world, send, signed_in, upload
from tests.transfers.support_transfers import (
    audit_rows,
    delivered_transfer,
    flashed,
    issue_link,
    notification_rows,
    page_token,
    session_token,
    transfer_row,
)

S = TransferStatus


def _post(client: FlaskClient, transfer_id: int, action: str, **data: str) -> TestResponse:
    return client.post(
        f"/transfers/{transfer_id}/{action}", data={"csrf_token": session_token(client), **data}
    )


def _set_expiry(app: Flask, transfer_id: int, delta: timedelta) -> None:
    with app.app_context():
        transfer = db.session.get(Transfer, transfer_id)
        assert transfer is not None
        transfer.expires_at = utcnow() + delta
        db.session.commit()


def _purge(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["purge-expired"])
    assert result.exit_code == 0, result.output
    return result.output


def _actions(app: Flask, transfer_id: int) -> list[str]:
    return [row["action"] for row in audit_rows(app, outcome="success", object_id=transfer_id)]


# --- refused moves ------------------------------------------------------------------------------


def test_sending_twice_is_refused_with_a_clear_message_and_delivers_once(app, factory):
    made = delivered_transfer(app, factory)
    notices = len(notification_rows(app))

    again = send(made.sender, made.transfer_id)

    assert "already been sent" in flashed(made.sender, again, "error")
    assert len(audit_rows(app, "transfer.send", object_id=made.transfer_id)) == 1
    assert len(notification_rows(app)) == notices
    assert transfer_row(app, made.transfer_id)["status"] is S.SENT


def test_confirming_receipt_before_opening_is_refused(app, factory):
    made = delivered_transfer(app, factory)

    response = _post(made.teacher, made.transfer_id, "confirm-receipt", comment="Got it")

    assert "once the transfer has been opened" in flashed(made.teacher, response, "error")
    row = transfer_row(app, made.transfer_id)
    assert row["status"] is S.SENT and row["receipt_confirmed_at"] is None
    assert audit_rows(app, "transfer.confirm_receipt") == []
    assert notification_rows(app, "receipt_confirmed") == []


def test_confirming_receipt_twice_is_refused(app, factory):
    made = delivered_transfer(app, factory)
    made.teacher.get(f"/transfers/{made.transfer_id}")
    assert _post(made.teacher, made.transfer_id, "confirm-receipt").status_code == 302

    again = _post(made.teacher, made.transfer_id, "confirm-receipt")

    assert "only once" in flashed(made.teacher, again, "error")
    assert len(audit_rows(app, "transfer.confirm_receipt")) == 1
    assert len(notification_rows(app, "receipt_confirmed")) == 1


def test_withdrawing_an_expired_transfer_is_refused(app, factory):
    made = delivered_transfer(app, factory)
    _set_expiry(app, made.transfer_id, timedelta(seconds=-1))
    _purge(app)
    assert transfer_row(app, made.transfer_id)["status"] is S.EXPIRED

    response = _post(made.sender, made.transfer_id, "revoke")

    assert "Only a transfer that is on its way can be withdrawn" in flashed(made.sender, response, "error")
    row = transfer_row(app, made.transfer_id)
    assert row["status"] is S.EXPIRED and row["revoked_at"] is None
    assert audit_rows(app, "transfer.revoke") == []


def test_withdrawing_twice_is_refused(app, factory):
    made = delivered_transfer(app, factory)
    assert _post(made.sender, made.transfer_id, "revoke").status_code == 302

    again = _post(made.sender, made.transfer_id, "revoke")

    assert "Only a transfer that is on its way can be withdrawn" in flashed(made.sender, again, "error")
    assert len(audit_rows(app, "transfer.revoke")) == 1


def test_extending_beyond_the_maximum_is_refused(app, factory):
    made = delivered_transfer(app, factory)
    before = transfer_row(app, made.transfer_id)["expires_at"]
    too_late = today_in_england() + timedelta(days=61)  # the sender's maximum is 2 x 30 days

    response = _post(made.sender, made.transfer_id, "extend", new_expiry=too_late.isoformat())

    assert "at most 60 days after they were sent" in flashed(made.sender, response, "error")
    assert transfer_row(app, made.transfer_id)["expires_at"] == before
    assert audit_rows(app, "transfer.extend") == []


def test_extending_to_an_earlier_date_is_refused(app, factory):
    made = delivered_transfer(app, factory)
    earlier = today_in_england() + timedelta(days=5)

    response = _post(made.sender, made.transfer_id, "extend", new_expiry=earlier.isoformat())

    assert "must be later than the current one" in flashed(made.sender, response, "error")
    assert audit_rows(app, "transfer.extend") == []


def test_extending_a_draft_is_refused(app, factory):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    later = today_in_england() + timedelta(days=10)

    response = _post(sender, transfer_id, "extend", new_expiry=later.isoformat())

    assert "has been sent and has not ended" in flashed(sender, response, "error")
    assert transfer_row(app, transfer_id)["expires_at"] is None


def test_sending_without_a_document_is_refused(app, factory):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)

    response = send(sender, transfer_id)

    assert "Add at least one document" in flashed(sender, response, "error")
    assert transfer_row(app, transfer_id)["status"] is S.DRAFT
    assert notification_rows(app) == []


# --- every legal move is audited ----------------------------------------------------------------


def test_every_step_of_a_transfer_that_runs_its_course_is_audited(app, factory):
    made = delivered_transfer(app, factory)
    made.teacher.get(f"/transfers/{made.transfer_id}")
    download = made.teacher.get(issue_link(made.teacher, made.transfer_id, made.document_id))
    assert download.data == PDF_BYTES
    assert _post(made.teacher, made.transfer_id, "confirm-receipt").status_code == 302
    later = today_in_england() + timedelta(days=45)
    extended = _post(made.sender, made.transfer_id, "extend", new_expiry=later.isoformat())
    assert "expiry date has been changed" in flashed(made.sender, extended, "success")
    expires_at = transfer_row(app, made.transfer_id)["expires_at"]

    with time_machine.travel(expires_at + timedelta(minutes=1), tick=False):
        _purge(app)

    actions = _actions(app, made.transfer_id)
    for action in (
        "transfer.create",
        "transfer.send",
        "transfer.open",
        "transfer.confirm_receipt",
        "transfer.extend",
        "transfer.expire",
        "transfer.purge",
    ):
        assert actions.count(action) >= 1, (action, actions)
    assert audit_rows(app, "document.download", outcome="success", object_id=made.document_id)
    row = transfer_row(app, made.transfer_id)
    assert row["status"] is S.EXPIRED and row["purged_at"] is not None
    by_action = {r["action"]: r for r in audit_rows(app, object_id=made.transfer_id)}
    assert by_action["transfer.send"]["actor_user_id"] == made.world.sender.user_id
    assert by_action["transfer.confirm_receipt"]["actor_user_id"] == made.world.teacher.user_id
    assert by_action["transfer.expire"]["actor_user_id"] is None


def test_a_withdrawn_transfer_is_audited_and_then_purged(app, factory):
    made = delivered_transfer(app, factory)

    assert _post(made.sender, made.transfer_id, "revoke").status_code == 302
    _purge(app)

    actions = _actions(app, made.transfer_id)
    assert actions.count("transfer.revoke") == 1 and actions.count("transfer.purge") == 1
    assert transfer_row(app, made.transfer_id)["status"] is S.REVOKED


def test_opening_is_audited_and_moves_a_sent_transfer_to_opened_once(app, factory):
    made = delivered_transfer(app, factory)

    made.teacher.get(f"/transfers/{made.transfer_id}")
    first_opened = transfer_row(app, made.transfer_id)["first_opened_at"]
    made.teacher.get(f"/transfers/{made.transfer_id}")

    row = transfer_row(app, made.transfer_id)
    assert row["status"] is S.OPENED and row["first_opened_at"] == first_opened
    assert len(audit_rows(app, "transfer.open", object_id=made.transfer_id)) == 2


# --- holding queue ------------------------------------------------------------------------------


def _world_without_designated_teacher(factory: Factory) -> World:
    world = make_world(factory)
    return replace(world, receiving=factory.school("No Teacher Yet Academy", world.authority))


def _send_to_school_without_designated_teacher(
    app: Flask, factory: Factory
) -> tuple[World, FlaskClient, int]:
    world = _world_without_designated_teacher(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    assert upload(sender, transfer_id, PDF_BYTES, "Held.pdf").status_code == 302
    sent = send(sender, transfer_id)
    assert "waiting with the local authority" in flashed(sender, sent, "success")
    return world, sender, transfer_id


def test_a_transfer_to_a_school_without_a_designated_teacher_waits_with_the_authority(app, factory):
    world, _, transfer_id = _send_to_school_without_designated_teacher(app, factory)

    row = transfer_row(app, transfer_id)
    assert row["status"] is S.AWAITING_DESIGNATED_TEACHER and row["delivered_at"] is None
    (notice,) = notification_rows(app, "awaiting_designated_teacher")
    assert notice["to_address"] == world.caseworker.email
    caseworker = signed_in(app, world.caseworker)
    holding = caseworker.get("/transfers/holding")
    assert holding.status_code == 200 and row["reference"] in holding.get_data(as_text=True)
    other_authority = signed_in(
        app, factory.account(factory.local_authority("Elsewhere Council"), Role.CASEWORKER)
    )
    assert row["reference"] not in other_authority.get("/transfers/holding").get_data(as_text=True)


def test_a_held_transfer_is_delivered_once_the_school_has_a_designated_teacher(app, factory):
    world, _, transfer_id = _send_to_school_without_designated_teacher(app, factory)
    new_teacher = factory.account(world.receiving, Role.DESIGNATED_TEACHER)

    with app.app_context():
        delivered = service.deliver_waiting(db.session, world.receiving.id, "https://handover.example")
        db.session.commit()

    assert delivered == 1
    row = transfer_row(app, transfer_id)
    assert row["status"] is S.SENT and row["delivered_at"] is not None
    (arrived,) = notification_rows(app, "transfer_arrived")
    assert arrived["to_address"] == new_teacher.email
    assert audit_rows(app, "transfer.deliver", object_id=transfer_id)
    teacher = signed_in(app, new_teacher)
    assert row["reference"] in teacher.get("/transfers/incoming").get_data(as_text=True)
    assert teacher.get(f"/transfers/{transfer_id}").status_code == 200


def test_a_held_transfer_past_its_expiry_is_not_delivered(app, factory):
    world, _, transfer_id = _send_to_school_without_designated_teacher(app, factory)
    _set_expiry(app, transfer_id, timedelta(seconds=-1))
    factory.account(world.receiving, Role.DESIGNATED_TEACHER)

    with app.app_context():
        delivered = service.deliver_waiting(db.session, world.receiving.id, "https://handover.example")
        db.session.commit()

    assert delivered == 0
    assert transfer_row(app, transfer_id)["status"] is S.AWAITING_DESIGNATED_TEACHER
    assert notification_rows(app, "transfer_arrived") == []


def test_a_held_transfer_can_be_withdrawn_by_the_sender(app, factory):
    _, sender, transfer_id = _send_to_school_without_designated_teacher(app, factory)

    response = _post(sender, transfer_id, "revoke")

    assert "withdrawn" in flashed(sender, response, "success")
    assert transfer_row(app, transfer_id)["status"] is S.REVOKED
    assert page_token(sender, transfer_id)


def test_a_transfer_past_its_expiry_cannot_be_brought_back_by_extending_it_before_the_job_runs(app, factory):
    made = delivered_transfer(app, factory)
    _set_expiry(app, made.transfer_id, timedelta(seconds=-1))
    later = today_in_england() + timedelta(days=20)

    response = _post(made.sender, made.transfer_id, "extend", new_expiry=later.isoformat())

    assert "has expired" in flashed(made.sender, response, "error")
    assert transfer_row(app, made.transfer_id)["expires_at"] < utcnow()
    assert audit_rows(app, "transfer.extend") == []


def test_a_held_transfer_with_no_authority_to_tell_warns_the_sender_instead_of_claiming_someone_knows(
    app, factory
):
    world = make_world(factory)
    world = replace(world, receiving=factory.school("Independent Academy Without Authority", None))
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world, responsible_authority_id="0")
    assert upload(sender, transfer_id, PDF_BYTES, "Held.pdf").status_code == 302

    sent = send(sender, transfer_id)

    assert "nobody has been told" in flashed(sender, sent, "warning")
    assert flashed(sender, sent, "success") == ""
    assert transfer_row(app, transfer_id)["status"] is S.AWAITING_DESIGNATED_TEACHER
    assert notification_rows(app) == []
