"""Writes that a browser says came from another site are refused, whatever token they carry."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import LoginAttempt
from tests.support import csrf_token


def _sign_in_form(client) -> dict[str, str]:
    token = csrf_token(client.get("/sign-in"))
    return {
        "csrf_token": token,
        "email": "nobody@example.org",
        "password": "wrong password 123",
        "code": "000000",
    }


def test_a_post_with_a_foreign_origin_is_refused_before_anything_is_processed(app, client):
    response = client.post("/sign-in", data=_sign_in_form(client), headers={"Origin": "https://evil.example"})

    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginAttempt.id))) == 0


def test_a_post_the_browser_marks_cross_site_is_refused(app, client):
    response = client.post("/sign-in", data=_sign_in_form(client), headers={"Sec-Fetch-Site": "cross-site"})

    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginAttempt.id))) == 0


def test_a_same_origin_post_without_a_referer_is_accepted(app, client):
    # Pages send Referrer-Policy: no-referrer, so a real browser's POST carries Origin but no Referer.
    response = client.post(
        "/sign-in",
        data=_sign_in_form(client),
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
        base_url="http://localhost",
    )

    assert response.status_code == 200
    assert "is not right" in response.get_data(as_text=True)


def test_a_same_origin_post_over_https_without_a_referer_is_accepted(environ):
    from portal import create_app

    environ["PORTAL_PUBLIC_BASE_URL"] = "https://handover.example"
    secure_app = create_app(environ)
    client = secure_app.test_client()
    page = client.get("/sign-in", base_url="https://handover.example")
    response = client.post(
        "/sign-in",
        data={
            "csrf_token": csrf_token(page),
            "email": "x@example.org",
            "password": "wrong password 123",
            "code": "1",
        },
        headers={"Origin": "https://handover.example"},
        base_url="https://handover.example",
    )

    assert response.status_code == 200


def test_origin_null_from_a_same_origin_page_is_accepted(app, client):
    # Chromium sends "Origin: null" for same-origin forms on pages with Referrer-Policy: no-referrer.
    response = client.post(
        "/sign-in", data=_sign_in_form(client), headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    )

    assert response.status_code == 200


def test_origin_null_from_another_site_is_refused(app, client):
    response = client.post(
        "/sign-in", data=_sign_in_form(client), headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"}
    )

    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginAttempt.id))) == 0
