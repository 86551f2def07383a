"""The e-mail queue: notifications are committed with the change that causes them, then sent.

A mail server that is down never blocks or undoes a transfer: the message stays queued, is retried
with growing delays by ``flask --app portal send-notifications`` (and straight after the request
that queued it), and a failure is shown to the sender. No message carries a child's details.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select

from portal import mail
from portal.models import Notification, NotificationStatus, User, utcnow
from portal.models.base import DbSession

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
# 1, 2, 4 … 64 minutes between attempts: about two hours of retries before giving up.
_FIRST_RETRY = timedelta(minutes=1)


def queue(
    session: DbSession, *, kind: str, to: User, subject: str, body: str, transfer_id: int | None = None
) -> Notification:
    """Queue a message to ``to``; it is sent after the caller commits."""
    notification = Notification(
        kind=kind,
        transfer_id=transfer_id,
        recipient_user_id=to.id,
        to_address=to.email,
        subject=subject,
        body=body,
    )
    session.add(notification)
    return notification


def queue_each(
    session: DbSession,
    users: Iterable[User],
    *,
    kind: str,
    subject: str,
    body: str,
    transfer_id: int | None = None,
) -> int:
    """Queue the same message to each of ``users``; returns how many were queued."""
    count = 0
    for user in users:
        queue(session, kind=kind, to=user, subject=subject, body=body, transfer_id=transfer_id)
        count += 1
    return count


def send_due(session: DbSession, *, smtp_url: str, sender: str, limit: int = 100) -> tuple[int, int]:
    """Try every queued message that is due; returns (sent, failed this round).

    Once the server is found unreachable the rest of the round is not tried against it (each try
    could wait for the full timeout, inside a user's request); those messages count an attempt
    and wait for their next turn like the first. A message that cannot even be built is marked
    failed on its own and never blocks the queue.
    """
    now = utcnow()
    due = session.scalars(
        select(Notification)
        .where(Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at <= now)
        .order_by(Notification.id)
        .limit(limit)
    ).all()
    sent = failed = 0
    server_down: str | None = None
    for notification in due:
        notification.attempts += 1
        if server_down is not None:
            _record_failure(notification, server_down, now)
            failed += 1
            session.commit()
            continue
        try:
            message = mail.build_message(
                sender=sender,
                to=notification.to_address,
                subject=notification.subject,
                body=notification.body,
            )
            mail.send(smtp_url, message)
        except mail.MailNotSent as problem:
            failed += 1
            _record_failure(notification, str(problem), now)
            if problem.server_unreachable:
                server_down = str(problem)
        except Exception as problem:
            # A bug or bad data in one message must not stop every later one from going.
            log.exception("notification %s could not be built or sent", notification.id)
            failed += 1
            _record_failure(notification, f"the message could not be sent: {type(problem).__name__}", now)
        else:
            sent += 1
            notification.status = NotificationStatus.SENT
            notification.sent_at = utcnow()
            notification.last_error = ""
        session.commit()
    return sent, failed


def _record_failure(notification: Notification, error: str, now: datetime) -> None:
    notification.last_error = error[:300]
    if notification.attempts >= MAX_ATTEMPTS:
        notification.status = NotificationStatus.FAILED
    else:
        notification.next_attempt_at = now + _FIRST_RETRY * 2 ** (notification.attempts - 1)
    log.warning("notification %s not sent (attempt %s)", notification.id, notification.attempts)
