"""Views for signing in and out and for enrolment. Thin: the rules live in the modules they call."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask_limiter import RequestLimit
from flask_login import current_user
from werkzeug.wrappers import Response

from portal import audit, services
from portal.audit import Outcome
from portal.auth import bp, invitations, recovery, sessions, totp
from portal.auth.forms import ConfirmAuthenticatorForm, SetPasswordForm, SignInForm, SignOutForm
from portal.auth.guard import public, require_sign_in, safe_next
from portal.auth.passwords import PasswordRejected, check_new_password
from portal.auth.signin import Credentials, SignInFailed, SignInThrottled
from portal.auth.signin import sign_in as check_sign_in
from portal.auth.throttle import PER_ACCOUNT_ADDRESS_LIMIT, PER_ADDRESS_LIMIT, account_and_address_key
from portal.extensions import db, limiter
from portal.models import Invitation, Role, User, utcnow
from portal.transfers.service import deliver_waiting

GENERIC_FAILURE = "The email address, password or security code is not right. Check them and try again."
ENROLMENT_KEY = "enrolment_invitation_id"

bp.before_app_request(require_sign_in)


def _audit_throttled(limit: RequestLimit) -> None:
    audit.record(db.session, "auth.sign_in", outcome=Outcome.THROTTLED, details={"limit": str(limit.limit)})
    db.session.commit()


def _sign_in_failed(_response: Response) -> bool:
    return bool(g.get("sign_in_failed"))


@bp.route("/sign-in", methods=["GET", "POST"])
@public
@limiter.limit(PER_ADDRESS_LIMIT, methods=["POST"], on_breach=_audit_throttled)
@limiter.limit(
    PER_ACCOUNT_ADDRESS_LIMIT,
    methods=["POST"],
    key_func=account_and_address_key,
    deduct_when=_sign_in_failed,
    on_breach=_audit_throttled,
)
def sign_in() -> Response | str | tuple[str, int]:
    """E-mail, password and security code on one page."""
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = SignInForm()
    if form.validate_on_submit():
        credentials = Credentials(form.email.data or "", form.password.data or "", form.code.data or "")
        try:
            result = check_sign_in(
                db.session,
                credentials,
                client_address=request.remote_addr or "",
                secret_key=services.settings().secret_key,
                hashing=services.password_hashing(),
                keyring=services.keyring(),
            )
        except SignInThrottled as throttled:
            audit.record(
                db.session, "auth.sign_in", outcome=Outcome.THROTTLED, details={"rule": throttled.rule}
            )
            db.session.commit()
            abort(429)
        except SignInFailed as failure:
            g.sign_in_failed = True
            user = failure.user
            _audit_about_self(
                user, "auth.sign_in", outcome=Outcome.FAILURE, details={"reason": failure.reason}
            )
            db.session.commit()
            form.password.data = form.code.data = ""
            return render_template("auth/sign_in.html", form=form, failure=GENERIC_FAILURE)
        user = result.user
        sessions.start_session(user)
        _audit_about_self(
            user, "auth.sign_in", details={"factor": "recovery_code" if result.used_recovery_code else "totp"}
        )
        db.session.commit()
        if result.used_recovery_code:
            flash(
                f"You signed in with a recovery code. You have {result.remaining_recovery_codes} left. "
                "If you have lost your authenticator, ask your administrator to reset it.",
                "warning",
            )
        return redirect(safe_next(request.args.get("next"), url_for("home.index")))
    if g.get("session_expired"):
        flash("You were signed out because you had not used the service for a while. Sign in again.", "info")
    return render_template("auth/sign_in.html", form=form, failure=None)


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Response:
    """End the session on the server, not just in the browser."""
    form = SignOutForm()
    if not form.validate_on_submit():
        abort(400)
    audit.record(db.session, "auth.sign_out", object_type="user", object_id=current_user.id)
    sessions.end_session()
    db.session.commit()
    flash("You have signed out.", "success")
    return redirect(url_for("auth.sign_in"))


@bp.route("/invitation/<token>")
@public
def accept_invitation(token: str) -> Response | tuple[str, int]:
    """Exchange the e-mailed link for an enrolment in this browser, then drop the token from the URL."""
    try:
        invitation = invitations.find_open_invitation(db.session, token)
    except invitations.InvitationInvalid as invalid:
        audit.record(
            db.session, "auth.invitation.open", outcome=Outcome.DENIED, details={"reason": invalid.reason}
        )
        db.session.commit()
        return _invitation_unusable()
    if current_user.is_authenticated:
        sessions.end_session()
    session.clear()
    session[ENROLMENT_KEY] = invitation.id
    audit.record(
        db.session,
        "auth.invitation.open",
        object_type="invitation",
        object_id=invitation.id,
        actor_user_id=invitation.user_id,
        actor_organisation_id=invitation.user.organisation_id,
    )
    db.session.commit()
    return redirect(url_for("auth.enrol_password"))


@bp.route("/enrol/password", methods=["GET", "POST"])
@public
def enrol_password() -> Response | str | tuple[str, int]:
    """Step 1 of enrolment: choose a password."""
    invitation = _enrolling_invitation()
    if invitation is None:
        return _invitation_unusable()
    user = invitation.user
    form = SetPasswordForm()
    error = None
    if form.validate_on_submit():
        try:
            check_new_password(form.password.data or "", email=user.email)
        except PasswordRejected as rejected:
            error = str(rejected)
        else:
            user.password_hash = services.password_hashing().hash(form.password.data or "")
            user.password_changed_at = utcnow()
            # A fresh seed every time enrolment restarts: an abandoned attempt's QR code is worthless.
            user.totp_secret_sealed = totp.seal_secret(services.keyring(), user.id, totp.new_secret())
            user.totp_enrolled_at = None
            user.totp_last_timecode = None
            # The password just changed: sessions opened with the old one end now, not only
            # once the authenticator is confirmed (ASVS 7.4.3).
            ended = sessions.end_all_sessions(user.id)
            _audit_about_self(user, "auth.enrol.password", details={"sessions_ended": ended})
            db.session.commit()
            return redirect(url_for("auth.enrol_authenticator"))
    return render_template("auth/enrol_password.html", form=form, user=user, error=error)


@bp.route("/enrol/authenticator", methods=["GET", "POST"])
@public
def enrol_authenticator() -> Response | str | tuple[str, int]:
    """Step 2: scan the QR code (or type the key) and prove it works; then show recovery codes once."""
    invitation = _enrolling_invitation()
    if (
        invitation is None
        or invitation.user.password_hash is None
        or invitation.user.totp_secret_sealed is None
    ):
        return _invitation_unusable()
    user = invitation.user
    secret = totp.open_secret(services.keyring(), user)
    form = ConfirmAuthenticatorForm()
    error = None
    if form.validate_on_submit():
        try:
            user.totp_last_timecode = totp.accept_code(secret, form.code.data or "", last_timecode=None)
        except totp.CodeRejected:
            error = (
                "That code did not match. Check the time on your phone is set automatically and try again."
            )
        else:
            try:
                invitations.mark_accepted(db.session, invitation)
            except invitations.InvitationInvalid:
                db.session.rollback()
                return _invitation_unusable()
            user.totp_enrolled_at = utcnow()
            codes = recovery.generate_codes(db.session, services.password_hashing(), user)
            # New credentials: any session opened with the old ones must not live on.
            sessions.end_all_sessions(user.id)
            _audit_about_self(user, "auth.enrol.complete")
            if user.role is Role.DESIGNATED_TEACHER:
                # Records held for this school while it had no designated teacher go out now.
                deliver_waiting(db.session, user.organisation_id, services.settings().public_base_url)
            db.session.commit()
            session.clear()
            return render_template("auth/recovery_codes.html", codes=codes, user=user)
    enrolment = totp.enrolment_for(secret, user.email)
    return render_template("auth/enrol_authenticator.html", form=form, enrolment=enrolment, error=error)


def _audit_about_self(
    user: User | None,
    action: str,
    *,
    outcome: str = Outcome.SUCCESS,
    details: dict[str, str | int | bool | None] | None = None,
) -> None:
    """Audit something a person did to their own account before (or while) signing in.

    No session exists yet, so the actor is named explicitly rather than taken from the request.
    """
    audit.record(
        db.session,
        action,
        outcome=outcome,
        object_type="user" if user else None,
        object_id=user.id if user else None,
        actor_user_id=user.id if user else None,
        actor_organisation_id=user.organisation_id if user else None,
        details=details,
    )


def _enrolling_invitation() -> Invitation | None:
    invitation_id = session.get(ENROLMENT_KEY)
    if not isinstance(invitation_id, int):
        return None
    try:
        return invitations.check_open(db.session.get(Invitation, invitation_id))
    except invitations.InvitationInvalid:
        session.pop(ENROLMENT_KEY, None)
        return None


def _invitation_unusable() -> tuple[str, int]:
    return render_template("auth/invitation_unusable.html"), 410
