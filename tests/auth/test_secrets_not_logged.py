"""Passwords, codes and TOTP seeds never reach the logs or the audit trail (ASVS 16.2.5, test list item 10)."""

from __future__ import annotations

import base64
import logging

import pytest
from sqlalchemy import select

from portal.auth import routes
from portal.extensions import db
from portal.models import LoginAttempt, User
from tests.auth.helpers import (
    audit_rows,
    code_at_step,
    current_step,
    enrol,
    frozen_clock,
    invite,
    post_sign_in,
)

EMAIL = "new.teacher@example.org"
PASSWORD = "granite orchard velvet lantern"


def test_sign_in_and_enrolment_leave_no_password_code_or_seed_in_logs_or_audit(app, factory, caplog):
    caplog.set_level(logging.DEBUG)
    user_id, token = invite(app, factory.school(), email=EMAIL)
    with frozen_clock() as clock:
        enrolled = enrol(app.test_client(), user_id, token, email=EMAIL, password=PASSWORD)
        secret = enrolled.account.secret
        clock.shift(30)
        right_code = code_at_step(secret, current_step())
        wrong_code = code_at_step(secret, current_step() + 7)
        wrong_password = "a wrong but memorable passphrase"
        assert post_sign_in(app.test_client(), EMAIL, PASSWORD, wrong_code).status_code == 200
        assert post_sign_in(app.test_client(), EMAIL, wrong_password, right_code).status_code == 200
        assert post_sign_in(app.test_client(), EMAIL, PASSWORD, right_code).status_code == 302
        recovery_code = enrolled.recovery_codes[0]
        clock.shift(30)
        assert post_sign_in(app.test_client(), EMAIL, PASSWORD, recovery_code).status_code == 302

    secrets_typed = [
        PASSWORD,
        wrong_password,
        right_code,
        wrong_code,
        secret,
        " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        recovery_code,
        token,
    ]
    audit_text = " ".join(row.raw for row in audit_rows(app))
    assert "auth.sign_in" in audit_text  # the trail itself was written
    assert "audit" in caplog.text  # and copied to the log
    with app.app_context():
        attempts = " ".join(
            f"{a.account_key} {a.client_address}" for a in db.session.scalars(select(LoginAttempt))
        )
    for value in secrets_typed:
        assert value not in caplog.text, value
        assert value not in audit_text, value
        assert value not in attempts, value
    assert EMAIL not in attempts  # attempts are counted by a keyed hash of the e-mail


def test_stored_totp_seed_is_not_the_plaintext_secret(app, factory):
    user_id, token = invite(app, factory.school(), email=EMAIL)
    with frozen_clock():
        enrolled = enrol(app.test_client(), user_id, token, email=EMAIL, password=PASSWORD)
    with app.app_context():
        sealed = db.session.get_one(User, user_id).totp_secret_sealed
    assert sealed is not None
    secret = enrolled.account.secret
    assert secret.encode() not in sealed
    assert secret.lower().encode() not in sealed
    assert base64.b32decode(secret) not in sealed


@pytest.mark.parametrize("field", ["password", "code"])
def test_unexpected_error_during_sign_in_does_not_log_the_form(app, factory, caplog, monkeypatch, field):
    """Even a crash mid sign-in (logged with a traceback) must not put what was typed in the log."""
    account = factory.account(factory.school())

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(routes, "check_sign_in", explode)
    caplog.set_level(logging.DEBUG)
    code = account.code()
    response = post_sign_in(app.test_client(), account.email, account.password, code)
    assert response.status_code == 500
    assert "database went away" in caplog.text
    assert (account.password if field == "password" else code) not in caplog.text
    assert "Traceback" not in response.get_data(as_text=True)
