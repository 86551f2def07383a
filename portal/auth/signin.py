"""Signing in: e-mail, password and a second factor checked together, one generic failure.

All three are asked on one page so that no response tells a stranger the password was right.
The code is only checked (and so only used up) once the password is known to be right.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select, update

from portal.auth import recovery, totp
from portal.auth.passwords import PasswordHashing
from portal.auth.throttle import account_closed_to_address, account_key, normalise_email
from portal.crypto.keyring import LocalKeyring
from portal.models import LoginAttempt, User
from portal.models.base import DbSession


class SignInFailed(Exception):
    """The combination was wrong. ``reason`` is for the audit trail only, never for the user."""

    def __init__(self, reason: str, user: User | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user = user


class SignInThrottled(Exception):
    """Too many failures for this account from this address (throttle rule 3 or 4, named by ``rule``)."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


@dataclass(frozen=True)
class SignInResult:
    """A successful sign-in."""

    user: User
    used_recovery_code: bool
    remaining_recovery_codes: int | None


@dataclass(frozen=True)
class Credentials:
    """What was typed into the sign-in form."""

    email: str
    password: str
    code: str


def sign_in(
    session: DbSession,
    credentials: Credentials,
    *,
    client_address: str,
    secret_key: str,
    hashing: PasswordHashing,
    keyring: LocalKeyring,
) -> SignInResult:
    """Check credentials and record the attempt; raise :class:`SignInFailed` or :class:`SignInThrottled`."""
    key = account_key(secret_key, credentials.email)
    user = session.scalars(select(User).where(User.email == normalise_email(credentials.email))).first()
    closed_by = account_closed_to_address(
        session, key, client_address, password_set_at=user.password_changed_at if user else None
    )
    if closed_by:
        raise SignInThrottled(closed_by)
    try:
        result = _check(session, user, credentials, hashing, keyring)
    except SignInFailed:
        session.add(
            LoginAttempt(
                account_key=key,
                user_id=user.id if user else None,
                client_address=client_address,
                succeeded=False,
            )
        )
        raise
    session.add(
        LoginAttempt(account_key=key, user_id=result.user.id, client_address=client_address, succeeded=True)
    )
    return result


def _check(
    session: DbSession,
    user: User | None,
    credentials: Credentials,
    hashing: PasswordHashing,
    keyring: LocalKeyring,
) -> SignInResult:
    usable = user is not None and user.is_enrolled
    # Hash even when there is no usable account, so timing does not tell whether the e-mail exists.
    password_ok = hashing.verify(user.password_hash if usable and user else None, credentials.password)
    if user is None or not usable:
        raise SignInFailed("unknown_or_unenrolled_account", user)
    if not password_ok:
        raise SignInFailed("wrong_password", user)
    if not user.is_active or not user.organisation.is_active:
        raise SignInFailed("account_disabled", user)
    if recovery.looks_like_recovery_code(credentials.code):
        if not recovery.use_code(session, hashing, user, credentials.code):
            raise SignInFailed("wrong_recovery_code", user)
        return SignInResult(user, True, recovery.remaining_codes(session, user))
    try:
        timecode = totp.accept_code(
            totp.open_secret(keyring, user), credentials.code, last_timecode=user.totp_last_timecode
        )
    except totp.CodeRejected as rejected:
        raise SignInFailed("code_replayed" if rejected.replayed else "wrong_code", user) from None
    if not _advance_timecode(session, user, timecode):
        raise SignInFailed("code_replayed", user)
    if hashing.needs_rehash(user.password_hash or ""):
        user.password_hash = hashing.hash(credentials.password)
    return SignInResult(user, False, None)


def _advance_timecode(session: DbSession, user: User, timecode: int) -> bool:
    """Store the accepted step only if it is newer: two requests racing with one code cannot both win."""
    result = session.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_timecode.is_(None), User.totp_last_timecode < timecode))
        .values(totp_last_timecode=timecode)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    user.totp_last_timecode = timecode
    return True
