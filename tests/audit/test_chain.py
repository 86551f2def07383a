"""The audit trail: events from real flows, tampering detected by ``flask audit verify``, safe encoding."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import audit
from portal.extensions import db
from portal.models import Document, Role, User
from tests.admin.helpers import NEW_PASSWORD, audit_rows, enrol_from_invitation, invitation_path, outbox
from tests.support import Factory, csrf_token, post_form, sign_in
from tests.transfers.helpers import (
    PDF_BYTES,
    create_draft,
    make_world,
    request_download,
    send,
    signed_in,
    upload,
)

HASH_COLUMNS = ("previous_hash", "event_hash")
CONTENT_COLUMNS = (
    "occurred_at",
    "actor_user_id",
    "actor_organisation_id",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "client_address",
    "request_id",
    "details",
    *HASH_COLUMNS,
)


def _verify(app: Flask) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    return result.exit_code, result.output


def _real_flows(app: Flask, factory: Factory) -> int:
    """An admin fails once, signs in, invites someone and signs out; returns the number of events."""
    school = factory.school()
    admin = factory.account(school, Role.ORG_ADMIN)
    client = app.test_client()
    page = client.get("/sign-in")
    client.post(
        "/sign-in",
        data={"csrf_token": csrf_token(page), "email": admin.email, "password": "not it", "code": "000000"},
    )
    assert sign_in(client, admin).status_code == 302
    post_form(
        client, "/admin/users/invite", display_name="New Person", email="new@example.org", role="auditor"
    )
    assert client.get("/admin/users/999999").status_code == 404
    post_form(client, "/", "/sign-out")
    rows = audit_rows(app)
    assert [row["action"] for row in rows] == [
        "auth.sign_in",
        "auth.sign_in",
        "admin.user.invite",
        "access.denied",
        "auth.sign_out",
    ]
    return len(rows)


def _execute(app: Flask, statement: str, **params: object) -> None:
    with app.app_context():
        db.session.execute(text(statement), params)
        db.session.commit()


def test_events_from_real_flows_form_an_intact_chain(app, factory):
    count = _real_flows(app, factory)

    exit_code, output = _verify(app)

    assert exit_code == 0, output
    assert f"Audit chain intact: {count} events verified." in output


def test_events_from_http_requests_say_who_what_when_and_where(app, factory):
    _real_flows(app, factory)

    for row in audit_rows(app):
        assert row["occurred_at"].tzinfo is UTC
        assert row["client_address"] == "127.0.0.1"
        assert row["request_id"]
        assert row["outcome"] in audit.OUTCOMES
    signed_in = audit_rows(app, "auth.sign_in")[1]
    assert signed_in["actor_user_id"] is not None
    assert signed_in["actor_organisation_id"] is not None
    assert (signed_in["object_type"], signed_in["outcome"]) == ("user", "success")


def _swap_contents(app: Flask, first: int, second: int) -> None:
    """Exchange everything but the sequence numbers of two events: the events are reordered."""
    rows = {row["sequence"]: row for row in audit_rows(app)}
    assignments = ", ".join(f"{column} = :{column}" for column in CONTENT_COLUMNS)
    statement = f"UPDATE audit_events SET {assignments} WHERE sequence = :target"  # noqa: S608 (fixed column names)
    for target, source in ((first, second), (second, first)):
        values = {column: rows[source][column] for column in CONTENT_COLUMNS}
        values["occurred_at"] = values["occurred_at"].replace(tzinfo=None)  # stored naive UTC
        _execute(app, statement, target=target, **values)


TAMPERING = {
    "an edited outcome": (
        lambda app, last: _execute(app, "UPDATE audit_events SET outcome = 'success' WHERE sequence = 1"),
        1,
    ),
    "an edited detail": (
        lambda app, last: _execute(app, "UPDATE audit_events SET details = '{}' WHERE sequence = 3"),
        3,
    ),
    "a removed middle event": (
        lambda app, last: _execute(app, "DELETE FROM audit_events WHERE sequence = 3"),
        3,
    ),
    "a removed last event": (
        lambda app, last: _execute(app, "DELETE FROM audit_events WHERE sequence = :s", s=last),
        "last",
    ),
    "two events swapped": (lambda app, last: _swap_contents(app, 2, 4), 2),
}


@pytest.mark.parametrize(("tamper", "first_bad"), TAMPERING.values(), ids=TAMPERING.keys())
def test_tampering_with_the_trail_is_detected_and_the_first_bad_event_named(app, factory, tamper, first_bad):
    count = _real_flows(app, factory)
    assert _verify(app)[0] == 0

    tamper(app, count)

    exit_code, output = _verify(app)
    expected = count if first_bad == "last" else first_bad
    assert exit_code == 1
    assert f"Audit chain BROKEN at event {expected}:" in output


def test_removing_every_event_is_detected(app, factory):
    _real_flows(app, factory)

    _execute(app, "DELETE FROM audit_events")

    exit_code, output = _verify(app)
    assert exit_code == 1
    assert "BROKEN at event 1" in output


HOSTILE = 'x\n2026-01-01 INFO portal.audit audit {"action": "forged"}\r\x1b[2J\x1b[31mred\x00'


def test_control_characters_in_details_are_stored_escaped_and_logged_on_one_line(app, caplog):
    caplog.set_level(logging.INFO, logger="portal.audit")
    with app.app_context():
        audit.record(db.session, "test.hostile_input", details={"typed": HOSTILE})
        db.session.commit()

    [row] = audit_rows(app, "test.hostile_input")
    for raw in ("\n", "\r", "\x1b", "\x00"):
        assert raw not in row["details"]
    assert json.loads(row["details"]) == {"typed": HOSTILE}
    [line] = [r.getMessage() for r in caplog.records if r.name == "portal.audit"]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x00" not in line
    assert _verify(app)[0] == 0


def test_a_forged_role_with_escape_codes_is_recorded_harmlessly(app, factory, caplog):
    caplog.set_level(logging.INFO, logger="portal.audit")
    admin = factory.account(factory.school(), Role.ORG_ADMIN)
    client = app.test_client()
    sign_in(client, admin)
    caplog.clear()

    response = post_form(
        client, "/admin/users/invite", display_name="Someone", email="someone@example.org", role=HOSTILE
    )

    assert response.status_code == 200
    [row] = audit_rows(app, "admin.user.invite_refused")
    assert "\n" not in row["details"] and "\x1b" not in row["details"]
    lines = [r.getMessage() for r in caplog.records if r.name == "portal.audit"]
    assert len(lines) == 1
    assert "\n" not in lines[0] and "\x1b" not in lines[0]


def _engine_for(app: Flask):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    # SQLite serialises writers; a generous busy timeout makes the second writer wait, not fail.
    return create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})


def test_concurrent_appends_from_two_sessions_keep_the_chain_intact(app):
    engine = _engine_for(app)
    per_thread = 25
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                with Session(engine) as session:
                    audit.record(session, "test.concurrent", details={"worker": worker, "n": n})
                    session.commit()
        except BaseException as problem:  # reported below, in the test's own thread
            failures.append(problem)

    threads = [threading.Thread(target=append, args=(worker,)) for worker in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    engine.dispose()

    assert failures == []
    rows = audit_rows(app, "test.concurrent")
    assert [row["sequence"] for row in rows] == list(range(1, 2 * per_thread + 1))
    written = sorted((d["worker"], d["n"]) for d in (json.loads(row["details"]) for row in rows))
    assert written == sorted((w, n) for w in (1, 2) for n in range(per_thread))
    exit_code, output = _verify(app)
    assert exit_code == 0, output
    assert f"{2 * per_thread} events verified" in output


def test_work_rolled_back_leaves_no_event(app):
    with app.app_context():
        audit.record(db.session, "test.rolled_back")
        db.session.rollback()
        audit.record(db.session, "test.kept")
        db.session.commit()
        with Session(db.engine) as fresh:  # a session that never touched the database
            audit.record(fresh, "test.rolled_back")
            fresh.rollback()
            fresh.commit()

    assert [row["action"] for row in audit_rows(app)] == ["test.kept"]


def test_an_event_whose_commit_fails_is_neither_stored_nor_logged(app, factory, caplog):
    caplog.set_level(logging.INFO, logger="portal.audit")
    account = factory.account(factory.school())
    with app.app_context():
        audit.record(db.session, "test.phantom")
        db.session.add(
            User(email=account.email, display_name="Duplicate", organisation_id=1, role=Role.AUDITOR)
        )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        audit.record(db.session, "test.after_failure")
        db.session.commit()

    assert [row["action"] for row in audit_rows(app)] == ["test.after_failure"]
    assert not any("test.phantom" in record.getMessage() for record in caplog.records)
    assert _verify(app)[0] == 0


def test_a_rolled_back_savepoint_drops_only_the_events_recorded_inside_it(app):
    with app.app_context(), Session(db.engine) as session:
        audit.record(session, "test.before_savepoint")
        savepoint = session.begin_nested()
        audit.record(session, "test.inside_failed_savepoint")
        savepoint.rollback()
        kept = session.begin_nested()
        audit.record(session, "test.inside_kept_savepoint")
        kept.commit()
        session.commit()

    assert [row["action"] for row in audit_rows(app)] == [
        "test.before_savepoint",
        "test.inside_kept_savepoint",
    ]


def test_no_password_code_token_or_seed_reaches_the_trail_or_the_log(app, factory, caplog):
    caplog.set_level(logging.DEBUG)
    school = factory.school()
    admin = factory.account(school, Role.ORG_ADMIN)
    wrong_password, wrong_code = "Wrong-Password-7731", "246813"
    client = app.test_client()
    page = client.get("/sign-in")
    client.post(
        "/sign-in",
        data={
            "csrf_token": csrf_token(page),
            "email": admin.email,
            "password": wrong_password,
            "code": "135791",
        },
    )
    page = client.get("/sign-in")
    client.post(
        "/sign-in",
        data={
            "csrf_token": csrf_token(page),
            "email": admin.email,
            "password": admin.password,
            "code": wrong_code,
        },
    )
    good_code = admin.code()
    sign_in(client, admin, code=good_code)
    post_form(
        client, "/admin/users/invite", display_name="New Person", email="new@example.org", role="auditor"
    )
    token = invitation_path(outbox(app)[0]).rsplit("/", 1)[1]
    seed = enrol_from_invitation(app.test_client(), f"/invitation/{token}")

    secrets_used = {
        wrong_password,
        admin.password,
        NEW_PASSWORD,
        wrong_code,
        "135791",
        good_code,
        token,
        seed,
        admin.secret,
    }
    stored = " ".join(
        json.dumps({k: v for k, v in row.items() if k not in HASH_COLUMNS}, default=str)
        for row in audit_rows(app)
    )
    logged = " ".join(record.getMessage() for record in caplog.records)
    for secret in secrets_used:
        assert secret not in stored
        assert secret not in logged
    assert len(audit_rows(app)) >= 6


def test_a_whole_transfer_leaves_a_trail_without_child_details_or_file_names(app, factory, caplog):
    caplog.set_level(logging.DEBUG)
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world, child_initials="QX", child_date_of_birth="2014-02-03")
    assert upload(sender, transfer_id, PDF_BYTES, "Zebra safeguarding chronology.pdf").status_code == 302
    assert send(sender, transfer_id).status_code == 302
    teacher = signed_in(app, world.teacher)
    with app.app_context():
        document_id = db.session.scalars(select(Document.id).where(Document.transfer_id == transfer_id)).one()
    link = request_download(teacher, transfer_id, document_id)
    download_token = link.headers["Location"].rsplit("/", 1)[1]
    assert teacher.get(link.headers["Location"]).status_code == 200

    rows = audit_rows(app)
    actions = {row["action"] for row in rows}
    assert {"transfer.create", "document.download"} <= actions
    for row in rows:
        # Who, what, when, where: every event of a signed-in request names its actor and request.
        assert row["occurred_at"].tzinfo is UTC
        assert row["request_id"] and row["client_address"], row["action"]
        assert row["actor_user_id"] is not None, row["action"]
        assert row["actor_organisation_id"] is not None, row["action"]
    stored = " ".join(
        json.dumps({k: v for k, v in row.items() if k not in HASH_COLUMNS}, default=str) for row in rows
    )
    logged = " ".join(record.getMessage() for record in caplog.records if record.name == "portal.audit")
    for private in ("QX", "2014-02-03", "Zebra", "chronology", download_token):
        assert private not in stored, private
        assert private not in logged, private
