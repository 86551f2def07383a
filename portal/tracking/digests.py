"""The daily digest: each caseworker hears what became overdue, and what is due within two school days.

Safe to run from cron as often as you like: a ``digest_deliveries`` row per caseworker per day
(unique) means a second run the same day sends nothing. The e-mail lists transfer references,
schools and dates, never anything about the child. No Flask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from portal import audit, notifications
from portal.models import DigestDelivery, Organisation, Role, Transfer, TransferDeadline, User
from portal.models.base import DbSession
from portal.tracking import deadlines
from portal.tracking.calendar import SchoolDays, school_days_for

DUE_SOON_SCHOOL_DAYS = 2
MAX_LISTED = 50


@dataclass(frozen=True)
class DigestLine:
    """One transfer named in a digest."""

    reference: str
    from_school: str
    to_school: str
    due_on: date


@dataclass(frozen=True)
class DigestContent:
    """What one authority's caseworkers are told today."""

    newly_overdue: list[DigestLine]
    overdue_total: int
    due_soon: list[DigestLine]

    @property
    def empty(self) -> bool:
        """Nothing new to say."""
        return not self.newly_overdue and not self.due_soon


@dataclass
class DigestReport:
    """What a run did."""

    queued: int = 0
    already_sent: int = 0
    nothing_to_report: int = 0


def content_for(session: DbSession, authority_id: int, today: date, since: date | None) -> DigestContent:
    """Transfers that became overdue since ``since`` (all overdue ones if None) and those due soon."""
    deadlines.refresh(session, authority_id=authority_id)
    sending, receiving = aliased(Organisation), aliased(Organisation)
    base = (
        select(
            Transfer.reference,
            sending.name,
            receiving.name,
            TransferDeadline.due_on,
            TransferDeadline.calendar_authority_id,
        )
        .join(TransferDeadline, TransferDeadline.transfer_id == Transfer.id)
        .join(sending, sending.id == Transfer.sending_organisation_id)
        .join(receiving, receiving.id == Transfer.receiving_organisation_id)
        .where(
            TransferDeadline.responsible_authority_id == authority_id,
            Transfer.responsible_authority_id == authority_id,
            Transfer.status.in_(deadlines.RUNNING),
        )
        .order_by(TransferDeadline.due_on, Transfer.id)
    )
    overdue = base.where(TransferDeadline.due_on < today)
    newly = overdue.where(TransferDeadline.due_on >= since) if since is not None else overdue
    total = session.scalar(select(func.count()).select_from(overdue.order_by(None).subquery())) or 0
    newly_lines = [DigestLine(r[0], r[1], r[2], r[3]) for r in session.execute(newly.limit(MAX_LISTED))]
    # Two school days can span a long weekend or a half-term: look three weeks ahead, then count.
    calendars: dict[int | None, SchoolDays] = {}
    soon = []
    for row in session.execute(
        base.where(TransferDeadline.due_on.between(today, today + timedelta(days=21)))
    ):
        owner = row[4]
        if owner not in calendars:
            calendars[owner] = school_days_for(session, owner)
        if calendars[owner].school_days_between(today, row[3]) <= DUE_SOON_SCHOOL_DAYS:
            soon.append(DigestLine(row[0], row[1], row[2], row[3]))
    return DigestContent(newly_lines, int(total), soon[:MAX_LISTED])


def _body(content: DigestContent, public_base_url: str) -> str:
    def lines(items: list[DigestLine]) -> str:
        return "\n".join(
            f"  {i.reference}  {i.from_school} to {i.to_school}, due {i.due_on.strftime('%-d %B %Y')}"
            for i in items
        )

    parts = [f"Transfers overdue in all: {content.overdue_total}."]
    if content.newly_overdue:
        parts.append(
            f"Became overdue since your last digest ({len(content.newly_overdue)}):\n{lines(content.newly_overdue)}"
        )
    if content.due_soon:
        parts.append(
            f"Due within {DUE_SOON_SCHOOL_DAYS} school days ({len(content.due_soon)}):\n{lines(content.due_soon)}"
        )
    parts.append(f"Open your dashboard: {public_base_url}/tracking/dashboard")
    parts.append("For your security, this e-mail does not say who the records are about.")
    return "\n\n".join(parts) + "\n"


def send_digests(session: DbSession, *, today: date, public_base_url: str) -> DigestReport:
    """Queue today's digest for every active caseworker who has not had it; commits per caseworker."""
    report = DigestReport()
    caseworkers = session.scalars(
        select(User)
        .where(User.role == Role.CASEWORKER, User.is_active.is_(True))
        .order_by(User.organisation_id, User.id)
    ).all()
    contents: dict[tuple[int, date | None], DigestContent] = {}
    for user in caseworkers:
        if session.scalar(
            select(DigestDelivery.id).where(
                DigestDelivery.user_id == user.id, DigestDelivery.digest_on == today
            )
        ):
            report.already_sent += 1
            continue
        since = session.scalar(
            select(func.max(DigestDelivery.digest_on)).where(
                DigestDelivery.user_id == user.id, DigestDelivery.digest_on < today
            )
        )
        key = (user.organisation_id, since)
        if key not in contents:
            contents[key] = content_for(session, user.organisation_id, today, since)
        content = contents[key]
        session.add(
            DigestDelivery(
                user_id=user.id,
                digest_on=today,
                overdue=content.overdue_total,
                due_soon=len(content.due_soon),
            )
        )
        if content.empty:
            report.nothing_to_report += 1
        else:
            notifications.queue(
                session,
                kind="tracking_digest",
                to=user,
                subject=f"Handover: {len(content.newly_overdue)} newly overdue, {len(content.due_soon)} due soon",
                body=_body(content, public_base_url),
            )
            audit.record(
                session,
                "tracking.digest",
                object_type="user",
                object_id=user.id,
                actor_user_id=None,
                details={"newly_overdue": len(content.newly_overdue), "due_soon": len(content.due_soon)},
            )
            report.queued += 1
        try:
            session.commit()
        except IntegrityError:
            # Another run got there first: its digest stands.
            session.rollback()
            report.already_sent += 1
    return report
