"""The audit trail: one function, :func:`record`, that every part of the portal calls.

Events are queued on the database session and written to the hash chain when that session
commits, so an event exists exactly when the change it describes was committed, and the
chain's lock is held only for the moment of the commit. To record something that must stand
even if the surrounding work fails (a refused access, a failed sign-in), commit right after.

Never pass passwords, codes, tokens, secrets or anything about a child in ``details``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from portal.audit.chain import PendingEvent, append_events
from portal.models import utcnow
from portal.models.base import DbSession

log = logging.getLogger("portal.audit")

_PENDING_KEY = "portal.audit.pending"
_WRITTEN_KEY = "portal.audit.written"
_ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_.]{1,59}$")
OUTCOMES = ("success", "failure", "denied", "throttled", "error")
_MAX_DETAIL_LENGTH = 200


class Outcome:
    """The outcomes an event may have."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    THROTTLED = "throttled"
    ERROR = "error"


def record(
    session: DbSession,
    action: str,
    *,
    outcome: str = Outcome.SUCCESS,
    object_type: str | None = None,
    object_id: int | str | None = None,
    actor_user_id: int | None = None,
    actor_organisation_id: int | None = None,
    details: dict[str, str | int | bool | None] | None = None,
) -> None:
    """Queue an audit event on ``session``; it is written when the session commits.

    Actor, client address and request id default to the current request's.
    """
    if not _ACTION_PATTERN.match(action):
        raise ValueError(f"audit action {action!r} is not a dotted lower-case name")
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome {outcome!r} is not one of {OUTCOMES}")
    client_address = request_id = None
    if has_request_context():
        client_address = (request.remote_addr or "")[:45] or None
        request_id = g.get("request_id")
        if actor_user_id is None and current_user and current_user.is_authenticated:
            actor_user_id = current_user.id
            actor_organisation_id = current_user.organisation_id
    pending = PendingEvent(
        occurred_at=utcnow(),
        action=action,
        outcome=outcome,
        actor_user_id=actor_user_id,
        actor_organisation_id=actor_organisation_id,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        client_address=client_address,
        request_id=request_id,
        details=_canonical_details(details or {}),
    )
    target = session() if isinstance(session, scoped_session) else session
    if not target.in_transaction():
        # Begin now (no connection is taken yet), so that a rollback before any query still
        # counts as one and discards the event instead of leaving it for the next commit.
        target.begin()
    # Remember the savepoint (if any) the event belongs to: rolling that savepoint back drops it.
    target.info.setdefault(_PENDING_KEY, []).append((pending, target.get_nested_transaction()))


def _canonical_details(details: dict[str, str | int | bool | None]) -> str:
    cleaned: dict[str, str | int | bool | None] = {}
    for key, value in details.items():
        if isinstance(value, str):
            # JSON encoding escapes control characters; the cap keeps rows small and bounded.
            value = value[:_MAX_DETAIL_LENGTH]
        elif value is not None and not isinstance(value, (int, bool)):
            raise TypeError(f"audit detail {key!r} must be a string, number, boolean or None")
        cleaned[key] = value
    return json.dumps(cleaned, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def install(session_class: type[Session] | Any) -> None:
    """Hook the chain writer into commits of ``session_class`` (done once by the app factory)."""
    if event.contains(session_class, "before_commit", _write_pending):
        return
    event.listen(session_class, "before_commit", _write_pending)
    event.listen(session_class, "after_commit", _forward_written)
    # A commit that failed in the database: its events were never written, so never log them.
    event.listen(session_class, "after_rollback", _discard_written)
    # Every rollback() call, whether or not the database was touched yet, and savepoints too:
    # only the events of the work that was rolled back are dropped.
    event.listen(session_class, "after_soft_rollback", _discard_rolled_back)


def _write_pending(session: DbSession) -> None:
    pending = [event for event, _savepoint in session.info.pop(_PENDING_KEY, [])]
    if pending:
        session.info[_WRITTEN_KEY] = append_events(session, pending)


def _forward_written(session: DbSession) -> None:
    # A second copy in the application log lets operators ship events to a separate system.
    for row in session.info.pop(_WRITTEN_KEY, []):
        log.info("audit %s", json.dumps({**row, "occurred_at": row["occurred_at"].isoformat()}, default=str))


def _discard_written(session: DbSession) -> None:
    session.info.pop(_WRITTEN_KEY, None)


def _discard_rolled_back(session: DbSession, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_PENDING_KEY, None)
        session.info.pop(_WRITTEN_KEY, None)
        return
    # A savepoint rolled back: only the events recorded inside it (or inside savepoints within it) go.
    kept = []
    for pending, savepoint in session.info.get(_PENDING_KEY, []):
        inside = savepoint
        while inside is not None and inside is not previous_transaction:
            inside = inside.parent
        if inside is None:
            kept.append((pending, savepoint))
    session.info[_PENDING_KEY] = kept
