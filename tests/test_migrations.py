"""Migrations: an empty database upgraded to the newest revision matches the models, and back down again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from portal import create_app
from portal.extensions import db


@pytest.fixture
def empty_app(environ: dict[str, str], tmp_path: Path) -> Iterator[Flask]:
    """The portal pointed at a database file that does not exist yet."""
    app = create_app(environ | {"PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"})
    yield app
    with app.app_context():
        db.engine.dispose()


def _differences(app: Flask) -> list[Any]:
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, db.metadata))


def _tables(app: Flask) -> set[str]:
    with app.app_context():
        return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrading_an_empty_database_gives_exactly_the_models_schema(empty_app):
    with empty_app.app_context():
        upgrade()

    assert _tables(empty_app) == set(db.metadata.tables)
    assert _differences(empty_app) == []


def test_upgrading_seeds_the_audit_chain_head(empty_app):
    with empty_app.app_context():
        upgrade()
        head = db.session.execute(text("SELECT id, last_sequence, last_hash FROM audit_chain_head")).all()

    assert [tuple(row) for row in head] == [(1, 0, "0" * 64)]


def test_downgrading_to_base_and_upgrading_again_works(empty_app):
    with empty_app.app_context():
        upgrade()
        downgrade(revision="base")
        assert _tables(empty_app) == set()
        upgrade()

    assert _tables(empty_app) == set(db.metadata.tables)
    assert _differences(empty_app) == []
    result = empty_app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_the_schema_comparison_notices_a_drifted_database(empty_app):
    # Guards the guard: a comparison that could never fail would prove nothing.
    with empty_app.app_context():
        upgrade()
        db.session.execute(text("DROP INDEX ix_users_organisation_id"))
        db.session.execute(text("ALTER TABLE users ADD COLUMN nickname VARCHAR(20)"))
        db.session.commit()

    changes = _differences(empty_app)
    kinds = [change[0] for change in changes]
    assert ("add_index", "ix_users_organisation_id") in [
        (c[0], c[1].name) for c in changes if c[0] == "add_index"
    ]
    assert ("remove_column", "nickname") in [(c[0], c[3].name) for c in changes if c[0] == "remove_column"]
    assert len(kinds) == 2
