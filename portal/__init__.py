"""Handover: a secure school-to-school document transfer portal.

The factory lives in :mod:`portal.app` and is imported only when called, so the Flask-free parts
(``portal.storage``, ``portal.crypto``) can be used — and benchmarked — without loading Flask.
``flask --app portal`` and ``gunicorn 'portal:create_app()'`` find :func:`create_app` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the portal from ``PORTAL_*`` variables in ``environ`` (default: the process environment)."""
    from portal.app import create_app as build

    return build(environ)
