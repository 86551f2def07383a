"""The audit hash chain: appending events in order and verifying nothing was edited, removed or reordered.

Each event's hash is SHA-256 over a canonical JSON of its fields and the previous event's hash.
Appends take a row lock on the single ``audit_chain_head`` row (an ``UPDATE`` first, which
SQLite and PostgreSQL both serialise), so concurrent writers can never fork the chain.
This module knows nothing of Flask.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from portal.models import AuditChainHead, AuditEvent
from portal.models.base import DbSession

GENESIS_HASH = "0" * 64
HEAD_ROW_ID = 1


@dataclass(frozen=True)
class PendingEvent:
    """An event waiting for its transaction to commit."""

    occurred_at: datetime
    action: str
    outcome: str
    actor_user_id: int | None
    actor_organisation_id: int | None
    object_type: str | None
    object_id: str | None
    client_address: str | None
    request_id: str | None
    details: str


def event_hash(fields: dict[str, Any]) -> str:
    """SHA-256 (hex) of an event's canonical JSON, ``previous_hash`` included."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _hashed_fields(sequence: int, event: PendingEvent | AuditEvent, previous_hash: str) -> dict[str, Any]:
    occurred = event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "sequence": sequence,
        "occurred_at": occurred,
        "action": event.action,
        "outcome": event.outcome,
        "actor_user_id": event.actor_user_id,
        "actor_organisation_id": event.actor_organisation_id,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "client_address": event.client_address,
        "request_id": event.request_id,
        "details": event.details,
        "previous_hash": previous_hash,
    }


def append_events(session: DbSession, events: list[PendingEvent]) -> list[dict[str, Any]]:
    """Write ``events`` at the end of the chain inside the session's transaction.

    Returns the rows written (for forwarding to the log once committed).
    """
    if not events:
        return []
    head = session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ROW_ID)
        .values(last_sequence=AuditChainHead.last_sequence + len(events))
        .returning(AuditChainHead.last_sequence, AuditChainHead.last_hash)
    ).one()
    sequence = head.last_sequence - len(events)
    previous_hash = head.last_hash
    rows = []
    for event in events:
        sequence += 1
        fields = _hashed_fields(sequence, event, previous_hash)
        previous_hash = event_hash(fields)
        rows.append(
            {
                **fields,
                "occurred_at": event.occurred_at,
                "event_hash": previous_hash,
            }
        )
    session.execute(insert(AuditEvent), rows)
    session.execute(
        update(AuditChainHead).where(AuditChainHead.id == HEAD_ROW_ID).values(last_hash=previous_hash)
    )
    return rows


@dataclass(frozen=True)
class ChainReport:
    """The result of checking the chain: how far it is sound, and the first event that is not."""

    events_checked: int
    first_bad_sequence: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        """True when every event and the chain head agree."""
        return self.problem is None


def verify_chain(session: DbSession, batch_size: int = 5000) -> ChainReport:
    """Recompute every hash in order; report the first edited, missing or reordered event."""
    expected_sequence = 1
    previous_hash = GENESIS_HASH
    checked = 0
    events: Iterable[AuditEvent] = session.scalars(
        select(AuditEvent).order_by(AuditEvent.sequence).execution_options(yield_per=batch_size)
    )
    for event in events:
        if event.sequence != expected_sequence:
            return ChainReport(
                checked,
                expected_sequence,
                f"event {expected_sequence} is missing (next stored event is {event.sequence})",
            )
        if event.previous_hash != previous_hash:
            return ChainReport(
                checked, event.sequence, f"event {event.sequence} does not follow its predecessor"
            )
        if event_hash(_hashed_fields(event.sequence, event, event.previous_hash)) != event.event_hash:
            return ChainReport(
                checked, event.sequence, f"event {event.sequence} was altered after it was written"
            )
        previous_hash = event.event_hash
        expected_sequence += 1
        checked += 1
    head = session.get(AuditChainHead, HEAD_ROW_ID)
    if head is None:
        return ChainReport(checked, None, "the chain head row is missing")
    if head.last_sequence != checked or head.last_hash != previous_hash:
        return ChainReport(
            checked,
            checked + 1,
            f"the chain head names event {head.last_sequence} but the last intact event is {checked}: "
            "events at the end were removed or the head was altered",
        )
    return ChainReport(checked)
