"""Error pages: a plain explanation and the request id, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from portal.extensions import db

log = logging.getLogger(__name__)

_TITLES = {
    400: "Sorry, there is a problem with that request",
    403: "You do not have access to this page",
    404: "Page not found",
    405: "Sorry, there is a problem with that request",
    410: "This link is no longer available",
    413: "The file is too large",
    429: "Too many attempts",
    500: "Sorry, there is a problem with the service",
    503: "Sorry, the service is unavailable",
}


def init_app(app: Flask) -> None:
    """Register the handlers."""
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def render_error(status: int, message: str | None = None) -> tuple[str, int]:
    """The error page for ``status`` with an optional plain-language explanation."""
    title = _TITLES.get(status, "Sorry, there is a problem")
    return (
        render_template(
            "error.html", status=status, title=title, message=message, request_id=g.get("request_id")
        ),
        status,
    )


def _csrf_error(error: CSRFError) -> tuple[str, int]:
    return render_error(
        400, "The form had expired or was not sent from this service. Go back, reload the page and try again."
    )


def _http_error(error: HTTPException) -> tuple[str, int, list[tuple[str, str]]]:
    status = error.code or 500
    # Keep what the exception says about the response (``Allow`` on a 405, ``Retry-After``),
    # but not its content type: the body is our page.
    headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
    if status == 429:
        return (*render_error(429, "Wait a few minutes before you try again."), headers)
    # Our own ``abort(403, "why")`` explanations are shown; Werkzeug's stock descriptions are not.
    custom = error.description if error.description != type(error).description else None
    return (*render_error(status, custom), headers)


def _unexpected_error(error: Exception) -> tuple[str, int]:
    # The traceback goes to the log (with the request id to find it); the user sees none of it.
    log.exception("unhandled error in request %s", g.get("request_id"))
    try:
        db.session.rollback()
    except SQLAlchemyError:
        # With the database gone even the rollback can fail; the page must still be ours.
        log.warning("rollback failed in request %s", g.get("request_id"))
    if isinstance(error, (OperationalError, InterfaceError)):
        # The database is unreachable or refused us: a temporary outage (503), not a bug, and
        # nothing was let through on the way.
        return render_error(ServiceUnavailable.code)
    return render_error(InternalServerError.code)
