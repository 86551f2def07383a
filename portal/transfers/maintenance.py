"""Housekeeping that keeps the database and the object store in step, and rotates keys.

Every function here is idempotent and safe to interrupt: run it again and it carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from portal import audit
from portal.crypto.envelope import document_key_context
from portal.crypto.keyring import LocalKeyring
from portal.crypto.wrapping import KeyWrapper, WrappedKey
from portal.models import Document, User, utcnow
from portal.models.base import DbSession
from portal.storage import ObjectStore

DEFAULT_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class SweepReport:
    """What a sweep removed."""

    orphan_objects: int
    abandoned_reservations: int
    temporary_files: int = 0


def sweep_storage(session: DbSession, store: ObjectStore, *, grace: timedelta = DEFAULT_GRACE) -> SweepReport:
    """Delete objects no stored document owns, upload reservations never completed and temporary
    files of crashed uploads, all older than ``grace``.

    The grace period protects uploads in progress: their object exists before their row says stored.
    """
    cutoff = utcnow() - grace
    abandoned = session.scalars(
        select(Document).where(Document.stored_at.is_(None), Document.uploaded_at < cutoff)
    ).all()
    for document in abandoned:
        store.delete(document.object_key)
        session.delete(document)
    session.commit()
    live_keys = set(session.scalars(select(Document.object_key).where(Document.shredded_at.is_(None))).all())
    orphans = 0
    for key, modified in store.list_keys():
        if key not in live_keys and modified < cutoff:
            store.delete(key)
            orphans += 1
    # A process killed mid-upload leaves its temporary file behind (the local store's .tmp).
    remove_temp = getattr(store, "remove_stale_temp_files", None)
    temporary = int(remove_temp(older_than=grace)) if callable(remove_temp) else 0
    if orphans or abandoned or temporary:
        audit.record(
            session,
            "storage.sweep",
            actor_user_id=None,
            details={
                "orphan_objects": orphans,
                "abandoned_reservations": len(abandoned),
                "temporary_files": temporary,
            },
        )
        session.commit()
    return SweepReport(orphans, len(abandoned), temporary)


@dataclass(frozen=True)
class RotationReport:
    """How many wrapped keys and sealed secrets moved to the newest key-encryption key."""

    document_keys: int
    totp_secrets: int


def rotate_keys(
    session: DbSession, wrapper: KeyWrapper, keyring: LocalKeyring, *, batch_size: int = 200
) -> RotationReport:
    """Re-wrap every document data key (and re-seal every TOTP seed) under the newest key.

    No object is rewritten: only the small wrapped keys change. Each batch commits on its own, so an
    interrupted run loses nothing and the next run skips what is already done.
    """
    from portal.auth.totp import secret_context

    rewrapped = 0
    last_id = 0
    while True:
        batch = session.scalars(
            select(Document)
            .where(Document.wrapped_key.is_not(None), Document.id > last_id)
            .order_by(Document.id)
            .limit(batch_size)
        ).all()
        if not batch:
            break
        for document in batch:
            last_id = document.id
            assert document.wrapped_key is not None and document.key_id and document.wrap_algorithm
            current = WrappedKey(document.key_id, document.wrapped_key, document.wrap_algorithm)
            if not wrapper.needs_rewrap(current):
                continue
            context = document_key_context(
                organisation_id=document.transfer.sending_organisation_id,
                transfer_id=document.transfer_id,
                document_id=document.id,
            )
            fresh = wrapper.rewrap(current, context=context)
            document.wrapped_key, document.key_id, document.wrap_algorithm = (
                fresh.wrapped,
                fresh.key_id,
                fresh.algorithm,
            )
            rewrapped += 1
        session.commit()
    resealed = 0
    for user in session.scalars(select(User).where(User.totp_secret_sealed.is_not(None))):
        assert user.totp_secret_sealed is not None
        if keyring.sealed_key_id(user.totp_secret_sealed) != keyring.current_key_id:
            user.totp_secret_sealed = keyring.reseal(user.totp_secret_sealed, context=secret_context(user.id))
            resealed += 1
    audit.record(
        session,
        "keys.rotate",
        actor_user_id=None,
        details={"document_keys": rewrapped, "totp_secrets": resealed, "key_id": keyring.current_key_id},
    )
    session.commit()
    return RotationReport(rewrapped, resealed)
