"""The e-mail queue: notifications are committed with the change that causes them, then sent.

A mail server that is down never blocks or undoes a transfer: the message stays queued, is retried
with growing delays by ``flask --app portal send-notifications`` (and straight after the request
that queued it), and a failure is shown to the sender. No message carries a child's details.
"""

from __future__ import annotations

import logging
from datetime import timedelta

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


def send_due(session: DbSession, *, smtp_url: str, sender: str, limit: int = 100) -> tuple[int, int]:
    """Try every queued message that is due; returns (sent, failed this round)."""
    now = utcnow()
    due = session.scalars(
        select(Notification)
        .where(Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at <= now)
        .order_by(Notification.id)
        .limit(limit)
    ).all()
    sent = failed = 0
    for notification in due:
        message = mail.build_message(
            sender=sender, to=notification.to_address, subject=notification.subject, body=notification.body
        )
        notification.attempts += 1
        try:
            mail.send(smtp_url, message)
        except mail.MailNotSent as problem:
            failed += 1
            notification.last_error = str(problem)[:300]
            if notification.attempts >= MAX_ATTEMPTS:
                notification.status = NotificationStatus.FAILED
            else:
                notification.next_attempt_at = now + _FIRST_RETRY * 2 ** (notification.attempts - 1)
            log.warning("notification %s not sent (attempt %s)", notification.id, notification.attempts)
        else:
            sent += 1
            notification.status = NotificationStatus.SENT
            notification.sent_at = utcnow()
            notification.last_error = ""
        session.commit()
    return sent, failed
