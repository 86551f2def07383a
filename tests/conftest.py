"""Shared fixtures: a fresh database per test (SQLite, or PostgreSQL when PORTAL_TEST_DATABASE_URL is set),
the real app with CSRF on, and helpers that sign in through the real password + TOTP step."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from portal import create_app
from portal.crypto.keyring import LocalKeyring
from portal.extensions import db
from tests.support import Factory

POSTGRES_URL = os.environ.get("PORTAL_TEST_DATABASE_URL", "")
TEST_KEYRING = LocalKeyring.generate_spec("test-1")


def base_environ(instance_path: Path, database_url: str) -> dict[str, str]:
    """The ``PORTAL_*`` settings every test app starts from."""
    return {
        "PORTAL_ENV": "testing",
        "PORTAL_INSTANCE_PATH": str(instance_path),
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "PORTAL_KEYRING": TEST_KEYRING,
        # Cheap hashing keeps the suite fast; production refuses these values (tests/test_config.py).
        "PORTAL_ARGON2_MEMORY_KIB": "64",
        "PORTAL_ARGON2_TIME_COST": "1",
        "PORTAL_ARGON2_PARALLELISM": "1",
    }


def _migrate(instance_path: Path, database_url: str) -> None:
    from flask_migrate import upgrade

    app = create_app(base_environ(instance_path, database_url))
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    """A database at the newest migration, made once per test worker by upgrading an empty one."""
    instance = tmp_path_factory.mktemp("migrate-instance")
    if not POSTGRES_URL:
        template = tmp_path_factory.mktemp("db") / "template.sqlite3"
        _migrate(instance, f"sqlite:///{template}")
        yield str(template)
        return
    admin_url = make_url(POSTGRES_URL)
    name = f"{admin_url.database}_{worker_id}_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    _migrate(instance, url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(migrated_database: str, tmp_path: Path) -> str:
    """A fresh, migrated database for one test."""
    if not POSTGRES_URL:
        path = tmp_path / "handover.sqlite3"
        shutil.copyfile(migrated_database, path)
        return f"sqlite:///{path}"
    engine = create_engine(migrated_database)
    with engine.begin() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
        ]
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        connection.execute(
            text("INSERT INTO audit_chain_head (id, last_sequence, last_hash) VALUES (1, 0, :h)"),
            {"h": "0" * 64},
        )
    engine.dispose()
    return migrated_database


@pytest.fixture
def environ(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The app's environment; tests may change it before asking for ``app``."""
    return base_environ(tmp_path / "instance", database_url)


@pytest.fixture
def app(environ: dict[str, str]) -> Iterator[Flask]:
    """The real portal, CSRF on, on a fresh database."""
    application = create_app(environ)
    # No app context stays pushed: each request must get its own (and its own ``g``), as in production.
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser-like client (keeps cookies)."""
    return app.test_client()


@pytest.fixture
def factory(app: Flask) -> Factory:
    """Makes organisations and fully enrolled users."""
    return Factory(app)


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """xdist's worker name, or "main" without xdist."""
    workerinput = getattr(request.config, "workerinput", None)
    return workerinput["workerid"] if workerinput else "main"
