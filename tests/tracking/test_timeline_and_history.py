"""The timeline of a real transfer journey over HTTP, and a child's history across transfers."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

from flask import Flask
from sqlalchemy import select

from portal import audit
from portal.extensions import db
from portal.models import Document, Role
from tests.support import Factory, csrf_token
from tests.tracking.helpers import actions, add_transfer, denied, make_area, reference_of
from tests.transfers.helpers import (
    PDF_BYTES,
    World,
    create_draft,
    make_world,
    request_download,
    send,
    signed_in,
    upload,
)


def _journey(app: Flask, factory: Factory) -> tuple[World, int, str]:
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world, child_upn="")
    assert (
        upload(sender, transfer_id, PDF_BYTES, "=cmd report.pdf", category="child_protection").status_code
        == 302
    )
    assert send(sender, transfer_id).status_code == 302
    teacher = signed_in(app, world.teacher)
    assert teacher.get(f"/transfers/{transfer_id}").status_code == 200
    with app.app_context():
        document = db.session.scalars(select(Document).where(Document.transfer_id == transfer_id)).one()
        document_id, sha = document.id, document.plaintext_sha256 or ""
    link = request_download(teacher, transfer_id, document_id)
    assert teacher.get(link.headers["Location"]).status_code == 200
    page = teacher.get(f"/transfers/{transfer_id}")
    teacher.post(
        f"/transfers/{transfer_id}/confirm-receipt", data={"csrf_token": csrf_token(page), "comment": ""}
    )
    return world, transfer_id, sha


def test_the_transfer_page_shows_each_step_with_who_when_and_from_where(app, factory):
    world, transfer_id, sha = _journey(app, factory)
    sender = signed_in(app, world.sender)
    page = sender.get(f"/transfers/{transfer_id}").get_data(as_text=True)
    timeline = page[page.index("Deadline and timeline") :]
    steps = re.findall(r'<td class="govuk-table__cell">([A-Z][^<]*?)(?:<br>|</td>)', timeline)
    for step in (
        "Created",
        "Document uploaded",
        "Sent",
        "E-mail sent",
        "Opened",
        "Downloaded",
        "Receipt confirmed",
    ):
        assert step in steps, step
    assert steps.index("Created") < steps.index("Sent") < steps.index("Opened") < steps.index("Downloaded")
    assert sha in timeline  # the uploaded document's SHA-256
    assert "=cmd report.pdf" in timeline  # the sender sees names
    assert "127.0.0.1" in timeline  # the download's address
    assert "Child protection file" in timeline  # the 5-day category set the deadline
    assert "Late by" in timeline  # left 1 Oct 2026: the 5 school days ran out on 8 Oct


def test_the_caseworker_sees_the_timeline_without_file_names(app, factory):
    world, transfer_id, sha = _journey(app, factory)
    caseworker = signed_in(app, world.caseworker)
    page = caseworker.get(f"/tracking/transfers/{transfer_id}").get_data(as_text=True)
    assert "Downloaded" in page and sha in page
    assert "Document 1" in page and "=cmd report.pdf" not in page


def test_someone_of_another_school_cannot_see_the_timeline(app, factory):
    _world, transfer_id, _ = _journey(app, factory)
    stranger = factory.account(factory.school("Elsewhere"), Role.DESIGNATED_TEACHER)
    client = signed_in(app, stranger)
    assert client.get(f"/tracking/transfers/{transfer_id}").status_code == 404
    assert denied(app)[-1][1:] == ("transfer", str(transfer_id))


def test_a_child_history_matches_on_upn_or_initials_and_birth_date_within_the_authority(app, factory):
    area = make_area(factory)
    first = add_transfer(app, area, left_on=date(2025, 7, 18), upn="A123456789012", initials="JS")
    second = add_transfer(app, area, left_on=date(2026, 10, 16), upn="A123456789012", initials="JS")
    no_upn = add_transfer(app, area, left_on=date(2026, 1, 9), upn=None, initials="JS")
    other_child = add_transfer(
        app, area, left_on=date(2026, 1, 9), initials="KT", date_of_birth=date(2014, 2, 2)
    )
    elsewhere = add_transfer(
        app, area, left_on=date(2026, 1, 9), upn="A123456789012", authority=area.other_authority
    )
    client = signed_in(app, area.caseworker)
    page = client.get(f"/tracking/transfers/{second}/child").get_data(as_text=True)
    references = re.findall(r'<h2 class="govuk-heading-m">(HO-[0-9A-F]{4}-[0-9A-F]{4})', page)
    ref = {i: reference_of(app, i) for i in (first, second, no_upn, other_child, elsewhere)}
    assert references == [ref[first], ref[no_upn], ref[second]]  # oldest first; KT and Southshire's left out
    assert "check this is the same child" in page  # the initials + birth date match says so
    export = client.get(f"/tracking/transfers/{second}/child.csv")
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["Reference", "Matched on", "Child initials"]
    assert {row[0] for row in rows[1:]} == {ref[first], ref[no_upn], ref[second]}
    assert actions(app).count("tracking.child_history.export") == 1


def test_a_child_can_be_found_by_upn_with_the_search_form_and_exported(app, factory):
    area = make_area(factory)
    add_transfer(app, area, left_on=date(2026, 10, 16), upn="A123456789012")
    client = signed_in(app, area.caseworker)
    page = client.get("/tracking/children")
    found = client.post("/tracking/children", data={"csrf_token": csrf_token(page), "upn": "a123456789012"})
    assert found.status_code == 200 and "A123456789012" in found.get_data(as_text=True)
    export = client.post(
        "/tracking/children", data={"csrf_token": csrf_token(page), "upn": "A123456789012", "export": "1"}
    )
    assert export.headers["Content-Type"].startswith("text/csv")
    assert "A123456789012" in export.get_data(as_text=True)  # (reading it also ends the streamed response)
    bad = client.post("/tracking/children", data={"csrf_token": csrf_token(page), "upn": "A12345678901X"})
    assert "UPN" in bad.get_data(as_text=True) or "check" in bad.get_data(as_text=True).lower()
    nothing = client.post("/tracking/children", data={"csrf_token": csrf_token(page), "initials": "JS"})
    assert "Enter a UPN, or the child" in nothing.get_data(as_text=True)


def test_history_export_neutralises_file_names_and_initials(app, factory):
    area = make_area(factory)
    transfer = add_transfer(app, area, left_on=date(2026, 10, 16), initials="@SUM", filename="+evil.pdf")
    with app.app_context():
        document = db.session.scalars(select(Document).where(Document.transfer_id == transfer)).one()
        audit.record(
            db.session,
            "document.upload",
            object_type="document",
            object_id=document.id,
            details={"transfer_id": transfer, "size": 10, "sha256": "-" + "a" * 63},
        )
        db.session.commit()
    client = signed_in(app, area.caseworker)
    text = client.get(f"/tracking/transfers/{transfer}/child.csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[1][2] == "'@SUM"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
