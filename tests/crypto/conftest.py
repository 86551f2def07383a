"""Fixtures for the crypto tests: local keyrings, and AWS KMS served by moto on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from portal.crypto.keyring import LocalKeyring

REGION = "eu-west-2"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-access-key", "AWS_SECRET_ACCESS_KEY": "testing-secret-key"}


@pytest.fixture
def keyring() -> LocalKeyring:
    return LocalKeyring.from_spec(LocalKeyring.generate_spec("kek-2026-01"))


@pytest.fixture(scope="session")
def kms_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto server (KMS) with fake credentials in the environment."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_CREDENTIALS.items():
            patch.setenv(name, value)
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"):
            patch.delenv(name, raising=False)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        with socket.socket() as sock:  # moto's server cannot report a port-0 bind
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        yield f"http://127.0.0.1:{port}"
        server.stop()


@pytest.fixture
def kms_client(kms_endpoint: str) -> Any:
    """A plain KMS client, for creating keys behind the wrapper's back."""
    return boto3.session.Session().client("kms", endpoint_url=kms_endpoint, region_name=REGION)


@pytest.fixture
def kms_key_arn(kms_client: Any) -> str:
    arn: str = kms_client.create_key(Description="handover test KEK")["KeyMetadata"]["Arn"]
    return arn
