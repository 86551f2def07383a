"""Views for organisation admins. Every view is limited to admins, and to their own organisation."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal import audit, policy, services
from portal.admin import accounts, bp
from portal.admin.forms import ActionForm, IgTrainingForm, InviteUserForm
from portal.audit import Outcome
from portal.extensions import db
from portal.invitation_mail import send_invitation
from portal.models import Role, User
from portal.models.base import today_in_england

_NOT_SENT = (
    "The invitation e-mail to {email} could not be sent. "
    'Try again later with "Send a new invitation", or ask your IT team to check the mail service.'
)


@bp.before_request
@policy.roles_required(Role.ORG_ADMIN)
def _admins_only() -> None:
    """Every view below is for organisation admins only."""


@bp.route("/users")
def users() -> str:
    """Everyone in the admin's organisation."""
    members = db.session.scalars(
        select(User).where(User.organisation_id == current_user.organisation_id).order_by(User.display_name)
    ).all()
    return render_template("admin/users.html", users=members, policy=policy)


@bp.route("/users/invite", methods=["GET", "POST"])
def invite() -> Response | str:
    """Invite a new member of staff by e-mail."""
    form = InviteUserForm()
    organisation = current_user.organisation
    form.role.choices = [(role.value, role.label) for role in accounts.roles_for(organisation)]
    error = None
    if form.is_submitted() and form.role.data and form.role.data not in dict(form.role.choices):
        # The page never offers such a role, so this is a forged form (mass assignment): refuse and record it.
        audit.record(
            db.session,
            "admin.user.invite_refused",
            outcome=Outcome.DENIED,
            details={"reason": "role_not_allowed", "role": str(form.role.data)[:40]},
        )
        db.session.commit()
    if form.validate_on_submit():
        try:
            user, token = accounts.invite_user(
                db.session,
                organisation=organisation,
                email=form.email.data or "",
                display_name=form.display_name.data or "",
                role=Role(form.role.data),
                invited_by=current_user,
                valid_hours=services.settings().invitation_valid_hours,
            )
        except accounts.AccountError as problem:
            db.session.rollback()
            error = str(problem)
        else:
            db.session.commit()
            if send_invitation(user, token):
                flash(f"Invitation sent to {user.email}.", "success")
            else:
                flash(_NOT_SENT.format(email=user.email), "error")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    return render_template("admin/invite.html", form=form, error=error)


@bp.route("/users/<int:user_id>")
def user_detail(user_id: int) -> str:
    """One user, with the actions an admin can take."""
    user = policy.user_in_my_organisation(user_id)
    ig_form = IgTrainingForm(completed_on=user.ig_training_completed_on)
    return render_template(
        "admin/user.html",
        user=user,
        ig_form=ig_form,
        action_form=ActionForm(),
        ig_current=policy.ig_training_current(user),
        ig_expires_on=policy.ig_training_expires_on(user),
    )


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
def disable(user_id: int) -> Response:
    """Disable a user: every session of theirs ends now."""
    return _simple_action(user_id, "disable")


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
def enable(user_id: int) -> Response:
    """Re-enable a disabled user."""
    return _simple_action(user_id, "enable")


@bp.route("/users/<int:user_id>/reset-authenticator", methods=["POST"])
def reset_authenticator(user_id: int) -> Response:
    """Reset password and authenticator: the user enrols again from a new invitation."""
    return _simple_action(user_id, "reset")


@bp.route("/users/<int:user_id>/resend-invitation", methods=["POST"])
def resend_invitation(user_id: int) -> Response:
    """Send a fresh invitation to a user who has not finished setting up."""
    return _simple_action(user_id, "resend")


def _simple_action(user_id: int, action: str) -> Response:
    user = policy.user_in_my_organisation(user_id)
    form = ActionForm()
    if not form.validate_on_submit():
        flash("The form had expired. Try again.", "error")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    if user.id == current_user.id and action in ("disable", "reset"):
        flash("You cannot disable or reset your own account. Ask another administrator.", "error")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    hours = services.settings().invitation_valid_hours
    token = None
    done = ""  # what happened, apart from the e-mail
    try:
        if action in ("disable", "enable"):
            accounts.set_active(db.session, user, action == "enable")
            message = f"{user.display_name} has been {'re-enabled' if action == 'enable' else 'disabled'}."
        elif action == "reset":
            token = accounts.reset_authenticator(db.session, user, invited_by=current_user, valid_hours=hours)
            done = f"{user.display_name}'s sign-in has been reset."
            message = f"{done} They have been sent a new invitation."
        else:
            token = accounts.reinvite(db.session, user, invited_by=current_user, valid_hours=hours)
            message = f"A new invitation has been sent to {user.email}."
    except accounts.AccountError as problem:
        db.session.rollback()
        flash(str(problem), "error")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    db.session.commit()
    if token and not send_invitation(user, token):
        # The change stands (the old sign-in really is gone); only the e-mail has to be tried again.
        flash(f"{done} {_NOT_SENT.format(email=user.email)}".strip(), "error")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    flash(message, "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/ig-training", methods=["POST"])
def ig_training(user_id: int) -> Response | str:
    """Record the date of the user's latest information-governance training."""
    user = policy.user_in_my_organisation(user_id)
    form = IgTrainingForm()
    if form.validate_on_submit() and form.completed_on.data:
        try:
            accounts.record_ig_training(db.session, user, form.completed_on.data, today_in_england())
        except accounts.AccountError as problem:
            db.session.rollback()
            flash(str(problem), "error")
        else:
            db.session.commit()
            flash("Training date recorded.", "success")
    else:
        flash("Enter the date the training was completed, for example 27 3 2025.", "error")
    return redirect(url_for("admin.user_detail", user_id=user.id))
