"""The signed-in start page, and health checks."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from portal import policy
from portal.auth.forms import SignOutForm
from portal.auth.guard import public

bp = Blueprint("home", __name__)


@bp.route("/")
def index() -> str:
    """What the signed-in user can do from here, by role."""
    return render_template(
        "home.html",
        user=current_user,
        ig_current=policy.ig_training_current(current_user),
        ig_expires_on=policy.ig_training_expires_on(current_user),
        sign_out_form=SignOutForm(),
    )


@bp.route("/healthz")
@public
def liveness() -> tuple[str, int, dict[str, str]]:
    """Liveness: the process answers. Says nothing else."""
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
