"""Sending and receiving a child's records."""

from flask import Blueprint

bp = Blueprint("transfers", __name__, url_prefix="/transfers")

from portal.transfers import routes  # noqa: E402,F401  (registers the views)
