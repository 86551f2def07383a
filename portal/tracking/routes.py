"""Tracking views: the caseworker dashboard, a transfer's clock and timeline, chasing, child
histories and the authority's school calendar. Thin: the rules live in the domain modules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from portal import audit, notifications, policy, services
from portal.extensions import db
from portal.models import CalendarEntryKind, DocumentCategory, Organisation, Role, Transfer, TransferStatus
from portal.models.base import today_in_england
from portal.tracking import bp, calendar, chase, dashboard, deadlines, exports, history, ics, timeline
from portal.tracking.deadlines import Clock
from portal.tracking.forms import (
    CalendarEntryForm,
    CalendarImportForm,
    CalendarRemoveForm,
    ChaseForm,
    ChildSearchForm,
    DashboardFilterForm,
    rules_form,
)
from portal.transfers.access import Relation, may_see_contents, relations_to, transfer_for
from portal.upn import InvalidUPN, validate_upn

DASHBOARD_EXPORT_HEADER = (
    "Reference",
    "Child initials",
    "UPN",
    "From school",
    "To school",
    "Categories",
    "Status",
    "Left on",
    "Deadline",
    "Deadline set by",
    "School days left (negative: overdue)",
    "Clock",
    "Last access",
)


def _csv_response(lines: Iterator[str], filename: str) -> Response:
    # Rows are read from the database while the file streams: keep the request's context for them.
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _filters(form: DashboardFilterForm) -> dashboard.Filters:
    def pick(
        value: str | None, kind: type[dashboard.View] | type[dashboard.Sort] | type[TransferStatus]
    ) -> object:
        try:
            return kind(value) if value else None
        except ValueError:
            return None

    school = form.school.raw_data[0] if form.school.raw_data else ""
    page = form.page.data if form.page.data and not form.page.errors else 1
    return dashboard.Filters(
        view=pick(form.view.data, dashboard.View) or dashboard.View.ALL,  # type: ignore[arg-type]
        status=pick(form.status.data, TransferStatus),  # type: ignore[arg-type]
        school_id=int(school) if school.isdigit() else None,
        sort=pick(form.sort.data, dashboard.Sort) or dashboard.Sort.DEADLINE,  # type: ignore[arg-type]
        page=page,
    )


@bp.route("/dashboard")
@policy.roles_required(Role.CASEWORKER)
def dashboard_page() -> str:
    """Every transfer of the authority's children, with its clock, filters and counts."""
    form = DashboardFilterForm(formdata=request.args)
    form.school.choices = [("", "Any school")] + [
        (str(i), name) for i, name in dashboard.schools(db.session, current_user.organisation_id)
    ]
    filters = _filters(form)
    today = today_in_england()
    result = dashboard.page(db.session, current_user.organisation_id, filters, today)
    counts = dashboard.counts(db.session, current_user.organisation_id, today)
    db.session.commit()  # deadlines computed for new transfers are kept
    query = {k: v for k, v in request.args.items() if k != "page"}
    return render_template(
        "tracking/dashboard.html", form=form, page=result, counts=counts, filters=filters, query=query
    )


@bp.route("/dashboard.csv")
@policy.roles_required(Role.CASEWORKER)
def dashboard_export() -> Response:
    """The filtered dashboard as a spreadsheet (every page, up to the export limit); audited."""
    filters = _filters(DashboardFilterForm(formdata=request.args))
    today = today_in_england()
    audit.record(
        db.session,
        "tracking.dashboard.export",
        object_type="organisation",
        object_id=current_user.organisation_id,
        details={"view": filters.view.value, "status": filters.status.value if filters.status else None},
    )
    db.session.commit()
    rows = dashboard.iter_rows(db.session, current_user.organisation_id, filters, today)
    return _csv_response(
        exports.csv_lines(DASHBOARD_EXPORT_HEADER, _dashboard_cells(rows)),
        exports.export_filename("dashboard", "csv", today),
    )


def _dashboard_cells(rows: Iterator[dashboard.Row]) -> Iterator[Sequence[exports.Cell]]:
    for row in rows:
        yield (
            row.reference,
            row.child_initials,
            row.child_upn,
            row.from_school,
            row.to_school,
            "; ".join(c.label for c in row.categories),
            row.status.label,
            row.left_on,
            row.clock.due_on,
            row.clock.category.label,
            row.clock.school_days_left,
            row.clock.label,
            row.last_access,
        )


@dataclass(frozen=True)
class TransferPanel:
    """What the transfer page shows about the clock and the timeline."""

    clock: Clock
    entries: list[timeline.Entry]
    show_contents: bool


def transfer_panel(transfer: Transfer) -> TransferPanel | None:
    """The clock and timeline for the signed-in user, or None if they have no business seeing them.

    Called by ``templates/tracking/_timeline.html`` (included in the transfer page, whose view
    has already checked access); the relation is checked again here so the helper is safe alone.
    """
    if not current_user.is_authenticated or not relations_to(current_user, transfer):
        return None
    show = may_see_contents(current_user, transfer)
    return TransferPanel(
        clock=deadlines.clock_of(db.session, transfer, today_in_england()),
        entries=timeline.build(db.session, transfer, show_contents=show),
        show_contents=show,
    )


@bp.app_context_processor
def _timeline_helper() -> dict[str, object]:
    return {"tracking_panel": transfer_panel}


@bp.route("/transfers/<int:transfer_id>")
def transfer_page(transfer_id: int) -> str:
    """One transfer's clock and timeline (sender, recipients, caseworker); caseworkers can chase from here."""
    transfer = transfer_for(current_user, transfer_id)
    is_caseworker = Relation.CASEWORKER in relations_to(current_user, transfer)
    return render_template(
        "tracking/transfer.html",
        transfer=transfer,
        panel=transfer_panel(transfer),
        chase_form=ChaseForm() if is_caseworker else None,
        is_caseworker=is_caseworker,
        running=transfer.status in deadlines.RUNNING,
    )


@bp.route("/transfers/<int:transfer_id>/chase", methods=["POST"])
def chase_transfer(transfer_id: int) -> BaseResponse:
    """E-mail the sender or the recipients a reminder (no child details); audited."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.CASEWORKER})
    form = ChaseForm()
    if not form.validate_on_submit():
        flash("Choose who to remind.", "error")
        return redirect(url_for("tracking.transfer_page", transfer_id=transfer.id))
    settings = services.settings()
    try:
        sent = chase.chase(
            db.session, transfer, chase.Party(form.party.data), public_base_url=settings.public_base_url
        )
    except chase.ChaseRefused as refused:
        db.session.rollback()
        flash(str(refused), "error")
    else:
        db.session.commit()
        notifications.send_due(db.session, smtp_url=settings.smtp_url, sender=settings.mail_from)
        flash(f"Reminder sent to {sent} {'person' if sent == 1 else 'people'}.", "success")
    return redirect(url_for("tracking.transfer_page", transfer_id=transfer.id))


def _child_history(transfer: Transfer) -> list[history.HistoryItem]:
    return history.history(db.session, current_user.organisation_id, history.ChildKey.of(transfer))


@bp.route("/transfers/<int:transfer_id>/child")
def child_history(transfer_id: int) -> str:
    """Every transfer of this transfer's child in the caseworker's authority."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.CASEWORKER})
    items = _child_history(transfer)
    audit.record(
        db.session,
        "tracking.child_history.view",
        object_type="transfer",
        object_id=transfer.id,
        details={"transfers": len(items)},
    )
    db.session.commit()
    return render_template("tracking/child_history.html", items=items, anchor=transfer, search_form=None)


@bp.route("/transfers/<int:transfer_id>/child.csv")
def child_history_export(transfer_id: int) -> Response:
    """The child's history as a spreadsheet, for a subject access request; audited."""
    transfer = transfer_for(current_user, transfer_id, needs={Relation.CASEWORKER})
    items = _child_history(transfer)
    return _history_export(items, object_id=transfer.id)


def _history_export(items: list[history.HistoryItem], object_id: int | None) -> Response:
    # Read every row before committing the audit event (the commit expires the loaded transfers);
    # a history is at most a few hundred rows.
    rows = list(history.export_rows(items))
    audit.record(
        db.session,
        "tracking.child_history.export",
        object_type="transfer" if object_id else None,
        object_id=object_id,
        details={"transfers": len(items)},
    )
    db.session.commit()
    return _csv_response(
        exports.csv_lines(history.EXPORT_HEADER, rows),
        exports.export_filename("child-history", "csv", today_in_england()),
    )


def _child_key(form: ChildSearchForm) -> history.ChildKey | str:
    """The key searched for, or a message saying what is missing."""
    upn = None
    if form.upn.data:
        try:
            upn = validate_upn(form.upn.data)
        except InvalidUPN as problem:
            return str(problem)
    initials = (form.initials.data or "").strip().upper() or None
    if not upn and not (initials and form.date_of_birth.data):
        return "Enter a UPN, or the child's initials and date of birth"
    return history.ChildKey(initials, form.date_of_birth.data, upn)


@bp.route("/children", methods=["GET", "POST"])
@policy.roles_required(Role.CASEWORKER)
def children() -> str | Response:
    """Find a child's transfers by UPN or initials and date of birth (POST: no child details in URLs)."""
    form = ChildSearchForm()
    items: list[history.HistoryItem] | None = None
    error = None
    if form.validate_on_submit():
        key = _child_key(form)
        if isinstance(key, str):
            error = key
        else:
            items = history.history(db.session, current_user.organisation_id, key)
            if request.form.get("export"):
                return _history_export(items, object_id=None)
            audit.record(db.session, "tracking.child_history.view", details={"transfers": len(items)})
            db.session.commit()
    return render_template(
        "tracking/child_history.html", items=items, anchor=None, search_form=form, error=error
    )


# --- The authority's school calendar and deadline rules (its organisation admins) ---------------


def _authority_admin() -> Organisation:
    organisation: Organisation = current_user.organisation
    if current_user.role is not Role.ORG_ADMIN or organisation.is_school:
        policy.deny("calendar", None)
    return organisation


@bp.route("/calendar")
def calendar_page() -> tuple[str, int]:
    """Term dates, closures and deadline rules of the admin's authority."""
    authority = _authority_admin()
    return _render_calendar(authority)


def _render_calendar(
    authority: Organisation,
    *,
    entry_form: CalendarEntryForm | None = None,
    rules: object | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    page = render_template(
        "tracking/calendar.html",
        authority=authority,
        entries=calendar.entries_of(db.session, authority.id),
        entry_form=entry_form or CalendarEntryForm(),
        import_form=CalendarImportForm(),
        remove_form=CalendarRemoveForm(),
        rules_form=rules or rules_form(deadlines.rules_for(db.session, authority.id)),
        error=error,
    )
    return page, status


@bp.route("/calendar/import", methods=["POST"])
def calendar_import() -> BaseResponse | tuple[str, int]:
    """Replace the calendar with the terms and closures of an uploaded .ics file."""
    authority = _authority_admin()
    form = CalendarImportForm()
    if not form.validate_on_submit():
        abort(400)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render_calendar(authority, error="Choose a term dates file (.ics) to upload", status=400)
    data = upload.stream.read(ics.MAX_FILE_BYTES + 1)
    try:
        parsed = ics.parse_term_dates(data)
    except ics.CalendarFileRefused as refused:
        audit.record(
            db.session,
            "calendar.import",
            outcome="failure",
            object_type="organisation",
            object_id=authority.id,
        )
        db.session.commit()
        return _render_calendar(authority, error=f"The calendar was not changed. {refused}", status=400)
    calendar.replace_calendar(db.session, authority.id, parsed.runs, user=current_user, source="ics")
    db.session.commit()
    flash(
        f"Imported {len(parsed.runs)} terms and closures"
        + (
            f"; {parsed.skipped} other events were not about school days and were left out."
            if parsed.skipped
            else "."
        ),
        "success",
    )
    return redirect(url_for("tracking.calendar_page"))


@bp.route("/calendar/entries", methods=["POST"])
def calendar_add() -> BaseResponse | tuple[str, int]:
    """Add one term or closure."""
    authority = _authority_admin()
    form = CalendarEntryForm()
    if not form.validate_on_submit() or form.starts_on.data is None or form.ends_on.data is None:
        return _render_calendar(authority, entry_form=form, status=400)
    if form.ends_on.data < form.starts_on.data:
        return _render_calendar(
            authority, entry_form=form, error="The last day must be on or after the first day", status=400
        )
    run = calendar.DateRun(
        CalendarEntryKind(form.kind.data),
        form.starts_on.data,
        form.ends_on.data,
        (form.summary.data or "").strip(),
    )
    calendar.add_entry(db.session, authority.id, run, user=current_user)
    db.session.commit()
    flash("Added to the calendar.", "success")
    return redirect(url_for("tracking.calendar_page"))


@bp.route("/calendar/entries/remove", methods=["POST"])
def calendar_remove() -> BaseResponse:
    """Remove one entry of the authority's calendar."""
    authority = _authority_admin()
    form = CalendarRemoveForm()
    if not form.validate_on_submit() or not str(form.entry_id.data).isdigit():
        abort(400)
    if not calendar.remove_entry(db.session, authority.id, int(form.entry_id.data), user=current_user):
        policy.deny("calendar_entry", str(form.entry_id.data)[:20])
    db.session.commit()
    flash("Removed from the calendar.", "success")
    return redirect(url_for("tracking.calendar_page"))


@bp.route("/calendar/rules", methods=["POST"])
def calendar_rules() -> BaseResponse | tuple[str, int]:
    """Change the authority's number of school days per category."""
    authority = _authority_admin()
    form = rules_form(deadlines.rules_for(db.session, authority.id), formdata=request.form)
    if not form.validate_on_submit():
        return _render_calendar(authority, rules=form, status=400)
    wanted = {category: int(getattr(form, f"days_{category.value}").data) for category in DocumentCategory}
    deadlines.set_rules(db.session, authority.id, wanted, user=current_user)
    db.session.commit()
    flash("Deadlines saved. Every transfer's deadline will be recounted.", "success")
    return redirect(url_for("tracking.calendar_page"))
