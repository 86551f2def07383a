"""Invitations: the only way into the portal. Single use, expiring, stored as a hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from portal.models import Invitation, User, utcnow
from portal.models.base import DbSession


class InvitationInvalid(Exception):
    """The link is unknown, expired, revoked or already used (the user is told only that it is invalid)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_invitation(session: DbSession, user: User, *, invited_by: User | None, valid_hours: int) -> str:
    """Create a new invitation for ``user`` (revoking any earlier one) and return its secret token."""
    now = utcnow()
    session.execute(
        update(Invitation)
        .where(
            Invitation.user_id == user.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None)
        )
        .values(revoked_at=now)
    )
    token = secrets.token_urlsafe(32)
    session.add(
        Invitation(
            token_hash=_hash(token),
            user=user,
            invited_by_id=invited_by.id if invited_by else None,
            expires_at=now + timedelta(hours=valid_hours),
        )
    )
    return token


def find_open_invitation(session: DbSession, token: str) -> Invitation:
    """The invitation behind ``token`` if it can still be used; else :class:`InvitationInvalid`."""
    invitation = session.scalars(select(Invitation).where(Invitation.token_hash == _hash(token))).first()
    return check_open(invitation)


def check_open(invitation: Invitation | None) -> Invitation:
    """Raise :class:`InvitationInvalid` unless ``invitation`` is unused, unrevoked and unexpired."""
    if invitation is None:
        raise InvitationInvalid("unknown")
    if invitation.accepted_at is not None:
        raise InvitationInvalid("already_used")
    if invitation.revoked_at is not None:
        raise InvitationInvalid("revoked")
    if invitation.expires_at <= utcnow():
        raise InvitationInvalid("expired")
    if not invitation.user.is_active:
        raise InvitationInvalid("user_disabled")
    return invitation


def mark_accepted(session: DbSession, invitation: Invitation) -> None:
    """Use the invitation up; a conditional update so two racing enrolments cannot both complete."""
    result = session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None))
        .values(accepted_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise InvitationInvalid("already_used")
