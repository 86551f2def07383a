"""An organisation admin manages their own organisation's users: invite, disable, re-enable, reset, IG training."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pyotp
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from portal import policy
from portal.extensions import db
from portal.models import Role, User
from portal.models.base import today_in_england
from tests.admin.helpers import (
    NEW_PASSWORD,
    audit_rows,
    body_of,
    enrol_from_invitation,
    invitation_path,
    outbox,
    user_by_email,
    user_state,
)
from tests.support import Account, Factory, Org, csrf_token, post_form, sign_in

EMAIL_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def _signed_in_admin(app: Flask, factory: Factory) -> tuple[FlaskClient, Account, Org]:
    school = factory.school(name="Oakfield Primary School")
    admin = factory.account(school, Role.ORG_ADMIN, email="head.admin@oakfield.example")
    client = app.test_client()
    assert sign_in(client, admin).status_code == 302
    return client, admin, school


def _invite(client: FlaskClient, name: str, email: str, role: str = "school_staff") -> int:
    response = post_form(client, "/admin/users/invite", display_name=name, email=email, role=role)
    assert response.status_code == 302, response.get_data(as_text=True)
    found = re.search(r"/admin/users/(\d+)$", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def _action(client: FlaskClient, user_id: int, action: str) -> str:
    """POST an action button from the user's page; returns the page it lands on."""
    response = post_form(client, f"/admin/users/{user_id}", f"/admin/users/{user_id}/{action}")
    assert response.status_code == 302, response.status_code
    landed = client.get(response.headers["Location"])
    assert landed.status_code == 200
    return landed.get_data(as_text=True)


def _is_signed_in(client: FlaskClient) -> bool:
    response = client.get("/")
    if response.status_code == 302:
        assert "/sign-in" in response.headers["Location"]
        return False
    assert response.status_code == 200
    return True


def test_invitation_email_carries_only_the_name_and_a_link_that_works_once(app, factory):
    client, admin, _ = _signed_in_admin(app, factory)
    colleague = factory.account(factory.school(), Role.SCHOOL_STAFF)  # someone whose data must not leak

    user_id = _invite(client, "Priya Shah", "Priya.Shah@Oakfield.example")

    [message] = outbox(app)
    assert message["To"] == "priya.shah@oakfield.example"
    body = body_of(message)
    assert "Priya Shah" in body
    path = invitation_path(message)
    # No e-mail address in the body (not the invitee's, not the admin's), nor anyone else's name.
    assert EMAIL_ADDRESS.search(body) is None
    assert "Test User" not in body
    assert admin.email not in message.as_string()
    assert colleague.email not in message.as_string()
    # The token is not stored anywhere readable: the audit trail does not contain it.
    token = path.rsplit("/", 1)[1]
    assert all(token not in json.dumps(row, default=str) for row in audit_rows(app))
    [invited] = audit_rows(app, "admin.user.invite")
    assert invited["object_id"] == str(user_id)
    assert invited["actor_user_id"] == admin.user_id

    newcomer = app.test_client()
    secret = enrol_from_invitation(newcomer, path)
    # The invitee can now sign in with what they chose...
    code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))
    account = Account(user_id, "priya.shah@oakfield.example", NEW_PASSWORD, secret, admin.organisation_id)
    assert sign_in(newcomer, account, code=code).status_code == 302
    assert _is_signed_in(newcomer)
    # ...and the link is spent: a second use, from any browser, is refused.
    assert app.test_client().get(path).status_code == 410
    assert newcomer.get(path).status_code == 410


def test_invitations_sent_in_the_same_instant_each_reach_the_outbox(app, factory):
    client, _, _ = _signed_in_admin(app, factory)
    # A frozen (or coarse) clock must not make the second e-mail overwrite the first.
    with time_machine.travel(datetime.now(UTC), tick=False):
        _invite(client, "First Person", "first@oakfield.example")
        _invite(client, "Second Person", "second@oakfield.example")

    recipients = sorted(str(message["To"]) for message in outbox(app))
    assert recipients == ["first@oakfield.example", "second@oakfield.example"]


def test_disabling_a_user_ends_their_live_session_at_once(app, factory):
    admin_client, _, school = _signed_in_admin(app, factory)
    staff = factory.account(school, Role.SCHOOL_STAFF)
    staff_client = app.test_client()
    sign_in(staff_client, staff)
    assert _is_signed_in(staff_client)

    page = _action(admin_client, staff.user_id, "disable")

    assert "has been disabled" in page
    assert not _is_signed_in(staff_client)
    assert user_state(app, staff.user_id)["is_active"] is False
    [event] = audit_rows(app, "admin.user.disable")
    assert json.loads(event["details"]) == {"sessions_ended": 1}
    # The copied cookie is worthless, and the password and code no longer open a session.
    refused = sign_in(staff_client, staff)
    assert refused.status_code == 200
    assert not _is_signed_in(staff_client)


def test_a_re_enabled_user_can_sign_in_again(app, factory):
    admin_client, _, school = _signed_in_admin(app, factory)
    staff = factory.account(school, Role.SCHOOL_STAFF)
    _action(admin_client, staff.user_id, "disable")
    staff_client = app.test_client()
    assert sign_in(staff_client, staff).status_code == 200  # refused while disabled

    page = _action(admin_client, staff.user_id, "enable")

    assert "has been re-enabled" in page
    assert user_state(app, staff.user_id)["is_active"] is True
    assert sign_in(staff_client, staff).status_code == 302
    assert _is_signed_in(staff_client)
    assert [row["outcome"] for row in audit_rows(app, "admin.user.enable")] == ["success"]


def test_resetting_an_authenticator_ends_sessions_and_issues_a_new_invitation(app, factory):
    admin_client, _, school = _signed_in_admin(app, factory)
    staff = factory.account(school, Role.SCHOOL_STAFF)
    phone, laptop = app.test_client(), app.test_client()
    sign_in(phone, staff)
    sign_in(laptop, staff)
    assert _is_signed_in(phone) and _is_signed_in(laptop)

    page = _action(admin_client, staff.user_id, "reset-authenticator")

    assert "sent a new invitation" in page
    assert not _is_signed_in(phone)
    assert not _is_signed_in(laptop)
    state = user_state(app, staff.user_id)
    assert state["password_hash"] is None
    assert state["totp_secret_sealed"] is None
    [event] = audit_rows(app, "admin.user.reset_authenticator")
    assert json.loads(event["details"]) == {"sessions_ended": 2}
    # The old password and authenticator are worthless; the new invitation works.
    assert sign_in(phone, staff).status_code == 200
    [message] = outbox(app)
    assert message["To"] == staff.email
    enrol_from_invitation(app.test_client(), invitation_path(message))
    assert user_state(app, staff.user_id)["password_hash"] is not None


def test_resending_an_invitation_makes_the_earlier_link_stop_working(app, factory):
    admin_client, _, _ = _signed_in_admin(app, factory)
    user_id = _invite(admin_client, "Late Starter", "late@oakfield.example")

    _action(admin_client, user_id, "resend-invitation")

    first, second = outbox(app)
    assert app.test_client().get(invitation_path(first)).status_code == 410
    assert app.test_client().get(invitation_path(second)).status_code == 302


def test_recording_ig_training_saves_the_date_and_audits_it(app, factory):
    admin_client, _, school = _signed_in_admin(app, factory)
    staff = factory.account(school, Role.SCHOOL_STAFF, ig_training=date(2020, 1, 1))
    completed = today_in_england() - timedelta(days=10)

    response = post_form(
        admin_client,
        f"/admin/users/{staff.user_id}",
        f"/admin/users/{staff.user_id}/ig-training",
        completed_on=completed.isoformat(),
    )

    assert response.status_code == 302
    assert "Training date recorded." in admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert user_state(app, staff.user_id)["ig_training_completed_on"] == completed
    [event] = audit_rows(app, "admin.user.ig_training")
    assert json.loads(event["details"]) == {"completed_on": completed.isoformat()}


def test_a_training_date_in_the_future_is_refused_with_a_message(app, factory):
    admin_client, _, school = _signed_in_admin(app, factory)
    earlier = today_in_england() - timedelta(days=100)
    staff = factory.account(school, Role.SCHOOL_STAFF, ig_training=earlier)
    tomorrow = today_in_england() + timedelta(days=1)

    response = post_form(
        admin_client,
        f"/admin/users/{staff.user_id}",
        f"/admin/users/{staff.user_id}/ig-training",
        completed_on=tomorrow.isoformat(),
    )

    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The training date cannot be in the future" in page
    assert user_state(app, staff.user_id)["ig_training_completed_on"] == earlier
    assert audit_rows(app, "admin.user.ig_training") == []


def test_user_with_training_over_three_years_old_is_warned_and_may_not_handle_records(app, factory):
    school = factory.school()
    lapsed = factory.account(
        school, Role.DESIGNATED_TEACHER, ig_training=today_in_england() - timedelta(days=3 * 365 + 30)
    )
    client = app.test_client()
    sign_in(client, lapsed)

    home = client.get("/").get_data(as_text=True)

    assert "Your information-governance training expired on" in home
    assert "You cannot send or download records" in home
    with app.app_context():
        user = db.session.get(User, lapsed.user_id)
        assert user is not None
        assert policy.may_handle_records(user) is False


def test_training_lapses_exactly_when_the_configured_period_ends(app, factory):
    school = factory.school()
    with time_machine.travel(datetime(2026, 6, 1, 11, 0, tzinfo=UTC), tick=False):
        today = today_in_england()
        valid_days = 3 * 365
        current = factory.account(school, ig_training=today - timedelta(days=valid_days - 1))
        lapsed = factory.account(school, ig_training=today - timedelta(days=valid_days))
        with app.app_context():
            current_user = db.session.get(User, current.user_id)
            lapsed_user = db.session.get(User, lapsed.user_id)
            assert current_user is not None and lapsed_user is not None
            assert policy.may_handle_records(current_user) is True
            assert policy.may_handle_records(lapsed_user) is False


def test_user_with_current_training_sees_no_warning(app, factory):
    trained = factory.account(factory.school(), Role.SCHOOL_STAFF, ig_training=today_in_england())
    client = app.test_client()
    sign_in(client, trained)

    assert "information-governance training" not in client.get("/").get_data(as_text=True)


def test_an_admin_cannot_disable_or_reset_themselves(app, factory):
    admin_client, admin, _ = _signed_in_admin(app, factory)
    before = user_state(app, admin.user_id)

    for action in ("disable", "reset-authenticator"):
        page = _action(admin_client, admin.user_id, action)
        assert "You cannot disable or reset your own account" in page

    assert user_state(app, admin.user_id) == before
    assert _is_signed_in(admin_client)
    assert audit_rows(app, "admin.user.disable") == []
    assert audit_rows(app, "admin.user.reset_authenticator") == []


def test_inviting_an_address_that_already_has_an_account_is_refused(app, factory):
    admin_client, admin, _ = _signed_in_admin(app, factory)
    page = admin_client.get("/admin/users/invite")

    response = admin_client.post(
        "/admin/users/invite",
        data={
            "csrf_token": csrf_token(page),
            "display_name": "Impostor",
            "email": admin.email.upper(),
            "role": "org_admin",
        },
    )

    assert response.status_code == 200
    assert "A user with that email address already exists" in response.get_data(as_text=True)
    assert outbox(app) == []
    assert user_by_email(app, admin.email) is not None
    assert audit_rows(app, "admin.user.invite") == []


def test_when_the_mail_server_refuses_the_admin_is_told_the_invitation_was_not_sent(environ, request):
    # Nothing listens on port 1 of this machine: the connection is refused at once.
    environ["PORTAL_SMTP_URL"] = "smtp://127.0.0.1:1"
    app: Flask = request.getfixturevalue("app")
    factory: Factory = request.getfixturevalue("factory")
    client, _, school = _signed_in_admin(app, factory)

    response = post_form(
        client,
        "/admin/users/invite",
        display_name="Unlucky Person",
        email="unlucky@example.org",
        role="auditor",
    )

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Invitation sent" not in page
    assert "could not be sent" in page
    invited = user_by_email(app, "unlucky@example.org")
    assert invited is not None  # the account exists; the admin can send a new invitation

    staff = factory.account(school, Role.SCHOOL_STAFF)
    page = _action(client, staff.user_id, "reset-authenticator")
    assert "They have been sent a new invitation" not in page
    assert "could not be sent" in page
