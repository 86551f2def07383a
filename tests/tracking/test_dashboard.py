"""The caseworker dashboard over HTTP: counts, filters, sorting, export, chase, and other authorities kept out."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from portal.extensions import db
from portal.models import Document, DocumentCategory, Notification, Organisation, Role, TransferStatus, utcnow
from portal.tracking import dashboard
from tests.support import csrf_token
from tests.tracking.helpers import Area, actions, add_transfer, denied, import_term_dates, make_area
from tests.transfers.helpers import signed_in

C, S = DocumentCategory, TransferStatus
# Tuesday 10 November 2026, mid-morning in England.
TODAY = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(TODAY, tick=True):
        yield


class Seeded:
    """The transfers every dashboard test starts from (deadlines hand-counted on the Northshire calendar)."""

    def __init__(self, app: Flask, area: Area, elm_id: int) -> None:
        from tests.support import Org

        elm = Org(elm_id, "Elm School", None)
        self.due_friday = add_transfer(app, area, left_on=date(2026, 10, 16), status=S.SENT)  # due Fri 13 Nov
        self.overdue_cp = add_transfer(
            app,
            area,
            left_on=date(2026, 10, 21),
            status=S.OPENED,
            categories=(C.CHILD_PROTECTION, C.PEP),
            initials="AB",
        )  # due Wed 4 Nov
        self.confirmed_late = add_transfer(
            app,
            area,
            left_on=date(2026, 10, 1),
            status=S.RECEIPT_CONFIRMED,
            confirmed_at=datetime(2026, 11, 5, 12, tzinfo=UTC),
        )  # due Thu 22 Oct, confirmed Thu 5 Nov: 5 school days late
        self.awaiting = add_transfer(
            app, area, left_on=date(2026, 11, 6), status=S.AWAITING_DESIGNATED_TEACHER, categories=(C.PEP,)
        )  # due Mon 30 Nov (INSET Fri 27 Nov skipped)
        self.overdue_draft = add_transfer(
            app, area, left_on=date(2026, 10, 9), status=S.DRAFT
        )  # due Fri 6 Nov
        self.revoked = add_transfer(app, area, left_on=date(2026, 10, 1), status=S.REVOKED)
        self.from_elm = add_transfer(app, area, left_on=date(2026, 10, 16), status=S.SENT, sending=elm)
        self.elsewhere = add_transfer(
            app, area, left_on=date(2026, 10, 1), status=S.SENT, authority=area.other_authority
        )


@pytest.fixture
def area(factory) -> Area:
    return make_area(factory)


@pytest.fixture
def seeded(app, factory, area, frozen) -> Seeded:
    elm = factory.school("Elm School", area.authority)
    import_term_dates(app, area.authority)
    return Seeded(app, area, elm.id)


def _rows(page_html: str) -> list[str]:
    """The transfer references on a dashboard page, in order."""
    import re

    return re.findall(r'<span class="govuk-body-s">(HO-[0-9A-F]{4}-[0-9A-F]{4})', page_html)


def _reference(app: Flask, transfer_id: int) -> str:
    from portal.models import Transfer

    with app.app_context():
        transfer = db.session.get(Transfer, transfer_id)
        assert transfer is not None
        return transfer.reference


def test_counts_at_the_top_say_in_flight_overdue_awaiting_and_confirmed_this_term(app, area, seeded):
    with app.app_context():
        counts = dashboard.counts(db.session, area.authority.id, date(2026, 11, 10))
        assert counts == dashboard.Counts(0, 0, 0, 0)  # nothing before deadlines are computed
    client = signed_in(app, area.caseworker)
    page = client.get("/tracking/dashboard").get_data(as_text=True)
    assert "<strong>4</strong> in flight" in page  # sent, opened, awaiting, and Elm's
    assert "<strong>2</strong> overdue" in page  # the child-protection file and the draft
    assert "<strong>1</strong> awaiting a designated teacher" in page
    assert "<strong>1</strong> receipts confirmed this term" in page


def test_each_row_shows_the_clock_in_school_days(app, area, seeded):
    client = signed_in(app, area.caseworker)
    page = client.get("/tracking/dashboard").get_data(as_text=True)
    assert "4 school days overdue" in page  # due 4 Nov; 5, 6, 9, 10 Nov have passed
    assert "3 school days left" in page  # due Fri 13 Nov
    assert "Late by 5 school days" in page
    assert "Stopped" in page
    assert "Child protection file" in page  # the category that set the 5-day deadline
    assert _reference(app, seeded.elsewhere) not in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("view=overdue", ["overdue_cp", "overdue_draft"]),
        ("view=due_this_week", ["due_friday", "from_elm"]),
        ("view=awaiting_designated_teacher", ["awaiting"]),
        ("status=sent", ["due_friday", "from_elm"]),
        ("status=receipt_confirmed", ["confirmed_late"]),
        ("view=overdue&status=draft", ["overdue_draft"]),
        ("school=ELM", ["from_elm"]),
        ("sort=-deadline&view=overdue", ["overdue_draft", "overdue_cp"]),
        (
            "",
            [
                "confirmed_late",
                "revoked",
                "overdue_cp",
                "overdue_draft",
                "due_friday",
                "from_elm",
                "awaiting",
            ],
        ),
    ],
)
def test_filters_and_sorting(app, area, seeded, query, expected):
    if "ELM" in query:
        with app.app_context():
            elm = db.session.scalar(select(Organisation.id).where(Organisation.name == "Elm School"))
        query = query.replace("ELM", str(elm))
    client = signed_in(app, area.caseworker)
    page = client.get(f"/tracking/dashboard?{query}").get_data(as_text=True)
    assert _rows(page) == [_reference(app, getattr(seeded, name)) for name in expected]


def test_nonsense_filters_fall_back_instead_of_failing(app, area, seeded):
    client = signed_in(app, area.caseworker)
    response = client.get("/tracking/dashboard?view=everything&status=lost&sort=drop+table&page=-4&school=x")
    assert response.status_code == 200
    assert len(_rows(response.get_data(as_text=True))) == 7


def test_pages_hold_fifty_rows_and_stop_at_the_last(app, area, frozen):
    for _ in range(dashboard.PER_PAGE + 3):
        add_transfer(app, area, left_on=date(2026, 10, 16))
    client = signed_in(app, area.caseworker)
    first = client.get("/tracking/dashboard").get_data(as_text=True)
    second = client.get("/tracking/dashboard?page=2").get_data(as_text=True)
    beyond = client.get("/tracking/dashboard?page=99").get_data(as_text=True)
    assert len(_rows(first)) == 50 and len(_rows(second)) == 3
    assert not set(_rows(first)) & set(_rows(second))
    assert "Page 2 of 2" in second and _rows(beyond) == []


def test_the_export_has_every_filtered_row_with_spreadsheet_columns_and_is_audited(app, area, seeded):
    client = signed_in(app, area.caseworker)
    response = client.get("/tracking/dashboard.csv?view=overdue")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="handover-dashboard-2026-11-10.csv"'
    )
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["Reference", "Child initials", "UPN"]
    assert len(rows) == 3 and all(len(row) == len(rows[0]) for row in rows)
    by_reference = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    cp = by_reference[_reference(app, seeded.overdue_cp)]
    assert cp["Deadline"] == "2026-11-04"
    assert cp["School days left (negative: overdue)"] == "-4"  # a number, not neutralised text
    assert cp["Deadline set by"] == "Child protection file"
    assert "tracking.dashboard.export" in actions(app)


def test_export_neutralises_formulas_in_initials_and_school_names(app, factory, area, frozen):
    hostile_school = factory.school('=HYPERLINK("http://evil.example","open")', area.authority)
    for initials in ("=SUM", "+CMD", "-2+3", "@IF"):
        add_transfer(app, area, left_on=date(2026, 10, 16), initials=initials, sending=hostile_school)
    client = signed_in(app, area.caseworker)
    rows = list(
        csv.reader(io.StringIO(client.get("/tracking/dashboard.csv").get_data(as_text=True).lstrip("\ufeff")))
    )
    exported = sorted(row[1] for row in rows[1:])
    assert exported == ["'+CMD", "'-2+3", "'=SUM", "'@IF"]
    assert {row[3] for row in rows[1:]} == {'\'=HYPERLINK("http://evil.example","open")'}


def test_only_caseworkers_have_a_dashboard(app, area, seeded):
    for account in (area.teacher, area.sender):
        client = signed_in(app, account)
        assert client.get("/tracking/dashboard").status_code == 404
        assert client.get("/tracking/dashboard.csv").status_code == 404
    assert len(denied(app)) == 4


def test_a_caseworker_of_another_authority_gets_404_for_a_row_timeline_history_export_or_chase(
    app, area, seeded
):
    intruder = signed_in(app, area.other_caseworker)
    target = seeded.overdue_cp
    token = csrf_token(intruder.get("/"))
    for url in (
        f"/tracking/transfers/{target}",
        f"/tracking/transfers/{target}/child",
        f"/tracking/transfers/{target}/child.csv",
    ):
        assert intruder.get(url).status_code == 404, url
    chased = intruder.post(
        f"/tracking/transfers/{target}/chase", data={"csrf_token": token, "party": "sender"}
    )
    assert chased.status_code == 404
    assert [(row[1], row[2]) for row in denied(app)] == [("transfer", str(target))] * 4
    assert {row[0] for row in denied(app)} == {area.other_caseworker.user_id}
    # Their own dashboard and export hold only their own authority's transfer.
    own = intruder.get("/tracking/dashboard").get_data(as_text=True)
    assert _rows(own) == [_reference(app, seeded.elsewhere)]
    exported = intruder.get("/tracking/dashboard.csv").get_data(as_text=True)
    assert _reference(app, target) not in exported and _reference(app, seeded.elsewhere) in exported
    with app.app_context():
        assert db.session.scalars(select(Notification)).all() == []


def test_chase_emails_the_sender_without_child_details_once_a_day_and_is_audited(app, area, seeded):
    client = signed_in(app, area.caseworker)
    url = f"/tracking/transfers/{seeded.overdue_cp}"
    page = client.get(url)
    assert page.status_code == 200 and "Send a reminder" in page.get_data(as_text=True)
    response = client.post(f"{url}/chase", data={"csrf_token": csrf_token(page), "party": "sender"})
    assert response.status_code == 302
    again = client.post(
        f"{url}/chase", data={"csrf_token": csrf_token(page), "party": "sender"}, follow_redirects=True
    )
    assert "already chased" in again.get_data(as_text=True)
    with app.app_context():
        notices = db.session.scalars(select(Notification).where(Notification.kind == "chase_sender")).all()
        assert len(notices) == 1
        notice = notices[0]
        assert notice.recipient_user_id == area.sender.user_id
        text = notice.subject + notice.body
        assert _reference(app, seeded.overdue_cp) in text
        for secret in ("AB", "2015", "record.pdf", "UPN"):
            assert secret not in text
    assert actions(app).count("transfer.chase") == 1


def test_chasing_recipients_who_do_not_exist_yet_is_refused(app, area, seeded):
    client = signed_in(app, area.caseworker)
    page = client.get(f"/tracking/transfers/{seeded.awaiting}")
    response = client.post(
        f"/tracking/transfers/{seeded.awaiting}/chase",
        data={"csrf_token": csrf_token(page), "party": "recipients"},
        follow_redirects=True,
    )
    assert "no designated teacher" in response.get_data(as_text=True)
    assert "transfer.chase" not in actions(app)


def test_chase_needs_a_csrf_token(app, area, seeded):
    client = signed_in(app, area.caseworker)
    response = client.post(f"/tracking/transfers/{seeded.overdue_cp}/chase", data={"party": "sender"})
    assert response.status_code in (302, 400)
    assert "transfer.chase" not in actions(app)


def test_a_recipient_cannot_chase(app, area, seeded):
    teacher = signed_in(app, area.teacher)
    page = teacher.get(f"/tracking/transfers/{seeded.due_friday}")
    assert page.status_code == 200 and "Send a reminder" not in page.get_data(as_text=True)
    response = teacher.post(
        f"/tracking/transfers/{seeded.due_friday}/chase",
        data={"csrf_token": csrf_token(page), "party": "sender"},
    )
    assert response.status_code == 404


def test_changing_the_rules_recounts_deadlines(app, factory, area, seeded):
    admin = factory.account(area.authority, Role.ORG_ADMIN)
    client = signed_in(app, admin)
    page = client.get("/tracking/calendar")
    assert page.status_code == 200
    data = {f"days_{c.value}": "15" for c in DocumentCategory} | {"days_child_protection": "3"}
    saved = client.post("/tracking/calendar/rules", data={"csrf_token": csrf_token(page), **data})
    assert saved.status_code == 302
    caseworker = signed_in(app, area.caseworker)
    text = caseworker.get("/tracking/dashboard.csv?view=overdue").get_data(as_text=True)
    rows = {row[0]: row for row in csv.reader(io.StringIO(text.lstrip("\ufeff")))}
    # Wed 21 Oct + 3 school days: 22, 23 Oct, (half-term) 2 Nov.
    assert rows[_reference(app, seeded.overdue_cp)][8] == "2026-11-02"
    assert "calendar.rules_change" in actions(app)


def test_a_drafts_deadline_follows_the_documents_added_to_it(app, area, frozen):
    draft = add_transfer(app, area, left_on=date(2026, 10, 16), status=S.DRAFT)
    client = signed_in(app, area.caseworker)

    def deadline_cell() -> str:
        text = client.get("/tracking/dashboard.csv").get_data(as_text=True)
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
        return rows[1][9]

    assert deadline_cell() == "Common Transfer File (CTF)"
    with app.app_context():
        db.session.add(
            Document(
                transfer_id=draft,
                category=C.CHILD_PROTECTION,
                display_filename="cp.pdf",
                content_type="application/pdf",
                object_key="cp-late-addition",
                content_format="test",
                uploaded_by_id=area.sender.user_id,
                stored_at=utcnow(),
            )
        )
        db.session.commit()
    assert deadline_cell() == "Child protection file"
