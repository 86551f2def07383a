"""Choosing a password during enrolment (through a real invitation): length limits, no truncation,
the blocklist, and no hashing of oversized input. SECURITY.md test list item 8."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.auth.helpers import (
    code_at_step,
    current_step,
    enrol,
    frozen_clock,
    invite,
    open_invitation,
    post_sign_in,
    set_password,
    signed_in,
    user_row,
)

EMAIL = "new.teacher@example.org"
TOO_LONG = "Password must be 128 characters or fewer"
TOO_SHORT = "Password must be at least 12 characters long"
TOO_COMMON = "too common"
TOO_GUESSABLE = "too easy to guess"


@pytest.fixture
def hash_calls(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every password the app hashes (the argon2 work an attacker could make us do)."""
    hashing = app.extensions["portal.password_hashing"]
    real_hash: Callable[[str], str] = hashing.hash
    calls: list[str] = []

    def spy(password: str) -> str:
        calls.append(password)
        return real_hash(password)

    monkeypatch.setattr(hashing, "hash", spy)
    return calls


@pytest.fixture
def enrolling(app: Flask, factory: Any) -> tuple[FlaskClient, int]:
    """A browser that has opened a fresh invitation and sits on the password page."""
    user_id, token = invite(app, factory.school(), email=EMAIL)
    client = app.test_client()
    assert open_invitation(client, token).status_code == 302
    return client, user_id


def _passphrase(length: int) -> str:
    words = "granite orchard velvet lantern bicycle meadow harbour quill "
    return (words * (length // len(words) + 1))[: length - 3] + "x9!"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("elevenchars", TOO_SHORT),
        (_passphrase(129), TOO_LONG),
        (_passphrase(10_000), TOO_LONG),
        ("password1234", TOO_COMMON),
        ("Password2024!", TOO_COMMON),
        ("iloveyou1234", TOO_COMMON),
        ("qwertyuiopasdf", TOO_GUESSABLE),
        ("passwordpassword", TOO_GUESSABLE),
        ("abcdefghijklmnop", TOO_GUESSABLE),
        ("aaaaaaaaaaaaaaaa", "same character"),
        ("new.teacher-secret-phrase", "e-mail address"),
        ("my handover passphrase", "name of this service"),
    ],
    ids=[
        "11-chars",
        "129-chars",
        "10000-chars",
        "common-with-digits",
        "common-capitalised-with-year",
        "common-phrase",
        "keyboard-walk",
        "repeated-word",
        "alphabet-sequence",
        "one-character",
        "contains-email",
        "contains-service-name",
    ],
)
def test_weak_or_oversized_password_is_rejected_with_a_clear_message_and_never_hashed(
    app, enrolling, hash_calls, password, message
):
    client, user_id = enrolling
    response = set_password(client, password)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert hash_calls == []
    assert user_row(app, user_id)["password_hash"] is None


@pytest.mark.parametrize("length", [12, 64, 128])
def test_passwords_from_twelve_to_128_characters_are_accepted(app, enrolling, hash_calls, length):
    client, user_id = enrolling
    password = _passphrase(length)
    response = set_password(client, password)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/enrol/authenticator")
    assert hash_calls == [password]
    assert user_row(app, user_id)["password_hash"].startswith("$argon2id$")


def test_mismatched_confirmation_is_rejected_before_hashing(app, enrolling, hash_calls):
    client, user_id = enrolling
    response = set_password(client, _passphrase(20), confirm=_passphrase(21))
    assert response.status_code == 200
    assert "The passwords do not match" in response.get_data(as_text=True)
    assert hash_calls == []
    assert user_row(app, user_id)["password_hash"] is None


def test_128_character_password_is_checked_in_full_at_sign_in(app, factory):
    password = _passphrase(128)
    user_id, token = invite(app, factory.school(), email=EMAIL)
    with frozen_clock() as clock:
        enrolled = enrol(app.test_client(), user_id, token, email=EMAIL, password=password)
        clock.shift(30)
        # Failed attempts do not spend the code, so one code serves all three tries.
        code = code_at_step(enrolled.account.secret, current_step())

        truncated = app.test_client()
        response = post_sign_in(truncated, EMAIL, password[:-1], code)
        assert response.status_code == 200
        assert not signed_in(truncated)

        # Same first 72 bytes (bcrypt's silent limit), different ending.
        altered = app.test_client()
        response = post_sign_in(altered, EMAIL, password[:100] + "Z" * 28, code)
        assert not signed_in(altered)

        whole = app.test_client()
        assert post_sign_in(whole, EMAIL, password, code).status_code == 302
        assert signed_in(whole)


def test_password_is_not_rejected_for_lacking_symbols_digits_or_capitals(app, enrolling):
    """No composition rules (NIST SP 800-63B, ASVS 6.2.5): a long passphrase of words is enough."""
    client, _ = enrolling
    assert set_password(client, "granite orchard velvet lantern").status_code == 302


def test_password_fields_allow_password_managers(app, enrolling):
    client, _ = enrolling
    html = client.get("/enrol/password").get_data(as_text=True)
    assert 'autocomplete="new-password"' in html
    assert 'autocomplete="off"' not in html
    sign_in_page = app.test_client().get("/sign-in").get_data(as_text=True)
    assert 'autocomplete="current-password"' in sign_in_page
    assert 'autocomplete="one-time-code"' in sign_in_page


def test_no_more_than_two_hashes_run_at_once_in_one_process():
    import threading
    import time

    from portal.auth import passwords as passwords_module

    hashing = passwords_module.PasswordHashing(memory_kib=64, time_cost=1, parallelism=1)
    running = 0
    peak = 0
    lock = threading.Lock()

    class CountingHasher:
        """Stands in for argon2's hasher (a library edge) to count hashes running at once."""

        def __init__(self, real: object) -> None:
            self.real = real

        def hash(self, secret: str) -> str:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.05)
            with lock:
                running -= 1
            return "counted"

    hashing._hasher = CountingHasher(hashing._hasher)  # type: ignore[assignment]
    threads = [threading.Thread(target=hashing.hash, args=("a long enough passphrase",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert peak == 2
