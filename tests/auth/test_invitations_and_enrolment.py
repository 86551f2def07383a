"""Enrolment from an invitation, over HTTP: the happy path end to end, and the links that must not work.

SECURITY.md test list items 11 and 23, and the single-use, expiring invitation design.
"""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from portal.admin import accounts
from portal.extensions import db
from portal.models import Invitation, Role, User
from tests.auth.helpers import (
    audit_rows,
    code_at_step,
    current_step,
    enrol,
    frozen_clock,
    grouped_key,
    invite,
    open_invitation,
    post_sign_in,
    set_password,
    signed_in,
    user_row,
)
from tests.support import csrf_token

EMAIL = "new.teacher@example.org"
PASSWORD = "granite orchard velvet lantern"
_GROUPED_KEY = re.compile(r"^(?:[A-Z2-7]{4} ){7}[A-Z2-7]{4}$")
_RECOVERY_CODE = re.compile(r"^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$")


def _denied_reasons(app: Flask) -> list[str]:
    return [
        row.details["reason"] for row in audit_rows(app, "auth.invitation.open") if row.outcome == "denied"
    ]


def test_full_enrolment_over_http_ends_with_a_working_totp_sign_in(app, factory):
    user_id, token = invite(app, factory.school(), email=EMAIL)
    client = app.test_client()
    with frozen_clock() as clock:
        opened = open_invitation(client, token)
        assert opened.status_code == 302
        assert opened.headers["Location"] == "/enrol/password"  # the token leaves the address bar

        assert set_password(client, PASSWORD).headers["Location"] == "/enrol/authenticator"
        page = client.get("/enrol/authenticator")
        html = page.get_data(as_text=True)
        assert "<svg" in html
        assert "<img" not in html  # drawn inline on the server, not fetched from a QR service
        shown_key = grouped_key(html)
        assert shown_key and _GROUPED_KEY.match(shown_key)
        secret = shown_key.replace(" ", "")

        done = client.post(
            "/enrol/authenticator",
            data={"csrf_token": csrf_token(page), "code": code_at_step(secret, current_step())},
        )
        assert done.status_code == 200
        codes = re.findall(r"<code>([^<]+)</code>", done.get_data(as_text=True))
        assert len(codes) == len(set(codes)) == 10
        assert all(_RECOVERY_CODE.match(code) for code in codes)
        assert not signed_in(client)  # enrolment does not sign in by itself

        # The confirming code cannot be replayed at sign-in; the next one works.
        replay = post_sign_in(client, EMAIL, PASSWORD, code_at_step(secret, current_step()))
        assert replay.status_code == 200
        clock.shift(30)
        assert post_sign_in(client, EMAIL, PASSWORD, code_at_step(secret, current_step())).status_code == 302
        assert signed_in(client)

    actions = [(row.action, row.outcome) for row in audit_rows(app) if row.action.startswith("auth.")]
    assert actions == [
        ("auth.invitation.open", "success"),
        ("auth.enrol.password", "success"),
        ("auth.enrol.complete", "success"),
        ("auth.sign_in", "failure"),
        ("auth.sign_in", "success"),
    ]
    assert user_row(app, user_id)["totp_enrolled_at"] is not None


def test_recovery_codes_are_shown_only_once(app, factory):
    user_id, token = invite(app, factory.school(), email=EMAIL)
    client = app.test_client()
    with frozen_clock():
        enrol(client, user_id, token, email=EMAIL, password=PASSWORD)
    again = client.get("/enrol/authenticator")
    assert again.status_code == 410
    assert "<code>" not in again.get_data(as_text=True)
    assert client.get("/enrol/password").status_code == 410


def test_wrong_code_at_enrolment_is_refused_and_the_invitation_stays_open(app, factory):
    user_id, token = invite(app, factory.school(), email=EMAIL)
    client = app.test_client()
    with frozen_clock():
        open_invitation(client, token)
        set_password(client, PASSWORD)
        page = client.get("/enrol/authenticator")
        secret = (grouped_key(page.get_data(as_text=True)) or "").replace(" ", "")
        wrong = code_at_step(secret, current_step() + 3)
        response = client.post("/enrol/authenticator", data={"csrf_token": csrf_token(page), "code": wrong})
        assert response.status_code == 200
        assert "That code did not match" in response.get_data(as_text=True)
        assert user_row(app, user_id)["totp_enrolled_at"] is None
        assert client.get("/enrol/authenticator").status_code == 200


def test_invitation_link_cannot_be_reused_after_enrolment_and_the_attempt_is_audited(app, factory):
    user_id, token = invite(app, factory.school(), email=EMAIL)
    with frozen_clock():
        enrol(app.test_client(), user_id, token, email=EMAIL, password=PASSWORD)
    stranger = app.test_client()
    response = open_invitation(stranger, token)
    assert response.status_code == 410
    assert stranger.get("/enrol/password").status_code == 410
    assert _denied_reasons(app) == ["already_used"]


def test_expired_invitation_is_refused_and_audited(app, factory):
    with frozen_clock() as clock:
        _, token = invite(app, factory.school(), email=EMAIL)
        clock.shift(timedelta(hours=72, seconds=1))
        response = open_invitation(app.test_client(), token)
    assert response.status_code == 410
    assert "This invitation link cannot be used" in response.get_data(as_text=True)
    assert _denied_reasons(app) == ["expired"]


def test_invitation_that_expires_half_way_through_enrolment_stops_working(app, factory):
    with frozen_clock() as clock:
        _, token = invite(app, factory.school(), email=EMAIL)
        client = app.test_client()
        clock.shift(timedelta(hours=71))
        open_invitation(client, token)
        assert set_password(client, PASSWORD).status_code == 302
        clock.shift(timedelta(hours=2))
        assert client.get("/enrol/authenticator").status_code == 410


def test_unknown_invitation_token_is_refused_and_audited(app):
    response = open_invitation(app.test_client(), "x" * 43)
    assert response.status_code == 410
    assert _denied_reasons(app) == ["unknown"]


def test_superseded_invitation_link_stops_working(app, factory):
    user_id, old_token = invite(app, factory.school(), email=EMAIL)
    with app.app_context():
        user = db.session.get_one(User, user_id)
        new_token = accounts.reinvite(db.session, user, invited_by=None, valid_hours=72)
        db.session.commit()
    assert open_invitation(app.test_client(), old_token).status_code == 410
    assert open_invitation(app.test_client(), new_token).status_code == 302
    assert _denied_reasons(app) == ["revoked"]


def test_invitation_of_a_disabled_user_is_refused(app, factory):
    user_id, token = invite(app, factory.school(), email=EMAIL)
    with app.app_context():
        accounts.set_active(db.session, db.session.get_one(User, user_id), False)
        db.session.commit()
    assert open_invitation(app.test_client(), token).status_code == 410
    assert _denied_reasons(app) == ["user_disabled"]


def test_invitation_tokens_are_stored_only_as_hashes(app, factory):
    _, token = invite(app, factory.school(), email=EMAIL)
    with app.app_context():
        stored = db.session.scalars(select(Invitation.token_hash)).all()
    assert len(stored) == 1
    assert token not in stored[0]
    assert len(token) >= 43  # 256 bits of token_urlsafe


def test_extra_form_fields_posted_during_enrolment_are_ignored(app, factory):
    school = factory.school()
    other_school = factory.school()
    user_id, token = invite(app, school, email=EMAIL)
    before = user_row(app, user_id)
    client = app.test_client()
    open_invitation(client, token)
    response = set_password(
        client,
        PASSWORD,
        role=Role.ORG_ADMIN.value,
        organisation_id=str(other_school.id),
        is_active="false",
        email="attacker@example.org",
        display_name="Mallory",
        totp_enrolled_at="2025-01-01T00:00:00",
        id="999",
    )
    assert response.status_code == 302
    after = user_row(app, user_id)
    for column in ("id", "role", "organisation_id", "is_active", "email", "display_name", "totp_enrolled_at"):
        assert after[column] == before[column], column
    assert after["role"] is Role.SCHOOL_STAFF
    assert after["organisation_id"] == school.id


def test_signed_in_user_cannot_change_password_or_authenticator_without_an_invitation(app, factory):
    """No factor can be changed from a session alone (ASVS 6.4.3, 7.5.1): only a new invitation does it."""
    account = factory.account(factory.school())
    client = app.test_client()
    assert post_sign_in(client, account.email, account.password, account.code()).status_code == 302
    before = user_row(app, account.user_id)

    assert client.get("/enrol/password").status_code == 410
    assert client.get("/enrol/authenticator").status_code == 410
    home = client.get("/")
    for path, data in (
        ("/enrol/password", {"password": "a brand new passphrase", "confirm": "a brand new passphrase"}),
        ("/enrol/authenticator", {"code": account.code()}),
    ):
        response = client.post(path, data={"csrf_token": csrf_token(home), **data})
        assert response.status_code == 410, path
        assert grouped_key(response.get_data(as_text=True)) is None

    after = user_row(app, account.user_id)
    assert after["password_hash"] == before["password_hash"]
    assert after["totp_secret_sealed"] == before["totp_secret_sealed"]


def test_opening_an_invitation_while_signed_in_ends_the_current_session(app, factory):
    school = factory.school()
    account = factory.account(school)
    _, token = invite(app, school, email=EMAIL)
    client = app.test_client()
    post_sign_in(client, account.email, account.password, account.code())
    assert signed_in(client)
    assert open_invitation(client, token).status_code == 302
    assert not signed_in(client)
    with app.app_context():
        assert db.session.get_one(User, account.user_id).is_enrolled
