"""Helpers shared by the admin, audit, route-matrix and header tests: the outbox, the audit trail, enrolment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Map, Rule

from portal.admin import accounts
from portal.extensions import db
from portal.models import AuditEvent, Document, Organisation, Role, User
from tests.support import Factory, csrf_token
from tests.transfers.helpers import (
    PDF_BYTES,
    World,
    create_draft,
    make_world,
    request_download,
    send,
    signed_in,
    upload,
)

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


@dataclass(frozen=True)
class RealObjects:
    """Real objects to put into URLs: a user, a pending invitation, a delivered transfer with a
    document, and an unused download link (issued to ``world.teacher``)."""

    world: World
    user_id: int
    invitation_token: str
    transfer_id: int
    document_id: int
    download_token: str


def make_real_objects(app: Flask, factory: Factory) -> RealObjects:
    """Everything a route can name, made through the real flows (the transfer over HTTP)."""
    world = make_world(factory)
    with app.app_context():
        organisation = db.session.get(Organisation, world.sending.id)
        assert organisation is not None
        _, invitation_token = accounts.invite_user(
            db.session,
            organisation=organisation,
            email=f"pending-{organisation.id}@example.org",
            display_name="Pending Person",
            role=Role.SCHOOL_STAFF,
            invited_by=None,
            valid_hours=72,
        )
        db.session.commit()
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    assert upload(sender, transfer_id, PDF_BYTES, "Plan.pdf").status_code == 302
    assert send(sender, transfer_id).status_code == 302
    with app.app_context():
        document_id = db.session.scalars(select(Document.id).where(Document.transfer_id == transfer_id)).one()
    link = request_download(signed_in(app, world.teacher), transfer_id, document_id)
    assert link.status_code == 302
    download_token = link.headers["Location"].rsplit("/", 1)[1]
    return RealObjects(
        world, world.sender.user_id, invitation_token, transfer_id, document_id, download_token
    )


def fill_url(rule: Rule, objects: RealObjects) -> str:
    """The rule's path with every argument filled from ``objects``; fails for an argument it does not know."""
    tokens = {
        "auth.accept_invitation": objects.invitation_token,
        "transfers.download": objects.download_token,
    }
    values = {
        "user_id": objects.user_id,
        "transfer_id": objects.transfer_id,
        "document_id": objects.document_id,
        "token": tokens.get(rule.endpoint),
    }
    unknown = sorted(name for name in rule.arguments if values.get(name) is None)
    if unknown:
        pytest.fail(
            f"{rule.endpoint} ({rule.rule}): teach tests/admin/helpers.fill_url a real object for {unknown}"
        )
    adapter = Map([Rule(rule.rule, endpoint=rule.endpoint)]).bind("localhost")
    return adapter.build(rule.endpoint, {name: values[name] for name in rule.arguments})
