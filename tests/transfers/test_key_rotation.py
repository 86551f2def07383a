"""``flask keys rotate`` (SECURITY.md item 42): with a new key appended to PORTAL_KEYRING every
document key and TOTP seed is re-wrapped under it, old documents still download, a second run does
nothing, and a run interrupted after its first batch is finished by the next one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from portal import create_app, services
from portal.crypto.errors import KeyServiceUnavailable
from portal.crypto.keyring import LocalKeyring
from portal.crypto.wrapping import KeyWrapper, WrappedKey
from portal.extensions import db
from portal.models import Document, User
from portal.transfers import maintenance
from tests.transfers.helpers import PDF_BYTES, send, signed_in, upload
from tests.transfers.support_transfers import (
    Delivered,
    audit_rows,
    document_rows,
    draft_with_document,
    issue_link,
    page_token,
)

CONTENTS = [PDF_BYTES, PDF_BYTES + b"second", PDF_BYTES + b"third"]


@pytest.fixture
def three_documents(app: Flask, factory) -> Delivered:
    made = draft_with_document(app, factory, content=CONTENTS[0], filename="One.pdf")
    for n, content in enumerate(CONTENTS[1:], start=2):
        assert upload(made.sender, made.transfer_id, content, f"Doc {n}.pdf").status_code == 302
    assert send(made.sender, made.transfer_id).status_code == 302
    return made


@pytest.fixture
def rotated_app(environ: dict[str, str], three_documents: Delivered) -> Iterator[Flask]:
    """The same portal restarted with a second key-encryption key appended to its keyring."""
    spec = f"{environ['PORTAL_KEYRING']},{LocalKeyring.generate_spec('test-2')}"
    application = create_app({**environ, "PORTAL_KEYRING": spec})
    yield application
    with application.app_context():
        db.engine.dispose()


def _rotate(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _key_ids(app: Flask) -> tuple[list[str | None], list[str]]:
    with app.app_context():
        keyring = services.keyring()
        documents = [d.key_id for d in db.session.scalars(select(Document).order_by(Document.id))]
        seeds = [
            keyring.sealed_key_id(u.totp_secret_sealed)
            for u in db.session.scalars(select(User).where(User.totp_secret_sealed.is_not(None)))
            if u.totp_secret_sealed is not None
        ]
    return documents, seeds


def _user_count(app: Flask) -> int:
    with app.app_context():
        return len(db.session.scalars(select(User).where(User.totp_secret_sealed.is_not(None))).all())


def _every_document_downloads(app: Flask, made: Delivered) -> None:
    teacher = signed_in(app, made.world.teacher)  # the TOTP seed must open under the new key too
    for row, content in zip(document_rows(app, made.transfer_id), CONTENTS, strict=True):
        response = teacher.get(issue_link(teacher, made.transfer_id, row["id"]))
        assert response.status_code == 200 and response.data == content


def test_rotation_rewraps_every_document_key_and_totp_seed_and_old_documents_still_download(
    rotated_app, three_documents
):
    assert _key_ids(rotated_app)[0] == ["test-1"] * 3

    output = _rotate(rotated_app)

    assert f"Re-wrapped 3 document key(s) and {_user_count(rotated_app)} TOTP seed(s)" in output
    documents, seeds = _key_ids(rotated_app)
    assert documents == ["test-2"] * 3
    assert seeds and set(seeds) == {"test-2"}
    _every_document_downloads(rotated_app, three_documents)
    (rotated,) = audit_rows(rotated_app, "keys.rotate")
    assert '"key_id":"test-2"' in rotated["details"]


def test_rotating_again_changes_nothing(rotated_app, three_documents):
    _rotate(rotated_app)
    before = [row["wrapped_key"] for row in document_rows(rotated_app)]

    output = _rotate(rotated_app)

    assert "Re-wrapped 0 document key(s) and 0 TOTP seed(s)" in output
    assert [row["wrapped_key"] for row in document_rows(rotated_app)] == before
    _every_document_downloads(rotated_app, three_documents)


class _FailsOnSecondRewrap:
    """A wrapper that loses its key service on the second re-wrap (after the first batch)."""

    def __init__(self, inner: KeyWrapper) -> None:
        self._inner = inner
        self.rewraps = 0
        self.algorithm = inner.algorithm
        self.current_key_id = inner.current_key_id

    def wrap(self, data_key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        return self._inner.wrap(data_key, context=context)

    def unwrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        return self._inner.unwrap(wrapped_key, context=context)

    def needs_rewrap(self, wrapped_key: WrappedKey) -> bool:
        return self._inner.needs_rewrap(wrapped_key)

    def rewrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> WrappedKey:
        self.rewraps += 1
        if self.rewraps == 2:
            raise KeyServiceUnavailable("the key service stopped answering")
        return self._inner.rewrap(wrapped_key, context=context)


def test_a_rotation_interrupted_after_its_first_batch_is_finished_by_the_next_run(
    rotated_app, three_documents
):
    with rotated_app.app_context():
        failing: Any = _FailsOnSecondRewrap(services.key_wrapper())
        with pytest.raises(KeyServiceUnavailable):
            maintenance.rotate_keys(db.session, failing, services.keyring(), batch_size=1)
        db.session.rollback()

    assert _key_ids(rotated_app)[0] == ["test-2", "test-1", "test-1"]  # the first batch was kept

    output = _rotate(rotated_app)

    assert "Re-wrapped 2 document key(s)" in output
    documents, seeds = _key_ids(rotated_app)
    assert documents == ["test-2"] * 3 and set(seeds) == {"test-2"}
    _every_document_downloads(rotated_app, three_documents)


def test_shredded_documents_are_skipped_by_rotation(rotated_app, three_documents, app):
    made = three_documents
    revoked = made.sender.post(
        f"/transfers/{made.transfer_id}/revoke",
        data={"csrf_token": page_token(made.sender, made.transfer_id)},
    )
    assert revoked.status_code == 302
    assert app.test_cli_runner().invoke(args=["purge-expired"]).exit_code == 0

    output = _rotate(rotated_app)

    assert "Re-wrapped 0 document key(s)" in output
    assert all(row["wrapped_key"] is None for row in document_rows(rotated_app))
