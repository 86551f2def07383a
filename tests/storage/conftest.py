"""Fixtures for the object-store tests: a local directory store and an S3 store served over
real HTTP by moto's server mode on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from portal.storage import LocalDirectoryStore, ObjectStore, S3ObjectStore, store_from_url
from tests.aws_server import REGION, fake_aws_environment, running_moto_server


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[None]:
    """Fake credentials only: nothing from a developer's profile or an instance role."""
    with fake_aws_environment():
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_environment: None) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto server running for the whole session."""
    with running_moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    """A plain boto3 client, to look at the bucket behind the store's back."""
    return boto3.session.Session().client("s3", endpoint_url=moto_endpoint, region_name=REGION)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    """A fresh, empty bucket for each test."""
    name = f"handover-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def s3_url(bucket: str, endpoint: str, **options: object) -> str:
    """A storage URL for the test bucket; 5 MiB parts keep multipart tests small."""
    query = {"endpoint_url": endpoint, "region": REGION, "addressing": "path", "part_size_mib": 5}
    query.update(options)
    return f"s3://{bucket}/documents?" + "&".join(f"{name}={value}" for name, value in query.items())


@pytest.fixture
def local_store(tmp_path: Path) -> ObjectStore:
    return store_from_url(f"file://{tmp_path / 'objects'}")


@pytest.fixture
def s3_store(bucket: str, moto_endpoint: str) -> ObjectStore:
    return store_from_url(s3_url(bucket, moto_endpoint))


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each contract test runs once against every store."""
    chosen: ObjectStore = request.getfixturevalue(f"{request.param}_store")
    return chosen


@pytest.fixture
def stored_bytes(request: pytest.FixtureRequest) -> Callable[[ObjectStore], list[bytes]]:
    """A function returning every byte the store under test holds (files or S3 objects)."""

    def collect(store: ObjectStore) -> list[bytes]:
        if isinstance(store, LocalDirectoryStore):
            return [path.read_bytes() for path in store.root.rglob("*") if path.is_file()]
        assert isinstance(store, S3ObjectStore)
        client = request.getfixturevalue("s3_client")
        bucket = store.settings.bucket
        contents = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return [client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in contents]

    return collect
