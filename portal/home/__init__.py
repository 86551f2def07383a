"""The signed-in start page, and health checks."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

from flask import Blueprint, current_app, render_template
from flask_login import current_user
from sqlalchemy import text

from portal import policy, services
from portal.auth.forms import SignOutForm
from portal.auth.guard import public
from portal.extensions import db

log = logging.getLogger(__name__)

# A full-length key prefix that no generated key will ever have (2**-128): listing it costs one
# small request and proves the store answers, whatever it holds.
READINESS_PROBE_PREFIX = "00/" + "0" * 32
# Load balancers probe every few seconds from several places; one check per process per interval
# is enough, and it keeps a probe flood from turning into a database and S3 request flood.
READINESS_CACHE_SECONDS = 5.0
_PLAIN = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}

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


@dataclass
class _Readiness:
    """This app's last readiness result, shared by its threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: bool | None = None
    checked_at: float = 0.0


@bp.route("/readyz")
@public
def readiness() -> tuple[str, int, dict[str, str]]:
    """Readiness: the database and the object store answer. Says "ready" or "not ready", nothing else.

    Why it is not ready goes to the log (the kind of failure only), never into the response.
    """
    state: _Readiness = current_app.extensions.setdefault("portal.readiness", _Readiness())
    # One thread checks; the others answer with the last result instead of piling up behind a
    # slow database or store (only the very first probes, with no result yet, wait for the check).
    if _stale(state) and state.lock.acquire(blocking=state.ready is None):
        try:
            if _stale(state):  # another thread may have checked while this one waited
                state.ready = _dependencies_answer()
                state.checked_at = time.monotonic()
        finally:
            state.lock.release()
    if state.ready:
        return "ready\n", 200, _PLAIN
    return "not ready\n", 503, _PLAIN


def _stale(state: _Readiness) -> bool:
    return state.ready is None or time.monotonic() - state.checked_at >= READINESS_CACHE_SECONDS


def _dependencies_answer() -> bool:
    ready = True
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:
        # The type only: driver messages can name hosts, users and databases.
        log.warning("readiness: the database did not answer (%s)", type(exc).__name__)
        ready = False
    finally:
        with contextlib.suppress(Exception):  # a dead connection may refuse even this
            db.session.rollback()
    try:
        listing = services.object_store().list_keys(READINESS_PROBE_PREFIX)
        try:
            next(iter(listing), None)
        finally:
            close = getattr(listing, "close", None)
            if close is not None:
                close()
    except Exception as exc:
        log.warning("readiness: the object store did not answer (%s)", type(exc).__name__)
        ready = False
    return ready
