"""Session attacks: fixation, cookie replay after sign-out, timeouts, sessions outliving a reset or a
disabled account, cookie flags and key rotation. SECURITY.md test list items 12-17."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from itsdangerous import BadSignature
from sqlalchemy import select

from portal import create_app
from portal.auth import invitations
from portal.auth.sessions import TOKEN_KEY, token_hash
from portal.extensions import db
from portal.models import AuthSession, Organisation, Role, User
from tests.auth.helpers import (
    OTHER_ADDRESS,
    audit_rows,
    enrol,
    frozen_clock,
    open_invitation,
    post_sign_in,
    session_count,
    set_password,
    signed_in,
)
from tests.support import Account, csrf_token, sign_in

COOKIE = "handover"


def _cookie(client: FlaskClient, name: str = COOKIE) -> str:
    cookie = client.get_cookie(name)
    assert cookie is not None, f"no {name} cookie"
    return cookie.value


def _auth_token(client: FlaskClient) -> str | None:
    with client.session_transaction() as stored:
        token = stored.get(TOKEN_KEY)
    return token if isinstance(token, str) else None


def _redirected_to_sign_in(client: FlaskClient, path: str = "/") -> bool:
    response = client.get(path)
    return response.status_code == 302 and response.headers["Location"].startswith("/sign-in")


def _sign_out(client: FlaskClient) -> None:
    response = client.post("/sign-out", data={"csrf_token": csrf_token(client.get("/"))})
    assert response.status_code == 302


def _admin_action(admin: FlaskClient, user_id: int, action: str) -> None:
    page = admin.get(f"/admin/users/{user_id}")
    assert page.status_code == 200
    response = admin.post(f"/admin/users/{user_id}/{action}", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302


def test_session_planted_before_sign_in_is_replaced_with_a_new_one(app, factory):
    account = factory.account(factory.school())
    client = app.test_client()
    client.get("/sign-in")
    with client.session_transaction() as planted:
        planted["planted"] = "x"
        planted[TOKEN_KEY] = "attacker-chosen-token"
        planted["_user_id"] = "1"
    before = _cookie(client)
    pre_sign_in_csrf = csrf_token(client.get("/sign-in"))

    assert sign_in(client, account).status_code == 302

    assert _cookie(client) != before
    with client.session_transaction() as stored:
        assert "planted" not in stored
        assert "csrf_token" not in stored  # the pre-login CSRF secret was dropped too
        token = stored[TOKEN_KEY]
    assert token != "attacker-chosen-token"
    assert len(token) >= 43  # 256 bits from token_urlsafe(32); ASVS 7.2.3 asks for at least 128
    with app.app_context():
        rows = db.session.scalars(select(AuthSession)).all()
        assert [row.token_hash for row in rows] == [token_hash(token)]
        assert token not in rows[0].token_hash  # only the hash is stored
    # The CSRF token issued before sign-in no longer works.
    response = client.post("/sign-out", data={"csrf_token": pre_sign_in_csrf})
    assert response.status_code == 400
    assert signed_in(client)


def test_cookie_replayed_after_sign_out_is_rejected(app, factory):
    account = factory.account(factory.school())
    client = app.test_client()
    sign_in(client, account)
    stolen = _cookie(client)

    _sign_out(client)
    assert session_count(app) == 0

    thief = app.test_client()
    thief.set_cookie(COOKIE, stolen)
    assert _redirected_to_sign_in(thief)
    assert _redirected_to_sign_in(thief, "/admin/users")
    assert [row.outcome for row in audit_rows(app, "auth.sign_out")] == ["success"]


def test_sign_out_without_a_csrf_token_is_refused_and_the_session_lives_on(app, factory):
    account = factory.account(factory.school())
    client = app.test_client()
    sign_in(client, account)
    assert client.post("/sign-out").status_code == 400
    assert signed_in(client)
    assert session_count(app) == 1


def test_sign_out_is_not_possible_with_a_get(app, factory):
    account = factory.account(factory.school())
    client = app.test_client()
    sign_in(client, account)
    assert client.get("/sign-out").status_code == 405
    assert signed_in(client)


def test_idle_session_expires_after_thirty_minutes_and_its_row_is_deleted(app, factory):
    account = factory.account(factory.school())
    with frozen_clock() as clock:
        client = app.test_client()
        sign_in(client, account)
        clock.shift(timedelta(minutes=29))
        assert signed_in(client)  # still alive, and the visit counts as activity
        clock.shift(timedelta(minutes=31))
        assert _redirected_to_sign_in(client)
        assert session_count(app) == 0
        assert _auth_token(client) is None
        # Coming back later is no better.
        assert _redirected_to_sign_in(client)


def test_session_expires_after_twelve_hours_even_with_activity_every_twenty_minutes(app, factory):
    account = factory.account(factory.school())
    with frozen_clock() as clock:
        client = app.test_client()
        sign_in(client, account)
        for _ in range(36):  # up to 12 h exactly, never idle for more than 20 minutes
            clock.shift(timedelta(minutes=20))
            assert signed_in(client)
        clock.shift(timedelta(minutes=20))  # 12 h 20 min after signing in
        assert _redirected_to_sign_in(client)
    assert session_count(app) == 0


def test_resetting_the_authenticator_ends_the_users_other_sessions(app, factory):
    school = factory.school()
    admin_account = factory.account(school, Role.ORG_ADMIN)
    victim = factory.account(school)
    with frozen_clock():
        laptop, phone = app.test_client(), app.test_client()
        sign_in(laptop, victim)
        post_sign_in(phone, victim.email, victim.password, victim.code(), address=OTHER_ADDRESS)
        assert signed_in(laptop) and signed_in(phone)
        admin = app.test_client()
        sign_in(admin, admin_account)

        _admin_action(admin, victim.user_id, "reset-authenticator")

        assert _redirected_to_sign_in(laptop)
        assert _redirected_to_sign_in(phone)
        assert session_count(app, victim.user_id) == 0
        assert signed_in(admin)
        # The old factors are gone: the stolen password and seed no longer sign in.
        assert not signed_in_with(app, victim)
    reset = audit_rows(app, "admin.user.reset_authenticator")
    assert [(row.actor_user_id, row.details["sessions_ended"]) for row in reset] == [
        (admin_account.user_id, 2)
    ]


def signed_in_with(app: Flask, account: Account) -> bool:
    client = app.test_client()
    post_sign_in(client, account.email, account.password, account.code())
    return signed_in(client)


def test_disabling_a_user_ends_their_session_at_once(app, factory):
    school = factory.school()
    admin_account = factory.account(school, Role.ORG_ADMIN)
    victim = factory.account(school)
    with frozen_clock():
        victim_client = app.test_client()
        sign_in(victim_client, victim)
        admin = app.test_client()
        sign_in(admin, admin_account)

        _admin_action(admin, victim.user_id, "disable")

        assert _redirected_to_sign_in(victim_client)
        assert session_count(app, victim.user_id) == 0
        assert not signed_in_with(app, victim)
    disabled = audit_rows(app, "admin.user.disable")
    assert [row.details["sessions_ended"] for row in disabled] == [1]


def test_disabling_the_organisation_ends_its_users_sessions(app, factory):
    school = factory.school()
    other_school = factory.school()
    member = factory.account(school)
    outsider = factory.account(other_school)
    member_client, outsider_client = app.test_client(), app.test_client()
    with frozen_clock():
        sign_in(member_client, member)
        sign_in(outsider_client, outsider)
        with app.app_context():
            db.session.get_one(Organisation, school.id).is_active = False
            db.session.commit()
        assert _redirected_to_sign_in(member_client)
        assert signed_in(outsider_client)
    assert session_count(app, member.user_id) == 0


def _reinvite(app, user_id: int) -> str:
    """A fresh invitation for an enrolled user (the password-reset path); returns its token."""
    with app.app_context():
        user = db.session.get_one(User, user_id)
        token = invitations.issue_invitation(db.session, user, invited_by=None, valid_hours=72)
        db.session.commit()
        return token


def test_enrolling_again_from_an_invitation_ends_the_old_sessions(app, factory):
    """A password reset by invitation: the sessions opened with the old password die as soon as it changes."""
    account = factory.account(factory.school())
    with frozen_clock() as clock:
        old_browser = app.test_client()
        sign_in(old_browser, account)
        token = _reinvite(app, account.user_id)

        new_browser = app.test_client()
        open_invitation(new_browser, token)
        assert set_password(new_browser, "a completely new passphrase").status_code == 302
        assert session_count(app, account.user_id) == 0
        assert _redirected_to_sign_in(old_browser)
        changed = audit_rows(app, "auth.enrol.password")
        assert [row.details["sessions_ended"] for row in changed] == [1]

        # Completing enrolment leaves no session behind either.
        clock.shift(30)
        other_browser = app.test_client()
        sign_in(other_browser, account)  # the old factors: refused, the account is mid-enrolment
        assert not signed_in(other_browser)


def test_completing_enrolment_ends_sessions_left_from_before(app, factory):
    account = factory.account(factory.school())
    with frozen_clock() as clock:
        old_browser = app.test_client()
        sign_in(old_browser, account)
        token = _reinvite(app, account.user_id)
        clock.shift(30)
        enrol(
            app.test_client(),
            account.user_id,
            token,
            email=account.email,
            password="a completely new passphrase",
        )
        assert _redirected_to_sign_in(old_browser)
    assert session_count(app, account.user_id) == 0


def test_session_of_a_user_whose_factors_were_wiped_ends_even_if_nobody_ended_it(app, factory):
    """Defence in depth: a reset path that forgot to end sessions still cannot leave one usable."""
    account = factory.account(factory.school())
    client = app.test_client()
    sign_in(client, account)
    with app.app_context():
        user = db.session.get_one(User, account.user_id)
        user.password_hash = None
        user.totp_enrolled_at = None
        db.session.commit()
    assert _redirected_to_sign_in(client)
    assert session_count(app, account.user_id) == 0


def test_session_cookie_is_http_only_and_same_site_lax_and_no_remember_me_cookie_is_set(app, factory):
    account = factory.account(factory.school())
    client = app.test_client()
    response = sign_in(client, account)
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie.startswith(f"{COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path"} <= attributes
    assert "samesite=lax" in cookie.lower()
    # A browser-session cookie: it dies with the browser; the server enforces the real limits.
    assert "expires" not in attributes
    assert "max-age" not in attributes
    assert not any("remember" in name.lower() for name in _cookie_names(client))
    home = client.get("/")
    assert not home.headers.getlist("Set-Cookie") or all(
        "remember" not in c.lower() for c in home.headers.getlist("Set-Cookie")
    )


def _cookie_names(client: FlaskClient) -> set[str]:
    jar = getattr(client, "_cookies", {})
    return {key[2] for key in jar}


@pytest.fixture
def https_environ(environ: dict[str, str]) -> dict[str, str]:
    environ["PORTAL_PUBLIC_BASE_URL"] = "https://handover.example"
    return environ


def test_behind_https_the_cookie_is_host_prefixed_and_secure(https_environ, factory, app):
    account = factory.account(factory.school())
    base = "https://handover.example"
    client = app.test_client()
    page = client.get("/sign-in", base_url=base)
    response = client.post(
        "/sign-in",
        base_url=base,
        headers={"Referer": f"{base}/sign-in"},
        data={
            "csrf_token": csrf_token(page),
            "email": account.email,
            "password": account.password,
            "code": account.code(),
        },
    )
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie.startswith("__Host-handover=")
    parts = [part.strip().lower() for part in cookie.split(";")[1:]]
    assert "secure" in parts and "httponly" in parts and "path=/" in parts and "samesite=lax" in parts
    assert not any(part.startswith("domain=") for part in parts)  # __Host- forbids Domain
    assert client.get("/", base_url=base).status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_rotated_secret_key_keeps_old_cookies_working_but_signs_new_ones_with_the_new_key(
    environ, factory, app
):
    old_key, new_key = environ["PORTAL_SECRET_KEY"], "a-brand-new-secret-key-that-is-long-enough-987"
    account = factory.account(factory.school())
    old_client = app.test_client()
    sign_in(old_client, account)
    old_cookie = _cookie(old_client)

    rotated = create_app({**environ, "PORTAL_SECRET_KEY": new_key, "PORTAL_SECRET_KEY_FALLBACKS": old_key})
    try:
        carried_over = rotated.test_client()
        carried_over.set_cookie(COOKIE, old_cookie)
        assert carried_over.get("/").status_code == 200  # signed in people are not thrown out

        fresh = rotated.test_client()
        fresh.get("/sign-in")
        issued = _cookie(fresh)
        assert _loads(new_key, issued)
        with pytest.raises(BadSignature):
            _loads(old_key, issued)
    finally:
        with rotated.app_context():
            db.engine.dispose()


def _loads(key: str, cookie: str) -> dict[str, object]:
    """Verify ``cookie`` with ``key`` alone (no fallbacks)."""
    plain = Flask("verifier")
    plain.secret_key = key
    serializer = SecureCookieSessionInterface().get_signing_serializer(plain)
    assert serializer is not None
    loaded: dict[str, object] = serializer.loads(cookie)
    return loaded


def test_session_token_lives_only_in_the_signed_cookie_and_the_row_holds_its_hash(app, factory):
    account = factory.account(factory.school())
    client = app.test_client()
    sign_in(client, account)
    token = _auth_token(client)
    assert token is not None
    with app.app_context():
        row = db.session.scalars(select(AuthSession)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.user_id == account.user_id


def test_forged_session_token_is_not_accepted(app, factory):
    """A cookie re-signed by someone holding the key but not a live token still gets nowhere."""
    account = factory.account(factory.school())
    client = app.test_client()
    client.get("/sign-in")
    with client.session_transaction() as stored:
        stored[TOKEN_KEY] = "guessed-or-old-token-value-0000000000000000"
        stored["_user_id"] = str(account.user_id)
    assert _redirected_to_sign_in(client)
    assert _auth_token(client) is None
