"""Who may do what, in one place. Views ask here; they never re-implement a rule.

Need-to-know: a user only ever acts inside their own organisation. A request for an object of
another organisation is answered with 404 (not 403), so its existence is not revealed, and it is
audited as a denied access.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

from portal import audit, services
from portal.audit import Outcome
from portal.extensions import db
from portal.models import Role, User
from portal.models.base import today_in_england

View = TypeVar("View", bound=Callable[..., Any])

ADMIN_ROLES = frozenset({Role.ORG_ADMIN})
# Roles that handle children's records: sending or receiving them needs current IG training.
RECORD_HANDLING_ROLES = frozenset({Role.SCHOOL_STAFF, Role.DESIGNATED_TEACHER, Role.CASEWORKER})


def roles_required(*roles: Role) -> Callable[[View], View]:
    """Allow the view only to signed-in users holding one of ``roles`` (others get 404, audited)."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                deny("role", None)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def deny(object_type: str, object_id: int | str | None) -> None:
    """Audit a refused access and answer 404."""
    audit.record(
        db.session, "access.denied", outcome=Outcome.DENIED, object_type=object_type, object_id=object_id
    )
    db.session.commit()
    abort(404)


def user_in_my_organisation(user_id: int) -> User:
    """Another user of the signed-in user's organisation, or 404 (audited)."""
    user = db.session.get(User, user_id)
    if user is None or user.organisation_id != current_user.organisation_id:
        deny("user", user_id)
    assert user is not None
    return user


def ig_training_expires_on(user: User) -> date | None:
    """When the user's information-governance training lapses (None if never recorded)."""
    if user.ig_training_completed_on is None:
        return None
    return user.ig_training_completed_on + timedelta(days=services.settings().ig_training_valid_days)


def ig_training_current(user: User, today: date | None = None) -> bool:
    """True if the user may handle records: their IG training is recorded and not older than allowed."""
    expires = ig_training_expires_on(user)
    return expires is not None and (today or today_in_england()) < expires


def may_handle_records(user: User) -> bool:
    """True if the user's role handles records and their IG training is current."""
    return user.role in RECORD_HANDLING_ROLES and ig_training_current(user)
