"""Fixtures for the transfer tests: a real SMTP server the app is configured to use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.transfers.support_smtp import SmtpServer, smtp_server


@pytest.fixture
def smtp(environ: dict[str, str]) -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1; the app (requested after this) sends its mail there."""
    with smtp_server() as server:
        environ["PORTAL_SMTP_URL"] = server.url
        yield server
