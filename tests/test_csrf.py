"""Cross-site requests: a POST without this session's CSRF token is refused and changes nothing."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuthSession, LoginAttempt, Role, User
from tests.admin.helpers import audit_rows, outbox, user_state
from tests.support import Account, Factory, csrf_token, sign_in

EVIL_ORIGIN = {"Origin": "https://evil.example", "Referer": "https://evil.example/page"}
CSRF_MESSAGE = "The form had expired or was not sent from this service"


def _count(app: Flask, model: type) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def _assert_refused(response) -> None:
    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)


def _signed_in(app: Flask, account: Account) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, account).status_code == 302
    return client


def test_a_sign_in_posted_from_another_site_is_refused_and_nothing_is_stored(app, factory):
    account = factory.account(factory.school())
    client = app.test_client()
    client.get("/sign-in")  # the victim's browser has a session with a token the attacker cannot read

    response = client.post(
        "/sign-in",
        headers=EVIL_ORIGIN,
        data={"email": account.email, "password": account.password, "code": account.code()},
    )

    _assert_refused(response)
    assert _count(app, AuthSession) == 0
    assert _count(app, LoginAttempt) == 0
    assert audit_rows(app) == []
    assert client.get("/").status_code == 302


def test_a_sign_out_posted_from_another_site_does_not_end_the_session(app, factory):
    account = factory.account(factory.school())
    client = _signed_in(app, account)

    response = client.post("/sign-out", headers=EVIL_ORIGIN)

    _assert_refused(response)
    assert _count(app, AuthSession) == 1
    assert client.get("/").status_code == 200
    assert audit_rows(app, "auth.sign_out") == []


def test_an_invitation_posted_from_another_site_creates_no_user(app, factory):
    admin = factory.account(factory.school(), Role.ORG_ADMIN)
    client = _signed_in(app, admin)
    users_before = _count(app, User)

    response = client.post(
        "/admin/users/invite",
        headers=EVIL_ORIGIN,
        data={"display_name": "Attacker", "email": "attacker@evil.example", "role": "org_admin"},
    )

    _assert_refused(response)
    assert _count(app, User) == users_before
    assert outbox(app) == []
    assert audit_rows(app, "admin.user.invite") == []


def test_the_attackers_own_valid_token_does_not_work_in_the_victims_session(app, factory):
    school = factory.school()
    victim = factory.account(school, Role.ORG_ADMIN)
    attacker = factory.account(factory.school(), Role.ORG_ADMIN)
    victim_client, attacker_client = _signed_in(app, victim), _signed_in(app, attacker)
    attackers_token = csrf_token(attacker_client.get("/admin/users/invite"))
    users_before = _count(app, User)

    response = victim_client.post(
        "/admin/users/invite",
        headers=EVIL_ORIGIN,
        data={
            "csrf_token": attackers_token,
            "display_name": "Attacker",
            "email": "attacker@evil.example",
            "role": "org_admin",
        },
    )

    _assert_refused(response)
    assert _count(app, User) == users_before


def test_a_disable_posted_from_another_site_leaves_the_user_active(app, factory: Factory):
    school = factory.school()
    admin = factory.account(school, Role.ORG_ADMIN)
    staff = factory.account(school, Role.SCHOOL_STAFF)
    admin_client, staff_client = _signed_in(app, admin), _signed_in(app, staff)

    for forged_token in (None, "", "IjAwMDAi.ZZZZZZ.forged-signature"):
        data = {} if forged_token is None else {"csrf_token": forged_token}
        response = admin_client.post(f"/admin/users/{staff.user_id}/disable", headers=EVIL_ORIGIN, data=data)
        _assert_refused(response)

    assert user_state(app, staff.user_id)["is_active"] is True
    assert staff_client.get("/").status_code == 200
    assert audit_rows(app, "admin.user.disable") == []
