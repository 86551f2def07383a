"""Need-to-know for transfers (SECURITY.md items 20-24): every /transfers route, generated from
``app.url_map``, asked by every role of an organisation with no business seeing the transfer, with the
ids of real objects. Each answers 404 (or refuses a POST), audits the refusal, and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule

from portal.extensions import db
from portal.models import Document, DownloadLink, Notification, Role, Transfer
from tests.support import Account, Factory, Org, csrf_token
from tests.transfers.helpers import PDF_BYTES, create_draft, signed_in, upload
from tests.transfers.support_transfers import (
    Delivered,
    audit_rows,
    delivered_transfer,
    issue_link,
    page_token,
    stored_objects,
)

ROLES_OF_A_SCHOOL = (Role.SCHOOL_STAFF, Role.DESIGNATED_TEACHER, Role.ORG_ADMIN, Role.AUDITOR)
ROLES_OF_AN_AUTHORITY = (Role.CASEWORKER, Role.ORG_ADMIN, Role.AUDITOR)
ID_ARGUMENTS = {"transfer_id", "document_id"}


@dataclass(frozen=True)
class Target:
    """Real objects: a draft and a delivered transfer, each with a document, and an unused link."""

    made: Delivered
    draft_id: int
    draft_document_id: int
    token: str
    references: tuple[str, ...]
    filenames: tuple[str, ...]


@pytest.fixture
def target(app: Flask, factory: Factory) -> Target:
    made = delivered_transfer(app, factory, filename="Delivered secret plan.pdf")
    draft_id = create_draft(made.sender, made.world)
    assert upload(made.sender, draft_id, PDF_BYTES, "Draft secret plan.pdf").status_code == 302
    link = issue_link(made.teacher, made.transfer_id, made.document_id)
    with app.app_context():
        draft_document = db.session.scalars(select(Document).where(Document.transfer_id == draft_id)).one()
        references = tuple(db.session.scalars(select(Transfer.reference)))
        return Target(
            made,
            draft_id,
            draft_document.id,
            link.rsplit("/", 1)[1],
            references,
            ("Delivered secret plan.pdf", "Draft secret plan.pdf"),
        )


def _transfer_rules(app: Flask) -> list[Rule]:
    rules = sorted(
        (r for r in app.url_map.iter_rules() if r.rule.startswith("/transfers")), key=lambda r: r.rule
    )
    assert len(rules) >= 13, [r.rule for r in rules]
    return rules


def _urls(rule: Rule, target: Target) -> set[str]:
    """The rule filled in with the ids of each real transfer (and its document, and the link)."""
    fillings = [
        {
            "transfer_id": target.made.transfer_id,
            "document_id": target.made.document_id,
            "token": target.token,
        },
        {"transfer_id": target.draft_id, "document_id": target.draft_document_id, "token": target.token},
    ]
    unknown = set(rule.arguments) - set(fillings[0])
    if unknown:
        pytest.fail(f"{rule.rule}: teach tests/transfers/test_access.py a real object for {sorted(unknown)}")
    urls = set()
    for filling in fillings:
        path = rule.rule
        for name, value in filling.items():
            for converter in ("", "int:", "string:"):
                path = path.replace(f"<{converter}{name}>", str(value))
        assert "<" not in path, path
        urls.add(path)
    return urls


def _snapshot(app: Flask) -> dict[str, Any]:
    """Everything a refused request must leave as it was (the audit trail aside)."""

    def rows(model: Any) -> list[dict[str, Any]]:
        return [
            {c.key: getattr(row, c.key) for c in model.__table__.columns}
            for row in db.session.scalars(select(model).order_by(model.id))
        ]

    with app.app_context():
        return {
            "transfers": rows(Transfer),
            "documents": rows(Document),
            "links": rows(DownloadLink),
            "notifications": rows(Notification),
            "objects": [(p.name, p.stat().st_size) for p in stored_objects(app)],
        }


def _ask_everything(app: Flask, account: Account, target: Target) -> None:
    """Request every /transfers route as ``account`` and check each answer and its audit event."""
    client = signed_in(app, account)
    home = client.get("/")
    token = csrf_token(home)
    before = _snapshot(app)
    for rule in _transfer_rules(app):
        for url in sorted(_urls(rule, target)):
            for method in ("GET", "POST"):
                if method not in (rule.methods or set()):
                    continue
                _ask(app, client, account, rule, method, url, token, target)
    assert _snapshot(app) == before, f"a refused request by a {account.email} changed something"


def _ask(
    app: Flask,
    client: FlaskClient,
    account: Account,
    rule: Rule,
    method: str,
    url: str,
    token: str,
    target: Target,
) -> None:
    denials_before = len(audit_rows(app, outcome="denied"))
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, data={"csrf_token": token, "comment": "x", "new_expiry": "2099-01-01"})
    body = response.get_data()
    where = f"{account.email} {method} {url}"
    for reference in target.references:
        assert reference.encode() not in body, f"{where} shows a transfer's reference"
    for filename in target.filenames:
        assert filename.encode() not in body, f"{where} shows a document's name"
    assert PDF_BYTES not in body, f"{where} returned the document"
    denied = audit_rows(app, outcome="denied")[denials_before:]
    if set(rule.arguments) & ID_ARGUMENTS:
        assert response.status_code == 404, f"{where} answered {response.status_code}"
        assert [row["action"] for row in denied] == ["access.denied"], f"{where} audited {denied}"
        assert denied[0]["actor_user_id"] == account.user_id
    elif "token" in rule.arguments:
        assert response.status_code == 404, f"{where} answered {response.status_code}"
        assert [row["action"] for row in denied] == ["document.download"], f"{where} audited {denied}"
        assert denied[0]["details"] == '{"reason":"other_user"}'
    else:
        # A list or a blank form of the user's own (or 404 for a role without it): never the target.
        assert response.status_code in (200, 404), f"{where} answered {response.status_code}"
        if response.status_code == 404:
            assert [row["action"] for row in denied] == ["access.denied"], f"{where} audited {denied}"


def _accounts(factory: Factory, organisation: Org, roles: tuple[Role, ...]) -> list[Account]:
    return [factory.account(organisation, role) for role in roles]


def test_every_role_of_another_school_gets_not_found_for_every_transfer_route(app, factory, target):
    elsewhere = factory.school("Elsewhere Primary", None)
    for account in _accounts(factory, elsewhere, ROLES_OF_A_SCHOOL):
        _ask_everything(app, account, target)


def test_every_role_of_a_school_in_the_same_authority_gets_not_found(app, factory, target):
    neighbour = factory.school("Neighbour Primary", target.made.world.authority)
    for account in _accounts(factory, neighbour, ROLES_OF_A_SCHOOL):
        _ask_everything(app, account, target)


def test_every_role_of_another_authority_gets_not_found_for_every_transfer_route(app, factory, target):
    other_authority = factory.local_authority("Other County Council")
    for account in _accounts(factory, other_authority, ROLES_OF_AN_AUTHORITY):
        _ask_everything(app, account, target)


def test_people_at_the_receiving_school_who_are_not_designated_teachers_see_nothing(app, factory, target):
    receiving = target.made.world.receiving
    for account in _accounts(factory, receiving, (Role.SCHOOL_STAFF, Role.ORG_ADMIN, Role.AUDITOR)):
        _ask_everything(app, account, target)


def test_admins_and_auditors_of_the_sending_school_do_not_handle_its_records(app, factory, target):
    sending = target.made.world.sending
    for account in _accounts(factory, sending, (Role.ORG_ADMIN, Role.AUDITOR)):
        _ask_everything(app, account, target)


def test_the_responsible_authoritys_caseworker_sees_status_but_no_file_names_and_gets_no_link(
    app, factory, target
):
    made = target.made
    caseworker = signed_in(app, made.world.caseworker)

    page = caseworker.get(f"/transfers/{made.transfer_id}")

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Delivered secret plan" not in text
    assert "Document 1" in text
    assert made.world.sending.name in text and made.world.receiving.name in text
    denied_before = len(audit_rows(app, "access.denied"))
    issued_before = len(audit_rows(app, "download_link.issue"))
    token = page_token(caseworker, made.transfer_id)
    link = caseworker.post(
        f"/transfers/{made.transfer_id}/documents/{made.document_id}/link", data={"csrf_token": token}
    )
    assert link.status_code == 404
    assert caseworker.get(f"/transfers/download/{target.token}").status_code == 404
    for action in ("confirm-receipt", "revoke", "extend", "send"):
        response = caseworker.post(f"/transfers/{made.transfer_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 404, action
    assert len(audit_rows(app, "access.denied")) == denied_before + 5
    assert len(audit_rows(app, "download_link.issue")) == issued_before


def test_a_designated_teacher_of_the_receiving_school_cannot_see_a_draft_before_it_is_sent(app, target):
    teacher = target.made.teacher

    assert teacher.get(f"/transfers/{target.draft_id}").status_code == 404
    assert audit_rows(app, "access.denied", object_id=target.draft_id)


def test_outgoing_lists_only_the_users_own_organisations_transfers(app, factory, target):
    other_sender = factory.account(factory.school("Another Sender School"), Role.SCHOOL_STAFF)
    client = signed_in(app, other_sender)

    page = client.get("/transfers/outgoing").get_data(as_text=True)

    for reference in target.references:
        assert reference not in page
    own = target.made.sender.get("/transfers/outgoing").get_data(as_text=True)
    assert all(reference in own for reference in target.references)
