"""Sign-in and enrolment forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from portal.auth.passwords import MAX_LENGTH, TOO_LONG_MESSAGE


class SignInForm(FlaskForm):
    """E-mail, password and a code together (see :mod:`portal.auth.signin` for why)."""

    email = EmailField(
        "Email address", validators=[DataRequired("Enter your email address"), Length(max=254)]
    )
    password = PasswordField("Password", validators=[DataRequired("Enter your password")])
    code = StringField(
        "Security code",
        description="The 6-digit code from your authenticator app, or one of your recovery codes",
        validators=[DataRequired("Enter the security code from your authenticator app"), Length(max=40)],
    )


class SetPasswordForm(FlaskForm):
    """Choose a password during enrolment."""

    password = PasswordField(
        "Create a password",
        description="At least 12 characters. A few unrelated words make a strong password you can remember.",
        # The same limit and words as check_new_password, so a pasted 10,000-character "password"
        # gets the real rule back (not WTForms' "Field cannot be longer than …") and is never hashed.
        validators=[
            DataRequired("Enter a password"),
            Length(max=MAX_LENGTH, message=TOO_LONG_MESSAGE),
        ],
    )
    confirm = PasswordField(
        "Confirm your password",
        validators=[DataRequired("Confirm your password"), EqualTo("password", "The passwords do not match")],
    )


class ConfirmAuthenticatorForm(FlaskForm):
    """Prove the authenticator app was set up by typing a current code."""

    code = StringField(
        "Security code",
        description="The 6-digit code your authenticator app now shows for Handover",
        validators=[DataRequired("Enter the 6-digit code from your authenticator app"), Length(max=12)],
    )


class SignOutForm(FlaskForm):
    """Signing out is a POST, so another site cannot sign a user out with a link."""
