"""Tracking forms: dashboard and audit filters (GET, no CSRF: they change nothing), and the POST actions."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import DateField, HiddenField, IntegerField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from portal.audit import OUTCOMES
from portal.audit.viewer import OBJECT_TYPES
from portal.models import DocumentCategory, TransferStatus
from portal.tracking.dashboard import Sort, View


class _GetForm(FlaskForm):
    """A filter form read from the query string: it only narrows what is shown, so no CSRF token."""

    class Meta:
        csrf = False


class DashboardFilterForm(_GetForm):
    """The dashboard's filters, sort and page."""

    view = SelectField("Show", choices=[(v.value, v.label) for v in View], default=View.ALL.value)
    status = SelectField(
        "Status", choices=[("", "Any status")] + [(s.value, s.label) for s in TransferStatus], default=""
    )
    school = SelectField("School", choices=[("", "Any school")], default="")
    sort = SelectField(
        "Sort by",
        choices=[
            (Sort.DEADLINE.value, "Deadline, soonest first"),
            (Sort.DEADLINE_LATEST.value, "Deadline, latest first"),
            (Sort.LEFT.value, "Date left, newest first"),
            (Sort.CHILD.value, "Child's initials"),
            (Sort.STATUS.value, "Status"),
        ],
        default=Sort.DEADLINE.value,
    )
    page = IntegerField("Page", validators=[Optional(), NumberRange(min=1, max=10_000)], default=1)


class AuditFilterForm(_GetForm):
    """The audit viewer's filters; ``before`` carries the keyset position of the next page."""

    since = DateField("From (date)", validators=[Optional()])
    until = DateField("To (date, included)", validators=[Optional()])
    actor = StringField("Who (e-mail address or user number)", validators=[Optional(), Length(max=254)])
    action = StringField(
        "Action",
        description="For example transfer.open, or transfer. for every transfer action",
        validators=[Optional(), Length(max=60)],
    )
    object_type = SelectField(
        "Object type", choices=[("", "Any")] + [(t, t.replace("_", " ")) for t in OBJECT_TYPES], default=""
    )
    object_id = StringField("Object (number or transfer reference)", validators=[Optional(), Length(max=64)])
    outcome = SelectField("Outcome", choices=[("", "Any")] + [(o, o) for o in OUTCOMES], default="")
    before = IntegerField(validators=[Optional(), NumberRange(min=1)])


class ActionForm(FlaskForm):
    """A bare POST with a CSRF token (verify the chain)."""


class ChaseForm(FlaskForm):
    """Who to remind about a transfer."""

    party = RadioField(
        "Who should be reminded?",
        choices=[
            ("sender", "The sending school"),
            ("recipients", "The receiving school's designated teachers"),
        ],
        validators=[DataRequired("Choose who to remind")],
    )


class ChildSearchForm(FlaskForm):
    """Find a child's transfers: by UPN, or by initials and date of birth (POST: keeps them out of URLs)."""

    upn = StringField("Unique pupil number (UPN)", validators=[Optional(), Length(max=20)])
    initials = StringField("Initials", validators=[Optional(), Length(max=4)])
    date_of_birth = DateField("Date of birth", validators=[Optional()])


class CalendarImportForm(FlaskForm):
    """An .ics term-dates file."""

    file = FileField("Term dates file (.ics)")


class CalendarEntryForm(FlaskForm):
    """One term or closure typed by an admin."""

    kind = SelectField(
        "Type", choices=[("term", "Term"), ("closure", "Closure (half-term, INSET day, holiday)")]
    )
    starts_on = DateField("First day", validators=[DataRequired("Enter the first day as a real date")])
    ends_on = DateField("Last day", validators=[DataRequired("Enter the last day as a real date")])
    summary = StringField("Description", validators=[Optional(), Length(max=200)])


class CalendarRemoveForm(FlaskForm):
    """Remove one entry."""

    entry_id = HiddenField(validators=[DataRequired()])


class DeadlineRulesForm(FlaskForm):
    """School days per category; fields are added per category by :func:`rules_form`."""


def rules_form(current: dict[DocumentCategory, int], formdata: object | None = None) -> FlaskForm:
    """A rules form with one field per category, filled with the authority's current numbers."""

    class Form(DeadlineRulesForm):
        pass

    for category in DocumentCategory:
        setattr(
            Form,
            f"days_{category.value}",
            IntegerField(
                category.label,
                default=current[category],
                validators=[DataRequired("Enter a number of school days"), NumberRange(min=1, max=60)],
            ),
        )
    return Form() if formdata is None else Form(formdata=formdata)
