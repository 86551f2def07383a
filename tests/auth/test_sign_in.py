"""Sign-in attacks: telling which factor was wrong, skipping the code, burning a code, forging the POST.

SECURITY.md test list items 6, 7 and 18.
"""

from __future__ import annotations

from portal.extensions import db
from portal.models import Role, User
from tests.auth.helpers import (
    GENERIC_FAILURE,
    audit_rows,
    code_at_step,
    current_step,
    frozen_clock,
    normalise_page,
    post_sign_in,
    session_count,
    signed_in,
)
from tests.support import DEFAULT_PASSWORD, csrf_token

_VOLATILE_HEADERS = {"Set-Cookie", "X-Request-ID", "Content-Security-Policy", "Content-Length"}


def test_right_password_with_wrong_code_and_wrong_password_with_right_code_look_identical(app, factory):
    account = factory.account(factory.school())
    with frozen_clock():
        right_code = code_at_step(account.secret, current_step())
        wrong_code = code_at_step(account.secret, current_step() + 5)
        wrong_code_response = post_sign_in(app.test_client(), account.email, account.password, wrong_code)
        wrong_password_response = post_sign_in(
            app.test_client(), account.email, "not the password at all", right_code
        )

    assert wrong_code_response.status_code == wrong_password_response.status_code == 200
    first = wrong_code_response.get_data(as_text=True)
    second = wrong_password_response.get_data(as_text=True)
    assert GENERIC_FAILURE in first
    assert normalise_page(first) == normalise_page(second)
    first_headers = {k: v for k, v in wrong_code_response.headers if k not in _VOLATILE_HEADERS}
    second_headers = {k: v for k, v in wrong_password_response.headers if k not in _VOLATILE_HEADERS}
    assert first_headers == second_headers
    assert session_count(app) == 0
    reasons = [row.details["reason"] for row in audit_rows(app, "auth.sign_in")]
    assert reasons == ["wrong_code", "wrong_password"]


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(app, factory):
    account = factory.account(factory.school())
    with frozen_clock():
        code = code_at_step(account.secret, current_step())
        known = post_sign_in(app.test_client(), account.email, "wrong password here", code)
        unknown = post_sign_in(app.test_client(), "nobody@example.org", "wrong password here", code)
    assert known.status_code == unknown.status_code == 200
    known_page = normalise_page(known.get_data(as_text=True)).replace(account.email, "EMAIL")
    unknown_page = normalise_page(unknown.get_data(as_text=True)).replace("nobody@example.org", "EMAIL")
    assert known_page == unknown_page
    reasons = [row.details["reason"] for row in audit_rows(app, "auth.sign_in")]
    assert reasons == ["wrong_password", "unknown_or_unenrolled_account"]


def test_failed_sign_in_page_does_not_echo_the_password_or_code(app, factory):
    account = factory.account(factory.school())
    with frozen_clock():
        code = code_at_step(account.secret, current_step() + 5)
        response = post_sign_in(app.test_client(), account.email, account.password, code)
    html = response.get_data(as_text=True)
    assert account.password not in html
    assert code not in html


def test_code_submitted_with_a_wrong_password_is_not_used_up(app, factory):
    account = factory.account(factory.school())
    with frozen_clock():
        code = code_at_step(account.secret, current_step())
        attacker = app.test_client()
        assert post_sign_in(attacker, account.email, "guessed wrong password", code).status_code == 200
        assert not signed_in(attacker)
        assert session_count(app) == 0

        owner = app.test_client()
        assert post_sign_in(owner, account.email, account.password, code).status_code == 302
        assert signed_in(owner)


def test_sign_in_without_a_code_is_refused_and_every_page_stays_closed(app, factory):
    school = factory.school()
    account = factory.account(school, Role.ORG_ADMIN)
    client = app.test_client()

    response = post_sign_in(client, account.email, account.password, "")

    assert response.status_code == 200
    assert "Enter the security code" in response.get_data(as_text=True)
    assert session_count(app) == 0
    for path in ("/", "/admin/users", f"/admin/users/{account.user_id}"):
        page = client.get(path)
        assert page.status_code == 302, path
        assert page.headers["Location"].startswith("/sign-in"), path


def test_sign_in_post_without_a_csrf_token_is_refused_and_signs_nobody_in(app, factory):
    account = factory.account(factory.school())
    client = app.test_client()
    response = client.post(
        "/sign-in", data={"email": account.email, "password": account.password, "code": account.code()}
    )
    assert response.status_code == 400
    assert session_count(app) == 0
    assert not signed_in(client)


def test_sign_in_post_with_another_browsers_csrf_token_is_refused(app, factory):
    account = factory.account(factory.school())
    page = app.test_client().get("/sign-in")
    victim = app.test_client()
    response = victim.post(
        "/sign-in",
        data={
            "csrf_token": csrf_token(page),
            "email": account.email,
            "password": account.password,
            "code": account.code(),
        },
    )
    assert response.status_code == 400
    assert session_count(app) == 0


def test_disabled_user_with_every_factor_right_is_refused_with_the_generic_message(app, factory):
    account = factory.account(factory.school())
    with app.app_context():
        db.session.get_one(User, account.user_id).is_active = False
        db.session.commit()
    client = app.test_client()
    response = post_sign_in(client, account.email, account.password, account.code())
    assert response.status_code == 200
    assert GENERIC_FAILURE in response.get_data(as_text=True)
    assert not signed_in(client)
    assert [row.details["reason"] for row in audit_rows(app, "auth.sign_in")] == ["account_disabled"]


def test_email_is_matched_without_regard_to_case_or_surrounding_spaces(app, factory):
    account = factory.account(factory.school(), email="teacher@example.org")
    client = app.test_client()
    response = post_sign_in(client, "  Teacher@Example.ORG ", DEFAULT_PASSWORD, account.code())
    assert response.status_code == 302
    assert signed_in(client)
