"""Organisations: schools and local authorities (whose virtual schools employ caseworkers)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, UTCDateTime, utcnow


class OrganisationKind(enum.StrEnum):
    """What sort of organisation this is."""

    SCHOOL = "school"
    LOCAL_AUTHORITY = "local_authority"


class Organisation(Base):
    """A school (URN, DfE LA code + establishment number) or a local authority (LA code)."""

    __tablename__ = "organisations"
    __table_args__ = (
        CheckConstraint("la_code IS NULL OR length(la_code) = 3", name="la_code_three_digits"),
        CheckConstraint(
            "establishment_number IS NULL OR length(establishment_number) = 4",
            name="establishment_number_four_digits",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[OrganisationKind] = mapped_column(
        Enum(OrganisationKind, native_enum=False, length=20, validate_strings=True)
    )
    name: Mapped[str] = mapped_column(String(200))
    urn: Mapped[str | None] = mapped_column(String(8), unique=True)
    la_code: Mapped[str | None] = mapped_column(String(3), index=True)
    establishment_number: Mapped[str | None] = mapped_column(String(4))
    phase: Mapped[str | None] = mapped_column(String(60))
    # The authority a school sits in (and whose virtual school follows its looked-after children).
    local_authority_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    max_transfer_days: Mapped[int] = mapped_column(Integer, default=30)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    local_authority: Mapped[Organisation | None] = relationship(remote_side=[id])

    @property
    def is_school(self) -> bool:
        """True for schools, False for local authorities."""
        return self.kind is OrganisationKind.SCHOOL

    @property
    def dfe_number(self) -> str | None:
        """The DfE number ``LLL/EEEE`` (LA code / establishment number) of a school."""
        if self.la_code and self.establishment_number:
            return f"{self.la_code}/{self.establishment_number}"
        return None

    def __repr__(self) -> str:
        return f"<Organisation {self.id} {self.kind.value}>"
