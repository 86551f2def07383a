"""Tracking and access logs: the caseworker dashboard with statutory clocks, timelines, child
histories, school calendars, the audit viewer and the daily digest."""

from flask import Blueprint

bp = Blueprint("tracking", __name__, url_prefix="/tracking")

from portal.tracking import audit_routes, routes  # noqa: E402,F401  (registers the views)
