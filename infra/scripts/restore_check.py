#!/usr/bin/env python3
"""Check a restored Handover: can every document the database still holds a key for be read?

    cd /opt/handover && sudo -E -u handover .venv/bin/python infra/scripts/restore_check.py [--sample N]

Run with the portal's environment (``PORTAL_*``, AWS credentials) pointing at the *restored*
database and object store. For each document that was stored, it reads the object through the
portal's own decryption (authenticated chunks, then the size and SHA-256 recorded at upload) and
sorts it into one of:

* ``readable``   the key unwraps and the whole object decrypts and matches;
* ``shredded``   the wrapped key is gone (crypto-shredded): unreadable in this and every later
                 backup, whatever copies of the object survive;
* ``missing``    the key is present but the object is not in the store: restore the object (or the
                 bucket version from before the deletion) or it cannot be read;
* ``key unusable`` the wrapped key does not unwrap: the restore runs with the wrong
                 ``PORTAL_KEYRING`` (or KMS key); the keyring is backed up apart from the data;
* ``damaged``    the object is there but does not decrypt or does not match (wrong version
                 restored, or tampering).

Exit status 0 when nothing is missing, unusable or damaged (``--allow-missing`` tolerates ``missing``),
1 otherwise. Prints counts and document ids only: no file names, no children's details.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the checkout

from sqlalchemy import select

from portal import create_app, services
from portal.crypto.errors import DecryptionFailed, KeyUnwrapFailed
from portal.extensions import db
from portal.models import Document
from portal.storage import ObjectMissing, StorageError
from portal.transfers import documents


def classify(document: Document) -> str:
    """``readable``, ``shredded``, ``missing`` or ``damaged`` (see the module docstring)."""
    if document.wrapped_key is None or document.shredded_at is not None:
        return "shredded"
    try:
        for _chunk in documents.plaintext_chunks(services.object_store(), services.key_wrapper(), document):
            pass
    except ObjectMissing:
        return "missing"
    except KeyUnwrapFailed:
        return "key unusable"
    except (DecryptionFailed, documents.DocumentUnavailable):
        return "damaged"
    except StorageError:
        raise  # the store is unreachable: no verdict is possible, stop with its message
    return "readable"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that a restored portal can read its documents.")
    parser.add_argument("--sample", type=int, default=0, help="check only the newest N documents (0: all)")
    parser.add_argument("--allow-missing", action="store_true", help="do not fail on missing objects")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    app = create_app()
    with app.app_context():
        query = select(Document).where(Document.stored_at.is_not(None)).order_by(Document.id.desc())
        if args.sample:
            query = query.limit(args.sample)
        verdicts = {document.id: classify(document) for document in db.session.scalars(query)}
        db.session.rollback()
    counts = Counter(verdicts.values())
    problems = sorted(
        i for i, v in verdicts.items() if v == "damaged" or (v == "missing" and not args.allow_missing)
    )
    if args.json:
        print(json.dumps({"counts": dict(counts), "documents": verdicts}))  # noqa: T201
    else:
        summary = ", ".join(
            f"{counts.get(name, 0)} {name}" for name in ("readable", "shredded", "missing", "damaged")
        )
        print(f"Checked {len(verdicts)} document(s): {summary}.")  # noqa: T201
        for verdict in ("missing", "key unusable", "damaged"):
            ids = sorted(i for i, v in verdicts.items() if v == verdict)
            if ids:
                print(f"  {verdict}: document id(s) {', '.join(map(str, ids))}")  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
