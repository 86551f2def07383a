"""Transfer views. Thin: rules live in service, access, documents and retention."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, time
from typing import BinaryIO

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.http import parse_options_header
from werkzeug.wrappers import Response as BaseResponse
from wtforms.validators import ValidationError

from portal import audit, notifications, policy, services
from portal.audit import Outcome
from portal.crypto.errors import DecryptionFailed, KeyServiceError
from portal.directory.search import find_schools
from portal.errors import render_error
from portal.extensions import csrf, db
from portal.models import (
    Document,
    DocumentCategory,
    Notification,
    Organisation,
    OrganisationKind,
    Role,
    Transfer,
    TransferStatus,
)
from portal.models.base import ENGLAND
from portal.storage import ObjectMissing, StorageError
from portal.templating import filesize
from portal.transfers import bp, documents, queries, service, states
from portal.transfers.access import Relation, document_for, may_see_contents, relations_to, transfer_for
from portal.transfers.downloads import attachment_headers
from portal.transfers.filetypes import ALLOWED_DESCRIPTION, FileRefused
from portal.transfers.forms import ActionForm, ConfirmReceiptForm, ExtendForm, NewTransferForm, UploadForm
from portal.transfers.uploads import FormTooLarge, UploadMalformed, UploadTooLarge, parse_streamed_upload
from portal.upn import InvalidUPN, validate_upn

log = logging.getLogger(__name__)
SENDERS = (Role.SCHOOL_STAFF, Role.DESIGNATED_TEACHER, Role.CASEWORKER)


def _require_current_training() -> None:
    if not policy.ig_training_current(current_user):
        abort(
            403,
            "Your information-governance training is not recorded as current. "
            "Ask your administrator to record it before you send or download records.",
        )


@bp.route("/outgoing")
@policy.roles_required(*SENDERS)
def outgoing() -> str:
    """Transfers sent (or being prepared) by the user's organisation."""
    rows = queries.outgoing(db.session, current_user.organisation_id)
    return render_template("transfers/outgoing.html", transfers=rows)


@bp.route("/incoming")
@policy.roles_required(Role.DESIGNATED_TEACHER)
def incoming() -> str:
    """Transfers delivered to the designated teacher's school."""
    rows = queries.incoming(db.session, current_user.organisation_id)
    return render_template("transfers/incoming.html", transfers=rows)


@bp.route("/holding")
@policy.roles_required(Role.CASEWORKER)
def holding() -> str:
    """Transfers for the authority's children waiting for a school to get a designated teacher."""
    rows = queries.held(db.session, current_user.organisation_id)
    return render_template("transfers/holding.html", transfers=rows)


@bp.route("/new", methods=["GET", "POST"])
@policy.roles_required(*SENDERS)
def new() -> BaseResponse | str:
    """Step 1: find the receiving school; step 2: the child's details."""
    _require_current_training()
    form = NewTransferForm()
    authorities = db.session.scalars(
        select(Organisation)
        .where(Organisation.kind == OrganisationKind.LOCAL_AUTHORITY, Organisation.is_active.is_(True))
        .order_by(Organisation.name)
    ).all()
    form.responsible_authority_id.choices = [(0, "None or not known")] + [
        (la.id, la.name) for la in authorities
    ]
    query = request.args.get("q", "").strip()[:100]
    school, error = _chosen_school(request.values.get("school_id") or request.args.get("school"))
    if request.method == "POST" and form.validate_on_submit() and school is not None:
        try:
            upn = validate_upn(form.child_upn.data) if form.child_upn.data else None
            transfer = service.create_draft(
                db.session,
                sender=current_user,
                receiving_school=school,
                child=service.ChildDetails(
                    initials=(form.child_initials.data or "").strip().upper(),
                    date_of_birth=form.child_date_of_birth.data,
                    upn=upn,
                    looked_after=bool(form.looked_after.data),
                    left_on=form.left_on.data,
                ),
                responsible_authority=db.session.get(Organisation, form.responsible_authority_id.data or 0)
                if form.responsible_authority_id.data
                else school.local_authority,
                note=(form.note.data or "").strip(),
            )
        except (InvalidUPN, service.TransferError) as problem:
            db.session.rollback()
            error = str(problem)
        else:
            db.session.commit()
            return redirect(url_for("transfers.detail", transfer_id=transfer.id))
    if request.method == "POST" and school is None:
        error = error or "Choose the school the child is moving to"
    results = find_schools(db.session, query) if query and school is None else []
    if school is not None:
        form.school_id.data = str(school.id)
        if request.method == "GET" and school.local_authority_id:
            form.responsible_authority_id.data = school.local_authority_id
    return render_template(
        "transfers/new.html", form=form, query=query, results=results, school=school, error=error
    )


def _chosen_school(raw: str | None) -> tuple[Organisation | None, str | None]:
    """The receiving school named by a (possibly forged) id, or why it cannot be one."""
    if not raw or not raw.isdigit():
        return None, None
    school = db.session.get(Organisation, int(raw))
    if school is None or not school.is_school or not school.is_active:
        return None, "Choose an open school to send the records to"
    if school.id == current_user.organisation_id:
        return None, "The receiving school must be a different school"
    return school, None


@bp.route("/<int:transfer_id>")
def detail(transfer_id: int) -> str:
    """The transfer's page: what it is, its documents, and what the user can do with it."""
    transfer = transfer_for(current_user, transfer_id)
    relations = relations_to(current_user, transfer)
    if Relation.RECIPIENT in relations and Relation.SENDER not in relations:
        service.record_opened(db.session, transfer, current_user)
        db.session.commit()
    failed_notifications = []
    if Relation.SENDER in relations:
        failed_notifications = [
            n for n in notifications_for(transfer) if n.status.value != "sent" and n.attempts > 0
        ]
    return render_template(
        "transfers/detail.html",
        transfer=transfer,
        relations=relations,
        Relation=Relation,
        show_contents=may_see_contents(current_user, transfer),
        stored=service.stored_documents(transfer),
        available=service.is_available_to_recipients(transfer),
        upload_form=UploadForm(),
        action_form=ActionForm(),
        receipt_form=ConfirmReceiptForm(),
        extend_form=ExtendForm(),
        states=states,
        S=TransferStatus,
        failed_notifications=failed_notifications,
        allowed_description=ALLOWED_DESCRIPTION,
        upload_limit=services.settings().upload_limit_bytes,
    )


def notifications_for(transfer: Transfer) -> list[Notification]:
    """The e-mails queued for a transfer (shown to the sender when one has not gone)."""
    return list(db.session.scalars(select(Notification).where(Notification.transfer_id == transfer.id)))


@bp.route("/<int:transfer_id>/documents", methods=["POST"])
@csrf.exempt  # type: ignore[untyped-decorator]  # the token is checked below, from the streamed body, before any file byte is kept
def upload(transfer_id: int) -> BaseResponse | tuple[str, int]:
    """Stream one document into encrypted storage."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.SENDER})
    _require_current_training()
    if transfer.status is not TransferStatus.DRAFT:
        flash("Documents can only be added before the records are sent.", "error")
        return redirect(url_for("transfers.detail", transfer_id=transfer.id))
    limit = services.settings().upload_limit_bytes
    # The app caps bodies at 1 MiB; this view alone streams up to the upload limit (plus form overhead).
    request.max_content_length = limit + 64 * 1024
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        # Refused from the declared length alone, before a byte of the body is read.
        _audit_upload_refused(transfer, "too_large")
        return _file_too_large(limit)
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data" or "boundary" not in options:
        abort(400)
    try:
        stream: BinaryIO = request.stream  # type: ignore[assignment]  # Werkzeug types it as IO[bytes]
        form = parse_streamed_upload(
            stream, options["boundary"].encode("latin-1"), file_field="file", limit=limit
        )
        validate_csrf(form.fields.get("csrf_token"))
    except ValidationError:
        raise CSRFError("The CSRF token is missing or invalid.") from None
    except FormTooLarge as problem:
        _audit_upload_refused(transfer, "form_too_large")
        return render_error(413, f"The upload was refused: {problem}. Nothing was stored.")
    except UploadMalformed as problem:
        flash(f"The upload did not work: {problem}. Choose the file and try again.", "error")
        return redirect(url_for("transfers.detail", transfer_id=transfer.id))
    try:
        category = DocumentCategory(form.fields.get("category", ""))
    except ValueError:
        flash("Choose what the document is.", "error")
        return redirect(url_for("transfers.detail", transfer_id=transfer.id))
    if not form.filename:
        flash("Choose a file to upload.", "error")
        return redirect(url_for("transfers.detail", transfer_id=transfer.id))
    try:
        document = documents.store_document(
            db.session,
            store=services.object_store(),
            wrapper=services.key_wrapper(),
            transfer=transfer,
            uploader_id=current_user.id,
            category=category,
            upload=documents.UploadedFile(form.filename, form.file),
        )
    except UploadTooLarge:
        _audit_upload_refused(transfer, "too_large")
        return _file_too_large(limit)
    except FileRefused as refused:
        _audit_upload_refused(transfer, "type")
        flash(str(refused), "error")
    except StorageError:
        _audit_upload_refused(transfer, "storage_unavailable")
        return render_error(
            503,
            "The document store could not be reached, so the file was not uploaded and nothing was "
            "stored. The records have not been sent. Try again in a few minutes.",
        )
    except KeyServiceError:
        _audit_upload_refused(transfer, "key_service_unavailable")
        return render_error(
            503,
            "The encryption service could not be reached, so the file was not uploaded and nothing "
            "was kept. The records have not been sent. Try again in a few minutes.",
        )
    except SQLAlchemyError:
        # store_document has already deleted the object it wrote (a compensating action).
        _audit_upload_refused(transfer, "database_unavailable")
        return render_error(
            503,
            "The upload could not be recorded, so the file was not kept. The records have not been "
            "sent. Try again in a few minutes.",
        )
    except FormTooLarge as problem:
        _audit_upload_refused(transfer, "form_too_large")
        return render_error(413, f"The upload was refused: {problem}. Nothing was stored.")
    except UploadMalformed as problem:
        flash(f"The upload did not work: {problem}. Choose the file and try again.", "error")
    else:
        flash(f"{document.display_filename} has been uploaded and encrypted.", "success")
    return redirect(url_for("transfers.detail", transfer_id=transfer.id))


def _file_too_large(limit: int) -> tuple[str, int]:
    return render_error(
        413,
        f"The largest file you can upload is {filesize(limit)}. Nothing was stored. Make the file "
        "smaller (for example, scan it at a lower resolution) or split it into parts, then try again.",
    )


def _audit_upload_refused(transfer: Transfer, reason: str) -> None:
    transfer_id = transfer.id
    try:
        db.session.rollback()
        audit.record(
            db.session,
            "document.upload",
            outcome=Outcome.FAILURE,
            object_type="transfer",
            object_id=transfer_id,
            details={"reason": reason},
        )
        db.session.commit()
    except SQLAlchemyError:
        # The database itself may be what failed; the refusal is logged instead.
        db.session.rollback()
        log.warning("could not audit a refused upload to transfer %s (%s)", transfer_id, reason)


@bp.route("/<int:transfer_id>/documents/<int:document_id>/remove", methods=["POST"])
def remove_document(transfer_id: int, document_id: int) -> BaseResponse:
    """Take a document out of a draft (it is crypto-shredded)."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.SENDER})
    document = document_for(current_user, transfer, document_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    if transfer.status is not TransferStatus.DRAFT:
        flash(
            "Documents cannot be removed after the records are sent. Withdraw the transfer instead.", "error"
        )
    else:
        documents.shred_document(db.session, services.object_store(), document, reason="removed_from_draft")
        flash(f"{document.display_filename} has been removed.", "success")
    return redirect(url_for("transfers.detail", transfer_id=transfer.id))


@bp.route("/<int:transfer_id>/send", methods=["GET", "POST"])
def send(transfer_id: int) -> BaseResponse | str:
    """Check your answers, then send."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.SENDER})
    _require_current_training()
    form = ActionForm()
    if form.validate_on_submit():
        settings = services.settings()
        try:
            service.send(
                db.session,
                transfer,
                expiry_days=transfer.sending_organisation.max_transfer_days,
                public_base_url=settings.public_base_url,
            )
        except (service.TransferError, states.TransitionNotAllowed) as problem:
            db.session.rollback()
            flash(str(problem), "error")
            return redirect(url_for("transfers.detail", transfer_id=transfer.id))
        db.session.commit()
        notifications.send_due(db.session, smtp_url=settings.smtp_url, sender=settings.mail_from)
        if (
            transfer.status is TransferStatus.AWAITING_DESIGNATED_TEACHER
            and transfer.responsible_authority_id
        ):
            flash(
                "Sent. The school has no designated teacher on Handover yet, so the records are waiting "
                "with the local authority, who will invite one.",
                "success",
            )
        elif transfer.status is TransferStatus.AWAITING_DESIGNATED_TEACHER:
            # No authority was named, so no caseworker has been told: the sender must not think so.
            flash(
                "Sent, but the school has no designated teacher on Handover yet and no local authority "
                "was named, so nobody has been told. The records will wait until the school has a "
                "designated teacher: phone the school to ask them to get one.",
                "warning",
            )
        else:
            flash("Sent. The school's designated teachers have been told records are waiting.", "success")
        return redirect(url_for("transfers.detail", transfer_id=transfer.id))
    return render_template(
        "transfers/check.html", transfer=transfer, form=form, stored=service.stored_documents(transfer)
    )


@bp.route("/<int:transfer_id>/documents/<int:document_id>/link", methods=["POST"])
def download_link(transfer_id: int, document_id: int) -> BaseResponse:
    """Issue a single-use, five-minute link bound to this user and document, and follow it."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.RECIPIENT, Relation.SENDER})
    document = document_for(current_user, transfer, document_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    _require_current_training()
    relations = relations_to(current_user, transfer)
    if Relation.RECIPIENT not in relations or not service.is_available_to_recipients(transfer):
        abort(410)
    if not service.category_allowed_for(document.category, current_user):
        policy.deny("document", document.id)
    try:
        token = service.issue_download_link(
            db.session, document, current_user, minutes=service.DEFAULT_LINK_MINUTES
        )
    except service.TransferError:
        db.session.rollback()
        abort(410)
    db.session.commit()
    return redirect(url_for("transfers.download", token=token))


@bp.route("/download/<token>")
def download(token: str) -> Response | tuple[str, int]:
    """Stream the decrypted document. The link works once, for its user, for five minutes."""
    try:
        document = service.redeem_download_link(db.session, token, current_user)
    except service.DownloadLinkInvalid as invalid:
        db.session.rollback()
        audit.record(
            db.session,
            "document.download",
            outcome=Outcome.DENIED,
            object_type="download_link",
            details={"reason": invalid.reason},
        )
        db.session.commit()
        return render_template("transfers/link_unusable.html", reason=invalid.reason), invalid.status
    db.session.commit()  # the link is used up, whatever happens next
    store, wrapper = services.object_store(), services.key_wrapper()
    chunks = documents.plaintext_chunks(store, wrapper, document)
    try:
        first = next(chunks, b"")  # fail before any header is sent if the key or object is gone
    except (DecryptionFailed, ObjectMissing):
        # Tampered, truncated or lost: nothing is served, and the document is marked damaged.
        documents.record_integrity_failure(db.session, document)
        settings = services.settings()
        notifications.send_due(db.session, smtp_url=settings.smtp_url, sender=settings.mail_from)
        return render_template("transfers/link_unusable.html", reason="integrity"), 500
    except documents.DocumentUnavailable:
        db.session.rollback()
        return render_template("transfers/link_unusable.html", reason="document_shredded"), 410
    except (StorageError, KeyServiceError):
        # The store or the key service is down: fail closed, and do not call the document damaged.
        _audit_download_error(document, "storage_unavailable")
        return render_error(
            503, "The document cannot be fetched at the moment. Nothing was downloaded. Try again later."
        )
    service.record_download(db.session, document)
    db.session.commit()
    document_id = document.id
    # Flask tears the request's database session down before the body is sent, so the rest of
    # the stream must not touch objects loaded in it (the signed-in user among them).
    actor = (current_user.id, current_user.organisation_id)

    def body() -> Iterator[bytes]:
        yield first
        try:
            yield from chunks
        except DecryptionFailed:
            # Abort the connection: with Content-Length set, the client sees an incomplete download.
            failed = db.session.get(Document, document_id)
            if failed is not None:
                documents.record_integrity_failure(db.session, failed, actor=actor)
            raise
        # Reached only when every byte was handed to the server: a cut or killed download never
        # gets this event, so "downloaded" (link used) and "received whole" are told apart.
        audit.record(
            db.session,
            "document.download_complete",
            object_type="document",
            object_id=document_id,
            actor_user_id=actor[0],
            actor_organisation_id=actor[1],
        )
        db.session.commit()

    return Response(stream_with_context(body()), headers=attachment_headers(document))


def _audit_download_error(document: Document, reason: str) -> None:
    document_id, transfer_id = document.id, document.transfer_id
    db.session.rollback()
    audit.record(
        db.session,
        "document.download",
        outcome=Outcome.ERROR,
        object_type="document",
        object_id=document_id,
        details={"transfer_id": transfer_id, "reason": reason},
    )
    db.session.commit()


@bp.route("/<int:transfer_id>/confirm-receipt", methods=["POST"])
def confirm_receipt(transfer_id: int) -> BaseResponse:
    """The designated teacher confirms the records arrived."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.RECIPIENT})
    form = ConfirmReceiptForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        service.confirm_receipt(db.session, transfer, current_user, (form.comment.data or "").strip())
    except (service.TransferError, states.TransitionNotAllowed) as problem:
        db.session.rollback()
        flash(str(problem), "error")
    else:
        db.session.commit()
        settings = services.settings()
        notifications.send_due(db.session, smtp_url=settings.smtp_url, sender=settings.mail_from)
        flash("Thank you. The sending school can now see that the records arrived.", "success")
    return redirect(url_for("transfers.detail", transfer_id=transfer.id))


@bp.route("/<int:transfer_id>/revoke", methods=["POST"])
def revoke(transfer_id: int) -> BaseResponse:
    """Withdraw the transfer: every link stops working at once."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.SENDER})
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        service.revoke(db.session, transfer, current_user)
    except (service.TransferError, states.TransitionNotAllowed) as problem:
        db.session.rollback()
        flash(str(problem), "error")
    else:
        db.session.commit()
        flash("The transfer has been withdrawn. Its documents will be destroyed.", "success")
    return redirect(url_for("transfers.detail", transfer_id=transfer.id))


@bp.route("/<int:transfer_id>/extend", methods=["POST"])
def extend(transfer_id: int) -> BaseResponse:
    """Keep the transfer available for longer (within the organisation's maximum)."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.SENDER})
    form = ExtendForm()
    if not form.validate_on_submit() or form.new_expiry.data is None:
        flash("Enter the new expiry date, for example 27 3 2027.", "error")
        return redirect(url_for("transfers.detail", transfer_id=transfer.id))
    new_expiry = datetime.combine(form.new_expiry.data, time(23, 59), tzinfo=ENGLAND).astimezone(UTC)
    try:
        service.extend(
            db.session, transfer, new_expiry, max_days=transfer.sending_organisation.max_transfer_days * 2
        )
    except service.TransferError as problem:
        db.session.rollback()
        flash(str(problem), "error")
    else:
        db.session.commit()
        flash("The expiry date has been changed.", "success")
    return redirect(url_for("transfers.detail", transfer_id=transfer.id))
