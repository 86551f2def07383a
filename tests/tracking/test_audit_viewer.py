"""The audit viewer: who sees which events, filters that never widen the scope, exports, and the chain check."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date

from flask import Flask
from sqlalchemy import text

from portal import audit
from portal.extensions import db
from portal.models import Role
from tests.support import Account, csrf_token
from tests.tracking.helpers import actions, add_transfer, denied, make_area
from tests.transfers.helpers import signed_in


def _event(app: Flask, action: str, who: Account, **kwargs: object) -> None:
    with app.app_context():
        audit.record(
            db.session,
            action,
            actor_user_id=who.user_id,
            actor_organisation_id=who.organisation_id,
            **kwargs,  # type: ignore[arg-type]
        )
        db.session.commit()


def _sequences(page: str) -> list[int]:
    return [
        int(n)
        for n in re.findall(r'<tr class="govuk-table__row">\s*<td class="govuk-table__cell">(\d+)</td>', page)
    ]


def _actions_on(page: str) -> list[str]:
    return re.findall(r"<code>([a-z_.]+)</code>", page)


def test_a_school_auditor_sees_only_its_own_organisations_events_whatever_the_filters(app, factory):
    school_a, school_b = factory.school("School A"), factory.school("School B")
    auditor_a = factory.account(school_a, Role.AUDITOR)
    staff_a, staff_b = factory.account(school_a), factory.account(school_b)
    _event(app, "transfer.create", staff_a, object_type="transfer", object_id=1)
    _event(app, "transfer.create", staff_b, object_type="transfer", object_id=2)
    _event(app, "transfer.send", staff_b, object_type="transfer", object_id=2)
    client = signed_in(app, auditor_a)

    everything = client.get("/tracking/audit").get_data(as_text=True)
    assert set(_actions_on(everything)) <= {"transfer.create", "auth.sign_in"}
    assert "transfer.send" not in everything
    for query in (
        f"actor={staff_b.email}",
        f"actor={staff_b.user_id}",
        "object_type=transfer&object_id=2",
        "action=transfer.send",
        f"actor={staff_b.email}&action=transfer.create",
    ):
        page = client.get(f"/tracking/audit?{query}")
        assert page.status_code == 200, query
        assert _sequences(page.get_data(as_text=True)) == [], query
    prefix = client.get("/tracking/audit?action=transfer.").get_data(as_text=True)
    assert _actions_on(prefix) == ["transfer.create"]  # school A's own event, never B's two
    exported = client.get(f"/tracking/audit/export.csv?actor={staff_b.email}").get_data(as_text=True)
    assert len(list(csv.reader(io.StringIO(exported.lstrip("\ufeff"))))) == 1  # the header only


def test_an_authority_auditor_also_sees_who_opened_its_childrens_records(app, factory):
    area = make_area(factory)
    auditor = factory.account(area.authority, Role.AUDITOR)
    ours = add_transfer(app, area, left_on=date(2026, 10, 16))
    theirs = add_transfer(app, area, left_on=date(2026, 10, 16), authority=area.other_authority)
    _event(app, "transfer.open", area.teacher, object_type="transfer", object_id=ours)
    _event(app, "transfer.open", area.teacher, object_type="transfer", object_id=theirs)
    client = signed_in(app, auditor)
    page = client.get("/tracking/audit?action=transfer.open").get_data(as_text=True)
    assert len(_sequences(page)) == 1
    assert f"transfer {ours}" in page and f"transfer {theirs}" not in page
    # An organisation admin of the authority sees only what its own people did.
    admin = factory.account(area.authority, Role.ORG_ADMIN)
    admin_page = signed_in(app, admin).get("/tracking/audit?action=transfer.open").get_data(as_text=True)
    assert _sequences(admin_page) == []


def test_roles_without_the_viewer_get_404_and_are_audited(app, factory):
    area = make_area(factory)
    for account in (area.caseworker, area.sender, area.teacher):
        client = signed_in(app, account)
        assert client.get("/tracking/audit").status_code == 404
        assert client.get("/tracking/audit/export.jsonl").status_code == 404
    assert len(denied(app)) == 6


def test_pages_go_back_in_time_by_sequence(app, factory):
    school = factory.school()
    auditor, staff = factory.account(school, Role.AUDITOR), factory.account(school)
    for n in range(60):
        _event(app, "transfer.create", staff, object_type="transfer", object_id=n + 1)
    client = signed_in(app, auditor)
    first = client.get("/tracking/audit?action=transfer.create").get_data(as_text=True)
    assert len(_sequences(first)) == 50 and _sequences(first) == sorted(_sequences(first), reverse=True)
    older = re.search(r'href="(/tracking/audit\?[^"]*before=\d+[^"]*)"', first)
    assert older
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert len(_sequences(second)) == 10 and max(_sequences(second)) < min(_sequences(first))


def test_bad_filters_are_explained(app, factory):
    auditor = factory.account(factory.school(), Role.AUDITOR)
    client = signed_in(app, auditor)
    for query, message in (
        ("action=DROP%20TABLE", "Enter an action like"),
        ("since=2026-10-10&until=2026-10-01", "end of the time range"),
        ("since=not-a-date", "Check the dates"),
        ("object_id=../../etc", "object&#39;s number"),
    ):
        page = client.get(f"/tracking/audit?{query}")
        assert page.status_code == 400, query
        assert message in page.get_data(as_text=True), query


def test_exports_are_audited_and_neutralise_formulas_in_names(app, factory):
    school = factory.school()
    auditor = factory.account(school, Role.AUDITOR)
    staff = factory.account(school)
    with app.app_context():
        db.session.execute(
            text("UPDATE users SET display_name = :n WHERE id = :i"),
            {"n": '=HYPERLINK("http://evil.example","x")', "i": staff.user_id},
        )
        db.session.commit()
    _event(app, "transfer.create", staff, object_type="transfer", object_id=7, details={"note": "-1+1"})
    client = signed_in(app, auditor)
    response = client.get("/tracking/audit/export.csv?action=transfer.create")
    assert response.headers["Content-Disposition"].startswith('attachment; filename="handover-audit-')
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    header, row = rows[0], rows[1]
    record = dict(zip(header, row, strict=True))
    assert record["actor_name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert record["action"] == "transfer.create" and record["object_id"] == "7"
    lines = (
        client.get("/tracking/audit/export.jsonl?action=transfer.create").get_data(as_text=True).splitlines()
    )
    assert (
        json.loads(lines[0])["actor_name"] == '=HYPERLINK("http://evil.example","x")'
    )  # JSON is data, not a sheet
    assert actions(app).count("audit.export") == 2


def test_the_verify_action_reports_an_audit_row_edited_in_the_database(app, factory):
    school = factory.school()
    admin = factory.account(school, Role.ORG_ADMIN)
    staff = factory.account(school)
    _event(app, "transfer.create", staff, object_type="transfer", object_id=1)
    client = signed_in(app, admin)
    page = client.get("/tracking/audit")
    intact = client.post("/tracking/audit/verify", data={"csrf_token": csrf_token(page)}).get_data(
        as_text=True
    )
    assert "The audit chain is intact" in intact
    with app.app_context():
        edited = db.session.execute(
            text("SELECT min(sequence) FROM audit_events WHERE action = 'transfer.create'")
        ).scalar()
        db.session.execute(
            text("UPDATE audit_events SET client_address = '203.0.113.9' WHERE sequence = :s"), {"s": edited}
        )
        db.session.commit()
    broken = client.post("/tracking/audit/verify", data={"csrf_token": csrf_token(page)}).get_data(
        as_text=True
    )
    assert f"The audit chain is broken at event {edited}" in broken
    assert "altered after it was written" in broken
    assert actions(app)[-1] == "audit.verify"


def test_verify_needs_a_csrf_token(app, factory):
    auditor = factory.account(factory.school(), Role.AUDITOR)
    client = signed_in(app, auditor)
    assert client.post("/tracking/audit/verify").status_code == 400
    assert "audit.verify" not in actions(app)
