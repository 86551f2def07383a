"""Security headers and request ids, set in one place for every response."""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request
from flask_wtf.csrf import CSRFError

from portal.config import Settings

_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def csp_nonce() -> str:
    """This request's nonce for the few ``<script>``/``<style>`` tags that need one."""
    nonce: str | None = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return nonce


def content_security_policy(nonce: str) -> str:
    """A strict policy: our own origin only, scripts by nonce, no plugins, no framing, no <base>."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' 'nonce-{nonce}'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "form-action 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def init_app(app: Flask) -> None:
    """Assign each request an id, refuse cross-site writes, and give every response the security headers."""
    # First of all before-request hooks: a request refused early (CSRF, rate limit) still gets an id
    # for its error page, its response header and any audit event about it.
    app.before_request_funcs.setdefault(None, []).insert(0, _assign_request_id)
    app.before_request_funcs[None].insert(1, _refuse_cross_site_writes)
    app.after_request(_set_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce


def _assign_request_id() -> None:
    settings: Settings = current_app.config["SETTINGS"]
    offered = request.headers.get("X-Request-ID", "")
    # Only a trusted proxy's id is kept; otherwise a client could forge ids in our audit trail.
    if settings.trusted_proxy_count and _REQUEST_ID_PATTERN.match(offered):
        g.request_id = offered
    else:
        g.request_id = secrets.token_hex(12)


_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _refuse_cross_site_writes() -> None:
    """Defence in depth beside the CSRF token: a write whose browser says it came from another site is refused.

    Pages send ``Referrer-Policy: no-referrer``, so Flask-WTF's Referer check (``WTF_CSRF_SSL_STRICT``)
    cannot be used; browsers send ``Origin`` and ``Sec-Fetch-Site`` with every POST instead.
    """
    if request.method not in _UNSAFE_METHODS:
        return
    settings: Settings = current_app.config["SETTINGS"]
    origin = request.headers.get("Origin")
    if origin == "null":
        # Under Referrer-Policy: no-referrer, browsers send "Origin: null" even for a form posted from
        # our own page (Chromium does): it says nothing either way, so Sec-Fetch-Site decides.
        origin = None
    allowed = {_origin_of(settings.public_base_url), _origin_of(request.host_url)}
    if request.headers.get("Sec-Fetch-Site") == "cross-site" or (
        origin is not None and origin.lower() not in allowed
    ):
        raise CSRFError("The request came from another site.")


def _set_security_headers(response: Response) -> Response:
    settings: Settings = current_app.config["SETTINGS"]
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(csp_nonce()))
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
    if request.endpoint != "static":
        # Pages may show personal data: never keep them in any cache, the browser's included.
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    if settings.uses_https:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if "X-Request-ID" not in headers and g.get("request_id"):
        headers["X-Request-ID"] = g.request_id
    return response
