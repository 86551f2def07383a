"""Helpers for the identity and session attack tests: raw sign-in posts, enrolment through a real
invitation, frozen clocks, and read-only views of the rows an attack should (not) leave behind."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyotp
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from portal.admin import accounts
from portal.auth.routes import GENERIC_FAILURE
from portal.extensions import db
from portal.models import AuditEvent, AuthSession, Organisation, Role, User
from tests.support import Account, Org, csrf_token

# Mid-way through a 30-second TOTP step, so shifting by whole steps never lands on a boundary.
FROZEN_AT = datetime(2025, 3, 3, 9, 0, 15, tzinfo=UTC)
STEP_SECONDS = 30
OTHER_ADDRESS = "10.0.0.2"
_KEY_PATTERN = re.compile(r'id="totp-key">\s*([A-Z2-7 ]+?)\s*</p>')
_RECOVERY_PATTERN = re.compile(r"<li><code>([a-z0-9-]+)</code></li>")
_VOLATILE_PATTERNS = (
    re.compile(r'(name="csrf_token"[^>]*value=")[^"]+'),
    re.compile(r'(nonce=")[^"]+'),
)

__all__ = [
    "FROZEN_AT",
    "GENERIC_FAILURE",
    "OTHER_ADDRESS",
    "STEP_SECONDS",
    "AuditRow",
    "Enrolled",
    "audit_rows",
    "code_at_step",
    "current_step",
    "enrol",
    "frozen_clock",
    "grouped_key",
    "invite",
    "normalise_page",
    "open_invitation",
    "post_sign_in",
    "session_count",
    "set_password",
    "signed_in",
    "user_row",
]


@contextmanager
def frozen_clock(at: datetime = FROZEN_AT) -> Iterator[time_machine.Traveller]:
    """Stop the clock at ``at``; move it with ``traveller.shift(seconds)``."""
    with time_machine.travel(at, tick=False) as traveller:
        yield traveller


def current_step() -> int:
    """The TOTP time step of the (possibly frozen) clock."""
    return int(datetime.now(UTC).timestamp()) // STEP_SECONDS


def code_at_step(secret: str, step: int) -> str:
    """The code an authenticator app shows during time step ``step``."""
    return str(pyotp.TOTP(secret).at(step * STEP_SECONDS))


def post_sign_in(
    client: FlaskClient,
    email: str,
    password: str,
    code: str,
    *,
    address: str | None = None,
    next_path: str | None = None,
    **extra: str,
) -> TestResponse:
    """GET the sign-in page and POST it, optionally from another client address."""
    overrides = {"REMOTE_ADDR": address} if address else {}
    page = client.get("/sign-in", environ_overrides=overrides)
    url = "/sign-in" if next_path is None else f"/sign-in?next={next_path}"
    return client.post(
        url,
        data={"csrf_token": csrf_token(page), "email": email, "password": password, "code": code, **extra},
        environ_overrides=overrides,
    )


def signed_in(client: FlaskClient) -> bool:
    """True if the home page opens (rather than redirecting to sign-in)."""
    return client.get("/").status_code == 200


def normalise_page(html: str) -> str:
    """The page with per-request values (CSRF token, CSP nonce) blanked out."""
    for pattern in _VOLATILE_PATTERNS:
        html = pattern.sub(r"\1<volatile>", html)
    return html


@dataclass(frozen=True)
class AuditRow:
    """An audit event as the tests need it."""

    action: str
    outcome: str
    actor_user_id: int | None
    object_type: str | None
    object_id: str | None
    client_address: str | None
    details: dict[str, Any]
    raw: str


def audit_rows(app: Flask, action: str | None = None) -> list[AuditRow]:
    """Every audit event (of ``action``), oldest first."""
    with app.app_context():
        statement = select(AuditEvent).order_by(AuditEvent.sequence)
        if action:
            statement = statement.where(AuditEvent.action == action)
        return [
            AuditRow(
                action=event.action,
                outcome=event.outcome,
                actor_user_id=event.actor_user_id,
                object_type=event.object_type,
                object_id=event.object_id,
                client_address=event.client_address,
                details=json.loads(event.details),
                raw=" ".join(
                    str(getattr(event, column.key)) for column in AuditEvent.__table__.columns.values()
                ),
            )
            for event in db.session.scalars(statement)
        ]


def session_count(app: Flask, user_id: int | None = None) -> int:
    """How many server-side sessions exist (for one user, or at all)."""
    with app.app_context():
        statement = select(func.count(AuthSession.id))
        if user_id is not None:
            statement = statement.where(AuthSession.user_id == user_id)
        return int(db.session.scalar(statement) or 0)


def user_row(app: Flask, user_id: int) -> dict[str, Any]:
    """A detached snapshot of a user's columns."""
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        return {column.key: getattr(user, column.key) for column in User.__table__.columns.values()}


def invite(app: Flask, organisation: Org, *, email: str, role: Role = Role.SCHOOL_STAFF) -> tuple[int, str]:
    """Invite a new user as an administrator would; returns the user id and the link's token."""
    with app.app_context():
        user, token = accounts.invite_user(
            db.session,
            organisation=db.session.get_one(Organisation, organisation.id),
            email=email,
            display_name="Invited Teacher",
            role=role,
            invited_by=None,
            valid_hours=app.config["SETTINGS"].invitation_valid_hours,
        )
        db.session.commit()
        return user.id, token


def open_invitation(client: FlaskClient, token: str) -> TestResponse:
    """Follow the e-mailed link."""
    return client.get(f"/invitation/{token}")


def set_password(
    client: FlaskClient, password: str, *, confirm: str | None = None, **extra: str
) -> TestResponse:
    """Step 1 of enrolment: GET the password page and POST it."""
    page = client.get("/enrol/password")
    assert page.status_code == 200, page.status_code
    return client.post(
        "/enrol/password",
        data={
            "csrf_token": csrf_token(page),
            "password": password,
            "confirm": password if confirm is None else confirm,
            **extra,
        },
    )


@dataclass
class Enrolled:
    """What a newly enrolled user walked away with."""

    account: Account
    recovery_codes: list[str]
    confirmed_step: int


def enrol(
    client: FlaskClient, user_id: int, token: str, *, email: str, password: str, organisation_id: int = 0
) -> Enrolled:
    """The whole enrolment over HTTP: link, password, authenticator (key read off the page), codes.

    Runs under whatever clock the caller set; the confirming code is the current step's.
    """
    assert open_invitation(client, token).status_code == 302
    response = set_password(client, password)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/enrol/authenticator")
    page = client.get("/enrol/authenticator")
    html = page.get_data(as_text=True)
    found = _KEY_PATTERN.search(html)
    assert found, "no grouped key on the authenticator page"
    secret = found.group(1).replace(" ", "")
    step = current_step()
    done = client.post(
        "/enrol/authenticator",
        data={"csrf_token": csrf_token(page), "code": code_at_step(secret, step)},
    )
    assert done.status_code == 200, done.status_code
    codes = _RECOVERY_PATTERN.findall(done.get_data(as_text=True))
    account = Account(user_id, email, password, secret, organisation_id, last_step=step)
    return Enrolled(account=account, recovery_codes=codes, confirmed_step=step)


def grouped_key(html: str) -> str | None:
    """The key as shown on the authenticator page (groups of four), if present."""
    found = _KEY_PATTERN.search(html)
    return found.group(1) if found else None
