"""Sending e-mail: to an SMTP server, or by default into an outbox folder for a laptop.

``PORTAL_SMTP_URL`` forms: ``outbox:///path/to/dir``, ``smtp://host:port`` (STARTTLS if offered
is not assumed), ``smtp+starttls://user:pass@host:587``, ``smtps://user:pass@host:465``.
E-mails never carry a child's details or a document: callers pass only what may be seen.
"""

from __future__ import annotations

import logging
import os
import secrets
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)
SMTP_TIMEOUT_SECONDS = 10


class MailNotSent(Exception):
    """The message could not be handed to the mail server."""


def build_message(*, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="handover.invalid")
    message.set_content(body)
    return message


def send(smtp_url: str, message: EmailMessage) -> None:
    """Deliver ``message`` as ``smtp_url`` says; raise :class:`MailNotSent` on failure."""
    parts = urlsplit(smtp_url)
    if parts.scheme == "outbox":
        _write_to_outbox(Path(unquote(parts.path)), message)
        return
    host = parts.hostname or "127.0.0.1"
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=SMTP_TIMEOUT_SECONDS, context=ssl.create_default_context()
            )
        elif parts.scheme in ("smtp", "smtp+starttls"):
            client = smtplib.SMTP(host, parts.port or 25, timeout=SMTP_TIMEOUT_SECONDS)
        else:
            raise MailNotSent(f"unsupported mail URL scheme {parts.scheme!r}")
        with client:
            if parts.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # The server's name is fine to log; the URL's password is not.
        raise MailNotSent(f"mail server {host} refused or was unreachable: {type(exc).__name__}") from exc


def _write_to_outbox(folder: Path, message: EmailMessage) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The time keeps names in sending order; the random part stops two messages sent in the same
    # clock tick (coarse clocks, frozen test clocks) from overwriting each other, and O_EXCL makes
    # sure of it. Owner-only: an invitation e-mail holds a live sign-up link.
    path = folder / f"{time.time_ns():020d}-{secrets.token_hex(4)}.eml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(bytes(message))
    log.info("mail written to outbox %s (subject %r)", path, message["Subject"])
