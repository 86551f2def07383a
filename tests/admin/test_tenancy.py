"""Tenant isolation of the admin pages: another organisation's users do not exist for you."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.models import Role
from tests.admin.helpers import audit_rows, outbox, user_by_email, user_state
from tests.support import Account, Factory, Org, csrf_token, sign_in

USER_ACTIONS = ("disable", "enable", "reset-authenticator", "resend-invitation", "ig-training")


@dataclass
class TwoSchools:
    """School A with a member of staff (signed in), school B with a signed-in admin."""

    school_a: Org
    school_b: Org
    victim: Account
    victim_client: FlaskClient
    admin_b: Account
    admin_b_client: FlaskClient


@pytest.fixture
def two_schools(app: Flask, factory: Factory) -> TwoSchools:
    school_a = factory.school(name="School A")
    school_b = factory.school(name="School B")
    victim = factory.account(school_a, Role.DESIGNATED_TEACHER)
    admin_b = factory.account(school_b, Role.ORG_ADMIN)
    victim_client, admin_b_client = app.test_client(), app.test_client()
    assert sign_in(victim_client, victim).status_code == 302
    assert sign_in(admin_b_client, admin_b).status_code == 302
    return TwoSchools(school_a, school_b, victim, victim_client, admin_b, admin_b_client)


def _without_per_request_values(page: str) -> str:
    """The page with its script nonces and CSRF tokens blanked (they differ on every request)."""
    page = re.sub(r'nonce="[^"]*"', 'nonce=""', page)
    return re.sub(r'(name="csrf_token"[^>]*value=")[^"]*"', r'\1"', page)


def _token(client: FlaskClient) -> str:
    """A valid CSRF token of this client's own session (so only the tenancy check can refuse)."""
    return csrf_token(client.get("/admin/users/invite"))


def test_admin_of_another_school_cannot_see_a_users_page(app, two_schools):
    victim_id = two_schools.victim.user_id

    response = two_schools.admin_b_client.get(f"/admin/users/{victim_id}")

    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert two_schools.victim.email not in body
    assert "School A" not in body
    [denied] = audit_rows(app, "access.denied")
    assert denied["outcome"] == "denied"
    assert (denied["object_type"], denied["object_id"]) == ("user", str(victim_id))
    assert denied["actor_user_id"] == two_schools.admin_b.user_id
    assert denied["actor_organisation_id"] == two_schools.school_b.id


@pytest.mark.parametrize("action", USER_ACTIONS)
def test_admin_of_another_school_cannot_act_on_its_users_and_nothing_changes(app, two_schools, action):
    victim_id = two_schools.victim.user_id
    before = user_state(app, victim_id)
    events_before = [row["action"] for row in audit_rows(app)]

    response = two_schools.admin_b_client.post(
        f"/admin/users/{victim_id}/{action}",
        data={"csrf_token": _token(two_schools.admin_b_client), "completed_on": "2020-01-01"},
    )

    assert response.status_code == 404
    assert user_state(app, victim_id) == before
    # The victim's session lives on; no e-mail went out; the only new event is the refusal.
    assert two_schools.victim_client.get("/").status_code == 200
    assert outbox(app) == []
    new_events = audit_rows(app)[len(events_before) :]
    assert [(row["action"], row["outcome"], row["object_id"]) for row in new_events] == [
        ("access.denied", "denied", str(victim_id))
    ]


def test_a_missing_user_and_another_schools_user_get_the_same_answer(app, two_schools):
    foreign = two_schools.admin_b_client.get(f"/admin/users/{two_schools.victim.user_id}")
    missing = two_schools.admin_b_client.get("/admin/users/999999")

    assert foreign.status_code == missing.status_code == 404
    assert _without_per_request_values(foreign.get_data(as_text=True)) == _without_per_request_values(
        missing.get_data(as_text=True)
    )
    assert [row["object_id"] for row in audit_rows(app, "access.denied")] == [
        str(two_schools.victim.user_id),
        "999999",
    ]


@pytest.mark.parametrize(
    ("kind", "role"),
    [
        ("school", Role.SCHOOL_STAFF),
        ("school", Role.DESIGNATED_TEACHER),
        ("school", Role.AUDITOR),
        ("local_authority", Role.CASEWORKER),
    ],
)
def test_a_user_who_is_not_an_admin_gets_not_found_for_the_users_list(app, factory, kind, role):
    organisation = factory.school() if kind == "school" else factory.local_authority()
    member = factory.account(organisation, role)
    client = app.test_client()
    sign_in(client, member)

    response = client.get("/admin/users")

    assert response.status_code == 404
    [denied] = audit_rows(app, "access.denied")
    assert denied["actor_user_id"] == member.user_id
    assert denied["object_type"] == "role"


def test_the_users_list_shows_only_the_admins_own_organisation(app, two_schools, factory):
    colleague = factory.account(two_schools.school_b, Role.SCHOOL_STAFF, email="colleague@b.example")

    page = two_schools.admin_b_client.get("/admin/users").get_data(as_text=True)

    assert colleague.email in page
    assert two_schools.admin_b.email in page
    assert two_schools.victim.email not in page
    assert f"/admin/users/{two_schools.victim.user_id}" not in page


def test_the_invite_form_ignores_a_forged_organisation(app, two_schools):
    client = two_schools.admin_b_client

    response = client.post(
        "/admin/users/invite",
        data={
            "csrf_token": _token(client),
            "display_name": "Planted User",
            "email": "planted@example.org",
            "role": "school_staff",
            "organisation_id": str(two_schools.school_a.id),
            "organisation": str(two_schools.school_a.id),
        },
    )

    assert response.status_code == 302
    planted = user_by_email(app, "planted@example.org")
    assert planted is not None
    assert planted.organisation_id == two_schools.school_b.id
    assert planted.role is Role.SCHOOL_STAFF


@pytest.mark.parametrize(
    ("kind", "forged_role"),
    [
        ("school", "caseworker"),
        ("local_authority", "designated_teacher"),
        ("local_authority", "school_staff"),
        ("school", "superuser"),
        ("school", "ORG_ADMIN"),
    ],
)
def test_the_invite_form_refuses_a_role_outside_the_organisations_list_and_audits_it(
    app, factory, kind, forged_role
):
    organisation = factory.school() if kind == "school" else factory.local_authority()
    admin = factory.account(organisation, Role.ORG_ADMIN)
    client = app.test_client()
    sign_in(client, admin)

    response = client.post(
        "/admin/users/invite",
        data={
            "csrf_token": _token(client),
            "display_name": "Forged Role",
            "email": "forged@example.org",
            "role": forged_role,
        },
    )

    assert response.status_code == 200
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert user_by_email(app, "forged@example.org") is None
    assert outbox(app) == []
    assert audit_rows(app, "admin.user.invite") == []
    [refused] = audit_rows(app, "admin.user.invite_refused")
    assert refused["outcome"] == "denied"
    assert refused["actor_user_id"] == admin.user_id
    assert json.loads(refused["details"]) == {"reason": "role_not_allowed", "role": forged_role}


def test_a_school_admin_is_offered_only_school_roles(app, two_schools):
    page = two_schools.admin_b_client.get("/admin/users/invite").get_data(as_text=True)

    assert 'value="designated_teacher"' in page
    assert 'value="caseworker"' not in page
