"""Database models. Every schema change is an Alembic revision in ``migrations/``."""

from portal.models.audit import AuditChainHead, AuditEvent
from portal.models.base import Base, UTCDateTime, utcnow
from portal.models.organisations import Organisation, OrganisationKind
from portal.models.tracking import (
    CalendarEntry,
    CalendarEntryKind,
    DeadlineRule,
    DigestDelivery,
    SchoolCalendar,
    TransferDeadline,
)
from portal.models.transfers import (
    Document,
    DocumentCategory,
    DownloadLink,
    Notification,
    NotificationStatus,
    Transfer,
    TransferRecipient,
    TransferStatus,
)
from portal.models.users import AuthSession, Invitation, LoginAttempt, RecoveryCode, Role, User

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "AuthSession",
    "Base",
    "CalendarEntry",
    "CalendarEntryKind",
    "DeadlineRule",
    "DigestDelivery",
    "Document",
    "DocumentCategory",
    "DownloadLink",
    "Invitation",
    "LoginAttempt",
    "Notification",
    "NotificationStatus",
    "Organisation",
    "OrganisationKind",
    "RecoveryCode",
    "Role",
    "SchoolCalendar",
    "Transfer",
    "TransferDeadline",
    "TransferRecipient",
    "TransferStatus",
    "UTCDateTime",
    "User",
    "utcnow",
]
