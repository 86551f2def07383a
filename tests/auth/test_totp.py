"""TOTP attacks: replaying a code, replaying an older code still in the window, codes outside the window.

SECURITY.md test list items 1-3 and 10.
"""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from portal import services
from portal.auth import totp
from portal.crypto.keyring import SealedValueInvalid
from portal.extensions import db
from portal.models import LoginAttempt, User
from tests.auth.helpers import (
    FROZEN_AT,
    GENERIC_FAILURE,
    audit_rows,
    code_at_step,
    current_step,
    frozen_clock,
    post_sign_in,
    session_count,
    signed_in,
)

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
STEP = int(FROZEN_AT.timestamp()) // 30


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_up_to_one_step_either_side_are_accepted_in_process(offset):
    code = code_at_step(SECRET, STEP + offset)
    assert totp.accept_code(SECRET, code, last_timecode=None, now=FROZEN_AT) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_two_or_more_steps_off_are_refused_in_process(offset):
    code = code_at_step(SECRET, STEP + offset)
    with pytest.raises(totp.CodeRejected) as rejected:
        totp.accept_code(SECRET, code, last_timecode=None, now=FROZEN_AT)
    assert not rejected.value.replayed


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5"])
def test_malformed_codes_are_refused_in_process(code):
    with pytest.raises(totp.CodeRejected):
        totp.accept_code(SECRET, code, last_timecode=None, now=FROZEN_AT)


def test_same_code_is_refused_the_second_time_in_process():
    code = code_at_step(SECRET, STEP)
    accepted = totp.accept_code(SECRET, code, last_timecode=None, now=FROZEN_AT)
    with pytest.raises(totp.CodeRejected) as rejected:
        totp.accept_code(SECRET, code, last_timecode=accepted, now=FROZEN_AT)
    assert rejected.value.replayed


def test_older_code_inside_the_window_is_refused_after_a_newer_one_in_process():
    newer = totp.accept_code(SECRET, code_at_step(SECRET, STEP + 1), last_timecode=None, now=FROZEN_AT)
    with pytest.raises(totp.CodeRejected) as rejected:
        totp.accept_code(SECRET, code_at_step(SECRET, STEP), last_timecode=newer, now=FROZEN_AT)
    assert rejected.value.replayed


def test_reused_totp_code_is_refused_and_audited_as_a_replay(app, factory):
    account = factory.account(factory.school())
    with frozen_clock():
        code = code_at_step(account.secret, current_step())
        first = app.test_client()
        assert post_sign_in(first, account.email, account.password, code).status_code == 302

        attacker = app.test_client()
        replay = post_sign_in(attacker, account.email, account.password, code)

    assert replay.status_code == 200
    assert GENERIC_FAILURE in replay.get_data(as_text=True)
    assert not signed_in(attacker)
    assert session_count(app, account.user_id) == 1  # only the genuine sign-in
    failures = [row for row in audit_rows(app, "auth.sign_in") if row.outcome == "failure"]
    assert [row.details["reason"] for row in failures] == ["code_replayed"]
    assert failures[0].actor_user_id == account.user_id


def test_older_code_still_inside_the_window_is_refused_after_a_newer_one_was_accepted(app, factory):
    account = factory.account(factory.school())
    with frozen_clock():
        step = current_step()
        newer = app.test_client()
        response = post_sign_in(
            newer, account.email, account.password, code_at_step(account.secret, step + 1)
        )
        assert response.status_code == 302

        older = app.test_client()
        replay = post_sign_in(older, account.email, account.password, code_at_step(account.secret, step))

    assert replay.status_code == 200
    assert not signed_in(older)
    reasons = [row.details.get("reason") for row in audit_rows(app, "auth.sign_in")]
    assert reasons == [None, "code_replayed"]


def test_only_codes_one_step_either_side_sign_in_over_http(app, factory):
    account = factory.account(factory.school())
    with frozen_clock():
        step = current_step()
        outcomes = {}
        for offset in (-2, 2, -1, 1):  # increasing accepted steps, so no acceptance is a replay
            client = app.test_client()
            code = code_at_step(account.secret, step + offset)
            status = post_sign_in(client, account.email, account.password, code).status_code
            outcomes[offset] = (status, signed_in(client))

    assert outcomes == {-2: (200, False), 2: (200, False), -1: (302, True), 1: (302, True)}
    failures = [row.details["reason"] for row in audit_rows(app, "auth.sign_in") if row.outcome == "failure"]
    assert failures == ["wrong_code", "wrong_code"]


def test_two_racing_requests_with_one_code_cannot_both_advance_the_step(app, factory):
    """The conditional update is the last line against a replay raced in between read and write."""
    from portal.auth.signin import _advance_timecode

    account = factory.account(factory.school())
    with app.app_context():
        user = db.session.get_one(User, account.user_id)
        stale = db.session.get_one(User, account.user_id)
        assert _advance_timecode(db.session, user, STEP)
        assert not _advance_timecode(db.session, stale, STEP)
        db.session.commit()
        assert db.session.scalar(select(User.totp_last_timecode).where(User.id == account.user_id)) == STEP


def test_totp_seed_has_160_bits_is_sealed_and_only_opens_for_its_own_user(app, factory):
    school = factory.school()
    account = factory.account(school)
    other = factory.account(school)
    assert len(base64.b32decode(account.secret)) * 8 >= 160
    with app.app_context():
        user = db.session.get_one(User, account.user_id)
        other_user = db.session.get_one(User, other.user_id)
        sealed = user.totp_secret_sealed
        assert sealed is not None
        assert account.secret.encode() not in sealed
        assert base64.b32decode(account.secret) not in sealed
        assert totp.open_secret(services.keyring(), user) == account.secret
        # A seed copied onto another user's row does not open there.
        other_user.totp_secret_sealed = sealed
        with pytest.raises(SealedValueInvalid):
            totp.open_secret(services.keyring(), other_user)
        db.session.rollback()


def test_refused_codes_are_recorded_as_failed_attempts_for_throttling(app, factory):
    account = factory.account(factory.school())
    with frozen_clock():
        wrong = code_at_step(account.secret, current_step() + 5)
        post_sign_in(app.test_client(), account.email, account.password, wrong)
    with app.app_context():
        attempts = db.session.scalars(select(LoginAttempt)).all()
        assert [(a.user_id, a.succeeded) for a in attempts] == [(account.user_id, False)]
