"""The daily digest (idempotent, no child details) and an authority admin's calendar page."""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import (
    CalendarEntry,
    DigestDelivery,
    DocumentCategory,
    Notification,
    Role,
    TransferStatus,
)
from tests.support import csrf_token
from tests.tracking.helpers import (
    TERM_DATES,
    Area,
    actions,
    add_transfer,
    denied,
    import_term_dates,
    make_area,
    reference_of,
)
from tests.transfers.helpers import make_world, signed_in

C, S = DocumentCategory, TransferStatus


@pytest.fixture
def area(app, factory) -> Area:
    area = make_area(factory)
    import_term_dates(app, area.authority)
    return area


def _digest(runner, day: str) -> str:
    result = runner.invoke(args=["send-digests", "--date", day])
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_the_digest_names_new_overdue_and_due_soon_transfers_once_a_day_without_child_details(app, area):
    overdue = add_transfer(
        app, area, left_on=date(2026, 10, 21), categories=(C.CHILD_PROTECTION,), upn="A123456789012"
    )
    due_soon = add_transfer(
        app, area, left_on=date(2026, 10, 16)
    )  # due Fri 13 Nov: 2 school days after Wed 11
    later = add_transfer(app, area, left_on=date(2026, 11, 6))  # due 30 Nov
    add_transfer(app, area, left_on=date(2026, 10, 1), status=S.RECEIPT_CONFIRMED)  # the clock has stopped
    runner = app.test_cli_runner()

    refs = {i: reference_of(app, i) for i in (overdue, due_soon, later)}
    first = _digest(runner, "2026-11-11")
    assert "1 queued" in first
    with app.app_context():
        notice = db.session.scalars(select(Notification).where(Notification.kind == "tracking_digest")).one()
        assert notice.recipient_user_id == area.caseworker.user_id
        assert (
            refs[overdue] in notice.body and refs[due_soon] in notice.body and refs[later] not in notice.body
        )
        for secret in ("JS", "A123456789012", "2015", "record.pdf"):
            assert secret not in notice.body + notice.subject

    again = _digest(runner, "2026-11-11")
    assert "0 queued" in again and "2 already sent today" in again
    with app.app_context():
        assert (
            len(db.session.scalars(select(Notification).where(Notification.kind == "tracking_digest")).all())
            == 1
        )
        # Southshire's caseworker had nothing to hear about, and is not sent an empty e-mail.
        delivered = sorted(db.session.scalars(select(DigestDelivery.user_id)))
        assert delivered == sorted([area.caseworker.user_id, area.other_caseworker.user_id])
    assert actions(app).count("tracking.digest") == 1

    # The next day: the overdue one is not new any more; the one due Friday is still due soon.
    _digest(runner, "2026-11-12")
    with app.app_context():
        latest = db.session.scalars(
            select(Notification)
            .where(Notification.kind == "tracking_digest")
            .order_by(Notification.id.desc())
        ).first()
        assert latest is not None
        assert "Became overdue" not in latest.body and refs[due_soon] in latest.body


def test_an_admin_imports_term_dates_and_a_hostile_file_leaves_the_calendar_unchanged(app, factory):
    authority = factory.local_authority("Westshire")
    admin = factory.account(authority, Role.ORG_ADMIN)
    client = signed_in(app, admin)
    page = client.get("/tracking/calendar")
    assert page.status_code == 200
    token = csrf_token(page)
    imported = client.post(
        "/tracking/calendar/import",
        data={"csrf_token": token, "file": (io.BytesIO(TERM_DATES.read_bytes()), "term-dates.ics")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "Imported 7 terms and closures" in imported.get_data(as_text=True)

    def entries() -> list[tuple[str, date, date]]:
        with app.app_context():
            return [
                (e.kind.value, e.starts_on, e.ends_on)
                for e in db.session.scalars(select(CalendarEntry).order_by(CalendarEntry.id))
            ]

    before = entries()
    assert len(before) == 7
    hostile = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\nRRULE:FREQ=DAILY\r\nSUMMARY:<script>alert(1)</script> term\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    refused = client.post(
        "/tracking/calendar/import",
        data={"csrf_token": token, "file": (io.BytesIO(hostile), "evil.ics")},
        content_type="multipart/form-data",
    )
    body = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "The calendar was not changed" in body and "repeats" in body
    assert "<script>alert(1)</script>" not in body  # the title is shown escaped
    assert entries() == before
    garbage = client.post(
        "/tracking/calendar/import",
        data={"csrf_token": token, "file": (io.BytesIO(b"\x00\x01PK\x03\x04"), "zip.ics")},
        content_type="multipart/form-data",
    )
    assert garbage.status_code == 400 and entries() == before
    assert actions(app).count("calendar.replace") == 1
    assert actions(app).count("calendar.import") == 2  # the two refused files


def test_an_admin_adds_and_removes_closures_but_not_another_authoritys(app, factory):
    authority, other = factory.local_authority("Westshire"), factory.local_authority("Eastshire")
    admin, other_admin = factory.account(authority, Role.ORG_ADMIN), factory.account(other, Role.ORG_ADMIN)
    client = signed_in(app, admin)
    page = client.get("/tracking/calendar")
    added = client.post(
        "/tracking/calendar/entries",
        data={
            "csrf_token": csrf_token(page),
            "kind": "closure",
            "starts_on": "2026-11-27",
            "ends_on": "2026-11-27",
            "summary": "Strike day",
        },
    )
    assert added.status_code == 302
    backwards = client.post(
        "/tracking/calendar/entries",
        data={
            "csrf_token": csrf_token(page),
            "kind": "term",
            "starts_on": "2026-12-18",
            "ends_on": "2026-09-02",
        },
    )
    assert backwards.status_code == 400 and "on or after the first day" in backwards.get_data(as_text=True)
    with app.app_context():
        entry_id = db.session.scalars(select(CalendarEntry.id)).one()
    intruder = signed_in(app, other_admin)
    other_page = intruder.get("/tracking/calendar")
    refused = intruder.post(
        "/tracking/calendar/entries/remove",
        data={"csrf_token": csrf_token(other_page), "entry_id": str(entry_id)},
    )
    assert refused.status_code == 404 and denied(app)[-1][1:] == ("calendar_entry", str(entry_id))
    removed = client.post(
        "/tracking/calendar/entries/remove", data={"csrf_token": csrf_token(page), "entry_id": str(entry_id)}
    )
    assert removed.status_code == 302
    with app.app_context():
        assert db.session.scalars(select(CalendarEntry)).all() == []


def test_only_authority_admins_manage_calendars(app, factory):
    school_admin = factory.account(factory.school(), Role.ORG_ADMIN)
    caseworker = factory.account(factory.local_authority(), Role.CASEWORKER)
    for account in (school_admin, caseworker):
        assert signed_in(app, account).get("/tracking/calendar").status_code == 404


@pytest.mark.parametrize(
    ("left_on", "message"),
    [("2099-01-01", "cannot be in the future"), ("2010-01-01", "after their date of birth")],
)
def test_a_leaving_date_in_the_future_or_before_birth_never_reaches_the_clocks(
    app, factory, left_on, message
):
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    page = sender.get(f"/transfers/new?school={world.receiving.id}")
    response = sender.post(
        f"/transfers/new?school={world.receiving.id}",
        data={
            "csrf_token": csrf_token(page),
            "school_id": str(world.receiving.id),
            "child_initials": "JS",
            "child_date_of_birth": "2015-04-01",
            "responsible_authority_id": str(world.authority.id),
            "left_on": left_on,
        },
    )
    assert response.status_code == 200 and message in response.get_data(as_text=True)
    caseworker = signed_in(app, world.caseworker)
    assert "0 transfers" in caseworker.get("/tracking/dashboard").get_data(as_text=True)
