"""The audit viewer (/tracking/audit) for auditors and organisation admins. Scope and search live in
:mod:`portal.audit.viewer`; these views only read the filters, render, export and verify."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import Response, render_template, request, stream_with_context
from flask_login import current_user

from portal import audit, policy
from portal.audit import Outcome, viewer
from portal.errors import render_error
from portal.extensions import db
from portal.models import Role
from portal.models.base import ENGLAND, today_in_england
from portal.tracking import bp, exports
from portal.tracking.forms import ActionForm, AuditFilterForm

VIEWER_ROLES = (Role.AUDITOR, Role.ORG_ADMIN)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ENGLAND).astimezone(UTC)


def _scope() -> viewer.Scope:
    scope = viewer.scope_for(current_user)
    if scope is None:
        policy.deny("audit", None)
    assert scope is not None
    return scope


def _read_filters(form: AuditFilterForm) -> viewer.Filters:
    """The filters asked for; :class:`viewer.BadFilter` says what is wrong with them."""
    if not form.validate():
        raise viewer.BadFilter("Check the dates: enter them like 2026-10-23")
    object_type = form.object_type.data or None
    return viewer.Filters(
        since=_start_of(form.since.data) if form.since.data else None,
        until=_start_of(form.until.data + timedelta(days=1)) if form.until.data else None,
        actor_user_id=viewer.resolve_actor(db.session, form.actor.data or ""),
        action=(form.action.data or "").strip().lower() or None,
        object_type=object_type,
        object_id=viewer.resolve_object(db.session, object_type, form.object_id.data or ""),
        outcome=form.outcome.data or None,
    )


@bp.route("/audit")
@policy.roles_required(*VIEWER_ROLES)
def audit_page() -> tuple[str, int]:
    """Search the organisation's audit trail, newest first."""
    scope = _scope()
    form = AuditFilterForm(formdata=request.args)
    events: list[viewer.EventView] = []
    error = None
    try:
        filters = _read_filters(form)
        events = viewer.search(db.session, scope, filters, before=form.before.data or None)
    except viewer.BadFilter as problem:
        error = str(problem)
    query = {k: v for k, v in request.args.items() if k != "before" and v}
    next_before = events[-1].sequence if len(events) == viewer.PAGE_SIZE else None
    return render_template(
        "tracking/audit.html",
        form=form,
        events=events,
        error=error,
        query=query,
        next_before=next_before,
        verify_form=ActionForm(),
        scope=scope,
    ), (400 if error else 200)


@bp.route("/audit/export.csv")
@policy.roles_required(*VIEWER_ROLES)
def audit_export_csv() -> Response | tuple[str, int]:
    """The filtered events as a spreadsheet; the export is audited."""
    return _export("csv")


@bp.route("/audit/export.jsonl")
@policy.roles_required(*VIEWER_ROLES)
def audit_export_jsonl() -> Response | tuple[str, int]:
    """The filtered events as JSON lines; the export is audited."""
    return _export("jsonl")


def _export(fmt: str) -> Response | tuple[str, int]:
    """The filtered events in ``fmt`` (up to the export limit), recorded in the audit trail first."""
    scope = _scope()
    form = AuditFilterForm(formdata=request.args)
    try:
        filters = _read_filters(form)
    except viewer.BadFilter as problem:
        return render_template(
            "tracking/audit.html",
            form=form,
            events=[],
            error=str(problem),
            query={},
            next_before=None,
            verify_form=ActionForm(),
            scope=scope,
        ), 400
    audit.record(
        db.session,
        "audit.export",
        object_type="organisation",
        object_id=scope.organisation_id,
        details={
            "format": fmt,
            "action": filters.action,
            "outcome": filters.outcome,
            "since": filters.since.isoformat() if filters.since else None,
            "until": filters.until.isoformat() if filters.until else None,
        },
    )
    db.session.commit()
    rows = (event.export_row() for event in viewer.iter_events(db.session, scope, filters))
    today = today_in_england()
    if fmt == "csv":
        lines = exports.csv_lines(viewer.EXPORT_HEADER, rows)
        mimetype = "text/csv"
    else:
        lines = exports.jsonl_lines(viewer.EXPORT_HEADER, rows)
        mimetype = "application/x-ndjson"
    return Response(
        stream_with_context(lines),
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{exports.export_filename("audit", fmt, today)}"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/audit/verify", methods=["POST"])
@policy.roles_required(*VIEWER_ROLES)
def audit_verify() -> tuple[str, int]:
    """Run the hash-chain check (as ``flask --app portal audit verify`` does) and show the result."""
    scope = _scope()
    if not ActionForm().validate_on_submit():
        return render_error(400)
    report = viewer.verify(db.session)
    audit.record(
        db.session,
        "audit.verify",
        outcome=Outcome.SUCCESS if report.intact else Outcome.FAILURE,
        details={"events_checked": report.events_checked, "first_bad_sequence": report.first_bad_sequence},
    )
    db.session.commit()
    return render_template("tracking/audit_verify.html", report=report, scope=scope), 200
