"""Sign-in is required everywhere except the few views marked :func:`public`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import current_app, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

View = TypeVar("View", bound=Callable[..., Any])


def public(view: View) -> View:
    """Mark a view as reachable without signing in. Keep this list short (see tests/auth/test_guard.py)."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def is_public_endpoint(endpoint: str | None) -> bool:
    """True for views marked :func:`public`, and for static files."""
    if endpoint is None:
        return True  # no route matched: let the 404 handler answer
    if endpoint == "static":
        return True
    view = current_app.view_functions.get(endpoint)
    return bool(getattr(view, "is_public", False))


def require_sign_in() -> Response | None:
    """``before_request`` hook: send anyone not signed in to the sign-in page."""
    if is_public_endpoint(request.endpoint) or current_user.is_authenticated:
        return None
    next_path = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.sign_in", next=next_path))


def safe_next(target: str | None, default: str) -> str:
    """Follow ``?next=`` only to a path on this site; anything else goes to ``default``."""
    if not target or any(ch in target for ch in "\\\r\n\t\x00") or not target.startswith("/"):
        return default
    parts = urlsplit(target)
    if target.startswith("//") or parts.scheme or parts.netloc:
        return default
    return target
