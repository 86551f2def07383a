"""Amazon S3 (or an S3-compatible service such as MinIO) as an object store.

``s3://bucket/optional/prefix?option=value&...`` with these options, all optional:

==================  =========================================================================
endpoint_url        ``http(s)://host:port`` of an S3-compatible service (default: AWS)
region              e.g. ``eu-west-2`` (default: from the standard AWS configuration)
addressing          ``path`` or ``virtual`` bucket addressing (default: botocore's choice)
sse                 server-side encryption as a second layer: ``aws:kms`` or ``AES256``
sse_kms_key_id      the KMS key for ``sse=aws:kms`` (default: the bucket's / AWS managed key)
connect_timeout     seconds to wait for a connection (default 5)
read_timeout        seconds to wait on a socket read (default 60)
max_attempts        total attempts per request, first included (default 3; ``1`` = no retries)
part_size_mib       multipart part size in MiB, at least 5 (S3's minimum; default 8)
max_concurrency     parts uploaded in parallel (default 2)
==================  =========================================================================

Credentials come only from the standard AWS sources (environment, shared profile, instance or
task role): a URL carrying credentials is refused, so they never reach settings files or logs.

Uploads stream through ``upload_fileobj`` from a non-seekable reader, so memory stays bounded
by about ``(2 * max_concurrency + 2) * part_size`` whatever the object's size. If an upload fails,
s3transfer aborts the multipart upload; :meth:`S3ObjectStore.put` then also aborts anything
still open under the key, in case that abort itself failed. When the endpoint is unreachable
even that cannot run, so buckets should carry an ``AbortIncompleteMultipartUpload`` lifecycle
rule (SECURITY.md section 5).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qsl, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from portal.storage.base import (
    ObjectMissing,
    ReadableStream,
    SourceReader,
    StorageError,
    StorageUnavailable,
    validate_key_prefix,
    validate_object_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # S3 refuses smaller parts (except the last)
_SSE_MODES = ("aws:kms", "AES256")
_UNAVAILABLE_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed"}
)
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True)
class S3Settings:
    """Everything an :class:`S3ObjectStore` needs, usually parsed from an ``s3://`` URL."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    addressing: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    part_size: int = 8 * MIB
    max_concurrency: int = 2

    def __post_init__(self) -> None:
        if not self.bucket:
            raise StorageError("the S3 storage URL names no bucket (s3://BUCKET/prefix)")
        if self.prefix and not self.prefix.endswith("/"):
            raise StorageError("an S3 key prefix must end with '/'")
        if self.addressing not in (None, "path", "virtual"):
            raise StorageError("S3 option addressing must be 'path' or 'virtual'")
        if self.sse not in (None, *_SSE_MODES):
            raise StorageError(f"S3 option sse must be one of {', '.join(_SSE_MODES)}")
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise StorageError("S3 option sse_kms_key_id needs sse=aws:kms")
        if self.part_size < MIN_PART_SIZE:
            raise StorageError("S3 option part_size_mib must be at least 5 (S3's minimum part size)")
        if self.max_concurrency < 1 or self.max_attempts < 1:
            raise StorageError("S3 options max_concurrency and max_attempts must be at least 1")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise StorageError("S3 timeouts must be positive")
        if self.endpoint_url is not None:
            endpoint = urlsplit(self.endpoint_url)
            if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
                raise StorageError("S3 option endpoint_url must be an http(s)://host[:port] URL")
            if endpoint.username or endpoint.password:
                raise StorageError("S3 endpoint_url must not carry credentials")

    @classmethod
    def from_url(cls, url: str) -> S3Settings:
        """Parse ``s3://bucket/prefix?options`` (see the module docstring)."""
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise StorageError("an S3 storage URL starts with s3://")
        if parts.username or parts.password or "@" in parts.netloc:
            # Deliberately vague: repeating the URL would repeat the secret.
            raise StorageError(
                "the S3 storage URL must not carry credentials; use the standard AWS sources "
                "(environment, profile or instance role)"
            )
        options: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
            if name in options:
                raise StorageError(f"S3 option {name} is given twice")
            options[name] = value
        prefix = parts.path.strip("/")
        known = {
            "endpoint_url", "region", "addressing", "sse", "sse_kms_key_id", "connect_timeout",
            "read_timeout", "max_attempts", "part_size_mib", "max_concurrency",
        }  # fmt: skip
        unknown = sorted(set(options) - known)
        if unknown:
            raise StorageError(f"unknown S3 option(s): {', '.join(unknown)}")
        try:
            return cls(
                bucket=parts.hostname or "",
                prefix=f"{prefix}/" if prefix else "",
                endpoint_url=options.get("endpoint_url") or None,
                region=options.get("region") or None,
                addressing=options.get("addressing") or None,
                sse=options.get("sse") or None,
                sse_kms_key_id=options.get("sse_kms_key_id") or None,
                connect_timeout=float(options.get("connect_timeout", cls.connect_timeout)),
                read_timeout=float(options.get("read_timeout", cls.read_timeout)),
                max_attempts=int(options.get("max_attempts", cls.max_attempts)),
                part_size=int(options.get("part_size_mib", cls.part_size // MIB)) * MIB,
                max_concurrency=int(options.get("max_concurrency", cls.max_concurrency)),
            )
        except ValueError as exc:
            raise StorageError(f"an S3 option has a malformed number: {exc}") from None

    @property
    def endpoint_for_messages(self) -> str:
        """Where the store lives, fit for an error message (no query, no credentials)."""
        if self.endpoint_url is None:
            return f"s3://{self.bucket} (AWS{', ' + self.region if self.region else ''})"
        endpoint = urlsplit(self.endpoint_url)
        return f"s3://{self.bucket} at {endpoint.scheme}://{endpoint.netloc}"


class S3ObjectStore:
    """Objects in one bucket under one key prefix."""

    def __init__(self, settings: S3Settings, *, client: S3Client | None = None) -> None:
        self.settings = settings
        self._client: S3Client = client or _make_client(settings)
        self._transfer_config = TransferConfig(
            multipart_threshold=settings.part_size,
            multipart_chunksize=settings.part_size,
            max_concurrency=settings.max_concurrency,
            # The classic transfer manager: the CRT one would pick its own part sizes and memory.
            preferred_transfer_client="classic",
        )
        # s3transfer buffers up to this many parts read from a non-seekable stream (default 10,
        # i.e. 80 MiB at 8 MiB parts); one per concurrent upload keeps them busy.
        self._transfer_config.max_in_memory_upload_chunks = settings.max_concurrency
        self._extra_args: dict[str, Any] = {}
        if settings.sse:
            self._extra_args["ServerSideEncryption"] = settings.sse
        if settings.sse_kms_key_id:
            self._extra_args["SSEKMSKeyId"] = settings.sse_kms_key_id

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.settings.endpoint_for_messages}, prefix={self.settings.prefix!r})"

    def put(self, key: str, stream: ReadableStream) -> int:
        """Multipart-upload ``stream`` to ``key``; see :meth:`ObjectStore.put`."""
        full_key = self._full_key(key)
        source = SourceReader(stream)
        try:
            self._client.upload_fileobj(
                source,  # type: ignore[arg-type]  # anything with read() will do
                self.settings.bucket,
                full_key,
                ExtraArgs=self._extra_args or None,
                Config=self._transfer_config,
            )
        except Exception as exc:
            self._abort_open_uploads(full_key)
            if source.failed:
                raise
            raise self._translate(exc, "upload") from exc
        return source.bytes_read

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """Yield a buffered stream over the object's body; see :meth:`ObjectStore.open`."""
        full_key = self._full_key(key)
        try:
            response = self._client.get_object(Bucket=self.settings.bucket, Key=full_key)
        except Exception as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from None
            raise self._translate(exc, "download") from exc
        raw = _BodyReader(response, self)
        try:
            yield io.BufferedReader(raw, buffer_size=256 * 1024)
        finally:
            raw.close()

    def delete(self, key: str) -> None:
        """Delete the object (with versioning on, this adds a delete marker)."""
        full_key = self._full_key(key)
        try:
            self._client.delete_object(Bucket=self.settings.bucket, Key=full_key)
        except Exception as exc:
            if _is_missing(exc):
                return
            raise self._translate(exc, "delete") from exc

    def exists(self, key: str) -> bool:
        """Whether ``HeadObject`` finds the key."""
        full_key = self._full_key(key)
        try:
            self._client.head_object(Bucket=self.settings.bucket, Key=full_key)
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise self._translate(exc, "look up") from exc
        return True

    def list_keys(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Generated keys under the store's prefix starting with ``prefix``, with LastModified (UTC)."""
        validate_key_prefix(prefix)
        base = self.settings.prefix
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=base + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(base) :]
                    try:
                        validate_object_key(key)
                    except StorageError:
                        continue  # not one of ours
                    yield key, item["LastModified"].astimezone(UTC)
        except StorageError:
            raise
        except Exception as exc:
            raise self._translate(exc, "list objects") from exc

    def _full_key(self, key: str) -> str:
        return self.settings.prefix + validate_object_key(key)

    def _abort_open_uploads(self, full_key: str) -> None:
        """Abort any multipart upload still open under ``full_key`` (best effort).

        Keys are random and never reused, so every upload under this exact key is the one that
        just failed.
        """
        try:
            listing = self._client.list_multipart_uploads(Bucket=self.settings.bucket, Prefix=full_key)
            for upload in listing.get("Uploads", []):
                if upload.get("Key") == full_key and "UploadId" in upload:
                    self._client.abort_multipart_upload(
                        Bucket=self.settings.bucket, Key=full_key, UploadId=upload["UploadId"]
                    )
        except Exception as exc:
            log.warning(
                "could not check for an unfinished upload in %s: %s (the bucket's "
                "AbortIncompleteMultipartUpload lifecycle rule will remove it)",
                self.settings.endpoint_for_messages,
                type(exc).__name__,
            )

    def _translate(self, exc: Exception, action: str) -> StorageError:
        """A named storage exception whose message names no credential and no signed URL."""
        where = self.settings.endpoint_for_messages
        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, BotocoreConnectionError | HTTPClientError | IncompleteReadError):
            return StorageUnavailable(f"object store {where} is unreachable ({action}: {type(exc).__name__})")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorageError(
                "no usable AWS credentials for the object store "
                "(set them in the environment, a profile or an instance role)"
            )
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "unknown"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if status >= 500 or code in _UNAVAILABLE_CODES:
                return StorageUnavailable(f"object store {where} is failing ({action}: {code})")
            if code == "NoSuchBucket":
                return StorageError(f"object store {where}: the bucket does not exist")
            return StorageError(f"object store {where} refused to {action}: {code}")
        if isinstance(exc, BotoCoreError):
            return StorageError(f"object store {where} failed to {action}: {type(exc).__name__}")
        return StorageError(f"object store {where} failed to {action}: {type(exc).__name__}")


class _BodyReader(io.RawIOBase):
    """A GetObject body as a raw stream whose network errors become :class:`StorageUnavailable`."""

    def __init__(self, response: GetObjectOutputTypeDef, store: S3ObjectStore) -> None:
        super().__init__()
        self._body = response["Body"]
        self._store = store

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:
            raise self._store._translate(exc, "download") from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _is_missing(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING_CODES


def _make_client(settings: S3Settings) -> S3Client:
    config = Config(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
        s3={"addressing_style": "path" if settings.addressing == "path" else "virtual"}
        if settings.addressing
        else None,
        signature_version="s3v4",
    )
    # A session of its own: the standard credential chain, without sharing boto3's global
    # default session (not thread-safe to create clients from concurrently).
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config
    )
