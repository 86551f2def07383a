"""People who sign in, and what their sign-in rests on: invitations, recovery codes, attempts, sessions."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Enum, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, UTCDateTime, utcnow
from portal.models.organisations import Organisation


class Role(enum.StrEnum):
    """What a user may do; every check of it lives in :mod:`portal.policy`."""

    SCHOOL_STAFF = "school_staff"
    DESIGNATED_TEACHER = "designated_teacher"
    CASEWORKER = "caseworker"
    ORG_ADMIN = "org_admin"
    AUDITOR = "auditor"

    @property
    def label(self) -> str:
        """How the role is named on screen."""
        return _ROLE_LABELS[self]


_ROLE_LABELS = {
    Role.SCHOOL_STAFF: "School staff",
    Role.DESIGNATED_TEACHER: "Designated teacher",
    Role.CASEWORKER: "Virtual school caseworker",
    Role.ORG_ADMIN: "Organisation administrator",
    Role.AUDITOR: "Auditor (information governance)",
}


class User(Base):
    """A member of staff of one organisation, with one role."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=30, validate_strings=True))
    is_active: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The TOTP seed, sealed by the keyring with this user's id as context (never stored in clear).
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Highest TOTP time step accepted so far: any code at or before it is a replay.
    totp_last_timecode: Mapped[int | None] = mapped_column()
    ig_training_completed_on: Mapped[date | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    organisation: Mapped[Organisation] = relationship(lazy="joined")

    @property
    def is_enrolled(self) -> bool:
        """True once a password is set and TOTP confirmed: only then can the user sign in."""
        return self.password_hash is not None and self.totp_enrolled_at is not None

    # Flask-Login's interface. ``is_authenticated`` is only ever asked of a user loaded from a
    # live server-side session, so it is always True here.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role.value}>"


class Invitation(Base):
    """A single-use, expiring link that lets a new (or reset) user set a password and enrol TOTP."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the token: a copy of the database cannot be turned into working links.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class RecoveryCode(Base):
    """One single-use recovery code, stored as an argon2 hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginAttempt(Base):
    """Each sign-in attempt, for throttling decisions and the record (no passwords, no codes)."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_account_time", "account_key", "attempted_at"),
        Index("ix_login_attempts_address_time", "client_address", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # HMAC of the normalised e-mail typed, so attempts on unknown addresses are countable too
    # without storing what a stranger typed.
    account_key: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    client_address: Mapped[str] = mapped_column(String(45))
    succeeded: Mapped[bool] = mapped_column()
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuthSession(Base):
    """A signed-in session, held on the server so it can be ended from the server.

    The browser's cookie carries a random token; only its SHA-256 is stored here.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    client_address: Mapped[str] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(200), default="")

    user: Mapped[User] = relationship(lazy="joined")
