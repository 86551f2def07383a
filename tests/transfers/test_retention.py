"""Retention jobs: expiry, reminders and crypto-shredding purges are idempotent, and a purge that is
interrupted (an object store refusing a delete, or the process stopped) finishes on the next run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from flask import Flask

from portal.extensions import db
from portal.models import Transfer, TransferStatus, utcnow
from portal.storage import LocalDirectoryStore, StorageUnavailable
from tests.transfers.helpers import PDF_BYTES, create_draft, make_world, send, signed_in, upload
from tests.transfers.support_transfers import (
    audit_rows,
    delivered_transfer,
    document_rows,
    notification_rows,
    objects_dir,
    session_token,
    stored_objects,
    transfer_row,
)

S = TransferStatus


class DeleteFailsStore(LocalDirectoryStore):
    """The local store, except that deleting the named keys fails while ``failing`` is set."""

    def __init__(self, root: str, keys: set[str], error: Callable[[], BaseException]) -> None:
        super().__init__(root)
        self.keys = keys
        self.error = error
        self.failing = True
        self.attempts: list[str] = []

    def delete(self, key: str) -> None:
        self.attempts.append(key)
        if self.failing and key in self.keys:
            raise self.error()
        super().delete(key)


def _run(app: Flask, command: str) -> str:
    result = app.test_cli_runner().invoke(args=[command])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _withdrawn_transfer_with_documents(app: Flask, factory, count: int) -> int:
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    for n in range(count):
        assert upload(sender, transfer_id, PDF_BYTES + str(n).encode(), f"Part {n}.pdf").status_code == 302
    assert send(sender, transfer_id).status_code == 302
    revoked = sender.post(f"/transfers/{transfer_id}/revoke", data={"csrf_token": session_token(sender)})
    assert revoked.status_code == 302
    assert len(stored_objects(app)) == count
    return transfer_id


def _assert_purged(app: Flask, transfer_id: int, documents: int) -> None:
    rows = document_rows(app, transfer_id)
    assert len(rows) == documents
    for row in rows:
        assert row["wrapped_key"] is None and row["shredded_at"] is not None
        assert row["display_filename"] and row["plaintext_sha256"]  # metadata kept
    assert stored_objects(app) == []
    transfer = transfer_row(app, transfer_id)
    assert transfer["purged_at"] is not None and transfer["reference"] and transfer["child_initials"]
    assert len(audit_rows(app, "transfer.purge", object_id=transfer_id)) == 1


def test_purging_twice_destroys_each_document_once_and_keeps_the_history(app, factory):
    transfer_id = _withdrawn_transfer_with_documents(app, factory, 2)

    first = _run(app, "purge-expired")
    second = _run(app, "purge-expired")

    assert "purged 1 transfer(s), destroying 2 document(s)" in first
    assert "purged 0 transfer(s), destroying 0 document(s)" in second
    _assert_purged(app, transfer_id, 2)
    assert len(audit_rows(app, "document.shred")) == 2


@pytest.mark.parametrize(
    "error",
    [lambda: StorageUnavailable("object store is unreachable"), KeyboardInterrupt],
    ids=["store-refuses-the-delete", "process-stopped-midway"],
)
def test_a_purge_interrupted_at_the_second_document_finishes_on_the_next_run(app, factory, error):
    transfer_id = _withdrawn_transfer_with_documents(app, factory, 3)
    keys = [row["object_key"] for row in document_rows(app, transfer_id)]
    store = DeleteFailsStore(str(objects_dir(app)), {keys[1]}, error)
    app.extensions["portal.object_store"] = store

    app.test_cli_runner().invoke(args=["purge-expired"])

    assert transfer_row(app, transfer_id)["purged_at"] is None, "marked purged with an object left"
    assert document_rows(app, transfer_id)[0]["wrapped_key"] is None
    assert (objects_dir(app) / keys[1]).exists()
    assert document_rows(app, transfer_id)[1]["wrapped_key"] is None  # the key went first: unreadable now

    store.failing = False
    _run(app, "purge-expired")

    _assert_purged(app, transfer_id, 3)
    assert len(audit_rows(app, "document.shred")) == 3


def _sent_transfer_expires_at(app: Flask, transfer_id: int):
    expires_at = transfer_row(app, transfer_id)["expires_at"]
    assert expires_at is not None
    return expires_at


def test_the_expiry_reminder_is_sent_once_three_days_before(app, factory):
    made = delivered_transfer(app, factory)
    expires_at = _sent_transfer_expires_at(app, made.transfer_id)

    with time_machine.travel(expires_at - timedelta(days=3, hours=1), tick=False):
        _run(app, "send-notifications")
    assert notification_rows(app, "expiry_reminder") == []

    with time_machine.travel(expires_at - timedelta(days=2), tick=False):
        assert "queued 1 reminder(s)" in _run(app, "send-notifications")
        assert "queued 0 reminder(s)" in _run(app, "send-notifications")
    with time_machine.travel(expires_at - timedelta(days=1), tick=False):
        _run(app, "send-notifications")

    (reminder,) = notification_rows(app, "expiry_reminder")
    assert reminder["to_address"] == made.world.teacher.email
    assert reminder["status"].value == "sent"


def test_no_reminder_once_receipt_is_confirmed(app, factory):
    made = delivered_transfer(app, factory)
    made.teacher.get(f"/transfers/{made.transfer_id}")
    made.teacher.post(
        f"/transfers/{made.transfer_id}/confirm-receipt", data={"csrf_token": session_token(made.teacher)}
    )
    expires_at = _sent_transfer_expires_at(app, made.transfer_id)

    with time_machine.travel(expires_at - timedelta(days=2), tick=False):
        _run(app, "send-notifications")

    assert notification_rows(app, "expiry_reminder") == []


def test_an_unopened_transfer_that_expires_tells_the_sender_and_the_caseworker(app, factory):
    made = delivered_transfer(app, factory)
    expires_at = _sent_transfer_expires_at(app, made.transfer_id)

    with time_machine.travel(expires_at + timedelta(minutes=5), tick=False):
        assert "Expired 1 transfer(s)" in _run(app, "purge-expired")
        assert "Expired 0 transfer(s)" in _run(app, "purge-expired")

    notices = notification_rows(app, "expired_unopened")
    assert sorted(n["to_address"] for n in notices) == sorted(
        [made.world.sender.email, made.world.caseworker.email]
    )
    for notice in notices:
        assert "JS" not in notice["subject"] and "Report.pdf" not in notice["body"]
    row = transfer_row(app, made.transfer_id)
    assert row["status"] is S.EXPIRED and row["purged_at"] is not None
    assert stored_objects(app) == []
    (expired,) = audit_rows(app, "transfer.expire", object_id=made.transfer_id)
    assert expired["details"] == '{"unopened":true}'


def test_an_opened_transfer_that_expires_sends_no_unopened_notice(app, factory):
    made = delivered_transfer(app, factory)
    made.teacher.get(f"/transfers/{made.transfer_id}")
    expires_at = _sent_transfer_expires_at(app, made.transfer_id)

    with time_machine.travel(expires_at + timedelta(minutes=5), tick=False):
        _run(app, "purge-expired")

    assert notification_rows(app, "expired_unopened") == []
    assert transfer_row(app, made.transfer_id)["status"] is S.EXPIRED


def test_a_transfer_not_yet_due_is_left_alone(app, factory):
    made = delivered_transfer(app, factory)

    assert "Expired 0 transfer(s); purged 0 transfer(s)" in _run(app, "purge-expired")

    assert transfer_row(app, made.transfer_id)["status"] is S.SENT
    assert len(stored_objects(app)) == 1
    with app.app_context():
        transfer = db.session.get(Transfer, made.transfer_id)
        assert transfer is not None and transfer.expires_at is not None and transfer.expires_at > utcnow()
