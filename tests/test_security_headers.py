"""Security headers on every page (error pages included), cookies, and output encoding."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from portal import create_app
from portal.auth.guard import public
from portal.extensions import db
from portal.models import Role
from tests.admin.helpers import fill_url, make_real_objects, outbox
from tests.support import Factory, csrf_token, post_form, sign_in

REQUIRED_CSP_DIRECTIVES = (
    "default-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
)
NONCE = re.compile(r"script-src [^;]*'nonce-([A-Za-z0-9_-]{16,})'")
HTTPS_BASE = "https://localhost"


def _csp_directives(response: TestResponse) -> list[str]:
    return [part.strip() for part in response.headers.get("Content-Security-Policy", "").split(";")]


def assert_secure_headers(response: TestResponse, what: str) -> None:
    """The headers every response of the portal must carry (over plain http in tests)."""
    directives = _csp_directives(response)
    for directive in REQUIRED_CSP_DIRECTIVES:
        assert directive in directives, f"{what}: CSP lacks {directive}"
    assert NONCE.search(response.headers["Content-Security-Policy"]), f"{what}: CSP has no script nonce"
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"], what
    assert response.headers.get("X-Content-Type-Options") == "nosniff", what
    assert response.headers.get("Referrer-Policy") == "no-referrer", what
    assert "no-store" in response.headers.get("Cache-Control", ""), f"{what}: pages must not be stored"
    assert "Strict-Transport-Security" not in response.headers, f"{what}: HSTS over plain http"
    assert re.fullmatch(r"[A-Za-z0-9-]{8,64}", response.headers.get("X-Request-ID", "")), what


def _get_rules(app: Flask) -> list[Rule]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint != "static" and "GET" in (r.methods or set())),
        key=lambda r: r.rule,
    )


@pytest.fixture
def boom_app(environ: dict[str, str]) -> Iterator[Flask]:
    """The portal with one extra (public) route that fails, registered before the first request."""
    application = create_app(environ)

    @public
    def boom() -> str:
        raise RuntimeError("secret internal detail: /srv/handover/db password=hunter2")

    application.add_url_rule("/test-only/boom", "boom", boom)
    yield application
    with application.app_context():
        db.engine.dispose()


# Not crawled signed in: opening an invitation ends the session (crawled anonymously instead), a
# download link works once (checked on its own), and the failing route is the 500 case.
NOT_CRAWLED_SIGNED_IN = {"auth.accept_invitation", "transfers.download", "boom"}


def test_every_page_error_page_and_form_carries_the_security_headers(boom_app):
    app = boom_app
    factory = Factory(app)
    objects = make_real_objects(app, factory)
    admin = factory.account(objects.world.sending, Role.ORG_ADMIN)
    crawled: dict[str, TestResponse] = {}

    # Anonymous: the public pages, the enrolment flow, a failed sign-in and the sign-in redirect.
    visitor = app.test_client()
    crawled["anonymous /"] = visitor.get("/")
    for path in (
        "/sign-in",
        "/healthz",
        "/invitation/not-a-real-token",
        f"/invitation/{objects.invitation_token}",
    ):
        crawled[f"anonymous {path}"] = visitor.get(path)
    crawled["anonymous /enrol/password"] = visitor.get("/enrol/password")
    crawled["anonymous /enrol/authenticator"] = visitor.get("/enrol/authenticator")
    crawled["failed sign-in"] = visitor.post(
        "/sign-in",
        data={
            "csrf_token": csrf_token(visitor.get("/sign-in")),
            "email": admin.email,
            "password": "wrong password",
            "code": "123456",
        },
    )

    # Signed in as the admin, the sender and the receiving teacher: every GET route of the url map.
    for who, account in (
        ("admin", admin),
        ("sender", objects.world.sender),
        ("teacher", objects.world.teacher),
    ):
        client = app.test_client()
        sign_in(client, account)
        for rule in _get_rules(app):
            if rule.endpoint not in NOT_CRAWLED_SIGNED_IN:
                path = fill_url(rule, objects)
                # Buffered, as a browser reads it all: a streamed export must finish before the next request.
                crawled[f"{who} {path}"] = client.get(path, buffered=True)
    assert crawled["admin /admin/users"].status_code == 200
    assert crawled[f"sender /transfers/{objects.transfer_id}"].status_code == 200
    assert crawled[f"teacher /transfers/{objects.transfer_id}"].status_code == 200

    # Error pages: 404, 405, 400 (CSRF), 500.
    crawled["404"] = client.get("/no/such/page")
    crawled["405"] = client.get("/sign-out")
    crawled["400 csrf"] = client.post("/admin/users/invite", data={"display_name": "x"})
    crawled["500"] = client.get("/test-only/boom")

    assert crawled["404"].status_code == 404
    assert crawled["405"].status_code == 405
    assert crawled["400 csrf"].status_code == 400
    assert crawled["500"].status_code == 500
    for what, response in crawled.items():
        assert_secure_headers(response, what)
        assert response.status_code < 500 or what == "500", what


def test_a_downloaded_document_is_an_uncached_sandboxed_attachment(app, factory):
    objects = make_real_objects(app, factory)
    teacher = app.test_client()
    sign_in(teacher, objects.world.teacher)

    response = teacher.get(f"/transfers/download/{objects.download_token}")

    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    directives = _csp_directives(response)
    assert "default-src 'none'" in directives
    assert "sandbox" in directives


def test_a_500_page_shows_its_reference_and_no_traceback(boom_app):
    response = boom_app.test_client().get("/test-only/boom")

    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["X-Request-ID"] in body
    for leak in ("Traceback", "RuntimeError", "hunter2", "/srv/handover", 'File "', "werkzeug"):
        assert leak not in body


def test_each_response_gets_a_new_script_nonce(client):
    first = NONCE.search(client.get("/sign-in").headers["Content-Security-Policy"])
    second = NONCE.search(client.get("/sign-in").headers["Content-Security-Policy"])

    assert first and second
    assert first.group(1) != second.group(1)


def test_static_files_get_the_content_headers_but_may_be_cached(app, client):
    folder = Path(app.static_folder or "")
    a_file = next((path for path in sorted(folder.rglob("*")) if path.is_file()), None)
    assert a_file is not None, f"no static file under {folder}"

    response = client.get(f"/static/{a_file.relative_to(folder).as_posix()}")

    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_hsts_is_sent_only_when_the_public_address_is_https(environ):
    plain = create_app(environ)
    secure = create_app({**environ, "PORTAL_PUBLIC_BASE_URL": "https://handover.example.org"})

    assert "Strict-Transport-Security" not in plain.test_client().get("/sign-in").headers
    hsts = secure.test_client().get("/sign-in", base_url=HTTPS_BASE).headers["Strict-Transport-Security"]
    max_age = re.search(r"max-age=(\d+)", hsts)
    assert max_age and int(max_age.group(1)) >= 31_536_000
    assert "includeSubDomains" in hsts


def test_cookies_over_https_are_host_prefixed_secure_http_only_and_same_site(environ):
    app = create_app({**environ, "PORTAL_PUBLIC_BASE_URL": "https://handover.example.org"})
    account = Factory(app).account(Factory(app).school(), Role.SCHOOL_STAFF)
    client = app.test_client()
    page = client.get("/sign-in", base_url=HTTPS_BASE)

    signed_in = client.post(
        "/sign-in",
        base_url=HTTPS_BASE,
        headers={"Referer": f"{HTTPS_BASE}/sign-in"},  # strict CSRF over https checks the referrer
        data={
            "csrf_token": csrf_token(page),
            "email": account.email,
            "password": account.password,
            "code": account.code(),
        },
    )

    assert signed_in.status_code == 302
    set_cookies = signed_in.headers.getlist("Set-Cookie")
    assert len(set_cookies) == 1, set_cookies
    cookie = set_cookies[0]
    assert cookie.startswith("__Host-handover=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "path"} <= attributes
    assert "domain" not in attributes  # __Host- cookies must not name a domain
    assert "samesite=lax" in cookie.lower() or "samesite=strict" in cookie.lower()
    assert "expires" not in attributes and "max-age" not in attributes  # dies with the browser
    assert "remember" not in " ".join(set_cookies).lower()
    assert client.get("/", base_url=HTTPS_BASE).status_code == 200
    with app.app_context():
        db.engine.dispose()


def test_a_script_in_a_users_name_is_shown_as_text(app, factory):
    admin = factory.account(factory.school(), Role.ORG_ADMIN)
    client = app.test_client()
    sign_in(client, admin)
    payload = "<script>alert(1)</script>"

    invited = post_form(
        client,
        "/admin/users/invite",
        display_name=payload,
        email="xss@example.org",
        role="school_staff",
    )
    assert invited.status_code == 302

    for path in ("/admin/users", invited.headers["Location"]):
        page = client.get(path).get_data(as_text=True)
        assert payload not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    [message] = outbox(app)
    assert message["Content-Type"].startswith("text/plain")  # the e-mail is never rendered as HTML


def test_pages_seen_before_signing_out_are_not_served_again_afterwards(app, factory):
    admin = factory.account(factory.school(), Role.ORG_ADMIN)
    client = app.test_client()
    sign_in(client, admin)
    seen = client.get("/admin/users")
    assert seen.status_code == 200
    assert "no-store" in seen.headers["Cache-Control"]  # so "Back" cannot show it from the cache

    signed_out = post_form(client, "/", "/sign-out")

    assert signed_out.status_code == 302
    assert "no-store" in signed_out.headers["Cache-Control"]
    again = client.get("/admin/users")
    assert again.status_code == 302
    assert again.headers["Location"].startswith("/sign-in")
    assert app.debug is False
