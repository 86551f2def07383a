"""Liveness and readiness: public, plain, and revealing nothing about what failed."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from flask import Flask

from portal import create_app, home
from portal.extensions import db
from tests.deploy.stack import free_port

NOTHING_SENSITIVE = ("postgres", "sqlite", "s3://", "127.0.0.1", "Error", "Traceback", "bucket")


def _get(app: Flask, path: str) -> tuple[int, str, dict[str, str]]:
    response = app.test_client().get(path)
    return response.status_code, response.get_data(as_text=True), dict(response.headers)


def test_liveness_answers_without_signing_in(app):
    assert _get(app, "/healthz")[:2] == (200, "ok\n")


def test_readiness_answers_ready_when_the_database_and_the_store_answer(app):
    status, body, headers = _get(app, "/readyz")

    assert (status, body) == (200, "ready\n")
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["Cache-Control"] == "no-store"


@pytest.fixture
def unready_app(environ: dict[str, str]):
    """Builds the app from ``environ`` with changes, and disposes of it afterwards."""
    made: list[Flask] = []

    def build(**changes: str) -> Flask:
        application = create_app(environ | changes)
        made.append(application)
        return application

    yield build
    for application in made:
        with application.app_context():
            db.engine.dispose()


def _assert_not_ready_and_silent(status: int, body: str) -> None:
    assert (status, body) == (503, "not ready\n")
    assert not any(word.lower() in body.lower() for word in NOTHING_SENSITIVE)


def test_readiness_fails_when_the_database_is_unreachable(unready_app, caplog):
    port = free_port()  # nothing listens there
    app = unready_app(
        PORTAL_DATABASE_URL=f"postgresql+psycopg://portal:db-password-123@127.0.0.1:{port}/handover"
    )

    with caplog.at_level(logging.WARNING, logger="portal.home"):
        status, body, _ = _get(app, "/readyz")

    _assert_not_ready_and_silent(status, body)
    assert "the database did not answer" in caplog.text
    assert "db-password-123" not in caplog.text and "portal:" not in caplog.text


def test_readiness_fails_when_the_local_store_is_gone(app, environ, caplog):
    objects = Path(environ["PORTAL_INSTANCE_PATH"]) / "objects"
    assert _get(app, "/readyz")[0] == 200
    app.extensions["portal.readiness"].ready = None  # forget the cached answer
    shutil.rmtree(objects)

    with caplog.at_level(logging.WARNING, logger="portal.home"):
        status, body, _ = _get(app, "/readyz")

    _assert_not_ready_and_silent(status, body)
    assert "the object store did not answer (StorageError)" in caplog.text


def test_readiness_fails_when_the_s3_endpoint_is_unreachable(unready_app, monkeypatch, caplog):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    port = free_port()
    app = unready_app(
        PORTAL_STORAGE_URL=(
            f"s3://handover-docs/documents?endpoint_url=http://127.0.0.1:{port}"
            "&region=eu-west-2&addressing=path&max_attempts=1&connect_timeout=1"
        )
    )

    with caplog.at_level(logging.WARNING, logger="portal.home"):
        status, body, _ = _get(app, "/readyz")

    _assert_not_ready_and_silent(status, body)
    assert "the object store did not answer (StorageUnavailable)" in caplog.text


def test_readiness_checks_at_most_once_per_interval(app, monkeypatch):
    calls: list[int] = []

    def counting() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(home, "_dependencies_answer", counting)
    for _ in range(5):
        assert _get(app, "/readyz")[0] == 200
    assert len(calls) == 1

    monkeypatch.setattr(home, "READINESS_CACHE_SECONDS", 0.0)
    _get(app, "/readyz")
    assert len(calls) == 2
