"""infra/nginx: the site template renders only with every value, and nginx accepts the result."""

from __future__ import annotations

import re
import runpy
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import smoke_requested
from tests.deploy.stack import RENDER_SCRIPT, REPO_ROOT, make_certificates, nginx_binary, nginx_main_conf

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
        if smoke_requested():
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
