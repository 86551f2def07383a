"""Fixtures for the crypto tests: local keyrings, and AWS KMS served by moto on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from portal.crypto.keyring import LocalKeyring
from tests.aws_server import REGION, fake_aws_environment, running_moto_server


@pytest.fixture
def keyring() -> LocalKeyring:
    return LocalKeyring.from_spec(LocalKeyring.generate_spec("kek-2026-01"))


@pytest.fixture(scope="session")
def kms_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto server (KMS) with fake credentials in the environment."""
    with fake_aws_environment(), running_moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def kms_client(kms_endpoint: str) -> Any:
    """A plain KMS client, for creating keys behind the wrapper's back."""
    return boto3.session.Session().client("kms", endpoint_url=kms_endpoint, region_name=REGION)


@pytest.fixture
def kms_key_arn(kms_client: Any) -> str:
    arn: str = kms_client.create_key(Description="handover test KEK")["KeyMetadata"]["Arn"]
    return arn
