"""Organisation administration: the admin's own organisation's users."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from portal.admin import routes  # noqa: E402,F401  (registers the views)
