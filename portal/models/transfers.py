"""Transfers of a child's records from one school to the next, their documents and delivery."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Enum, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, UTCDateTime, utcnow
from portal.models.organisations import Organisation
from portal.models.users import User


class TransferStatus(enum.StrEnum):
    """Where a transfer is in its life; the allowed moves are in :mod:`portal.transfers.states`."""

    DRAFT = "draft"
    AWAITING_DESIGNATED_TEACHER = "awaiting_designated_teacher"
    SENT = "sent"
    OPENED = "opened"
    DOWNLOADED = "downloaded"
    RECEIPT_CONFIRMED = "receipt_confirmed"
    REVOKED = "revoked"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        """How the status reads on screen."""
        return self.value.replace("_", " ").capitalize()


class DocumentCategory(enum.StrEnum):
    """What a document is; child-protection files have stricter delivery rules."""

    PEP = "pep"
    COMMON_TRANSFER_FILE = "common_transfer_file"
    EDUCATIONAL_RECORD = "educational_record"
    CHILD_PROTECTION = "child_protection"
    SEN_EHCP = "sen_ehcp"
    CHRONOLOGY = "chronology"
    OTHER = "other"

    @property
    def label(self) -> str:
        """How the category reads on screen."""
        return _CATEGORY_LABELS[self]


_CATEGORY_LABELS = {
    DocumentCategory.PEP: "Personal Education Plan (PEP)",
    DocumentCategory.COMMON_TRANSFER_FILE: "Common Transfer File (CTF)",
    DocumentCategory.EDUCATIONAL_RECORD: "Educational record",
    DocumentCategory.CHILD_PROTECTION: "Child protection file",
    DocumentCategory.SEN_EHCP: "SEN support plan or EHCP",
    DocumentCategory.CHRONOLOGY: "Chronology",
    DocumentCategory.OTHER: "Other",
}


class Transfer(Base):
    """One child's records going from a sending school to a receiving school.

    The child is identified minimally (initials, date of birth, optional UPN): never a name.
    """

    __tablename__ = "transfers"
    __table_args__ = (
        Index("ix_transfers_sender_status", "sending_organisation_id", "status"),
        Index("ix_transfers_receiver_status", "receiving_organisation_id", "status"),
        Index("ix_transfers_authority_status", "responsible_authority_id", "status"),
        Index("ix_transfers_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Quoted in e-mails and on the phone; random so it says nothing about volumes or order.
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[TransferStatus] = mapped_column(
        Enum(TransferStatus, native_enum=False, length=32, validate_strings=True),
        default=TransferStatus.DRAFT,
    )
    sending_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    receiving_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    responsible_authority_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    child_initials: Mapped[str] = mapped_column(String(4))
    child_date_of_birth: Mapped[date] = mapped_column()
    child_upn: Mapped[str | None] = mapped_column(String(13), index=True)
    looked_after: Mapped[bool] = mapped_column(default=False)
    left_on: Mapped[date] = mapped_column()
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    receipt_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    receipt_confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    receipt_comment: Mapped[str] = mapped_column(Text, default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expiry_reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    sending_organisation: Mapped[Organisation] = relationship(foreign_keys=[sending_organisation_id])
    receiving_organisation: Mapped[Organisation] = relationship(foreign_keys=[receiving_organisation_id])
    responsible_authority: Mapped[Organisation | None] = relationship(foreign_keys=[responsible_authority_id])
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    receipt_confirmed_by: Mapped[User | None] = relationship(foreign_keys=[receipt_confirmed_by_id])
    documents: Mapped[list[Document]] = relationship(back_populates="transfer", order_by="Document.id")
    recipients: Mapped[list[TransferRecipient]] = relationship(back_populates="transfer")

    def __repr__(self) -> str:
        return f"<Transfer {self.id} {self.status.value}>"


class Document(Base):
    """One encrypted file of a transfer. See :mod:`portal.crypto.envelope` for the format."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), index=True)
    category: Mapped[DocumentCategory] = mapped_column(
        Enum(DocumentCategory, native_enum=False, length=32, validate_strings=True)
    )
    display_filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    plaintext_size: Mapped[int | None] = mapped_column()
    plaintext_sha256: Mapped[str | None] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(100), unique=True)
    content_format: Mapped[str] = mapped_column(String(40))
    # The wrapped data key; set to NULL to crypto-shred the document.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(2048))
    wrap_algorithm: Mapped[str | None] = mapped_column(String(40))
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when the content is known to be complete in the store (a row without it is not a document yet).
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    shredded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    integrity_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    transfer: Mapped[Transfer] = relationship(back_populates="documents")


class TransferRecipient(Base):
    """A designated teacher a transfer was delivered to."""

    __tablename__ = "transfer_recipients"
    __table_args__ = (
        UniqueConstraint("transfer_id", "user_id", name="uq_transfer_recipients_transfer_user"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    transfer: Mapped[Transfer] = relationship(back_populates="recipients")
    user: Mapped[User] = relationship()


class DownloadLink(Base):
    """A single-use link to one document for one user, valid for minutes."""

    __tablename__ = "download_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    document: Mapped[Document] = relationship()


class NotificationStatus(enum.StrEnum):
    """Delivery state of a queued e-mail."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Notification(Base):
    """An e-mail queued for sending and retried until it goes (never carries a child's details)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id"), index=True)
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[NotificationStatus] = mapped_column(
        Enum(NotificationStatus, native_enum=False, length=16, validate_strings=True),
        default=NotificationStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
