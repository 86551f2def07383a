"""Error pages: plain words, the request id where it helps support, and never a stack trace."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import date

import pytest
from flask import Flask
from sqlalchemy import func, select

from portal import create_app
from portal.auth.guard import public
from portal.extensions import db
from portal.models import LoginAttempt, Role
from tests.support import csrf_token, sign_in

TRACEBACK_MARKERS = ("Traceback", 'File "', "werkzeug", "sqlalchemy", "Exception", "Error:", "line ")


def assert_plain(body: str) -> None:
    """The page is our own HTML page and gives nothing away about the code behind it."""
    assert "<!DOCTYPE html>" in body
    assert "– Handover</title>" in body
    for marker in TRACEBACK_MARKERS:
        assert marker not in body, marker


@pytest.fixture
def failing_app(environ: dict[str, str]) -> Iterator[Flask]:
    """The portal with a route that fails unexpectedly (added before the first request)."""
    app = create_app(environ)

    @public
    def explode() -> str:
        raise ZeroDivisionError("internal state: balance=42 at /srv/handover/portal/secret.py")

    app.add_url_rule("/test-only/explode", "explode", explode)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_an_unknown_page_gets_a_plain_not_found_page(client):
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    body = response.get_data(as_text=True)
    assert "Page not found" in body
    assert_plain(body)


def test_a_signed_in_user_gets_the_same_plain_not_found_page(app, factory):
    client = app.test_client()
    sign_in(client, factory.account(factory.school(), Role.SCHOOL_STAFF))

    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)
    assert_plain(response.get_data(as_text=True))


def test_a_wrong_method_gets_a_plain_page_that_still_says_which_methods_are_allowed(client):
    response = client.get("/sign-out")

    assert response.status_code == 405
    assert set(response.headers.get("Allow", "").replace(" ", "").split(",")) >= {"POST"}
    body = response.get_data(as_text=True)
    assert "Sorry, there is a problem with that request" in body
    assert_plain(body)


def _sign_in_form(client, factory, **extra: str) -> dict[str, str]:
    account = factory.account(factory.school())
    token = csrf_token(client.get("/sign-in"))
    return {
        "csrf_token": token,
        "email": account.email,
        "password": account.password,
        "code": account.code(),
        **extra,
    }


def test_a_multipart_form_field_too_large_to_hold_gets_a_plain_413_and_is_not_processed(app, client, factory):
    data = _sign_in_form(client, factory, padding="x" * 600_000)

    response = client.post("/sign-in", data=data, content_type="multipart/form-data")

    assert response.status_code == 413
    body = response.get_data(as_text=True)
    assert "too large" in body
    assert_plain(body)
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginAttempt.id))) == 0
    assert client.get("/").status_code == 302  # not signed in


def test_an_oversized_url_encoded_form_gets_a_plain_413_and_is_not_processed(app, client, factory):
    data = _sign_in_form(client, factory, padding="x" * 2_000_000)

    response = client.post("/sign-in", data=data)

    assert response.status_code == 413
    assert_plain(response.get_data(as_text=True))
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginAttempt.id))) == 0


def test_a_form_with_too_many_parts_gets_a_plain_413(client):
    token = csrf_token(client.get("/sign-in"))
    fields = {f"field{n}": "x" for n in range(1_000)}

    response = client.post(
        "/sign-in", data={"csrf_token": token, **fields}, content_type="multipart/form-data"
    )

    assert response.status_code == 413
    assert_plain(response.get_data(as_text=True))


def test_an_unexpected_failure_gets_a_plain_500_with_the_reference_that_is_in_the_log(failing_app, caplog):
    caplog.set_level(logging.ERROR, logger="portal.errors")

    response = failing_app.test_client().get("/test-only/explode")

    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert_plain(body)
    assert "ZeroDivisionError" not in body and "balance=42" not in body and "/srv/handover" not in body
    reference = response.headers["X-Request-ID"]
    assert re.search(rf"quote reference\W+(<[^>]+>)?{reference}\b", body)
    # Support can find the traceback from the reference the user quotes.
    [logged] = [r for r in caplog.records if r.name == "portal.errors"]
    assert reference in logged.getMessage()
    assert logged.exc_info is not None


def test_each_500_gets_its_own_reference(failing_app):
    client = failing_app.test_client()

    first = client.get("/test-only/explode").headers["X-Request-ID"]
    second = client.get("/test-only/explode").headers["X-Request-ID"]

    assert first != second


def test_a_request_id_offered_by_a_client_is_ignored_without_a_trusted_proxy(failing_app):
    response = failing_app.test_client().get(
        "/test-only/explode", headers={"X-Request-ID": "forged-id-12345"}
    )

    assert response.headers["X-Request-ID"] != "forged-id-12345"
    assert "forged-id-12345" not in response.get_data(as_text=True)


def test_a_trusted_proxys_request_id_is_kept_and_a_malformed_one_replaced(environ):
    app = create_app(environ | {"PORTAL_TRUSTED_PROXY_COUNT": "1"})
    client = app.test_client()

    kept = client.get("/sign-in", headers={"X-Request-ID": "lb-0123456789abcdef"})
    replaced = client.get("/sign-in", headers={"X-Request-ID": "<script>alert(1)</script>"})

    assert kept.headers["X-Request-ID"] == "lb-0123456789abcdef"
    assert "<script>" not in replaced.headers["X-Request-ID"]


def test_a_database_that_cannot_be_reached_gives_a_plain_503_and_nobody_is_let_in(environ, tmp_path, caplog):
    app = create_app(
        environ | {"PORTAL_DATABASE_URL": f"sqlite:///{tmp_path}/no-such-folder/handover.sqlite3"}
    )
    client = app.test_client()
    token = csrf_token(client.get("/sign-in"))

    response = client.post(
        "/sign-in",
        data={"csrf_token": token, "email": "someone@example.org", "password": "x" * 20, "code": "123456"},
    )

    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert_plain(body)
    assert "unable to open database" not in body and "sqlite" not in body.lower()
    assert response.headers["X-Request-ID"] in body
    assert client.get("/").status_code == 302


def test_a_refusal_with_a_reason_shows_the_reason_but_stock_errors_do_not(app, client, factory):
    from portal.models import Role
    from tests.support import sign_in

    school = factory.school()
    lapsed = factory.account(school, Role.SCHOOL_STAFF, ig_training=date(2000, 1, 1))
    sign_in(client, lapsed)

    refused = client.get("/transfers/new")

    assert refused.status_code == 403
    assert "information-governance training" in refused.get_data(as_text=True)
    assert "The requested URL was not found" not in client.get("/no-such-page").get_data(as_text=True)
