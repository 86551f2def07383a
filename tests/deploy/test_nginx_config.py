"""infra/nginx: the site template renders only with every value, and nginx accepts the result."""

from __future__ import annotations

import os
import re
import runpy
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.deploy.conftest import smoke_requested
from tests.deploy.stack import (
    RENDER_SCRIPT,
    REPO_ROOT,
    free_port,
    make_certificates,
    nginx_binary,
    nginx_main_conf,
    render_site,
    wait_for_port,
)

TEMPLATE = REPO_ROOT / "infra" / "nginx" / "handover.conf"


@pytest.fixture(scope="module")
def renderer() -> dict[str, Any]:
    return runpy.run_path(str(RENDER_SCRIPT))


def site_values(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return {
        "PORTAL_PUBLIC_BASE_URL": "https://handover.example.org",
        "HANDOVER_TLS_CERTIFICATE": str(tmp_path / "server.pem"),
        "HANDOVER_TLS_CERTIFICATE_KEY": str(tmp_path / "server.key"),
        "HANDOVER_ACCESS_LOG": str(tmp_path / "access.log"),
        "HANDOVER_ACME_ROOT": str(tmp_path),
        "HANDOVER_HTTPS_LISTEN": "127.0.0.1:8443",
        "HANDOVER_HTTP_LISTEN": "127.0.0.1:8080",
        **overrides,
    }


def test_values_are_derived_from_the_portals_settings(renderer, tmp_path):
    values = renderer["site_values"](
        site_values(
            tmp_path,
            PORTAL_PUBLIC_BASE_URL="https://records.example.org:8443/",
            PORTAL_UPLOAD_LIMIT_BYTES=str(100 * 1024 * 1024),
        )
    )

    assert values["HANDOVER_SERVER_NAME"] == "records.example.org"
    assert values["HANDOVER_PUBLIC_HOST"] == "records.example.org:8443"
    assert values["HANDOVER_PUBLIC_BASE_URL"] == "https://records.example.org:8443"
    assert values["HANDOVER_CLIENT_MAX_BODY_SIZE"] == "101m"
    assert renderer["site_values"](site_values(tmp_path))["HANDOVER_CLIENT_MAX_BODY_SIZE"] == "2049m"


def test_every_placeholder_is_filled_and_nginx_variables_are_left_alone(renderer, tmp_path):
    text = renderer["render"](TEMPLATE.read_text(), renderer["site_values"](site_values(tmp_path)))

    assert not re.search(r"\$\{HANDOVER_[A-Z0-9_]+\}", text)
    assert "$remote_addr" in text and "$upstream_http_content_security_policy" in text
    assert "server 127.0.0.1:8001" in text and "server 127.0.0.1:8002" in text
    assert "proxy_set_header Host handover.example.org;" in text


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"PORTAL_PUBLIC_BASE_URL": ""}, "HANDOVER_PUBLIC_BASE_URL"),
        ({"HANDOVER_TLS_CERTIFICATE": ""}, "HANDOVER_TLS_CERTIFICATE"),
        ({"HANDOVER_APP_1": "127.0.0.1:8001; include /etc/passwd"}, "must not contain"),
    ],
)
def test_a_missing_or_unsafe_value_stops_the_rendering(renderer, tmp_path, change, complaint):
    with pytest.raises(renderer["RenderError"], match=complaint):
        renderer["render"](TEMPLATE.read_text(), renderer["site_values"](site_values(tmp_path, **change)))


def test_an_http_public_address_is_refused(renderer, tmp_path):
    with pytest.raises(renderer["RenderError"], match="https"):
        renderer["site_values"](site_values(tmp_path, PORTAL_PUBLIC_BASE_URL="http://handover.example.org"))


def test_nginx_accepts_the_rendered_site_and_the_catch_all(tmp_path):
    binary = nginx_binary()
    if binary is None:
        if smoke_requested() or os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (.ci/run installs it)")
        pytest.skip("nginx is not installed")
    make_certificates(tmp_path)
    site = tmp_path / "handover.conf"
    environment = {"PATH": "/usr/bin:/bin", **site_values(tmp_path)}
    subprocess.run(["python3", str(RENDER_SCRIPT), "--output", str(site)], env=environment, check=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        nginx_main_conf(tmp_path, site).replace(
            f"include {site};", f"include {site};\n    include {REPO_ROOT}/infra/nginx/default-deny.conf;"
        )
    )

    result = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr


class FakeInstance:
    """An upstream that records each request it receives, then answers it or drops the connection."""

    def __init__(self, *, answer: bool) -> None:
        self.answer = answer
        self.seen: list[str] = []
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    self.seen.append(data.split(b" ", 2)[0].decode() + " " + data.split(b" ", 2)[1].decode())
                if self.answer and data:
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                    )
                # otherwise: close without a response, like an instance dying after receiving

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Callable[[FakeInstance, FakeInstance], tuple[int, Path]]]:
    """Starts nginx (one worker, so one view of upstream health) with the site in front of fakes."""
    binary = nginx_binary()
    if binary is None:
        if smoke_requested() or os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (.ci/run installs it)")
        pytest.skip("nginx is not installed")
    started: list[subprocess.Popen[bytes]] = []

    def start(first: FakeInstance, second: FakeInstance) -> tuple[int, Path]:
        prefix = tmp_path / f"nginx{len(started)}"
        prefix.mkdir()
        ca, _cert, _key = make_certificates(prefix)
        port = free_port()
        site = prefix / "handover.conf"
        values = site_values(
            prefix, HANDOVER_HTTPS_LISTEN=f"127.0.0.1:{port}", HANDOVER_HTTP_LISTEN=f"127.0.0.1:{free_port()}"
        )
        values |= {"HANDOVER_APP_1": f"127.0.0.1:{first.port}", "HANDOVER_APP_2": f"127.0.0.1:{second.port}"}
        render_site(values | {"PORTAL_PUBLIC_BASE_URL": f"https://127.0.0.1:{port}"}, site)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_main_conf(prefix, site).replace("worker_processes 2;", "worker_processes 1;"))
        process = subprocess.Popen(
            [
                binary,
                "-p",
                str(prefix),
                "-e",
                str(prefix / "error.log"),
                "-c",
                str(conf),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append(process)
        wait_for_port(port, timeout=10)
        return port, ca

    yield start
    for process in started:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def _request(port: int, ca: Path, method: str, path: str) -> int:
    session = requests.Session()
    session.trust_env = False
    response = session.request(
        method,
        f"https://127.0.0.1:{port}{path}",
        data=b"a=1" if method == "POST" else None,
        verify=str(ca),
        timeout=10,
    )
    return response.status_code


def test_a_get_that_fails_on_one_instance_is_retried_on_the_other(proxy):
    dying, healthy = FakeInstance(answer=False), FakeInstance(answer=True)
    port, ca = proxy(dying, healthy)

    statuses: list[int] = []
    while not dying.seen and len(statuses) < 4:
        statuses.append(_request(port, ca, "GET", f"/transfers/{len(statuses)}"))

    assert dying.seen, "round robin never reached the dying instance"
    assert statuses == [200] * len(statuses), "the failed GET should have been answered by the other instance"
    assert dying.seen[-1] in healthy.seen  # the same request, sent again
    dying.close()
    healthy.close()


def test_a_post_an_instance_received_is_never_sent_to_the_other(proxy):
    dying, healthy = FakeInstance(answer=False), FakeInstance(answer=True)
    port, ca = proxy(dying, healthy)

    statuses: list[int] = []
    while not dying.seen and len(statuses) < 4:
        statuses.append(_request(port, ca, "POST", f"/transfers/{len(statuses)}/send"))

    assert dying.seen, "round robin never reached the dying instance"
    assert statuses[-1] == 503, "a POST the instance received must fail, not be replayed elsewhere"
    assert dying.seen[-1] not in healthy.seen
    assert all(status == 200 for status in statuses[:-1])
    dying.close()
    healthy.close()
