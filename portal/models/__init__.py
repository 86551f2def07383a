"""Database models. Every schema change is an Alembic revision in ``migrations/``."""

from portal.models.audit import AuditChainHead, AuditEvent
from portal.models.base import Base, UTCDateTime, utcnow
from portal.models.organisations import Organisation, OrganisationKind
from portal.models.users import AuthSession, Invitation, LoginAttempt, RecoveryCode, Role, User

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "AuthSession",
    "Base",
    "Invitation",
    "LoginAttempt",
    "Organisation",
    "OrganisationKind",
    "RecoveryCode",
    "Role",
    "UTCDateTime",
    "User",
    "utcnow",
]
