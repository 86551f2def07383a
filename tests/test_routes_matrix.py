"""Route × role × organisation matrix, generated from ``app.url_map``.

A new route is covered the day it is added: anonymous visitors are sent to sign in unless the
endpoint is in the (short, explicit) public list, and admin pages answer 404 to everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from portal.admin import accounts
from portal.auth.guard import is_public_endpoint
from portal.extensions import db
from portal.models import Organisation, Role
from tests.admin.helpers import audit_rows
from tests.support import Account, Factory, csrf_token, sign_in

EXPECTED_PUBLIC_ENDPOINTS = {
    "auth.sign_in",
    "auth.accept_invitation",
    "auth.enrol_password",
    "auth.enrol_authenticator",
    "home.liveness",
}
# Methods a rule answers that are worth requesting (HEAD and OPTIONS follow GET's rules).
REQUESTED_METHODS = ("GET", "POST")
NON_ADMIN_ROLES = (
    ("school", Role.SCHOOL_STAFF),
    ("school", Role.DESIGNATED_TEACHER),
    ("school", Role.AUDITOR),
    ("local_authority", Role.CASEWORKER),
    ("local_authority", Role.AUDITOR),
)


@dataclass(frozen=True)
class ForeignObjects:
    """Real objects of an organisation the requester does not belong to."""

    user_id: int
    invitation_token: str


@pytest.fixture
def foreign(app: Flask, factory: Factory) -> ForeignObjects:
    elsewhere = factory.school(name="Somewhere Else School")
    member = factory.account(elsewhere, Role.DESIGNATED_TEACHER)
    with app.app_context():
        organisation = db.session.get(Organisation, elsewhere.id)
        assert organisation is not None
        _, token = accounts.invite_user(
            db.session,
            organisation=organisation,
            email="not-yet-enrolled@elsewhere.example",
            display_name="Not Yet Enrolled",
            role=Role.SCHOOL_STAFF,
            invited_by=None,
            valid_hours=72,
        )
        db.session.commit()
    return ForeignObjects(user_id=member.user_id, invitation_token=token)


def _rules(app: Flask) -> list[Rule]:
    return sorted((r for r in app.url_map.iter_rules() if r.endpoint != "static"), key=lambda r: r.rule)


def _url(rule: Rule, objects: ForeignObjects) -> str:
    """The rule's path with every argument filled by a real object of the foreign organisation."""
    fillers = {"user_id": str(objects.user_id), "token": objects.invitation_token}
    unknown = set(rule.arguments) - set(fillers)
    if unknown:
        pytest.fail(f"{rule.rule}: teach tests/test_routes_matrix.py a real object for {sorted(unknown)}")
    path = rule.rule
    for name, value in fillers.items():
        for converter in ("", "int:", "string:", "path:"):
            path = path.replace(f"<{converter}{name}>", value)
    assert "<" not in path, path
    return path


def _request(client: FlaskClient, method: str, url: str, token: str) -> tuple[int, str]:
    # POSTs carry a valid token of the client's own session, so the CSRF check is not what refuses.
    response = client.get(url) if method == "GET" else client.post(url, data={"csrf_token": token})
    return response.status_code, response.headers.get("Location", "")


def _sends_to_sign_in(status: int, location: str) -> bool:
    return status == 302 and urlsplit(location).path == "/sign-in"


def test_only_the_listed_endpoints_are_open_without_signing_in(app, foreign):
    client = app.test_client()
    answered_without_sign_in = set()
    for rule in _rules(app):
        for method in REQUESTED_METHODS:
            if method not in (rule.methods or set()):
                continue
            # A fresh token each time: opening an invitation starts a new (anonymous) session.
            token = csrf_token(client.get("/sign-in"))
            status, location = _request(client, method, _url(rule, foreign), token)
            if not _sends_to_sign_in(status, location):
                answered_without_sign_in.add(rule.endpoint)
                assert rule.endpoint in EXPECTED_PUBLIC_ENDPOINTS, (
                    f"{method} {rule.rule} answered {status} without sign-in"
                )

    assert answered_without_sign_in == EXPECTED_PUBLIC_ENDPOINTS


def test_the_views_marked_public_are_exactly_the_expected_ones(app):
    with app.test_request_context():
        marked = {rule.endpoint for rule in _rules(app) if is_public_endpoint(rule.endpoint)}

    assert marked == EXPECTED_PUBLIC_ENDPOINTS


def _admin_rules(app: Flask) -> list[Rule]:
    rules = [rule for rule in _rules(app) if rule.endpoint.startswith("admin.")]
    assert len(rules) >= 8, "the admin blueprint lost its routes?"
    return rules


def _signed_in(app: Flask, account: Account) -> tuple[FlaskClient, str]:
    client = app.test_client()
    assert sign_in(client, account).status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    return client, csrf_token(home)


@pytest.mark.parametrize(("kind", "role"), NON_ADMIN_ROLES, ids=lambda v: str(v))
def test_every_admin_route_answers_not_found_to_a_user_who_is_not_an_admin(app, factory, foreign, kind, role):
    organisation = factory.school() if kind == "school" else factory.local_authority()
    member = factory.account(organisation, role)
    colleague = factory.account(organisation, Role.SCHOOL_STAFF if kind == "school" else Role.CASEWORKER)
    client, token = _signed_in(app, member)
    own = ForeignObjects(user_id=colleague.user_id, invitation_token=foreign.invitation_token)

    requests = 0
    for rule in _admin_rules(app):
        for objects in (foreign, own):
            for method in REQUESTED_METHODS:
                if method in (rule.methods or set()):
                    status, _ = _request(client, method, _url(rule, objects), token)
                    assert status == 404, f"{role} {method} {rule.rule} answered {status}"
                    requests += 1

    denied = audit_rows(app, "access.denied")
    assert len(denied) == requests
    assert {row["actor_user_id"] for row in denied} == {member.user_id}


def test_every_admin_route_about_a_user_answers_not_found_to_another_organisations_admin(
    app, factory, foreign
):
    admin = factory.account(factory.local_authority(), Role.ORG_ADMIN)
    client, token = _signed_in(app, admin)

    for rule in _admin_rules(app):
        for method in REQUESTED_METHODS:
            if method not in (rule.methods or set()):
                continue
            status, location = _request(client, method, _url(rule, foreign), token)
            if "user_id" in rule.arguments:
                assert status == 404, f"{method} {rule.rule} answered {status}"
            else:
                # The admin's own lists and forms work: the matrix is not "everything is refused".
                assert status in (200, 302), f"{method} {rule.rule} answered {status}"
                assert not _sends_to_sign_in(status, location)

    assert audit_rows(app, "access.denied")
    assert {row["object_id"] for row in audit_rows(app, "access.denied")} == {str(foreign.user_id)}
