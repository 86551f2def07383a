"""The transfer state machine. Views never set ``Transfer.status`` themselves: they call :func:`move`."""

from __future__ import annotations

from portal.models import Transfer, TransferStatus

S = TransferStatus

# Where each status may go next. Revoked and expired are final; receipt confirmed is final for
# delivery (documents stay downloadable until expiry, then are purged).
ALLOWED_MOVES: dict[TransferStatus, frozenset[TransferStatus]] = {
    S.DRAFT: frozenset({S.SENT, S.AWAITING_DESIGNATED_TEACHER}),
    S.AWAITING_DESIGNATED_TEACHER: frozenset({S.SENT, S.REVOKED, S.EXPIRED}),
    S.SENT: frozenset({S.OPENED, S.REVOKED, S.EXPIRED}),
    S.OPENED: frozenset({S.DOWNLOADED, S.RECEIPT_CONFIRMED, S.REVOKED, S.EXPIRED}),
    S.DOWNLOADED: frozenset({S.RECEIPT_CONFIRMED, S.REVOKED, S.EXPIRED}),
    S.RECEIPT_CONFIRMED: frozenset({S.EXPIRED}),
    S.REVOKED: frozenset(),
    S.EXPIRED: frozenset(),
}

# Statuses in which the receiving school can open and download.
DELIVERED = frozenset({S.SENT, S.OPENED, S.DOWNLOADED, S.RECEIPT_CONFIRMED})
# Statuses in which the transfer is on its way and the sender may revoke or extend it.
IN_FLIGHT = frozenset({S.AWAITING_DESIGNATED_TEACHER, S.SENT, S.OPENED, S.DOWNLOADED})
ENDED = frozenset({S.REVOKED, S.EXPIRED})


class TransitionNotAllowed(Exception):
    """The transfer cannot go from its current status to the one asked for."""

    def __init__(self, current: TransferStatus, wanted: TransferStatus) -> None:
        super().__init__(f"a transfer that is {current.label.lower()} cannot become {wanted.label.lower()}")
        self.current = current
        self.wanted = wanted


def can_move(transfer: Transfer, wanted: TransferStatus) -> bool:
    """True if ``wanted`` is a legal next status."""
    return wanted in ALLOWED_MOVES[transfer.status]


def move(transfer: Transfer, wanted: TransferStatus) -> None:
    """Change the status, or raise :class:`TransitionNotAllowed`. The caller audits the move."""
    if not can_move(transfer, wanted):
        raise TransitionNotAllowed(transfer.status, wanted)
    transfer.status = wanted
