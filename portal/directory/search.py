"""Finding a school to send to: by name, URN or DfE number."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import ColumnElement, case, func, or_, select

from portal.models import Organisation, OrganisationKind
from portal.models.base import DbSession

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# A search box feeds this: bound the work one request can ask of the database.
MAX_QUERY_LENGTH = 100
MAX_QUERY_WORDS = 8

# "LLL/EEEE" or "LLLEEEE", as schools write their DfE number (spaces around the slash tolerated).
_DFE_NUMBER = re.compile(r"^([0-9]{3})\s*/?\s*([0-9]{4})$")
# Apostrophes are dropped on both sides, so "St Marys", "St Mary's" and "St Mary’s" all find each other.
_APOSTROPHES = ("'", "\u2019", "\u2018", "`")


def find_schools(session: DbSession, query: str, limit: int = DEFAULT_LIMIT) -> list[Organisation]:
    """Active schools matching ``query``, best first, at most ``limit`` (capped at 100).

    A query matches a school whose URN it is, whose DfE number it is (``LLL/EEEE`` or ``LLLEEEE``), or
    whose name contains every word of it (case-insensitive substrings, in any order). Exact URN and
    DfE-number matches come first; then names starting with the query; then the rest by name.
    Closed schools and local authorities are never returned. A blank query finds nothing.
    """
    text = " ".join(query[:MAX_QUERY_LENGTH].split())
    limit = min(limit, MAX_LIMIT)
    if not text or limit < 1:
        return []
    active_schools = (Organisation.kind == OrganisationKind.SCHOOL, Organisation.is_active.is_(True))

    exact: Sequence[Organisation] = []
    exact_conditions = _exact_conditions(text)
    if exact_conditions:
        exact = session.scalars(
            select(Organisation)
            .where(*active_schools, or_(*exact_conditions))
            .order_by(Organisation.name, Organisation.id)
            .limit(limit)
        ).all()

    words = [_without_apostrophes(word).lower() for word in text.split()[:MAX_QUERY_WORDS]]
    words = [word for word in words if word]
    if not words or len(exact) >= limit:
        return list(exact)
    name = func.lower(_name_without_apostrophes())
    starts_with_query = case((name.startswith(" ".join(words), autoescape=True), 0), else_=1)
    statement = select(Organisation).where(
        *active_schools, *(name.contains(word, autoescape=True) for word in words)
    )
    if exact:
        statement = statement.where(Organisation.id.not_in([school.id for school in exact]))
    by_name = session.scalars(
        statement.order_by(starts_with_query, name, Organisation.id).limit(limit - len(exact))
    ).all()
    return [*exact, *by_name]


def _exact_conditions(text: str) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    compact = text.replace(" ", "")
    if compact.isascii() and compact.isdigit():
        # The importer stores URNs without leading zeros; a typed "0100001" still finds 100001.
        conditions.append(Organisation.urn.in_({compact, compact.lstrip("0") or "0"}))
    dfe_number = _DFE_NUMBER.match(text)
    if dfe_number:
        la_code, establishment_number = dfe_number.groups()
        conditions.append(
            (Organisation.la_code == la_code) & (Organisation.establishment_number == establishment_number)
        )
    return conditions


def _without_apostrophes(text: str) -> str:
    for apostrophe in _APOSTROPHES:
        text = text.replace(apostrophe, "")
    return text


def _name_without_apostrophes() -> ColumnElement[str]:
    # replace() exists in SQLite and PostgreSQL alike; the list is short, so nesting stays cheap.
    expression: ColumnElement[str] = Organisation.name.expression
    for apostrophe in _APOSTROPHES:
        expression = func.replace(expression, apostrophe, "")
    return expression
