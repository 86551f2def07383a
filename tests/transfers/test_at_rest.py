"""No plaintext at rest (SECURITY.md item 41): after a document has been uploaded, sent, downloaded
and its receipt confirmed, no file the portal wrote (database, object store, temp files, outbox)
holds any of its content."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.transfers.helpers import create_draft, make_world, send, signed_in, upload
from tests.transfers.support_transfers import document_rows, issue_link, session_token, stored_objects


def _files_holding(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(root)} holds {needle[:12]!r}" for needle in needles if needle in data]
    return found


def test_no_file_the_portal_writes_holds_the_documents_content(app, factory, tmp_path):
    marker = f"HANDOVER-PLAINTEXT-MARKER-{secrets.token_hex(8)}"
    # Text, so the content is not compressed or encoded anywhere along the way.
    content = (f"Safeguarding chronology. {marker}\n" * 3000).encode()
    world = make_world(factory)
    sender = signed_in(app, world.sender)
    transfer_id = create_draft(sender, world)
    assert upload(sender, transfer_id, content, "chronology.txt").status_code == 302
    assert send(sender, transfer_id).status_code == 302
    teacher = signed_in(app, world.teacher)
    (document,) = document_rows(app, transfer_id)
    downloaded = teacher.get(issue_link(teacher, transfer_id, document["id"]))
    assert downloaded.data == content
    confirmed = teacher.post(
        f"/transfers/{transfer_id}/confirm-receipt", data={"csrf_token": session_token(teacher)}
    )
    assert confirmed.status_code == 302

    # tmp_path holds the test's database file and the whole instance folder (objects, outbox).
    assert (tmp_path / "handover.sqlite3").exists() or "postgresql" in app.config["SQLALCHEMY_DATABASE_URI"]
    assert len(stored_objects(app)) == 1
    needles = [marker.encode(), marker.encode("utf-16-le"), content[:64]]
    assert _files_holding(tmp_path, needles) == []
    # The scan can find what it looks for: the object's own ciphertext is in the store.
    (stored,) = stored_objects(app)
    assert _files_holding(tmp_path, [stored.read_bytes()[-64:]])
