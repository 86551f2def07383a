"""Single-use recovery codes, for when the authenticator is lost. Stored as argon2 hashes."""

from __future__ import annotations

import secrets

from sqlalchemy import delete, select, update

from portal.auth.passwords import PasswordHashing
from portal.models import RecoveryCode, User, utcnow
from portal.models.base import DbSession

CODE_COUNT = 10
# Crockford-style alphabet without look-alikes (0/O, 1/I/L): 16 characters × 5 bits = 80 bits.
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_GROUPS = 4
_GROUP_LENGTH = 4


def generate_codes(session: DbSession, hashing: PasswordHashing, user: User) -> list[str]:
    """Replace the user's recovery codes with fresh ones; the plain codes are returned once, to show."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [
        "-".join("".join(secrets.choice(_ALPHABET) for _ in range(_GROUP_LENGTH)) for _ in range(_GROUPS))
        for _ in range(CODE_COUNT)
    ]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=hashing.hash(code)) for code in codes)
    return codes


def looks_like_recovery_code(text: str) -> bool:
    """True for input shaped like a recovery code rather than a 6-digit TOTP code."""
    compact = _compact(text)
    return len(compact) == _GROUPS * _GROUP_LENGTH and all(c in _ALPHABET for c in compact)


def use_code(session: DbSession, hashing: PasswordHashing, user: User, text: str) -> bool:
    """Spend a matching unused code; True if one matched. Each code works once."""
    compact = _compact(text)
    if len(compact) != _GROUPS * _GROUP_LENGTH:
        return False
    typed = "-".join(compact[i : i + _GROUP_LENGTH] for i in range(0, len(compact), _GROUP_LENGTH))
    unused = session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).all()
    for stored in unused:
        if hashing.verify(stored.code_hash, typed):
            # A conditional update, so two requests racing with the same code cannot both win.
            spent = session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.id == stored.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
            )
            return bool(getattr(spent, "rowcount", 0) == 1)
    return False


def remaining_codes(session: DbSession, user: User) -> int:
    """How many unused recovery codes the user has left."""
    return len(
        session.scalars(
            select(RecoveryCode.id).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        ).all()
    )


def _compact(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())
