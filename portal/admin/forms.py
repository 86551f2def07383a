"""Organisation admin forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length


class InviteUserForm(FlaskForm):
    """Invite a member of staff (the organisation is always the admin's own)."""

    display_name = StringField(
        "Full name", validators=[DataRequired("Enter the person's name"), Length(max=120)]
    )
    email = EmailField(
        "Work email address",
        validators=[
            DataRequired("Enter their work email address"),
            Email("Enter an email address in the correct format, like name@school.org.uk"),
            Length(max=254),
        ],
    )
    role = SelectField("Role", validators=[DataRequired("Choose a role")])


class IgTrainingForm(FlaskForm):
    """When the user last completed information-governance training."""

    completed_on = DateField("Date training was completed", validators=[DataRequired("Enter a real date")])


class ActionForm(FlaskForm):
    """A bare POST with a CSRF token (disable, enable, reset, resend)."""
