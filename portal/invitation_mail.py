"""The invitation e-mail: who invited you and the link. Nothing else."""

from __future__ import annotations

import logging

from flask import current_app, has_request_context, url_for

from portal import mail, services
from portal.models import User

log = logging.getLogger(__name__)


def invitation_link(token: str) -> str:
    """The public address of an invitation."""
    if not has_request_context():  # the CLI prints links too
        with current_app.test_request_context():
            return invitation_link(token)
    return services.settings().public_base_url + url_for("auth.accept_invitation", token=token)


def send_invitation(user: User, token: str) -> bool:
    """E-mail the invitation; False (and logged, without the link) if the mail server refused it."""
    settings = services.settings()
    body = (
        f"Hello {user.display_name},\n\n"
        f"{user.organisation.name} has invited you to Handover, the secure service for moving "
        "pupils' records between schools.\n\n"
        f"Set up your account within {settings.invitation_valid_hours} hours:\n{invitation_link(token)}\n\n"
        "You will need an authenticator app on your phone (for example Microsoft Authenticator "
        "or Google Authenticator).\n\nIf you were not expecting this, you can ignore this email.\n"
    )
    message = mail.build_message(
        sender=settings.mail_from, to=user.email, subject="Your invitation to Handover", body=body
    )
    try:
        mail.send(settings.smtp_url, message)
    except mail.MailNotSent as problem:
        log.warning("invitation e-mail for user %s not sent: %s", user.id, problem)
        return False
    return True
