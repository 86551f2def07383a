"""Time-based one-time passwords (RFC 6238) with pyotp: enrolment material and single-use checking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from pyotp.exceptions import OTPVerificationError

from portal.crypto.keyring import LocalKeyring
from portal.models import User, utcnow

ISSUER = "Handover"
# 32 base32 characters = 160 bits, the size RFC 4226 recommends for HMAC-SHA1 seeds.
SECRET_LENGTH = 32
# One 30-second step either side absorbs clock drift without widening the window further.
VALID_WINDOW = 1


class CodeRejected(Exception):
    """The code is wrong, outside the window, or already used (``replayed``)."""

    def __init__(self, message: str, *, replayed: bool = False) -> None:
        super().__init__(message)
        self.replayed = replayed


@dataclass(frozen=True)
class Enrolment:
    """What a user needs to add the portal to an authenticator app."""

    secret: str
    provisioning_uri: str
    qr_svg: str

    @property
    def grouped_secret(self) -> str:
        """The key in groups of four, for typing into an app by hand."""
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))


def new_secret() -> str:
    """A fresh random TOTP seed (from ``secrets``, a CSPRNG)."""
    return pyotp.random_base32(length=SECRET_LENGTH)


def enrolment_for(secret: str, account_name: str) -> Enrolment:
    """The provisioning URI and an SVG QR code, drawn on the server."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=ISSUER)
    qr = segno.make(uri, error="m")
    svg = qr.svg_inline(scale=5, dark="#0b0c0c", light="#ffffff", title="QR code for your authenticator app")
    return Enrolment(secret=secret, provisioning_uri=uri, qr_svg=svg)


def secret_context(user_id: int) -> bytes:
    """Binds a sealed seed to its user, so a seed copied onto another row will not open."""
    return f"handover/totp-secret/user:{user_id}".encode()


def seal_secret(keyring: LocalKeyring, user_id: int, secret: str) -> bytes:
    """Encrypt a seed for storage."""
    return keyring.seal(secret.encode("ascii"), context=secret_context(user_id))


def open_secret(keyring: LocalKeyring, user: User) -> str:
    """Decrypt a user's stored seed."""
    if user.totp_secret_sealed is None:
        raise CodeRejected("no authenticator is enrolled")
    return keyring.open(user.totp_secret_sealed, context=secret_context(user.id)).decode("ascii")


def accept_code(secret: str, code: str, *, last_timecode: int | None, now: datetime | None = None) -> int:
    """Check ``code``; return its time step, which the caller stores as the new ``last_timecode``.

    A code whose step is at or before the last accepted one is refused: this stops replays of
    the same code and of older codes still inside the window.
    """
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        raise CodeRejected("a code is 6 digits")
    try:
        timecode = int(
            pyotp.TOTP(secret).verify_and_get_timecode(
                code, for_time=now or utcnow(), valid_window=VALID_WINDOW
            )
        )
    except OTPVerificationError:
        raise CodeRejected("wrong code") from None
    if last_timecode is not None and timecode <= last_timecode:
        raise CodeRejected("code already used", replayed=True)
    return timecode
