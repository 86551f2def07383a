"""Route × role × organisation matrix, generated from ``app.url_map``.

A new route is covered the day it is added: anonymous visitors are sent to sign in unless the
endpoint is in the (short, explicit) public list, and admin pages answer 404 to everyone else.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from portal.auth.guard import is_public_endpoint
from portal.models import Role
from tests.admin.helpers import RealObjects, audit_rows, fill_url, make_real_objects
from tests.support import Account, Factory, csrf_token, sign_in

EXPECTED_PUBLIC_ENDPOINTS = {
    "auth.sign_in",
    "auth.accept_invitation",
    "auth.enrol_password",
    "auth.enrol_authenticator",
    "home.liveness",
    "home.readiness",
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


@pytest.fixture
def foreign(app: Flask, factory: Factory) -> RealObjects:
    """Real objects of organisations the requesters in these tests do not belong to."""
    return make_real_objects(app, factory)


def _rules(app: Flask) -> list[Rule]:
    return sorted((r for r in app.url_map.iter_rules() if r.endpoint != "static"), key=lambda r: r.rule)


def _request(client: FlaskClient, method: str, url: str, token: str) -> tuple[int, str]:
    # POSTs carry a valid token of the client's own session, so the CSRF check is not what refuses.
    # Buffered, as a browser reads it all: a streamed export must finish before the next request.
    if method == "GET":
        response = client.get(url, buffered=True)
    else:
        response = client.post(url, data={"csrf_token": token}, buffered=True)
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
            status, location = _request(client, method, fill_url(rule, foreign), token)
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
    own = dataclasses.replace(foreign, user_id=colleague.user_id)

    requests = 0
    for rule in _admin_rules(app):
        for objects in (foreign, own):
            for method in REQUESTED_METHODS:
                if method in (rule.methods or set()):
                    status, _ = _request(client, method, fill_url(rule, objects), token)
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
            status, location = _request(client, method, fill_url(rule, foreign), token)
            if "user_id" in rule.arguments:
                assert status == 404, f"{method} {rule.rule} answered {status}"
            else:
                # The admin's own lists and forms work: the matrix is not "everything is refused".
                assert status in (200, 302), f"{method} {rule.rule} answered {status}"
                assert not _sends_to_sign_in(status, location)

    assert audit_rows(app, "access.denied")
    assert {row["object_id"] for row in audit_rows(app, "access.denied")} == {str(foreign.user_id)}


THIRD_ORGANISATION_ROLES = (
    ("school", Role.SCHOOL_STAFF),
    ("school", Role.DESIGNATED_TEACHER),
    ("school", Role.ORG_ADMIN),
    ("school", Role.AUDITOR),
    ("local_authority", Role.CASEWORKER),
    ("local_authority", Role.ORG_ADMIN),
    ("local_authority", Role.AUDITOR),
)


@pytest.mark.parametrize(("kind", "role"), THIRD_ORGANISATION_ROLES, ids=lambda v: str(v))
def test_every_route_naming_another_organisations_object_answers_not_found(app, factory, foreign, kind, role):
    outsider_org = factory.school() if kind == "school" else factory.local_authority()
    outsider = factory.account(outsider_org, role)
    client, token = _signed_in(app, outsider)
    named_routes = [r for r in _rules(app) if r.arguments and r.endpoint not in EXPECTED_PUBLIC_ENDPOINTS]
    assert {"admin.user_detail", "transfers.detail", "transfers.download"} <= {
        r.endpoint for r in named_routes
    }

    for rule in named_routes:
        for method in REQUESTED_METHODS:
            if method in (rule.methods or set()):
                status, _ = _request(client, method, fill_url(rule, foreign), token)
                assert status == 404, (
                    f"{role} of another organisation: {method} {rule.rule} answered {status}"
                )

    # Nothing was used up on the way: the teacher's download link still works for the teacher.
    teacher, _ = _signed_in(app, foreign.world.teacher)
    assert teacher.get(f"/transfers/download/{foreign.download_token}").status_code == 200
