"""Managing an organisation's users: invite, disable, re-enable, reset authenticator, IG training.

Plain functions on a database session; the views decide pages and statuses.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from portal import audit
from portal.auth import invitations
from portal.auth.sessions import end_all_sessions
from portal.auth.throttle import normalise_email
from portal.models import Organisation, OrganisationKind, RecoveryCode, Role, User, utcnow
from portal.models.base import DbSession

ROLES_BY_KIND = {
    OrganisationKind.SCHOOL: (Role.SCHOOL_STAFF, Role.DESIGNATED_TEACHER, Role.ORG_ADMIN, Role.AUDITOR),
    OrganisationKind.LOCAL_AUTHORITY: (Role.CASEWORKER, Role.ORG_ADMIN, Role.AUDITOR),
}


class AccountError(ValueError):
    """The request cannot be carried out; the message is safe to show."""


def roles_for(organisation: Organisation) -> tuple[Role, ...]:
    """The roles a user of this kind of organisation may hold."""
    return ROLES_BY_KIND[organisation.kind]


def invite_user(
    session: DbSession,
    *,
    organisation: Organisation,
    email: str,
    display_name: str,
    role: Role,
    invited_by: User | None,
    valid_hours: int,
) -> tuple[User, str]:
    """Create a user who can only get in through the returned invitation token."""
    email = normalise_email(email)
    if role not in roles_for(organisation):
        raise AccountError(f"{role.label} is not a role in this kind of organisation")
    if session.scalar(select(func.count(User.id)).where(User.email == email)):
        raise AccountError("A user with that email address already exists")
    user = User(email=email, display_name=display_name.strip(), organisation=organisation, role=role)
    session.add(user)
    session.flush()
    token = invitations.issue_invitation(session, user, invited_by=invited_by, valid_hours=valid_hours)
    audit.record(
        session, "admin.user.invite", object_type="user", object_id=user.id, details={"role": role.value}
    )
    return user, token


def reinvite(session: DbSession, user: User, *, invited_by: User | None, valid_hours: int) -> str:
    """A new invitation for a user who has not finished enrolling (the old link stops working)."""
    if user.is_enrolled:
        raise AccountError("This user has already set up their account")
    token = invitations.issue_invitation(session, user, invited_by=invited_by, valid_hours=valid_hours)
    audit.record(session, "admin.user.reinvite", object_type="user", object_id=user.id)
    return token


def set_active(session: DbSession, user: User, active: bool) -> None:
    """Disable (ending every session at once) or re-enable a user."""
    user.is_active = active
    user.disabled_at = None if active else utcnow()
    ended = 0 if active else end_all_sessions(user.id)
    audit.record(
        session,
        "admin.user.enable" if active else "admin.user.disable",
        object_type="user",
        object_id=user.id,
        details={"sessions_ended": ended},
    )


def reset_authenticator(session: DbSession, user: User, *, invited_by: User, valid_hours: int) -> str:
    """Forget the user's password, TOTP and recovery codes and end their sessions; they re-enrol.

    A lost factor means proving identity again (ASVS 6.4.4): the administrator who knows the
    person issues a new invitation; nothing of the old credentials survives.
    """
    user.password_hash = None
    user.totp_secret_sealed = None
    user.totp_enrolled_at = None
    user.totp_last_timecode = None
    for code in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(code)
    ended = end_all_sessions(user.id)
    token = invitations.issue_invitation(session, user, invited_by=invited_by, valid_hours=valid_hours)
    audit.record(
        session,
        "admin.user.reset_authenticator",
        object_type="user",
        object_id=user.id,
        details={"sessions_ended": ended},
    )
    return token


def record_ig_training(session: DbSession, user: User, completed_on: date, today: date) -> None:
    """Record when the user last completed information-governance training."""
    if completed_on > today:
        raise AccountError("The training date cannot be in the future")
    user.ig_training_completed_on = completed_on
    audit.record(
        session,
        "admin.user.ig_training",
        object_type="user",
        object_id=user.id,
        details={"completed_on": completed_on.isoformat()},
    )
