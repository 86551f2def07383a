"""S3-specific behaviour over real HTTP against moto: settings, faults, aborted uploads."""

from __future__ import annotations

import io
import time
from typing import Any

import boto3
import pytest

from portal.storage import (
    S3ObjectStore,
    S3Settings,
    StorageError,
    StorageUnavailable,
    new_object_key,
    store_from_url,
)
from tests.aws_server import FAKE_CREDENTIALS, REGION, free_port

from .conftest import s3_url
from .faults import CuttingProxy
from .test_contract import MIB, PatternStream


def open_uploads(s3_client: Any, bucket: str) -> list[Any]:
    return list(s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def object_names(s3_client: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_settings_are_read_from_the_url() -> None:
    settings = S3Settings.from_url(
        "s3://school-docs/handover/prod?endpoint_url=http://127.0.0.1:9000&region=eu-west-2"
        "&addressing=path&sse=aws:kms&sse_kms_key_id=alias/handover&connect_timeout=2"
        "&read_timeout=30&max_attempts=5&part_size_mib=16&max_concurrency=4"
    )

    assert settings == S3Settings(
        bucket="school-docs",
        prefix="handover/prod/",
        endpoint_url="http://127.0.0.1:9000",
        region="eu-west-2",
        addressing="path",
        sse="aws:kms",
        sse_kms_key_id="alias/handover",
        connect_timeout=2.0,
        read_timeout=30.0,
        max_attempts=5,
        part_size=16 * MIB,
        max_concurrency=4,
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("s3://bucket?colour=blue", "unknown S3 option"),
        ("s3://bucket?part_size_mib=4", "at least 5"),
        ("s3://bucket?addressing=sideways", "addressing"),
        ("s3://bucket?sse=rot13", "sse"),
        ("s3://bucket?sse_kms_key_id=k", "needs sse=aws:kms"),
        ("s3://bucket?max_attempts=many", "malformed number"),
        ("s3://?region=eu-west-2", "names no bucket"),
        ("s3://bucket?endpoint_url=ftp://host", "endpoint_url"),
    ],
)
def test_malformed_s3_urls_are_refused_with_a_reason(url: str, complaint: str) -> None:
    with pytest.raises(StorageError, match=complaint):
        S3Settings.from_url(url)


def test_credentials_in_the_url_are_refused_without_repeating_them() -> None:
    for url in (
        "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/prefix",
        "s3://bucket/p?endpoint_url=http://AKIAEXAMPLE:wJalrXUtnFEMI@minio:9000",
    ):
        with pytest.raises(StorageError) as raised:
            store_from_url(url)
        assert "wJalrXUtnFEMI" not in str(raised.value)
        assert "AKIAEXAMPLE" not in str(raised.value)


def test_unknown_storage_schemes_are_refused() -> None:
    with pytest.raises(StorageError, match=r"file:/// or s3://"):
        store_from_url("ftp://files.example/handover")


def test_an_endpoint_refusing_connections_fails_fast_with_storage_unavailable(
    aws_environment: None,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    store = store_from_url(s3_url("handover-test", closed, connect_timeout=1, max_attempts=2))
    started = time.monotonic()

    with pytest.raises(StorageUnavailable) as raised:
        store.put(new_object_key(), io.BytesIO(b"x" * 1000))

    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert "unreachable" in message
    assert closed in message  # where it tried, for the operator...
    for secret in FAKE_CREDENTIALS.values():  # ...but never what it signed with
        assert secret not in message
    with pytest.raises(StorageUnavailable):
        store.exists(new_object_key())


def test_a_source_failing_after_the_first_part_aborts_the_multipart_upload(
    s3_store: S3ObjectStore, s3_client: Any, bucket: str
) -> None:
    key = new_object_key()

    with pytest.raises(ConnectionResetError):
        s3_store.put(key, PatternStream(20 * MIB, fail_after=7 * MIB))

    assert open_uploads(s3_client, bucket) == []
    assert object_names(s3_client, bucket) == []


def test_a_connection_cut_midway_through_a_part_aborts_the_upload(
    bucket: str, moto_endpoint: str, s3_client: Any
) -> None:
    moto_port = int(moto_endpoint.rsplit(":", 1)[1])
    with CuttingProxy(moto_port, cut_after_bytes=7 * MIB) as proxy:
        # No retries, so the cut is final; the abort afterwards goes through the same proxy.
        store = store_from_url(s3_url(bucket, f"http://127.0.0.1:{proxy.port}", max_attempts=1))
        key = new_object_key()

        with pytest.raises(StorageUnavailable):
            store.put(key, PatternStream(16 * MIB))

    assert proxy.cuts_made == 1
    assert open_uploads(s3_client, bucket) == []
    assert object_names(s3_client, bucket) == []


def test_a_single_connection_cut_is_survived_by_retrying_the_part(
    bucket: str, moto_endpoint: str, s3_client: Any
) -> None:
    moto_port = int(moto_endpoint.rsplit(":", 1)[1])
    with CuttingProxy(moto_port, cut_after_bytes=7 * MIB) as proxy:
        store = store_from_url(s3_url(bucket, f"http://127.0.0.1:{proxy.port}", max_attempts=3))
        key = new_object_key()
        source = PatternStream(16 * MIB)

        assert store.put(key, source) == 16 * MIB

        with store.open(key) as stream:
            assert len(stream.read()) == 16 * MIB
    assert proxy.cuts_made == 1
    assert open_uploads(s3_client, bucket) == []


def test_server_side_encryption_is_requested_as_a_second_layer(
    bucket: str, moto_endpoint: str, s3_client: Any
) -> None:
    kms = boto3.session.Session().client("kms", endpoint_url=moto_endpoint, region_name=REGION)
    kms_key = kms.create_key()["KeyMetadata"]["Arn"]
    store = store_from_url(s3_url(bucket, moto_endpoint, sse="aws:kms", sse_kms_key_id=kms_key))
    small, large = new_object_key(), new_object_key()

    store.put(small, io.BytesIO(b"x"))
    store.put(large, PatternStream(6 * MIB))  # multipart: the headers go on CreateMultipartUpload

    for key in (small, large):
        head = s3_client.head_object(Bucket=bucket, Key=f"documents/{key}")
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == kms_key


def test_objects_live_under_the_configured_prefix_and_foreign_objects_are_not_listed(
    s3_store: S3ObjectStore, s3_client: Any, bucket: str
) -> None:
    key = new_object_key()
    s3_store.put(key, io.BytesIO(b"x"))
    s3_client.put_object(Bucket=bucket, Key="documents/README.txt", Body=b"not ours")
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"outside the prefix")

    assert f"documents/{key}" in object_names(s3_client, bucket)
    assert [listed for listed, _ in s3_store.list_keys()] == [key]


def test_a_missing_bucket_is_a_storage_error_naming_the_bucket(moto_endpoint: str) -> None:
    store = store_from_url(s3_url("no-such-bucket-here", moto_endpoint))

    with pytest.raises(StorageError, match=r"no-such-bucket-here.*does not exist"):
        store.put(new_object_key(), io.BytesIO(b"x"))


def test_listing_pages_through_more_than_a_thousand_keys(s3_store: S3ObjectStore, s3_client: Any) -> None:
    # Written behind the store's back: a thousand uploads through it would be slow for nothing.
    keys = {new_object_key() for _ in range(1005)}
    for key in keys:
        s3_client.put_object(Bucket=s3_store.settings.bucket, Key=f"documents/{key}", Body=b"")

    assert {key for key, _ in s3_store.list_keys()} == keys
