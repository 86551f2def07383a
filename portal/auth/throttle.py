"""Sign-in throttling policy (also described in README.md, "Sign-in throttling").

1. Per client address, all accounts (Flask-Limiter, on the view): 20 attempts a minute, 100 an hour.
2. Per account and client address (Flask-Limiter, failures only): 5 failures in 15 minutes.
3. Per account, from any address it has never signed in from (database): 20 failures in an hour
   close the account to new addresses for the rest of that hour.
4. Per account, from any address it has never signed in from (database): 100 failures since its
   last successful sign-in (or since its password was last set) close the account to new
   addresses until it next signs in from a known address or an administrator resets it.

Rule 3 is what stops a distributed guessing attack within the hour; rule 4 is NIST SP 800-63B's
ceiling of 100 consecutive failures, which rule 3 alone does not keep against an attacker patient
enough to stay under 20 an hour. Their exemption is what stops a stranger locking a teacher out:
addresses the account signed in from successfully in the last 90 days are never closed by rules 3
or 4. Attempts on e-mail addresses that have no account are counted the same way, so throttling
reveals nothing about who exists.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from flask import current_app, request
from sqlalchemy import func, select

from portal.models import LoginAttempt, utcnow
from portal.models.base import DbSession

PER_ADDRESS_LIMIT = "20 per minute;100 per hour"
PER_ACCOUNT_ADDRESS_LIMIT = "5 per 15 minutes"
ACCOUNT_FAILURE_LIMIT = 20
ACCOUNT_FAILURE_WINDOW = timedelta(hours=1)
KNOWN_ADDRESS_MEMORY = timedelta(days=90)
CONSECUTIVE_FAILURE_LIMIT = 100


def normalise_email(email: str) -> str:
    """The form in which e-mail addresses are stored and compared."""
    return email.strip().lower()


def account_key(secret_key: str, email: str) -> str:
    """A keyed hash of the typed e-mail: countable, but not readable, in ``login_attempts``."""
    return hmac.new(secret_key.encode(), normalise_email(email).encode(), hashlib.sha256).hexdigest()


def account_and_address_key() -> str:
    """Flask-Limiter key for rule 2 (called inside the sign-in request)."""
    email = request.form.get("email", "")
    return f"signin:{account_key(current_app.config['SECRET_KEY'], email)}:{request.remote_addr}"


def account_closed_to_address(
    session: DbSession, key: str, client_address: str, *, password_set_at: datetime | None = None
) -> str | None:
    """Rules 3 and 4: which one closes this account to this (unknown) address, or None if open.

    ``password_set_at`` is when the account's password was last set: failures before it (say,
    before an administrator's reset) no longer count towards rule 4.
    """
    now = utcnow()
    known = session.scalar(
        select(func.count(LoginAttempt.id)).where(
            LoginAttempt.account_key == key,
            LoginAttempt.client_address == client_address,
            LoginAttempt.succeeded.is_(True),
            LoginAttempt.attempted_at >= now - KNOWN_ADDRESS_MEMORY,
        )
    )
    if known:
        return None
    failures = session.scalar(
        select(func.count(LoginAttempt.id)).where(
            LoginAttempt.account_key == key,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.attempted_at >= now - ACCOUNT_FAILURE_WINDOW,
        )
    )
    if (failures or 0) >= ACCOUNT_FAILURE_LIMIT:
        return "account"
    last_success = session.scalar(
        select(func.max(LoginAttempt.attempted_at)).where(
            LoginAttempt.account_key == key, LoginAttempt.succeeded.is_(True)
        )
    )
    since = max((moment for moment in (last_success, password_set_at) if moment is not None), default=None)
    consecutive = select(func.count(LoginAttempt.id)).where(
        LoginAttempt.account_key == key, LoginAttempt.succeeded.is_(False)
    )
    if since is not None:
        consecutive = consecutive.where(LoginAttempt.attempted_at > since)
    if (session.scalar(consecutive) or 0) >= CONSECUTIVE_FAILURE_LIMIT:
        return "account_consecutive"
    return None
