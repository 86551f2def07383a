import pytest
from flask import Flask

from portal.directory import find_schools, import_gias
from portal.extensions import db
from portal.models import Organisation
from tests.directory.extracts import SAMPLE


@pytest.fixture
def directory(app):
    """The app with the sample extract imported."""
    with app.app_context():
        import_gias(db.session, SAMPLE)
    return app


def _search(app: Flask, query: str, limit: int = 20) -> list[tuple[str | None, str]]:
    with app.app_context():
        return [(school.urn, school.name) for school in find_schools(db.session, query, limit=limit)]


def _urns(app: Flask, query: str, limit: int = 20) -> list[str | None]:
    return [urn for urn, _ in _search(app, query, limit=limit)]


def test_name_search_is_case_insensitive_and_needs_every_word_in_any_order(directory):
    assert _urns(directory, "fenmouth") == ["990008", "990006"]  # Fenmouth High, Fenmouth Primary
    assert _urns(directory, "SCHOOL high fenMOUTH") == ["990008"]
    assert _urns(directory, "fenmouth academy") == []


def test_names_starting_with_the_query_come_first_then_the_rest_by_name(directory, factory):
    factory.school("Academy of Wealdbury")

    assert _search(directory, "wealdbury academy") == [
        ("990003", "Wealdbury Academy"),
        (_urns(directory, "academy of wealdbury")[0], "Academy of Wealdbury"),
    ]
    assert _urns(directory, "primary school")[:3] == ["990012", "990006", "990010"]


def test_apostrophes_are_ignored_whichever_kind_is_typed(directory):
    expected = [("990002", "St Mary\u2019s Church of England Primary School")]
    assert _search(directory, "st mary's") == expected
    assert _search(directory, "St Marys") == expected
    assert _search(directory, "st mary\u2019s primary") == expected
    assert _urns(directory, "peter\u2019s") == ["990007"]


def test_exact_urn_finds_the_school(directory):
    assert _search(directory, "990011") == [("990011", "Ambervale Community College")]
    assert _urns(directory, " 990011 ") == ["990011"]
    assert _urns(directory, "99001") == []  # no partial URNs


@pytest.mark.parametrize("query", ["991/4101", "9914101", "991 / 4101"])
def test_dfe_number_finds_the_school(directory, query):
    assert _urns(directory, query) == ["990008"]


def test_exact_matches_come_before_name_matches(app, factory):
    named_after = factory.school("School 2001 Memorial")
    exact = factory.school("Zebra Primary")
    with app.app_context():
        school = db.session.get(Organisation, exact.id)
        assert school is not None
        school.urn = "2001"
        db.session.commit()

    results = _search(app, "2001")

    assert [name for _, name in results] == ["Zebra Primary", named_after.name]


def test_closed_schools_and_local_authorities_are_never_found(directory):
    assert _urns(directory, "hollybrook") == []
    assert _urns(directory, "990004") == []
    assert _urns(directory, "990/2002") == []
    assert _urns(directory, "fictional") == []  # the authorities' names


def test_limit_caps_the_results(directory):
    assert len(_urns(directory, "school")) == 12
    assert len(_urns(directory, "school", limit=3)) == 3
    assert _urns(directory, "school", limit=0) == []


def test_blank_query_and_like_wildcards_find_nothing(directory):
    assert _urns(directory, "") == []
    assert _urns(directory, "   ") == []
    assert _urns(directory, "%") == []
    assert _urns(directory, "_") == []
