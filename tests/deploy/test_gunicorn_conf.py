"""infra/gunicorn.conf.py: the settings it gives gunicorn, log masking, forwarded headers, deadlines."""

from __future__ import annotations

import http.client
import logging
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.config import Config  # type: ignore[import-untyped]  # gunicorn ships no types

from tests.deploy.stack import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_PATH = REPO_ROOT / "infra" / "gunicorn.conf.py"


def load_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """The config module's namespace, as gunicorn would execute it."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF_PATH))


def gunicorn_config(namespace: dict[str, Any]) -> Config:
    """A gunicorn Config loaded the way ``gunicorn -c`` loads the file (unknown names ignored)."""
    cfg = Config()
    for name, value in namespace.items():
        if name in cfg.settings:
            cfg.set(name.lower(), value)
    return cfg


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return load_conf(monkeypatch)


def test_gunicorn_accepts_every_setting_and_uses_threaded_workers(conf):
    cfg = gunicorn_config(conf)

    assert cfg.worker_class_str == "gthread"
    assert cfg.workers >= 2 and cfg.threads >= 4
    assert cfg.timeout <= 120, "the heartbeat timeout should catch a frozen worker quickly"
    assert cfg.graceful_timeout >= 60
    assert cfg.max_requests > 0 and cfg.max_requests_jitter > 0
    assert cfg.forwarded_allow_ips == ["127.0.0.1"]
    assert cfg.bind == ["127.0.0.1:8001"]
    assert cfg.control_socket_disable is True
    assert "%(r)s" not in cfg.access_log_format and "%(q)s" not in cfg.access_log_format
    assert "%(f)s" not in cfg.access_log_format


def test_counts_and_addresses_come_from_the_environment(monkeypatch):
    namespace = load_conf(
        monkeypatch,
        HANDOVER_BIND="10.0.0.5:9000",
        HANDOVER_WORKERS="3",
        HANDOVER_THREADS="8",
        HANDOVER_GRACEFUL_TIMEOUT="120",
        HANDOVER_FORWARDED_ALLOW_IPS="10.0.0.2,10.0.0.3",
        HANDOVER_REQUEST_DEADLINE="600",
    )
    cfg = gunicorn_config(namespace)

    assert cfg.bind == ["10.0.0.5:9000"]
    assert (cfg.workers, cfg.threads, cfg.graceful_timeout) == (3, 8, 120)
    assert cfg.forwarded_allow_ips == ["10.0.0.2", "10.0.0.3"]
    assert namespace["REQUEST_DEADLINE_SECONDS"] == 600


def test_a_malformed_count_stops_the_start_up(monkeypatch):
    with pytest.raises(ValueError):
        load_conf(monkeypatch, HANDOVER_WORKERS="four")


def test_tokens_in_paths_are_masked(conf):
    mask = conf["mask_tokens"]

    assert mask("GET /transfers/download/abcDEF123-_x HTTP/1.1") == "GET /transfers/download/[token] HTTP/1.1"
    assert mask("/invitation/s3cr3t?x=1") == "/invitation/[token]?x=1"
    assert mask("/transfers/12/documents/3/link") == "/transfers/12/documents/3/link"


def _access_line(conf: dict[str, Any], path: str, query: str) -> str:
    cfg = gunicorn_config(conf)
    logger = conf["HandoverLogger"](cfg)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"{path}?{query}",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.7",
        "HTTP_REFERER": f"https://portal.example{path}",
        "HTTP_USER_AGENT": "test-agent",
    }
    response = SimpleNamespace(status="200 OK", sent=5, headers=[])
    request = SimpleNamespace(headers=[("X-REQUEST-ID", "abc12345"), ("COOKIE", "__Host-handover=secret")])
    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=12))
    return str(cfg.access_log_format % conf["glogging"].SafeAtoms(atoms))


def test_the_access_log_has_no_query_string_no_referrer_and_no_token(conf):
    line = _access_line(conf, "/transfers/download/TOKENVALUE", "next=/secret")

    assert "TOKENVALUE" not in line
    assert "next=" not in line and "/secret" not in line
    assert "portal.example" not in line
    assert "/transfers/download/[token]" in line
    assert "203.0.113.7" in line and "abc12345" in line


def test_error_log_records_and_tracebacks_are_masked(conf):
    record_filter = conf["TokenMaskingFilter"]()
    try:
        raise RuntimeError("failed on /invitation/TOKENVALUE")
    except RuntimeError:
        record = logging.LogRecord(
            "gunicorn.error",
            logging.ERROR,
            __file__,
            1,
            "Error handling request %s",
            ("/invitation/TOKENVALUE",),
            sys.exc_info(),
        )
    assert record_filter.filter(record)

    formatted = logging.Formatter().format(record)
    assert "TOKENVALUE" not in formatted
    assert "Error handling request /invitation/[token]" in formatted


def _request(peer: tuple[str, int], sock: socket.socket | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        peer_addr=peer,
        path="/transfers/download/TOKENVALUE",
        unreader=SimpleNamespace(sock=sock),
        headers=[
            ("HOST", "portal.example"),
            ("X-FORWARDED-FOR", "198.51.100.1"),
            ("X-FORWARDED-PROTO", "https"),
            ("X-FORWARDED-HOST", "evil.example"),
            ("X-REAL-IP", "198.51.100.1"),
            ("X-REQUEST-ID", "forged-request-id"),
            ("USER-AGENT", "x"),
        ],
    )


def _worker(conf: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(cfg=gunicorn_config(conf), log=logging.getLogger("test.gunicorn"))


def test_forwarding_headers_from_a_peer_that_is_not_the_proxy_are_dropped(conf):
    request = _request(("192.0.2.50", 40000))

    conf["pre_request"](_worker(conf), request)

    assert [name for name, _ in request.headers] == ["HOST", "USER-AGENT"]


def test_forwarding_headers_from_the_proxy_are_kept(conf):
    request = _request(("127.0.0.1", 40000))

    conf["pre_request"](_worker(conf), request)

    assert len(request.headers) == 7


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def test_a_request_past_its_deadline_has_its_connection_shut_down(conf, socket_pair):
    server, client = socket_pair
    deadlines = conf["RequestDeadlines"](30, logging.getLogger("test.gunicorn"))
    request = _request(("127.0.0.1", 40000), server)
    deadlines.start(request)

    assert deadlines.enforce() == 0  # not yet due
    assert deadlines.enforce(now=10**12) == 1

    client.settimeout(2)
    assert client.recv(1) == b""  # the server side was shut down: the handling thread unwinds
    assert deadlines.enforce(now=10**12) == 0


def test_a_finished_request_is_forgotten(conf, socket_pair):
    server, _client = socket_pair
    deadlines = conf["RequestDeadlines"](30, logging.getLogger("test.gunicorn"))
    request = _request(("127.0.0.1", 40000), server)
    deadlines.start(request)
    deadlines.finish(request)

    assert deadlines.enforce(now=10**12) == 0


@dataclass
class RunningGunicorn:
    port: int
    error_log: Path


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGunicorn]:
    """The portal (development settings) under infra/gunicorn.conf.py, behind no proxy at all,
    trusting one proxy hop as production does, with a 2-second request deadline."""
    directory = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "HANDOVER_"))}
    environ = {
        **inherited,
        "PORTAL_INSTANCE_PATH": str(directory / "instance"),
        "PORTAL_TRUSTED_PROXY_COUNT": "1",
        "HANDOVER_BIND": f"127.0.0.1:{port}",
        "HANDOVER_WORKERS": "1",
        "HANDOVER_THREADS": "4",
        "HANDOVER_REQUEST_DEADLINE": "2",
        "HANDOVER_FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    error_log = directory / "error.log"
    with error_log.open("wb") as stderr:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", str(CONF_PATH), "portal:create_app()"],
            cwd=REPO_ROOT,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        wait_for_port(port, timeout=30)
        yield RunningGunicorn(port, error_log)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _healthz_request_id(port: int, source: str, forged_id: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as connection:
        connection.sendall(
            f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: {forged_id}\r\n"
            "X-Forwarded-For: 198.51.100.9\r\nConnection: close\r\n\r\n".encode()
        )
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.getheader("X-Request-ID") or ""


def test_only_the_proxy_address_may_set_forwarding_headers(gunicorn):
    forged = "forged-request-id-0123456789"

    # From the proxy's address the app takes the id (as it takes nginx's); from any other
    # address gunicorn drops the header before the app sees it, and the app makes its own.
    assert _healthz_request_id(gunicorn.port, "127.0.0.1", forged) == forged
    assert _healthz_request_id(gunicorn.port, "127.0.0.2", forged) != forged


def test_gunicorn_cuts_off_a_request_that_outlives_the_deadline(gunicorn):
    """End to end: a client dribbling a request body is disconnected once the deadline passes."""
    port = gunicorn.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            b"POST /sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
        )
        started = time.monotonic()
        cut_off = False
        while time.monotonic() - started < 10:
            try:
                connection.sendall(b"a")
                connection.settimeout(0.3)
                if connection.recv(4096) == b"":
                    cut_off = True
                    break
            except TimeoutError:
                continue
            except OSError:  # reset or broken pipe: also cut off
                cut_off = True
                break
        elapsed = time.monotonic() - started

    assert cut_off, "the connection was still open after 10 s"
    assert 1.5 <= elapsed < 6
    deadline = time.monotonic() + 5
    while b"exceeded the 2 s deadline" not in gunicorn.error_log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b"exceeded the 2 s deadline" in gunicorn.error_log.read_bytes()
