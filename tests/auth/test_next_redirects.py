"""``?next=`` after sign-in goes only to a path on this site (SECURITY.md test list item 19, ASVS 3.7.2)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from portal.models import Role
from tests.auth.helpers import post_sign_in
from tests.support import Account, csrf_token


def _sign_in_with_next(app, account: Account, next_path: str) -> str:
    response = post_sign_in(
        app.test_client(), account.email, account.password, account.code(), next_path=next_path
    )
    assert response.status_code == 302
    return response.headers["Location"]


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "//evil.example/admin/users",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "https://evil.example",
        "https://evil.example/admin/users",
        "http:evil.example",
        "evil.example",
        "/\r\nSet-Cookie:x=1",
        "/\x00//evil.example",
        "/\t/evil.example",
        "%2F%2Fevil.example",
        "data:text/html,hi",
    ],
)
def test_next_pointing_off_site_is_ignored(app, factory, target):
    account = factory.account(factory.school())
    location = _sign_in_with_next(app, account, quote(target, safe=""))
    assert location == "/"


@pytest.mark.parametrize("target", ["/admin/users", "/admin/users?page=2", "/"])
def test_next_pointing_to_a_page_of_this_site_is_followed(app, factory, target):
    account = factory.account(factory.school())
    assert _sign_in_with_next(app, account, quote(target, safe="")) == target


def test_signed_out_visit_to_a_page_comes_back_to_it_after_sign_in(app, factory):
    account = factory.account(factory.school(), Role.ORG_ADMIN)
    client = app.test_client()
    bounced = client.get("/admin/users")
    assert bounced.status_code == 302
    sign_in_url = bounced.headers["Location"]
    assert sign_in_url.startswith("/sign-in?next=")
    page = client.get(sign_in_url)
    response = client.post(
        sign_in_url,
        data={
            "csrf_token": csrf_token(page),
            "email": account.email,
            "password": account.password,
            "code": account.code(),
        },
    )
    assert response.headers["Location"] == "/admin/users"
    assert client.get("/admin/users").status_code == 200
