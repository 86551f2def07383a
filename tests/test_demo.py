"""The newcomer's path: seed the demo, set up the caseworker from the printed link, see what is overdue."""

from __future__ import annotations

import re
import time

import pyotp

from tests.support import csrf_token


def _enrol(client, link: str, password: str) -> str:
    path = link.split("127.0.0.1:8000", 1)[1]
    assert client.get(path).status_code == 302
    page = client.get("/enrol/password")
    client.post(
        "/enrol/password", data={"csrf_token": csrf_token(page), "password": password, "confirm": password}
    )
    page = client.get("/enrol/authenticator")
    key = re.search(r'id="totp-key"[^>]*>([^<]+)<', page.get_data(as_text=True))
    assert key, "the authenticator page shows the key as text"
    secret = key.group(1).replace(" ", "").strip()
    done = client.post(
        "/enrol/authenticator", data={"csrf_token": csrf_token(page), "code": pyotp.TOTP(secret).now()}
    )
    assert "recovery-codes" in done.get_data(as_text=True)
    return secret


def test_a_newcomer_seeds_the_demo_and_the_caseworker_sees_overdue_transfers(app, client):
    seeded = app.test_cli_runner().invoke(args=["seed-demo"])
    assert seeded.exit_code == 0, seeded.output
    assert "4 demo transfers" in seeded.output
    link = next(
        line.split()[-1] for line in seeded.output.splitlines() if "caseworker@northshire.demo" in line
    )

    password = "quiet harbour lanterns at dusk"
    secret = _enrol(client, link, password)
    page = client.get("/sign-in")
    signed_in = client.post(
        "/sign-in",
        data={
            "csrf_token": csrf_token(page),
            "email": "caseworker@northshire.demo",
            "password": password,
            # The enrolment used the current step's code; the next step's is the first unused one.
            "code": pyotp.TOTP(secret).at(time.time() + 30),
        },
    )
    assert signed_in.status_code == 302

    dashboard = client.get("/tracking/dashboard").get_data(as_text=True)
    overdue = re.search(r"<strong>(\d+)</strong> overdue", dashboard)
    assert overdue and int(overdue.group(1)) >= 1
    for initials in ("AB", "CD", "EF"):
        assert initials in dashboard


def test_held_records_are_delivered_the_moment_the_designated_teacher_finishes_enrolling(app, client):
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Notification, Transfer, TransferStatus

    seeded = app.test_cli_runner().invoke(args=["seed-demo"])
    link = next(line.split()[-1] for line in seeded.output.splitlines() if "dt@riverside.demo" in line)
    with app.app_context():
        held = db.session.scalars(
            select(Transfer.id).where(Transfer.status == TransferStatus.AWAITING_DESIGNATED_TEACHER)
        ).all()
    assert len(held) == 3

    _enrol(client, link, "quiet harbour lanterns at dusk")  # no other page visited

    with app.app_context():
        statuses = {db.session.get_one(Transfer, i).status for i in held}
        told = db.session.scalars(
            select(Notification.transfer_id).where(
                Notification.kind == "transfer_arrived", Notification.to_address == "dt@riverside.demo"
            )
        ).all()
    assert statuses == {TransferStatus.SENT}
    assert set(told) == set(held) and len(told) == len(held)
