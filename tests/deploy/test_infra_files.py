"""The rest of infra/: compose file, systemd units, Terraform and env examples say what they should.

None of these can run here (no container engine, no AWS, no systemd as PID 1), so these checks are
static, plus ``systemd-analyze`` and ``terraform fmt`` where the tools exist.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

from portal import create_app
from tests.deploy.stack import REPO_ROOT

INFRA = REPO_ROOT / "infra"
SYSTEMD = INFRA / "systemd"
TERRAFORM = INFRA / "terraform"
JOBS = {
    "purge-expired": ("purge-expired", "OnCalendar=hourly"),
    "send-notifications": ("send-notifications", "OnCalendar=*:0/5"),
    "storage-sweep": ("storage sweep", "OnCalendar=*-*-* 03:30:00 Europe/London"),
    "send-digests": ("send-digests", "OnCalendar=*-*-* 07:00:00 Europe/London"),
}
SECRET_NAMES = re.compile(r"(SECRET|PASSWORD|KEYRING)[A-Z_]*=(.*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = importlib.import_module("yaml")  # PyYAML (via moto) ships no type information
    loaded: dict[str, Any] = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_two_hardened_portal_instances_behind_nginx_only(compose):
    services = compose["services"]
    assert {"portal-1", "portal-2", "nginx", "postgres", "redis", "minio"} <= set(services)
    for name in ("portal-1", "portal-2"):
        portal = services[name]
        assert portal["read_only"] is True
        assert portal["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in portal["security_opt"]
        assert "ports" not in portal, "the portal must be reachable through nginx only"
        assert portal["environment"]["HANDOVER_FORWARDED_ALLOW_IPS"] == "172.30.1.0/24"
    published = {name for name, service in services.items() if "ports" in service}
    assert published == {"nginx"}
    assert compose["networks"]["backend"]["internal"] is True
    assert services["migrate"]["profiles"] == ["tools"], "migrations must never run at start-up"
    nginx_address = services["nginx"]["networks"]["frontend"]["ipv4_address"]
    assert nginx_address.startswith("172.30.1.")


def test_every_env_file_compose_reads_has_a_committed_example_without_secrets(compose):
    env_files = {f for service in compose["services"].values() for f in service.get("env_file", [])}
    assert env_files
    for env_file in env_files:
        example = INFRA / f"{env_file}.example"
        assert example.exists(), example
    for example in (INFRA / "env").glob("*.example"):
        for line in example.read_text().splitlines():
            found = SECRET_NAMES.search(line)
            if found and not line.startswith("#"):
                assert found.group(2) == "", f"{example.name}: {line.split('=')[0]} must be left empty"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "infra/env/portal.env"], cwd=REPO_ROOT, check=False
    ).returncode
    assert ignored == 0, "real env files must be git-ignored"


def test_the_timers_run_the_portals_real_commands_on_schedule(tmp_path):
    app = create_app(
        {"PORTAL_INSTANCE_PATH": str(tmp_path), "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    )
    with app.app_context():
        for unit, (command, schedule) in JOBS.items():
            service = (SYSTEMD / f"handover-{unit}.service").read_text()
            timer = (SYSTEMD / f"handover-{unit}.timer").read_text()
            assert f"ExecStart=/opt/handover/.venv/bin/flask --app portal {command}\n" in service
            assert "Type=oneshot" in service and "User=handover" in service
            assert schedule in timer and "Persistent=true" in timer
            group, *sub = command.split()
            found = app.cli.get_command(None, group)  # type: ignore[arg-type]
            for name in sub:
                found = found.get_command(None, name) if found is not None else None  # type: ignore[attr-defined]
            assert found is not None, f"flask --app portal {command} does not exist"


def _missing(tool: str) -> NoReturn:
    """Outside CI a machine without the tool skips the check; in CI (whose machines have it) it fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{tool} is not installed on the CI machine")
    pytest.skip(f"{tool} is not installed")


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        _missing("systemd-analyze")
    return tool


def test_systemd_accepts_every_unit(tmp_path):
    tool = _systemd_analyze()
    # Point the units at this checkout so their executables exist, and make the env file optional.
    for unit in SYSTEMD.iterdir():
        text = unit.read_text().replace("/opt/handover", str(REPO_ROOT))
        text = text.replace("EnvironmentFile=/etc/", "EnvironmentFile=-/etc/")
        (tmp_path / unit.name).write_text(text)
    (tmp_path / "handover@8001.service").write_text((tmp_path / "handover@.service").read_text())
    units = [str(p) for p in sorted(tmp_path.iterdir()) if p.name != "handover@.service"]

    result = subprocess.run([tool, "verify", "--man=no", *units], capture_output=True, text=True, check=False)

    problems = [
        line for line in result.stderr.splitlines() if "Unknown" in line or "Failed" in line or "rror" in line
    ]
    assert not problems, result.stderr


def test_the_portal_unit_stops_gracefully_and_never_migrates():
    unit = (SYSTEMD / "handover@.service").read_text()
    assert "Environment=HANDOVER_BIND=127.0.0.1:%i" in unit
    assert "KillMode=mixed" in unit
    timeout_stop = int(re.search(r"TimeoutStopSec=(\d+)", unit).group(1))  # type: ignore[union-attr]
    assert timeout_stop > 300, "systemd must wait longer than gunicorn's graceful_timeout"
    assert "db upgrade" not in unit.split("# Never migrate here")[0]


def test_terraform_bucket_is_private_tls_only_encrypted_versioned_and_cleans_up_uploads():
    main = (TERRAFORM / "main.tf").read_text()
    for switch in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert re.search(rf"{switch}\s*=\s*true", main), switch
    assert 'object_ownership = "BucketOwnerEnforced"' in main
    assert re.search(r'variable\s*=\s*"aws:SecureTransport"\s*\n\s*values\s*=\s*\["false"\]', main)
    assert 'sse_algorithm     = "aws:kms"' in main and "kms_master_key_id = aws_kms_key.bucket.arn" in main
    assert main.count("enable_key_rotation     = true") == 2
    assert 'status = "Enabled"' in main
    assert re.search(r"abort_incomplete_multipart_upload \{\s*days_after_initiation = 1", main)
    assert "force_destroy = false" in main


def test_terraform_is_formatted():
    tool = shutil.which("terraform")
    if tool is None:
        _missing("terraform")
    result = subprocess.run(
        [tool, "fmt", "-check", "-recursive", str(TERRAFORM)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_secret_or_state_file_is_committed():
    tracked = subprocess.run(
        ["git", "ls-files", "infra"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    forbidden = [
        path
        for path in tracked
        if path.endswith((".env", ".tfstate", ".tfvars", ".pem", ".key")) or "/.terraform/" in path
    ]
    assert forbidden == []


def test_the_image_copies_only_what_it_needs():
    ignore = (INFRA / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**" in ignore, "the build context is an allow-list"
    assert not any(
        line.startswith("!") and (".venv" in line or "instance" in line or "env/" in line) for line in ignore
    )
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text()
    assert "USER handover" in dockerfile
    assert "db upgrade" not in dockerfile.split("CMD")[-1]


def test_generated_secrets_are_accepted_by_production_settings(tmp_path):
    output = subprocess.run(
        ["sh", str(INFRA / "scripts" / "generate-secrets.sh"), "kek-test"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = dict(line.split("=", 1) for line in output.splitlines())
    from portal.config import load_settings

    settings = load_settings(
        {
            "PORTAL_ENV": "production",
            "PORTAL_SECRET_KEY": values["PORTAL_SECRET_KEY"],
            "PORTAL_KEYRING": values["PORTAL_KEYRING"],
            "PORTAL_DATABASE_URL": "postgresql+psycopg://handover@/handover",
            "PORTAL_SMTP_URL": "smtp://127.0.0.1:25",
            "PORTAL_PUBLIC_BASE_URL": "https://handover.example.org",
            "PORTAL_RATELIMIT_STORAGE_URL": "redis://127.0.0.1:6379/0",
        },
        Path(tmp_path),
    )
    assert settings.keyring().key_ids == ["kek-test"]
    assert len(settings.secret_key) >= 32
