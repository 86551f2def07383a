"""Sign-in throttling policy (also described in README.md, "Sign-in throttling").

1. Per client address, all accounts (Flask-Limiter, on the view): 20 attempts a minute, 100 an hour.
2. Per account and client address (Flask-Limiter, failures only): 5 failures in 15 minutes.
3. Per account, from any address it has never signed in from (database): 20 failures in an hour
   close the account to new addresses for the rest of that hour.

Rule 3 is what stops a distributed guessing attack well before NIST's 100-failure ceiling, and
its exemption is what stops a stranger locking a teacher out: addresses the account signed in
from successfully in the last 90 days are never closed by rule 3. Attempts on e-mail addresses
that have no account are counted the same way, so throttling reveals nothing about who exists.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from flask import current_app, request
from sqlalchemy import func, select

from portal.models import LoginAttempt, utcnow
from portal.models.base import DbSession

PER_ADDRESS_LIMIT = "20 per minute;100 per hour"
PER_ACCOUNT_ADDRESS_LIMIT = "5 per 15 minutes"
ACCOUNT_FAILURE_LIMIT = 20
ACCOUNT_FAILURE_WINDOW = timedelta(hours=1)
KNOWN_ADDRESS_MEMORY = timedelta(days=90)


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


def account_closed_to_address(session: DbSession, key: str, client_address: str) -> bool:
    """Rule 3: too many recent failures on this account, and this address is not a known one."""
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
        return False
    failures = session.scalar(
        select(func.count(LoginAttempt.id)).where(
            LoginAttempt.account_key == key,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.attempted_at >= now - ACCOUNT_FAILURE_WINDOW,
        )
    )
    return (failures or 0) >= ACCOUNT_FAILURE_LIMIT
