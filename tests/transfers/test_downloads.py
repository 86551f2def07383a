"""Single-use download links (SECURITY.md items 32-35): a link works once, for its own user, for five
minutes, while the transfer is available; every refusal is audited."""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db
from portal.models import Role, Transfer, utcnow
from portal.transfers import service
from tests.transfers.helpers import PDF_BYTES, signed_in
from tests.transfers.support_transfers import (
    audit_rows,
    delivered_transfer,
    issue_link,
    page_token,
    transfer_row,
)


def _refusals(app: Flask) -> list[str]:
    return [
        row["details"]
        for row in audit_rows(app, "document.download", outcome="denied")
        if row["object_type"] == "download_link"
    ]


def _successful_downloads(app: Flask, document_id: int) -> int:
    return len(audit_rows(app, "document.download", outcome="success", object_id=document_id))


def _set_expiry(app: Flask, transfer_id: int, delta: timedelta) -> None:
    with app.app_context():
        transfer = db.session.get(Transfer, transfer_id)
        assert transfer is not None
        transfer.expires_at = utcnow() + delta
        db.session.commit()


def test_a_link_works_once_then_says_it_has_already_been_used(app, factory):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)

    first = made.teacher.get(link)
    assert first.status_code == 200 and first.data == PDF_BYTES  # read: the stream ends the request
    again = made.teacher.get(link)

    assert again.status_code == 410
    assert "already been used" in again.get_data(as_text=True)
    assert _refusals(app) == ['{"reason":"already_used"}']
    assert _successful_downloads(app, made.document_id) == 1


def _same_session_client(app: Flask, original: FlaskClient) -> FlaskClient:
    copy = app.test_client()
    cookie = original.get_cookie("handover")
    assert cookie is not None
    copy.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    return copy


def test_a_link_used_twice_at_the_same_moment_downloads_exactly_once(app, factory, monkeypatch):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)
    clients = [made.teacher, _same_session_client(app, made.teacher)]
    start = threading.Barrier(len(clients))
    # The worst interleaving, made certain: both requests read the link as unused, then one claims
    # it and finishes while the other still holds its stale "unused" reading. Only an atomic claim
    # (compare-and-set in the database) stops the second download; a check-then-set would not.
    # (Two claims at the very same instant are serialised by the database: a row lock on
    # PostgreSQL, and SQLite refuses the loser as busy, which is no download either.)
    both_checked = threading.Barrier(len(clients))
    first_claim = threading.Lock()
    first_finished = threading.Event()
    real_is_past_expiry = service._is_past_expiry

    def after_both_have_checked(transfer: Transfer) -> bool:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait(timeout=30)
        if not first_claim.acquire(blocking=False):
            first_finished.wait(timeout=30)
        return real_is_past_expiry(transfer)

    monkeypatch.setattr(service, "_is_past_expiry", after_both_have_checked)
    results: list[tuple[int, bytes]] = []
    errors: list[BaseException] = []

    def fetch(client: FlaskClient) -> None:
        try:
            start.wait(timeout=10)
            response = client.get(link)
            results.append((response.status_code, response.get_data()))
        except BaseException as problem:  # reported below, not lost in the thread
            errors.append(problem)
        finally:
            first_finished.set()

    threads = [threading.Thread(target=fetch, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    assert errors == []
    assert not both_checked.broken, "the two requests did not both read the link before the claim"
    assert sorted(status for status, _ in results) == [200, 410]
    assert [body for status, body in results if status == 200] == [PDF_BYTES]
    assert _successful_downloads(app, made.document_id) == 1
    assert _refusals(app) == ['{"reason":"already_used"}']


def test_a_forwarded_link_is_refused_to_another_designated_teacher_of_the_same_school(app, factory):
    made = delivered_transfer(app, factory)
    colleague_account = factory.account(made.world.receiving, Role.DESIGNATED_TEACHER)
    colleague = signed_in(app, colleague_account)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)

    forwarded = colleague.get(link)

    assert forwarded.status_code == 404
    assert PDF_BYTES not in forwarded.data
    assert _refusals(app) == ['{"reason":"other_user"}']
    denied = audit_rows(app, "document.download", outcome="denied")
    assert denied[0]["actor_user_id"] == colleague_account.user_id
    # The rightful user's link was not used up by the attempt.
    assert made.teacher.get(link).data == PDF_BYTES


def test_a_link_stops_working_when_the_transfer_is_withdrawn(app, factory):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)

    revoked = made.sender.post(
        f"/transfers/{made.transfer_id}/revoke",
        data={"csrf_token": page_token(made.sender, made.transfer_id)},
    )
    assert revoked.status_code == 302
    response = made.teacher.get(link)

    assert response.status_code == 410
    assert PDF_BYTES not in response.data
    assert _refusals(app) == ['{"reason":"transfer_ended"}']
    assert _successful_downloads(app, made.document_id) == 0


def test_a_link_stops_working_when_the_transfer_expires_even_before_the_expiry_job_runs(app, factory):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)
    _set_expiry(app, made.transfer_id, timedelta(minutes=1))

    with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True):
        response = made.teacher.get(link)

    assert response.status_code == 410
    assert _refusals(app) == ['{"reason":"transfer_ended"}']
    assert _successful_downloads(app, made.document_id) == 0


def test_a_link_older_than_five_minutes_has_expired(app, factory):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)

    with time_machine.travel(utcnow() + timedelta(minutes=5, seconds=1), tick=True):
        response = made.teacher.get(link)

    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)
    assert _refusals(app) == ['{"reason":"expired"}']


def test_a_link_still_works_just_inside_its_five_minutes(app, factory):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)

    with time_machine.travel(utcnow() + timedelta(minutes=4, seconds=50), tick=True):
        response = made.teacher.get(link)

    assert response.status_code == 200 and response.data == PDF_BYTES


def test_a_link_stops_working_after_the_transfer_is_purged(app, factory):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)
    _set_expiry(app, made.transfer_id, timedelta(seconds=-1))

    result = app.test_cli_runner().invoke(args=["purge-expired"])
    assert result.exit_code == 0, result.output
    assert "destroying 1 document" in result.output
    response = made.teacher.get(link)

    assert response.status_code == 410
    assert PDF_BYTES not in response.data
    assert _refusals(app) == ['{"reason":"transfer_ended"}']
    assert transfer_row(app, made.transfer_id)["purged_at"] is not None


def test_an_unknown_or_tampered_token_is_refused_and_audited(app, factory):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)

    response = made.teacher.get(link[:-2] + ("AA" if not link.endswith("AA") else "BB"))

    assert response.status_code == 404
    assert _refusals(app) == ['{"reason":"unknown"}']
    assert made.teacher.get(link).data == PDF_BYTES


def test_the_sender_cannot_get_a_download_link(app, factory):
    made = delivered_transfer(app, factory)

    response = made.sender.post(
        f"/transfers/{made.transfer_id}/documents/{made.document_id}/link",
        data={"csrf_token": page_token(made.sender, made.transfer_id)},
    )

    assert response.status_code in (404, 410)
    assert audit_rows(app, "download_link.issue") == []


def test_the_token_never_appears_in_the_audit_trail(app, factory):
    made = delivered_transfer(app, factory)
    link = issue_link(made.teacher, made.transfer_id, made.document_id)
    token = link.rsplit("/", 1)[1]
    made.teacher.get(link)
    made.teacher.get(link)

    for row in audit_rows(app):
        assert token not in repr(row)
