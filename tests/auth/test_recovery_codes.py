"""Recovery codes: each works once, in the code field of the sign-in page, and none is stored in clear.

SECURITY.md test list item 9.
"""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import RecoveryCode
from tests.auth.helpers import (
    Enrolled,
    audit_rows,
    enrol,
    frozen_clock,
    invite,
    post_sign_in,
    signed_in,
)

EMAIL = "new.teacher@example.org"
PASSWORD = "granite orchard velvet lantern"


def _enrolled(app, factory) -> Enrolled:
    user_id, token = invite(app, factory.school(), email=EMAIL)
    with frozen_clock():
        return enrol(app.test_client(), user_id, token, email=EMAIL, password=PASSWORD)


def test_recovery_code_signs_in_once_and_is_refused_the_second_time(app, factory):
    enrolled = _enrolled(app, factory)
    code = enrolled.recovery_codes[3]

    first = app.test_client()
    response = post_sign_in(first, EMAIL, PASSWORD, code)
    assert response.status_code == 302
    home = first.get("/").get_data(as_text=True)
    assert "You have 9 left" in home

    second = app.test_client()
    again = post_sign_in(second, EMAIL, PASSWORD, code)
    assert again.status_code == 200
    assert not signed_in(second)

    sign_ins = audit_rows(app, "auth.sign_in")
    assert [(row.outcome, row.details) for row in sign_ins] == [
        ("success", {"factor": "recovery_code"}),
        ("failure", {"reason": "wrong_recovery_code"}),
    ]


def test_recovery_code_is_accepted_in_capitals_and_without_dashes(app, factory):
    enrolled = _enrolled(app, factory)
    typed = enrolled.recovery_codes[0].replace("-", "").upper()
    client = app.test_client()
    assert post_sign_in(client, EMAIL, PASSWORD, typed).status_code == 302
    assert signed_in(client)


def test_recovery_code_with_a_wrong_password_is_not_used_up(app, factory):
    enrolled = _enrolled(app, factory)
    code = enrolled.recovery_codes[0]
    assert post_sign_in(app.test_client(), EMAIL, "not the right passphrase", code).status_code == 200
    client = app.test_client()
    assert post_sign_in(client, EMAIL, PASSWORD, code).status_code == 302


def test_recovery_code_of_another_user_does_not_work(app, factory):
    enrolled = _enrolled(app, factory)
    other = factory.account(factory.school())
    client = app.test_client()
    response = post_sign_in(client, other.email, other.password, enrolled.recovery_codes[0])
    assert response.status_code == 200
    assert not signed_in(client)


def test_recovery_codes_are_stored_only_as_argon2_hashes(app, factory):
    enrolled = _enrolled(app, factory)
    with app.app_context():
        stored = db.session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10
    assert all(value.startswith("$argon2id$") for value in stored)
    everything = " ".join(stored)
    for code in enrolled.recovery_codes:
        assert code not in everything
        assert code.replace("-", "") not in everything
