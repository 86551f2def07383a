"""The application factory.

``create_app`` only wires things together: settings, extensions, blueprints, error pages, CLI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from portal import audit, database, services
from portal.config import Settings, load_settings
from portal.extensions import csrf, db, limiter, login_manager, migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FORM_BODY_LIMIT = 1024 * 1024


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the portal from ``PORTAL_*`` variables in ``environ`` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    instance_path = Path(environ.get("PORTAL_INSTANCE_PATH") or PROJECT_ROOT / "instance").resolve()
    settings = load_settings(environ, instance_path)

    app = Flask(
        __name__,
        instance_path=str(instance_path),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    configure(app, settings)
    register_extensions(app, settings)
    register_request_hooks(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_cli(app)
    return app


def configure(app: Flask, settings: Settings) -> None:
    """Translate settings into Flask's configuration."""
    cookie_name = "__Host-handover" if settings.uses_https else "handover"
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SECRET_KEY_FALLBACKS=list(settings.secret_key_fallbacks),
        DEBUG=settings.debug,
        TESTING=settings.environment == "testing",
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        SESSION_COOKIE_NAME=cookie_name,
        SESSION_COOKIE_SECURE=settings.uses_https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        # The cookie only carries a random token checked against the server-side session,
        # which has its own idle and absolute limits; the cookie dies with the browser.
        SESSION_PERMANENT=False,
        REMEMBER_COOKIE_DURATION=0,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the (server-limited) session
        # Pages send no Referer (Referrer-Policy: no-referrer); Origin is checked instead (security_headers).
        WTF_CSRF_SSL_STRICT=False,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        RATELIMIT_HEADERS_ENABLED=False,
        PREFERRED_URL_SCHEME="https" if settings.uses_https else "http",
        # Every body is capped small; the one upload view raises its own request's cap to the upload limit.
        MAX_CONTENT_LENGTH=FORM_BODY_LIMIT,
        MAX_FORM_MEMORY_SIZE=500_000,
        MAX_FORM_PARTS=200,
    )
    if settings.trusted_proxy_count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxy_count,
            x_proto=settings.trusted_proxy_count,
            x_host=settings.trusted_proxy_count,
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def register_extensions(app: Flask, settings: Settings) -> None:
    """Bind the extension objects to this app."""
    database.install()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    audit.install(Session)
    services.init_app(app, settings)
    from portal.auth import sessions

    sessions.init_app(app)


def register_request_hooks(app: Flask) -> None:
    """Request ids and security headers."""
    from portal import security_headers, templating

    security_headers.init_app(app)
    templating.init_app(app)


def register_blueprints(app: Flask) -> None:
    """One blueprint per area the users see."""
    from portal.admin import bp as admin_bp
    from portal.auth import bp as auth_bp
    from portal.home import bp as home_bp
    from portal.tracking import bp as tracking_bp
    from portal.transfers import bp as transfers_bp

    app.register_blueprint(home_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(transfers_bp)
    app.register_blueprint(tracking_bp)


def register_error_handlers(app: Flask) -> None:
    """Plain error pages that never show a stack trace."""
    from portal import errors

    errors.init_app(app)


def register_cli(app: Flask) -> None:
    """``flask --app portal …`` commands."""
    from portal import cli

    cli.init_app(app)
