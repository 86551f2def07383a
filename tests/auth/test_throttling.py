"""Guessing attacks against sign-in, and the throttling policy of portal/auth/throttle.py.

SECURITY.md test list items 4 and 5: 429 well before NIST's 100 failures, audited; other users,
and the same teacher at their usual address, unaffected.
"""

from __future__ import annotations

from flask import Flask

from portal.admin import accounts
from portal.auth.throttle import ACCOUNT_FAILURE_LIMIT, CONSECUTIVE_FAILURE_LIMIT
from portal.extensions import db
from portal.models import User
from tests.auth.helpers import (
    GENERIC_FAILURE,
    OTHER_ADDRESS,
    AuditRow,
    audit_rows,
    code_at_step,
    current_step,
    enrol,
    frozen_clock,
    post_sign_in,
    signed_in,
)

ATTACKER = "203.0.113.7"


def _throttled_events(app: Flask) -> list[AuditRow]:
    return [row for row in audit_rows(app, "auth.sign_in") if row.outcome == "throttled"]


def _failures(app: Flask) -> list[AuditRow]:
    return [row for row in audit_rows(app, "auth.sign_in") if row.outcome == "failure"]


def test_guessing_codes_for_one_account_is_throttled_after_a_few_failures_and_audited(app, factory):
    school = factory.school()
    victim = factory.account(school)
    bystander = factory.account(school)
    with frozen_clock() as clock:
        step = current_step()
        attacker = app.test_client()
        statuses = []
        for guess in range(100):
            wrong = code_at_step(victim.secret, step + 10 + guess)
            statuses.append(
                post_sign_in(attacker, victim.email, victim.password, wrong, address=ATTACKER).status_code
            )
            if statuses[-1] == 429:
                break
        # Even the right code is refused while the throttle holds.
        right = code_at_step(victim.secret, step)
        assert (
            post_sign_in(attacker, victim.email, victim.password, right, address=ATTACKER).status_code == 429
        )
        assert not signed_in(attacker)

        assert statuses == [200] * 5 + [429]
        assert len(_failures(app)) == 5
        throttled = _throttled_events(app)
        assert len(throttled) == 2
        assert all(row.client_address == ATTACKER for row in throttled)

        # Someone else, elsewhere, is unaffected; so is the victim at their own address.
        clock.shift(30)
        other = app.test_client()
        assert (
            post_sign_in(
                other, bystander.email, bystander.password, bystander.code(), address=OTHER_ADDRESS
            ).status_code
            == 302
        )
        owner = app.test_client()
        assert (
            post_sign_in(
                owner, victim.email, victim.password, victim.code(), address=OTHER_ADDRESS
            ).status_code
            == 302
        )
        assert signed_in(other)
        assert signed_in(owner)


def test_guessing_passwords_for_one_account_is_throttled_and_audited(app, factory):
    victim = factory.account(factory.school())
    with frozen_clock():
        attacker = app.test_client()
        statuses = []
        for guess in range(100):
            response = post_sign_in(
                attacker, victim.email, f"guess number {guess:04d}", victim.code(), address=ATTACKER
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    assert statuses == [200] * 5 + [429]
    assert "Too many attempts" in response.get_data(as_text=True)
    assert [row.details["reason"] for row in _failures(app)] == ["wrong_password"] * 5
    assert len(_throttled_events(app)) == 1


def test_per_account_throttle_lifts_after_its_fifteen_minutes(app, factory):
    victim = factory.account(factory.school())
    with frozen_clock() as clock:
        client = app.test_client()
        for guess in range(5):
            post_sign_in(client, victim.email, f"wrong guess {guess:04d}", "000000", address=ATTACKER)
        assert (
            post_sign_in(client, victim.email, "wrong guess", "000000", address=ATTACKER).status_code == 429
        )
        clock.shift(16 * 60)
        response = post_sign_in(client, victim.email, victim.password, victim.code(), address=ATTACKER)
    assert response.status_code == 302


def test_successful_sign_ins_do_not_count_towards_the_per_account_throttle(app, factory):
    account = factory.account(factory.school())
    with frozen_clock() as clock:
        for _ in range(8):
            client = app.test_client()
            assert post_sign_in(client, account.email, account.password, account.code()).status_code == 302
            clock.shift(30)


def test_password_spray_over_fifty_accounts_from_one_address_hits_the_per_address_limit(app, factory):
    school = factory.school()
    accounts = [factory.account(school) for _ in range(50)]
    with frozen_clock() as clock:
        sprayer = app.test_client()
        responses = [
            post_sign_in(sprayer, account.email, "Summer2025!Summer", "123456", address=ATTACKER)
            for account in accounts
        ]
        statuses = [response.status_code for response in responses]
        assert statuses == [200] * 20 + [429] * 30
        assert all(GENERIC_FAILURE in r.get_data(as_text=True) for r in responses[:20])
        throttled = _throttled_events(app)
        assert len(throttled) == 30
        assert {row.details["limit"] for row in throttled} == {"20 per 1 minute"}

        # Every sprayed account still signs in from its own address.
        clock.shift(30)
        for account in (accounts[0], accounts[25], accounts[49]):
            client = app.test_client()
            response = post_sign_in(
                client, account.email, account.password, account.code(), address=OTHER_ADDRESS
            )
            assert response.status_code == 302


def test_slow_spray_under_the_minute_limit_still_stops_at_one_hundred_an_hour(app):
    with frozen_clock() as clock:
        sprayer = app.test_client()
        statuses = []
        for n in range(101):
            if n and n % 20 == 0:
                clock.shift(61)
            response = post_sign_in(
                sprayer, f"staff{n}@example.org", "Summer2025!Summer", "123456", address=ATTACKER
            )
            statuses.append(response.status_code)
    assert statuses == [200] * 100 + [429]


def test_failures_from_many_addresses_close_the_account_to_new_addresses_but_not_to_known_ones(app, factory):
    teacher = factory.account(factory.school())
    usual_address = "192.0.2.10"
    with frozen_clock() as clock:
        # The teacher signed in from school before.
        assert (
            post_sign_in(
                app.test_client(), teacher.email, teacher.password, teacher.code(), address=usual_address
            ).status_code
            == 302
        )

        # A botnet stays under the per-address limit: five failures from each of many addresses.
        attempts_per_address = 5
        botnet = [f"198.51.100.{n}" for n in range(1, ACCOUNT_FAILURE_LIMIT // attempts_per_address + 1)]
        for address in botnet:
            bot = app.test_client()
            for guess in range(attempts_per_address):
                response = post_sign_in(
                    bot, teacher.email, f"{address} guess {guess}", "000000", address=address
                )
                assert response.status_code == 200
        assert len(_failures(app)) == ACCOUNT_FAILURE_LIMIT

        # A new address is refused even with every factor right (and the code is not spent)...
        clock.shift(30)
        code = teacher.code()
        newcomer = app.test_client()
        refused = post_sign_in(newcomer, teacher.email, teacher.password, code, address="198.51.100.200")
        assert refused.status_code == 429
        assert not signed_in(newcomer)
        account_rule = [row for row in _throttled_events(app) if row.details.get("rule") == "account"]
        assert len(account_rule) == 1

        # ...but the stranger cannot lock the teacher out: their usual address still works.
        at_school = app.test_client()
        response = post_sign_in(at_school, teacher.email, teacher.password, code, address=usual_address)
        assert response.status_code == 302
        assert signed_in(at_school)

        # After the hour, new addresses are open again.
        clock.shift(61 * 60)
        later = app.test_client()
        response = post_sign_in(
            later, teacher.email, teacher.password, teacher.code(), address="198.51.100.201"
        )
        assert response.status_code == 302


def test_unknown_email_is_throttled_exactly_like_a_real_account(app):
    """So the 429 of rule 3 does not tell a stranger which addresses have accounts."""
    email = "no-such-person@example.org"
    with frozen_clock() as clock:
        for n in range(ACCOUNT_FAILURE_LIMIT // 5):
            address = f"198.51.100.{n + 1}"
            bot = app.test_client()
            for guess in range(5):
                assert (
                    post_sign_in(bot, email, f"guess {guess}", "000000", address=address).status_code == 200
                )
        clock.shift(30)
        response = post_sign_in(app.test_client(), email, "another guess", "000000", address="198.51.100.99")
    assert response.status_code == 429


def _botnet_hour(app: Flask, email: str, hour: int) -> None:
    """Twenty failures from four fresh addresses: as much as rules 2 and 3 allow in an hour."""
    for bot_number in range(ACCOUNT_FAILURE_LIMIT // 5):
        address = f"198.51.{hour}.{bot_number + 1}"
        bot = app.test_client()
        for guess in range(5):
            response = post_sign_in(bot, email, f"hour {hour} guess {guess}", "000000", address=address)
            assert response.status_code == 200, (hour, bot_number, guess)


def test_slow_distributed_guessing_stops_at_one_hundred_consecutive_failures(app, factory):
    """NIST SP 800-63B §5.2.2: at most 100 consecutive failures, however slowly they come."""
    usual_address = "192.0.2.10"
    with frozen_clock() as clock:
        teacher = factory.account(factory.school())  # password set "now", before the attack
        assert (
            post_sign_in(
                app.test_client(), teacher.email, teacher.password, teacher.code(), address=usual_address
            ).status_code
            == 302
        )
        hours = CONSECUTIVE_FAILURE_LIMIT // ACCOUNT_FAILURE_LIMIT
        for hour in range(hours):
            clock.shift(61 * 60)
            _botnet_hour(app, teacher.email, hour)
        assert len(_failures(app)) == CONSECUTIVE_FAILURE_LIMIT

        # A day later, new addresses are still closed, even with every factor right...
        clock.shift(24 * 60 * 60)
        code = teacher.code()
        refused = post_sign_in(
            app.test_client(), teacher.email, teacher.password, code, address="198.51.99.1"
        )
        assert refused.status_code == 429
        rules = [row.details.get("rule") for row in _throttled_events(app)]
        assert rules == ["account_consecutive"]

        # ...while the teacher's usual address works, and a success there reopens the account.
        owner = app.test_client()
        assert (
            post_sign_in(owner, teacher.email, teacher.password, code, address=usual_address).status_code
            == 302
        )
        clock.shift(30)
        elsewhere = app.test_client()
        response = post_sign_in(
            elsewhere, teacher.email, teacher.password, teacher.code(), address="198.51.99.2"
        )
        assert response.status_code == 302


def test_consecutive_failure_count_restarts_when_an_administrator_resets_the_account(app, factory):
    """A teacher who never signed in has no known address; re-enrolment is their way back in."""
    with frozen_clock() as clock:
        school = factory.school()
        admin = factory.account(school)
        newcomer = factory.account(school)
        for hour in range(CONSECUTIVE_FAILURE_LIMIT // ACCOUNT_FAILURE_LIMIT):
            clock.shift(61 * 60)
            _botnet_hour(app, newcomer.email, hour)
        clock.shift(61 * 60)
        code = newcomer.code()
        assert post_sign_in(app.test_client(), newcomer.email, newcomer.password, code).status_code == 429

        with app.app_context():
            token = accounts.reset_authenticator(
                db.session,
                db.session.get_one(User, newcomer.user_id),
                invited_by=db.session.get_one(User, admin.user_id),
                valid_hours=72,
            )
            db.session.commit()
        clock.shift(30)
        enrolled = enrol(
            app.test_client(),
            newcomer.user_id,
            token,
            email=newcomer.email,
            password="a fresh start passphrase",
        )
        clock.shift(30)
        account = enrolled.account
        client = app.test_client()
        assert post_sign_in(client, account.email, account.password, account.code()).status_code == 302
        assert signed_in(client)
