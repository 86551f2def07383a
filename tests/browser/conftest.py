"""Fixtures for the real-browser tests: the portal served on 127.0.0.1, a real SMTP server capturing its
mail, and Debian's Chromium driven by Playwright (pytest-playwright's ``browser`` and ``new_context``)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from playwright.sync_api import expect
from werkzeug.serving import BaseWSGIServer, make_server

from tests.browser.support import PROJECT_ROOT, SCREENSHOTS, LiveServer, MailCatcher, Screenshots

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The whole suite runs in parallel (make test): a page can take a few seconds on a busy machine.
expect.set_options(timeout=15_000)
# Quiet, deterministic and fit for a container: no sandbox (no user namespaces), no GPU, no phoning home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip with a clear reason (rather than fail obscurely) when the set-up has not been run."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("chromium (make chromium)")
    if not (PROJECT_ROOT / "node_modules/axe-core/axe.min.js").exists():
        missing.append("node_modules (npm ci)")
    if not (PROJECT_ROOT / "static/build/handover.css").exists():
        missing.append("static/build (make assets)")
    if not missing:
        return
    if os.environ.get("CI") == "true":  # in CI a missing browser is a broken set-up, never a skip
        raise pytest.UsageError(f"browser tests need {', '.join(missing)}")
    skip = pytest.mark.skip(reason=f"browser tests need {', '.join(missing)}")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium: ``--browser-channel`` cannot select it, only ``executable_path`` can."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """An English school's laptop: British English, England's time. (Debian's Chromium ships only the
    en-US locale, so its date fields still take the month first.)"""
    return {
        **browser_context_args,
        "locale": "en-GB",
        "timezone_id": "Europe/London",
        "accept_downloads": True,
    }


@pytest.fixture
def mail() -> Iterator[MailCatcher]:
    """A real SMTP server on 127.0.0.1 keeping every message the portal sends."""
    catcher = MailCatcher()
    # aiosmtpd cannot listen on port 0 (it connects to its own port to check it started): pick one.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(catcher, hostname="127.0.0.1", port=port)
    controller.start()
    catcher.port = port
    yield catcher
    controller.stop()


class _LateApp:
    """Lets the server take its port before the portal exists: the portal must know its own address."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "the live server was used before its app was set"
        return self.app(environ, start_response)


@pytest.fixture
def http_server() -> Iterator[tuple[BaseWSGIServer, _LateApp]]:
    """A threaded WSGI server listening on 127.0.0.1, on a port the system chose."""
    late = _LateApp()
    server = make_server("127.0.0.1", 0, late, threaded=True)
    yield server, late
    server.server_close()


@pytest.fixture
def environ(
    environ: dict[str, str], mail: MailCatcher, http_server: tuple[BaseWSGIServer, _LateApp]
) -> dict[str, str]:
    """The shared test settings, with the portal's real address and mail server, and a small upload
    limit so the "file too large" page can be reached with a small file."""
    server, _ = http_server
    return {
        **environ,
        "PORTAL_PUBLIC_BASE_URL": f"http://127.0.0.1:{server.server_port}",
        "PORTAL_SMTP_URL": f"smtp://127.0.0.1:{mail.port}",
        "PORTAL_UPLOAD_LIMIT_BYTES": str(3 * 1000 * 1000),
    }


@pytest.fixture
def live_server(
    app: Flask, http_server: tuple[BaseWSGIServer, _LateApp], mail: MailCatcher
) -> Iterator[LiveServer]:
    """The portal (fresh migrated database) served on 127.0.0.1 while the test runs."""
    server, late = http_server
    late.app = app
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app, mail=mail)
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    """Numbered screenshots of each step, in artifacts/screenshots/<test name>/."""
    folder = SCREENSHOTS / request.node.name.replace("[", "-").replace("]", "")
    shutil.rmtree(folder, ignore_errors=True)
    return Screenshots(folder)
