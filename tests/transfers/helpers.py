"""Helpers for transfer tests: a school pair with people, and the HTTP steps of the journey."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from portal.models import Role
from tests.support import Account, Factory, Org, csrf_token, sign_in

PDF_BYTES = b"%PDF-1.7\n" + b"Test document for Handover.\n" * 200 + b"%%EOF\n"


@dataclass
class World:
    """An authority, a sending and a receiving school, and their people."""

    authority: Org
    sending: Org
    receiving: Org
    sender: Account
    teacher: Account
    caseworker: Account


def make_world(factory: Factory) -> World:
    authority = factory.local_authority()
    sending = factory.school("Oak Primary", authority)
    receiving = factory.school("River Academy", authority)
    return World(
        authority,
        sending,
        receiving,
        factory.account(sending, Role.SCHOOL_STAFF),
        factory.account(receiving, Role.DESIGNATED_TEACHER),
        factory.account(authority, Role.CASEWORKER),
    )


def create_draft(client: FlaskClient, world: World, **overrides: str) -> int:
    """Fill in the new-transfer form; returns the draft's id."""
    page = client.get(f"/transfers/new?school={world.receiving.id}")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_token(page),
        "school_id": str(world.receiving.id),
        "child_initials": "JS",
        "child_date_of_birth": "2015-04-01",
        "child_upn": "",
        "looked_after": "y",
        "responsible_authority_id": str(world.authority.id),
        "left_on": "2026-10-01",
        "note": "",
        **overrides,
    }
    response = client.post(f"/transfers/new?school={world.receiving.id}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    found = re.search(r"/transfers/(\d+)$", response.headers["Location"])
    assert found
    return int(found.group(1))


def upload(
    client: FlaskClient, transfer_id: int, content: bytes, filename: str, category: str = "pep"
) -> TestResponse:
    page = client.get(f"/transfers/{transfer_id}")
    return client.post(
        f"/transfers/{transfer_id}/documents",
        data={"csrf_token": csrf_token(page), "category": category, "file": (io.BytesIO(content), filename)},
        content_type="multipart/form-data",
    )


def send(client: FlaskClient, transfer_id: int) -> TestResponse:
    page = client.get(f"/transfers/{transfer_id}/send")
    return client.post(f"/transfers/{transfer_id}/send", data={"csrf_token": csrf_token(page)})


def request_download(client: FlaskClient, transfer_id: int, document_id: int) -> TestResponse:
    page = client.get(f"/transfers/{transfer_id}")
    return client.post(
        f"/transfers/{transfer_id}/documents/{document_id}/link", data={"csrf_token": csrf_token(page)}
    )


def signed_in(app: Flask, account: Account) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, account).status_code == 302
    return client
