"""Server-side sessions: the cookie carries a random token, the database holds the session.

Flask's own session is a signed cookie that cannot be revoked; so the signed cookie here only
carries a 256-bit random token, and a row in ``auth_sessions`` (keyed by the token's SHA-256)
decides whether it is still signed in. Ending a session deletes the row: a copied cookie is
then worthless. Idle and absolute limits are checked on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import Flask, current_app, g, request, session
from sqlalchemy import delete, select, update

from portal.config import Settings
from portal.extensions import db, login_manager
from portal.models import AuthSession, User, utcnow

TOKEN_KEY = "auth_token"  # noqa: S105  (a session key name, not a secret)
# Writing last-seen on every request would make every page view a database write.
_TOUCH_INTERVAL = timedelta(seconds=60)


def token_hash(token: str) -> str:
    """What the database stores instead of the token itself."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def init_app(app: Flask) -> None:
    """Let Flask-Login find the signed-in user through the server-side session."""
    login_manager.request_loader(_load_user_from_session)
    login_manager.session_protection = None  # the server-side session is the protection
    login_manager.login_view = "auth.sign_in"


def start_session(user: User) -> None:
    """Sign ``user`` in: throw away everything in the old session and issue a new token."""
    # Clearing drops any planted pre-login state and the old CSRF token (session fixation).
    session.clear()
    token = secrets.token_urlsafe(32)
    db.session.add(
        AuthSession(
            token_hash=token_hash(token),
            user_id=user.id,
            client_address=(request.remote_addr or "")[:45],
            user_agent=request.user_agent.string[:200],
        )
    )
    session[TOKEN_KEY] = token


def end_session() -> None:
    """Sign out: delete the server-side session and clear the cookie's contents."""
    token = session.get(TOKEN_KEY)
    if token:
        db.session.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash(token)))
    session.clear()


def end_all_sessions(user_id: int, *, keep_current: bool = False) -> int:
    """End every session of a user (disable, password or TOTP reset); returns how many ended."""
    statement = delete(AuthSession).where(AuthSession.user_id == user_id)
    current = session.get(TOKEN_KEY) if keep_current else None
    if current:
        statement = statement.where(AuthSession.token_hash != token_hash(current))
    result = db.session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


def current_session() -> AuthSession | None:
    """The server-side session of this request, if signed in."""
    found: AuthSession | None = g.get("auth_session")
    return found


def _load_user_from_session(_request: object) -> User | None:
    token = session.get(TOKEN_KEY)
    if not isinstance(token, str):
        return None
    settings: Settings = current_app.config["SETTINGS"]
    found = db.session.scalars(select(AuthSession).where(AuthSession.token_hash == token_hash(token))).first()
    if found is None:
        session.pop(TOKEN_KEY, None)
        return None
    now = utcnow()
    idle_limit = timedelta(minutes=settings.session_idle_minutes)
    absolute_limit = timedelta(hours=settings.session_absolute_hours)
    user = found.user
    if (
        now - found.last_seen_at > idle_limit
        or now - found.created_at > absolute_limit
        or not user.is_active
        or not user.is_enrolled  # mid-reset: the factors this session rests on are gone
        or not user.organisation.is_active
    ):
        db.session.delete(found)
        db.session.commit()
        session.clear()
        g.session_expired = True
        return None
    if now - found.last_seen_at > _TOUCH_INTERVAL:
        db.session.execute(update(AuthSession).where(AuthSession.id == found.id).values(last_seen_at=now))
        db.session.commit()
    g.auth_session = found
    return user
