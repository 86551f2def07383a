"""The lists of transfers each kind of user works from (need-to-know is built into each query)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select

from portal.models import Transfer, TransferStatus
from portal.models.base import DbSession

# Beyond this a list stops being useful on a page; the tracking dashboard pages through everything.
LIST_LIMIT = 200


def _newest(session: DbSession, query: Select[Transfer]) -> Sequence[Transfer]:
    return session.scalars(query.limit(LIST_LIMIT)).all()


def outgoing(session: DbSession, organisation_id: int) -> Sequence[Transfer]:
    """Transfers sent, or being prepared, by an organisation; newest first."""
    return _newest(
        session,
        select(Transfer)
        .where(Transfer.sending_organisation_id == organisation_id)
        .order_by(Transfer.created_at.desc()),
    )


def incoming(session: DbSession, school_id: int) -> Sequence[Transfer]:
    """Transfers delivered to a school; most recently delivered first."""
    return _newest(
        session,
        select(Transfer)
        .where(Transfer.receiving_organisation_id == school_id, Transfer.delivered_at.is_not(None))
        .order_by(Transfer.delivered_at.desc()),
    )


def held(session: DbSession, authority_id: int) -> Sequence[Transfer]:
    """An authority's transfers waiting for their school to get a designated teacher; oldest first."""
    return _newest(
        session,
        select(Transfer)
        .where(
            Transfer.responsible_authority_id == authority_id,
            Transfer.status == TransferStatus.AWAITING_DESIGNATED_TEACHER,
        )
        .order_by(Transfer.sent_at),
    )
