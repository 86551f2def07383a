"""Unique Pupil Numbers (UPNs): the DfE's 13-character identifier of a pupil in an English state school.

Format (DfE data standard "Unique Pupil Number" v2.0, and the check the school census runs as error 1510):

* character 1 is a check letter;
* characters 2-4 are the LA code of the issuing school, 5-8 its establishment number, 9-10 the last two
  digits of the academic year, 11-13 a serial number: all digits for a permanent UPN;
* a temporary UPN ends in a letter instead of the last serial digit (``Annnnnnnnnnnn`` or ``AnnnnnnnnnnnA``).

Check letter: multiply characters 2-13 by weights 2-13 (a final letter counts as its value in the letter
table below), take the sum modulo 23 and look the remainder up in the letter table, which is A-Z without
I, O and S (so A=0 ... H=7, J=8 ... N=12, P=13, Q=14, R=15, T=16 ... Z=22). The same 23 letters are the
only ones allowed as a temporary UPN's final character.

A UPN is about a child: never log it, audit it or put it in an error message.
"""

from __future__ import annotations

import re

# A-Z without I, O and S (easily misread as 1, 0 and 5): the value of a letter is its index.
CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"
UPN_LENGTH = 13

_BODY_PATTERN = re.compile(rf"^[0-9]{{11}}[0-9{CHECK_LETTERS}]$")
# Pupils' numbers are pasted from spreadsheets and letters: tolerate spaces inside, as people group them.
_SPACES = re.compile(r"\s+")


class InvalidUPN(ValueError):
    """The text is not a valid UPN; the message says why and is safe to show (it never repeats the UPN)."""


def upn_check_letter(body: str) -> str:
    """The check letter for ``body``, a UPN's characters 2-13 (upper case, already format-checked)."""
    if len(body) != UPN_LENGTH - 1:
        raise ValueError("a UPN body is 12 characters")
    total = sum(weight * _character_value(character) for weight, character in enumerate(body, start=2))
    return CHECK_LETTERS[total % 23]


def validate_upn(text: str) -> str:
    """Return ``text`` as a normalised UPN (upper case, no spaces) or raise :class:`InvalidUPN`.

    Checks the length, the characters allowed at each position and the check letter. It does not check
    that characters 2-4 are a current LA code: pupils keep UPNs issued by authorities since renumbered.
    """
    upn = _SPACES.sub("", text).upper()
    if not upn:
        raise InvalidUPN("Enter the pupil's UPN.")
    if len(upn) != UPN_LENGTH:
        raise InvalidUPN(f"A UPN is {UPN_LENGTH} characters long; this one has {len(upn)}.")
    check, body = upn[0], upn[1:]
    if check not in CHECK_LETTERS:
        raise InvalidUPN("A UPN starts with a check letter (A to Z, but not I, O or S).")
    if not _BODY_PATTERN.match(body):
        raise InvalidUPN(
            "After its first letter a UPN has 12 digits, except that a temporary UPN ends in a letter "
            "(not I, O or S)."
        )
    if upn_check_letter(body) != check:
        raise InvalidUPN(
            "This UPN's check letter does not match its digits: check it has been copied correctly."
        )
    return upn


def is_valid_upn(text: str) -> bool:
    """True if :func:`validate_upn` accepts ``text``."""
    try:
        validate_upn(text)
    except InvalidUPN:
        return False
    return True


def _character_value(character: str) -> int:
    if character in "0123456789":
        return int(character)
    # A temporary UPN's final letter counts as its position in the check-letter table.
    return CHECK_LETTERS.index(character)
