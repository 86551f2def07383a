"""Sending e-mail: to an SMTP server, or by default into an outbox folder for a laptop.

``PORTAL_SMTP_URL`` forms: ``outbox:///path/to/dir``, ``smtp://host:port`` (STARTTLS if offered
is not assumed), ``smtp+starttls://user:pass@host:587``, ``smtps://user:pass@host:465``.
E-mails never carry a child's details or a document: callers pass only what may be seen.
"""

from __future__ import annotations

import logging
import os
import re
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


# Refusals that concern one message (its recipient or content), not the server as a whole.
_MESSAGE_REFUSALS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPNotSupportedError)
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")


class MailNotSent(Exception):
    """The message could not be handed to the mail server.

    ``server_unreachable`` is true when no message would get through now (the server is down,
    hangs, refuses us or is misconfigured), so a caller need not try the rest of its queue.
    """

    def __init__(self, message: str, *, server_unreachable: bool = True) -> None:
        super().__init__(message)
        self.server_unreachable = server_unreachable


def _one_line(value: str) -> str:
    # Header values come partly from data (school names): a line break in one would otherwise
    # either add a header (Bcc: ...) or make the message impossible to build, blocking the queue.
    return _LINE_BREAKS.sub(" ", value).strip()


def build_message(*, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message (header values are made single-line)."""
    message = EmailMessage()
    message["From"] = _one_line(sender)
    message["To"] = _one_line(to)
    message["Subject"] = _one_line(subject)
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
    if parts.scheme not in ("smtps", "smtp", "smtp+starttls"):
        raise MailNotSent(f"unsupported mail URL scheme {parts.scheme!r}")
    try:
        port = parts.port
    except ValueError:
        raise MailNotSent(f"the mail URL for {host} has a malformed port") from None
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port or 465, timeout=SMTP_TIMEOUT_SECONDS, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(host, port or 25, timeout=SMTP_TIMEOUT_SECONDS)
        with client:
            if parts.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # The server's name is fine to log; the URL's password is not.
        raise MailNotSent(
            f"mail server {host} refused or was unreachable: {type(exc).__name__}",
            server_unreachable=not isinstance(exc, _MESSAGE_REFUSALS),
        ) from exc


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
