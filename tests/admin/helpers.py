"""Helpers shared by the admin, audit, route-matrix and header tests: the outbox, the audit trail, enrolment."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, User
from tests.support import csrf_token

INVITATION_PATH = re.compile(r"https?://[^/\s]+(/invitation/[A-Za-z0-9_-]+)")
TOTP_KEY = re.compile(r'id="totp-key">([A-Z2-7 ]+)<')
NEW_PASSWORD = "a walk along the canal towpath in spring"


def outbox(app: Flask) -> list[EmailMessage]:
    """Every e-mail written to the instance's outbox folder, oldest first."""
    folder = Path(app.instance_path) / "outbox"
    files = (
        sorted(folder.glob("*.eml"), key=lambda path: (path.stat().st_mtime_ns, path.name))
        if folder.exists()
        else []
    )
    messages = []
    for path in files:
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


def body_of(message: EmailMessage) -> str:
    """The plain-text body of an e-mail."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def invitation_path(message: EmailMessage) -> str:
    """The path of the invitation link in an e-mail (``/invitation/<token>``)."""
    found = INVITATION_PATH.findall(body_of(message))
    assert len(found) == 1, f"expected exactly one invitation link, found {found}"
    return str(found[0])


def audit_rows(app: Flask, action: str | None = None) -> list[dict[str, Any]]:
    """Audit events as plain dicts in chain order, optionally only one action."""
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.sequence)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return [
            {column.key: getattr(event, column.key) for column in AuditEvent.__table__.columns}
            for event in db.session.scalars(query)
        ]


def user_by_email(app: Flask, email: str) -> User | None:
    """The user with this e-mail address (detached: read attributes only)."""
    with app.app_context():
        user = db.session.scalars(select(User).where(User.email == email)).first()
        if user is not None:
            db.session.expunge(user)
        return user


def user_state(app: Flask, user_id: int) -> dict[str, Any]:
    """The columns of a user row that admin actions change."""
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        return {
            "is_active": user.is_active,
            "password_hash": user.password_hash,
            "totp_secret_sealed": user.totp_secret_sealed,
            "ig_training_completed_on": user.ig_training_completed_on,
            "role": user.role,
            "organisation_id": user.organisation_id,
        }


def enrol_from_invitation(client: FlaskClient, path: str, password: str = NEW_PASSWORD) -> str:
    """Follow an invitation link through both enrolment steps; returns the new TOTP seed."""
    opened = client.get(path)
    assert opened.status_code == 302, opened.status_code
    assert opened.headers["Location"].endswith("/enrol/password")
    page = client.get("/enrol/password")
    chosen = client.post(
        "/enrol/password", data={"csrf_token": csrf_token(page), "password": password, "confirm": password}
    )
    assert chosen.status_code == 302, chosen.get_data(as_text=True)
    page = client.get("/enrol/authenticator")
    assert page.status_code == 200
    shown = TOTP_KEY.search(page.get_data(as_text=True))
    assert shown, "the authenticator key is not shown as text"
    secret = "".join(shown.group(1).split())
    confirmed = client.post(
        "/enrol/authenticator", data={"csrf_token": csrf_token(page), "code": pyotp.TOTP(secret).now()}
    )
    assert confirmed.status_code == 200
    assert "recovery" in confirmed.get_data(as_text=True).lower()
    return secret
