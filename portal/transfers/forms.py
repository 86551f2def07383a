"""Transfer forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, Field, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from portal.models import DocumentCategory


def initials_only(form: FlaskForm, field: Field) -> None:
    """Refuse, with a warning that says why, anything that looks like a name where initials belong."""
    value = (field.data or "").strip()
    letters = value.replace(".", "").replace(" ", "")
    if (len(value.split()) > 1 and any(len(word) > 2 for word in value.split())) or len(letters) > 4:
        raise ValidationError(
            "This looks like a name. Enter the child's initials only, like JS: "
            "Handover never needs a child's name (data minimisation)."
        )
    if not letters.isalpha() or not 1 <= len(letters) <= 4:
        raise ValidationError("Enter initials only: 1 to 4 letters, like JS")
    field.data = letters.upper()


class NewTransferForm(FlaskForm):
    """The child (minimally) and where their records go."""

    school_id = HiddenField(validators=[DataRequired("Choose the school the child is moving to")])
    child_initials = StringField(
        "Child's initials",
        description="Initials only, for example JS. Never type the child's name.",
        validators=[DataRequired("Enter the child's initials"), Length(max=60), initials_only],
    )
    child_date_of_birth = DateField("Date of birth", validators=[DataRequired("Enter a real date of birth")])
    child_upn = StringField(
        "Unique pupil number (UPN) (optional)",
        description="13 characters, starting with a letter, for example A123456789012",
        validators=[Optional(), Length(max=20)],
    )
    looked_after = BooleanField("The child is looked after by a local authority")
    responsible_authority_id = SelectField("Responsible local authority", coerce=int, validators=[Optional()])
    left_on = DateField("Date the child left your school", validators=[DataRequired("Enter a real date")])
    note = TextAreaField(
        "Note for the receiving school (optional)",
        description="Plain text. Do not include the child's name.",
        validators=[Optional(), Length(max=1000, message="The note must be 1000 characters or fewer")],
    )


class UploadForm(FlaskForm):
    """Rendered for its CSRF token and category list; the view parses the body as a stream."""

    category = SelectField(
        "What is this document?",
        choices=[(c.value, c.label) for c in DocumentCategory],
        validators=[DataRequired()],
    )


class ConfirmReceiptForm(FlaskForm):
    """The digital return label."""

    comment = TextAreaField("Comment (optional)", validators=[Optional(), Length(max=500)])


class ExtendForm(FlaskForm):
    """A later expiry date."""

    new_expiry = DateField("New expiry date", validators=[DataRequired("Enter a real date")])


class ActionForm(FlaskForm):
    """A bare POST with a CSRF token."""
