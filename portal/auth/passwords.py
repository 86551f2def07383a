"""Password rules (NIST SP 800-63B: length, blocklist, no composition rules) and argon2id hashing."""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
# Long enough for any passphrase or manager, short enough that hashing cannot be used for DoS.
MAX_LENGTH = 128
TOO_LONG_MESSAGE = f"Password must be {MAX_LENGTH} characters or fewer"
_CONTEXT_WORDS = ("handover",)
# Fewer estimated guesses than this means a guessing tool finds it early: keyboard walks
# ("qwertyuiopasdf"), repeats ("passwordpassword"), sequences and dictionary phrases that the
# leaked-password list alone misses. A million is zxcvbn's boundary between scores 1 and 2.
MIN_GUESSES_LOG10 = 6.0


class PasswordRejected(ValueError):
    """A new password breaks a rule; the message says which, in words a user understands."""


def normalise(password: str) -> str:
    """NFKC, so the same passphrase typed on different keyboards hashes the same (63B §5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def check_new_password(password: str, *, email: str) -> None:
    """Raise :class:`PasswordRejected` unless ``password`` may be chosen by the user ``email``."""
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(TOO_LONG_MESSAGE)
    password = normalise(password)
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"Password must be at least {MIN_LENGTH} characters long")
    folded = password.casefold()
    if _is_common(folded):
        raise PasswordRejected("Password is too common: choose one that other people are unlikely to use")
    if len(set(folded)) <= 2:
        raise PasswordRejected("Password must not be the same character or two repeated")
    local_part = email.split("@", 1)[0].casefold()
    if (len(local_part) >= 4 and local_part in folded) or any(word in folded for word in _CONTEXT_WORDS):
        raise PasswordRejected("Password must not contain your e-mail address or the name of this service")
    if _estimated_guesses_log10(password, local_part) < MIN_GUESSES_LOG10:
        raise PasswordRejected(
            "Password is too easy to guess: avoid keyboard patterns, sequences and repeated words"
        )


def _is_common(folded: str) -> bool:
    common = _common_passwords()
    stripped = re.sub(r"[\d\W_]+$", "", folded)  # "password2024!" is still "password"
    return folded in common or stripped in common or folded.replace(" ", "") in common


def _estimated_guesses_log10(password: str, local_part: str) -> float:
    """zxcvbn's estimate of how many guesses an attacker needs (log10); runs last, as it is the slowest check."""
    from zxcvbn import zxcvbn

    # The raw length is at most MAX_LENGTH; NFKC can expand it, and the first MAX_LENGTH characters suffice.
    result = zxcvbn(password[:MAX_LENGTH], user_inputs=[local_part, *_CONTEXT_WORDS], max_length=MAX_LENGTH)
    return float(result["guesses_log10"])


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from leaked corpora; we check against all of them.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])


class PasswordHashing:
    """argon2id hashing with the configured cost; rehash when the cost changes."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int, max_concurrent: int = 2) -> None:
        self._hasher = PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism)
        # Each hash holds ``memory_kib`` for its duration: a burst of sign-ins on a threaded worker
        # would otherwise multiply that by the thread count (1.1 GB per worker was measured). Extra
        # sign-ins wait their turn instead.
        self._slots = threading.BoundedSemaphore(max_concurrent)
        # Hashing a fixed string for unknown accounts keeps sign-in timing the same for every e-mail.
        self._dummy_hash = self._hasher.hash("not a real password: equalises timing")

    def hash(self, password: str) -> str:
        """An argon2id hash of the (normalised) password."""
        with self._slots:
            return self._hasher.hash(normalise(password))

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; always does the full work, even with no stored hash."""
        if len(password) > MAX_LENGTH:
            return False
        try:
            with self._slots:
                matched = self._hasher.verify(stored_hash or self._dummy_hash, normalise(password))
        except (VerificationError, InvalidHashError):
            return False
        return matched and bool(stored_hash)

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(stored_hash)
