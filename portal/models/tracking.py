"""Tracking: school calendars, statutory deadline rules, each transfer's computed deadline, digests sent.

Deadlines are counted in school days, which depend on an authority's term dates; they are
computed in Python (:mod:`portal.tracking.deadlines`) and kept in ``transfer_deadlines`` so the
dashboard can filter and sort 100,000 transfers in SQL.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.audit import AuditEvent
from portal.models.base import Base, UTCDateTime, utcnow
from portal.models.transfers import DocumentCategory


class CalendarEntryKind(enum.StrEnum):
    """A term (school is in session on its weekdays) or a closure inside one (half-term, INSET, strike)."""

    TERM = "term"
    CLOSURE = "closure"


class SchoolCalendar(Base):
    """An authority's calendar of school days; its entries replace the England default when present."""

    __tablename__ = "school_calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    authority_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), unique=True)
    # "ics" when the entries came from an uploaded file, "admin" once an admin has edited them by hand.
    source: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CalendarEntry(Base):
    """A run of dates (both ends included) that is a term or a closure."""

    __tablename__ = "calendar_entries"
    __table_args__ = (CheckConstraint("ends_on >= starts_on", name="ends_after_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        ForeignKey("school_calendars.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[CalendarEntryKind] = mapped_column(
        Enum(CalendarEntryKind, native_enum=False, length=10, validate_strings=True)
    )
    starts_on: Mapped[date] = mapped_column()
    ends_on: Mapped[date] = mapped_column()
    # As published ("Autumn half term"); shown escaped, never interpreted.
    summary: Mapped[str] = mapped_column(String(200), default="")


class DeadlineRule(Base):
    """An authority's own number of school days for one category (otherwise the statutory default)."""

    __tablename__ = "deadline_rules"
    __table_args__ = (
        UniqueConstraint("authority_id", "category", name="uq_deadline_rules_authority_category"),
        CheckConstraint("school_days BETWEEN 1 AND 60", name="school_days_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    authority_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    category: Mapped[DocumentCategory] = mapped_column(
        Enum(DocumentCategory, native_enum=False, length=32, validate_strings=True)
    )
    school_days: Mapped[int] = mapped_column(Integer)


class TransferDeadline(Base):
    """A transfer's statutory deadline, computed from its documents, rules and calendar.

    A row is deleted (and recomputed on the next read) whenever what it rests on changes.
    """

    __tablename__ = "transfer_deadlines"
    __table_args__ = (
        Index("ix_transfer_deadlines_authority_due", "responsible_authority_id", "due_on"),
        Index("ix_transfer_deadlines_calendar_authority", "calendar_authority_id"),
    )

    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"), primary_key=True)
    # Copied from the transfer so the dashboard filters and sorts on one index.
    responsible_authority_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    # Whose calendar counted the days (None: the England default).
    calendar_authority_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    due_on: Mapped[date] = mapped_column()
    school_days: Mapped[int] = mapped_column(Integer)
    # The category that set the deadline (the strictest of the transfer's documents).
    category: Mapped[DocumentCategory] = mapped_column(
        Enum(DocumentCategory, native_enum=False, length=32, validate_strings=True)
    )
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DigestDelivery(Base):
    """One caseworker's daily digest for one day: its existence makes the digest job idempotent."""

    __tablename__ = "digest_deliveries"
    __table_args__ = (UniqueConstraint("user_id", "digest_on", name="uq_digest_deliveries_user_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    digest_on: Mapped[date] = mapped_column()
    overdue: Mapped[int] = mapped_column(Integer, default=0)
    due_soon: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Indexes on tables owned by other areas, declared here so autogenerate keeps them:
# the audit viewer pages an organisation's events newest first by sequence (keyset pagination),
# and "last access" looks up an object's latest events.
Index("ix_audit_events_actor_org_sequence", AuditEvent.actor_organisation_id, AuditEvent.sequence)
Index("ix_audit_events_object_sequence", AuditEvent.object_type, AuditEvent.object_id, AuditEvent.sequence)
