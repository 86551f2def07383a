"""Starting a transfer: the child's details are validated and minimal, the receiving school must be
another open school, and the sending organisation always comes from the session (ASVS 8.2.3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from portal.extensions import db
from portal.models import Organisation, Role, Transfer
from portal.models.base import today_in_england
from portal.upn import CHECK_LETTERS, upn_check_letter
from tests.support import Factory, csrf_token
from tests.transfers.helpers import World, create_draft, make_world, signed_in
from tests.transfers.support_transfers import audit_rows, count_rows, transfer_row

UPN_BODY = "820200125001"
VALID_UPN = upn_check_letter(UPN_BODY) + UPN_BODY
WRONG_CHECK_UPN = next(letter for letter in CHECK_LETTERS if letter != VALID_UPN[0]) + UPN_BODY


def _post_new(client: FlaskClient, world: World, school_param: int, **overrides: str) -> TestResponse:
    page = client.get(f"/transfers/new?school={world.receiving.id}")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_token(page),
        "school_id": str(world.receiving.id),
        "child_initials": "JS",
        "child_date_of_birth": "2015-04-01",
        "child_upn": "",
        "responsible_authority_id": str(world.authority.id),
        "left_on": "2026-10-01",
        "note": "",
        **overrides,
    }
    return client.post(f"/transfers/new?school={school_param}", data=data)


def _close(app: Flask, organisation_id: int) -> None:
    with app.app_context():
        organisation = db.session.get(Organisation, organisation_id)
        assert organisation is not None
        organisation.is_active = False
        db.session.commit()


def _refused(app: Flask, response: TestResponse, message: str) -> None:
    assert response.status_code == 200, response.status_code
    assert message in response.get_data(as_text=True)
    assert count_rows(app, Transfer) == 0
    assert audit_rows(app, "transfer.create") == []


@pytest.fixture
def world(factory: Factory) -> World:
    return make_world(factory)


def test_a_valid_upn_is_kept_normalised(app, world):
    sender = signed_in(app, world.sender)

    transfer_id = create_draft(sender, world, child_upn=f" {VALID_UPN[:5].lower()} {VALID_UPN[5:]} ")

    assert transfer_row(app, transfer_id)["child_upn"] == VALID_UPN


def test_a_upn_with_the_wrong_check_letter_is_refused_with_a_clear_error(app, world):
    sender = signed_in(app, world.sender)

    response = _post_new(sender, world, world.receiving.id, child_upn=WRONG_CHECK_UPN)

    _refused(app, response, "check letter does not match its digits")
    assert WRONG_CHECK_UPN not in response.get_data(as_text=True).split("<form")[0]


@pytest.mark.parametrize("typed", ["John Smith", "Jonathan", "J. Smith", "Mary-Jane"])
def test_a_name_typed_where_initials_belong_is_refused_with_a_warning_about_names(app, world, typed):
    sender = signed_in(app, world.sender)

    response = _post_new(sender, world, world.receiving.id, child_initials=typed)

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "This looks like a name" in page or "Enter initials only" in page
    assert count_rows(app, Transfer) == 0


def test_a_full_name_in_the_initials_field_gets_the_data_minimisation_warning(app, world):
    sender = signed_in(app, world.sender)

    response = _post_new(sender, world, world.receiving.id, child_initials="John Smith")

    _refused(app, response, "This looks like a name")
    assert "never needs a child" in response.get_data(as_text=True)


def test_a_leaving_date_in_the_future_is_refused(app, world):
    sender = signed_in(app, world.sender)
    tomorrow = today_in_england() + timedelta(days=1)

    response = _post_new(sender, world, world.receiving.id, left_on=tomorrow.isoformat())

    _refused(app, response, "cannot be in the future")


def test_a_leaving_date_before_the_date_of_birth_is_refused(app, world):
    sender = signed_in(app, world.sender)

    response = _post_new(
        sender, world, world.receiving.id, child_date_of_birth="2015-04-01", left_on="2014-09-01"
    )

    _refused(app, response, "must be after their date of birth")


def test_a_school_that_does_not_exist_is_refused(app, world):
    sender = signed_in(app, world.sender)

    response = _post_new(sender, world, 999_999, school_id="999999")

    _refused(app, response, "Choose an open school")


def test_a_closed_school_is_refused(app, world):
    sender = signed_in(app, world.sender)
    _close(app, world.receiving.id)

    response = _post_new(sender, world, world.receiving.id)

    _refused(app, response, "Choose an open school")


def test_the_senders_own_school_is_refused(app, world):
    sender = signed_in(app, world.sender)

    response = _post_new(sender, world, world.sending.id, school_id=str(world.sending.id))

    _refused(app, response, "must be a different school")


def test_a_forged_school_id_of_a_closed_school_is_refused_even_with_a_good_school_in_the_address(
    app, factory, world
):
    closed = factory.school("Shut Down Academy")
    _close(app, closed.id)
    sender = signed_in(app, world.sender)

    response = _post_new(sender, world, world.receiving.id, school_id=str(closed.id))

    _refused(app, response, "Choose an open school")


def test_a_forged_school_id_naming_a_local_authority_is_refused(app, world):
    sender = signed_in(app, world.sender)

    response = _post_new(sender, world, world.receiving.id, school_id=str(world.authority.id))

    _refused(app, response, "Choose an open school")


def test_forged_sender_fields_are_ignored_and_the_session_decides_who_sent_it(app, factory, world):
    elsewhere = factory.school("Impersonated School")
    someone = factory.account(elsewhere, Role.DESIGNATED_TEACHER)
    sender = signed_in(app, world.sender)

    transfer_id = create_draft(
        sender,
        world,
        sending_organisation_id=str(elsewhere.id),
        created_by_id=str(someone.user_id),
        status="sent",
        reference="HO-AAAA-AAAA",
        receiving_organisation_id=str(elsewhere.id),
    )

    row = transfer_row(app, transfer_id)
    assert row["sending_organisation_id"] == world.sending.id
    assert row["created_by_id"] == world.sender.user_id
    assert row["receiving_organisation_id"] == world.receiving.id
    assert row["status"].value == "draft"
    assert row["reference"] != "HO-AAAA-AAAA"
    (created,) = audit_rows(app, "transfer.create")
    assert created["actor_user_id"] == world.sender.user_id
    assert created["actor_organisation_id"] == world.sending.id


def test_a_forged_responsible_authority_that_is_not_an_authority_is_refused(app, world):
    sender = signed_in(app, world.sender)

    response = _post_new(sender, world, world.receiving.id, responsible_authority_id=str(world.receiving.id))

    assert response.status_code == 200
    assert count_rows(app, Transfer) == 0


@pytest.mark.parametrize("role", [Role.ORG_ADMIN, Role.AUDITOR])
def test_roles_that_do_not_handle_records_cannot_start_a_transfer(app, factory, world, role):
    account = factory.account(world.sending, role)
    client = signed_in(app, account)

    assert client.get(f"/transfers/new?school={world.receiving.id}").status_code == 404
    assert count_rows(app, Transfer) == 0
    assert audit_rows(app, "access.denied", outcome="denied")
