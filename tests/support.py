"""Test helpers: factories and a client-side sign-in that goes through the real forms and TOTP."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from portal import services
from portal.auth import totp
from portal.extensions import db
from portal.models import Organisation, OrganisationKind, Role, User, utcnow
from portal.models.base import today_in_england

DEFAULT_PASSWORD = "correct horse battery staple"
_CSRF_PATTERN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(page: TestResponse | str) -> str:
    """The CSRF token in a rendered form."""
    html = page if isinstance(page, str) else page.get_data(as_text=True)
    found = _CSRF_PATTERN.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass(frozen=True)
class Org:
    """An organisation made by the factory."""

    id: int
    name: str
    la_code: str | None


@dataclass
class Account:
    """An enrolled user and what they know: password and TOTP seed."""

    user_id: int
    email: str
    password: str
    secret: str
    organisation_id: int
    last_step: int = field(default=0)

    def code(self, at: float | None = None) -> str:
        """A code never used before: the current step, or the next one if the current was spent."""
        now = time.time() if at is None else at
        step = max(int(now // 30), self.last_step + 1)
        self.last_step = step
        return pyotp.TOTP(self.secret).at(step * 30)


class Factory:
    """Creates rows directly (fast), with the same services the app uses."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._counter = 0

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _save(self, organisation: Organisation) -> Org:
        with self.app.app_context():
            db.session.add(organisation)
            db.session.commit()
            return Org(organisation.id, organisation.name, organisation.la_code)

    def local_authority(self, name: str = "Test County Council", la_code: str | None = None) -> Org:
        n = self._next()
        return self._save(
            Organisation(kind=OrganisationKind.LOCAL_AUTHORITY, name=name, la_code=la_code or f"{800 + n}")
        )

    def school(self, name: str | None = None, authority: Org | None = None) -> Org:
        n = self._next()
        return self._save(
            Organisation(
                kind=OrganisationKind.SCHOOL,
                name=name or f"Test School {n}",
                urn=f"{100000 + n}",
                la_code=authority.la_code if authority else "999",
                establishment_number=f"{2000 + n}",
                local_authority_id=authority.id if authority else None,
            )
        )

    def account(
        self,
        organisation: Org,
        role: Role = Role.SCHOOL_STAFF,
        *,
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        ig_training: date | None = None,
    ) -> Account:
        """A fully enrolled user (password + confirmed TOTP)."""
        n = self._next()
        with self.app.app_context():
            user = User(
                email=email or f"user{n}@example.org",
                display_name=f"Test User {n}",
                organisation_id=organisation.id,
                role=role,
                password_hash=services.password_hashing().hash(password),
                password_changed_at=utcnow(),
                totp_enrolled_at=utcnow(),
                ig_training_completed_on=ig_training or today_in_england(),
            )
            db.session.add(user)
            db.session.flush()
            secret = totp.new_secret()
            user.totp_secret_sealed = totp.seal_secret(services.keyring(), user.id, secret)
            db.session.commit()
            return Account(user.id, user.email, password, secret, organisation.id)


def sign_in(
    client: FlaskClient, account: Account, *, code: str | None = None, follow: bool = False
) -> TestResponse:
    """Sign in through the real form; returns the POST's response."""
    page = client.get("/sign-in")
    return client.post(
        "/sign-in",
        data={
            "csrf_token": csrf_token(page),
            "email": account.email,
            "password": account.password,
            "code": code if code is not None else account.code(),
        },
        follow_redirects=follow,
    )


def post_form(client: FlaskClient, page_url: str, action: str | None = None, **data: str) -> TestResponse:
    """GET a page, then POST its form (to ``action`` or back to the page) with its CSRF token."""
    page = client.get(page_url)
    assert page.status_code == 200, page.status_code
    return client.post(action or page_url, data={"csrf_token": csrf_token(page), **data})
