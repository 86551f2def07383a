"""Searching the audit trail for the audit viewer: scoped, filtered, paged newest first by sequence.

Scope is decided here, once, for every search and export:
* auditors and organisation admins see the events their own organisation's people caused;
* an authority's auditors also see every event about a transfer (or a document of one) whose
  responsible authority is theirs, whoever caused it: that is how they learn who opened a
  child's records.
Filters narrow the scope, never widen it. Pages are keyset pages (``sequence < before``), which
stay as fast on page 1,000 as on page 1. No Flask here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, String, and_, cast, func, or_, select

from portal.audit import OUTCOMES
from portal.audit.chain import ChainReport, verify_chain
from portal.models import AuditEvent, Document, Organisation, OrganisationKind, Role, Transfer, User
from portal.models.base import DbSession

PAGE_SIZE = 50
EXPORT_LIMIT = 100_000
ACTION_FILTER = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.?$")
OBJECT_TYPES = ("transfer", "document", "user", "organisation", "download_link")
EXPORT_HEADER = (
    "sequence",
    "occurred_at",
    "action",
    "outcome",
    "actor_user_id",
    "actor_name",
    "actor_organisation_id",
    "actor_organisation",
    "object_type",
    "object_id",
    "client_address",
    "request_id",
    "details",
)


class BadFilter(ValueError):
    """A filter value that cannot be used; the message is safe to show."""


@dataclass(frozen=True)
class Scope:
    """Whose events a viewer may see."""

    organisation_id: int
    # An authority's auditors also see the events about transfers of the authority's children.
    children_of_authority: bool = False


def scope_for(user: User) -> Scope | None:
    """The viewer's scope, or None for roles that may not use the audit viewer."""
    if user.role not in (Role.AUDITOR, Role.ORG_ADMIN):
        return None
    authority_auditor = (
        user.role is Role.AUDITOR and user.organisation.kind is OrganisationKind.LOCAL_AUTHORITY
    )
    return Scope(user.organisation_id, children_of_authority=authority_auditor)


@dataclass(frozen=True)
class Filters:
    """What the viewer asked for; ``None`` means "any"."""

    since: datetime | None = None
    until: datetime | None = None
    actor_user_id: int | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    outcome: str | None = None

    def __post_init__(self) -> None:
        if self.action is not None and not ACTION_FILTER.match(self.action):
            raise BadFilter("Enter an action like transfer.open, or the start of one like transfer.")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise BadFilter("Choose an outcome from the list")
        if self.object_type is not None and self.object_type not in OBJECT_TYPES:
            raise BadFilter("Choose an object type from the list")
        if self.since and self.until and self.until < self.since:
            raise BadFilter("The end of the time range must be after its start")


@dataclass(frozen=True)
class EventView:
    """One event with names resolved for reading."""

    sequence: int
    occurred_at: datetime
    action: str
    outcome: str
    actor_user_id: int | None
    actor_name: str
    actor_organisation_id: int | None
    actor_organisation: str
    object_type: str | None
    object_id: str | None
    client_address: str | None
    request_id: str | None
    details: str

    def export_row(self) -> list[str | int | datetime | None]:
        """The values in :data:`EXPORT_HEADER` order."""
        return [getattr(self, name) for name in EXPORT_HEADER]


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    own = AuditEvent.actor_organisation_id == scope.organisation_id
    if not scope.children_of_authority:
        return own
    transfers = select(cast(Transfer.id, String)).where(
        Transfer.responsible_authority_id == scope.organisation_id
    )
    documents = (
        select(cast(Document.id, String))
        .join(Transfer, Transfer.id == Document.transfer_id)
        .where(Transfer.responsible_authority_id == scope.organisation_id)
    )
    return or_(
        own,
        and_(AuditEvent.object_type == "transfer", AuditEvent.object_id.in_(transfers)),
        and_(AuditEvent.object_type.in_(("document", "download_link")), AuditEvent.object_id.in_(documents)),
    )


def _conditions(scope: Scope, filters: Filters) -> list[ColumnElement[bool]]:
    conditions = [_in_scope(scope)]
    if filters.since is not None:
        conditions.append(AuditEvent.occurred_at >= filters.since)
    if filters.until is not None:
        conditions.append(AuditEvent.occurred_at < filters.until)
    if filters.actor_user_id is not None:
        conditions.append(AuditEvent.actor_user_id == filters.actor_user_id)
    if filters.action:
        if filters.action.endswith("."):
            conditions.append(AuditEvent.action.startswith(filters.action, autoescape=True))
        else:
            conditions.append(AuditEvent.action == filters.action)
    if filters.object_type:
        conditions.append(AuditEvent.object_type == filters.object_type)
    if filters.object_id:
        conditions.append(AuditEvent.object_id == filters.object_id)
    if filters.outcome:
        conditions.append(AuditEvent.outcome == filters.outcome)
    return conditions


def search(
    session: DbSession, scope: Scope, filters: Filters, *, before: int | None = None, limit: int = PAGE_SIZE
) -> list[EventView]:
    """Up to ``limit`` events newest first, older than sequence ``before`` when paging on."""
    conditions = _conditions(scope, filters)
    if before is not None:
        conditions.append(AuditEvent.sequence < before)
    events = session.scalars(
        select(AuditEvent).where(*conditions).order_by(AuditEvent.sequence.desc()).limit(limit)
    ).all()
    return _views(session, list(events))


def iter_events(
    session: DbSession, scope: Scope, filters: Filters, *, limit: int = EXPORT_LIMIT
) -> Iterator[EventView]:
    """Every matching event newest first, in keyset batches, up to ``limit`` (for exports)."""
    before: int | None = None
    remaining = limit
    while remaining > 0:
        batch = search(session, scope, filters, before=before, limit=min(1000, remaining))
        yield from batch
        if len(batch) < min(1000, remaining):
            return
        remaining -= len(batch)
        before = batch[-1].sequence


def _views(session: DbSession, events: list[AuditEvent]) -> list[EventView]:
    user_ids = {e.actor_user_id for e in events if e.actor_user_id is not None}
    org_ids = {e.actor_organisation_id for e in events if e.actor_organisation_id is not None}
    names = (
        dict(session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids))).all())
        if user_ids
        else {}
    )
    orgs = (
        dict(
            session.execute(
                select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids))
            ).all()
        )
        if org_ids
        else {}
    )
    return [
        EventView(
            sequence=e.sequence,
            occurred_at=e.occurred_at,
            action=e.action,
            outcome=e.outcome,
            actor_user_id=e.actor_user_id,
            actor_name=names.get(e.actor_user_id or 0, "" if e.actor_user_id is None else "(removed user)"),
            actor_organisation_id=e.actor_organisation_id,
            actor_organisation=orgs.get(e.actor_organisation_id or 0, ""),
            object_type=e.object_type,
            object_id=e.object_id,
            client_address=e.client_address,
            request_id=e.request_id,
            details=e.details,
        )
        for e in events
    ]


def resolve_actor(session: DbSession, text: str) -> int | None:
    """A user id from an e-mail address or a number; an unknown address matches nobody (-1).

    Unknown and known-but-out-of-scope look the same to the viewer: no results either way.
    """
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    found = session.scalar(select(User.id).where(func.lower(User.email) == text.lower()))
    return found if found is not None else -1


def resolve_object(session: DbSession, object_type: str | None, text: str) -> str | None:
    """An object id from a number, or from a transfer reference (HO-XXXX-XXXX)."""
    text = text.strip().upper()
    if not text:
        return None
    if text.isdigit():
        return text
    if object_type in (None, "transfer") and re.fullmatch(r"HO-[A-Z0-9]{4}-[A-Z0-9]{4}", text):
        found = session.scalar(select(Transfer.id).where(Transfer.reference == text))
        return str(found) if found is not None else "-1"
    raise BadFilter("Enter the object's number, or a transfer reference like HO-7K3M-Q2P9")


def verify(session: DbSession) -> ChainReport:
    """The same check as ``flask --app portal audit verify``."""
    return verify_chain(session)
