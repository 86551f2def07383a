"""Data keys wrapped by AWS KMS (``aws-kms-symmetric-default``, see :mod:`portal.crypto.wrapping`).

The key-encryption key never leaves KMS: ``wrap`` is ``Encrypt``, ``unwrap`` is ``Decrypt`` and
``rewrap`` is ``ReEncrypt`` (the data key is not even exposed to the portal during a rotation).
The wrapping context goes in as ``EncryptionContext``, so KMS refuses a wrapped key presented
with another document's context, and CloudTrail records which document each decryption was
for. Credentials come only from the standard AWS sources (environment, profile, role).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from portal.crypto.errors import KeyServiceError, KeyServiceUnavailable, KeyUnwrapFailed
from portal.crypto.keyring import KeyringError, UnknownKeyError
from portal.crypto.wrapping import (
    DATA_KEY_BYTES,
    KMS_ALGORITHM,
    UnsupportedWrapAlgorithm,
    WrappedKey,
    canonical_context,
    check_data_key,
)

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

_UNAVAILABLE_CODES = frozenset(
    {"ThrottlingException", "KMSInternalException", "DependencyTimeoutException", "ServiceUnavailable"}
)
_TAMPERED_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
_NOT_CONFIGURED = "the KMS keys configured for this portal"


class KmsKeyWrapper:
    """Wraps data keys with a symmetric AWS KMS key; older keys stay usable for unwrapping.

    ``key_id`` (key id, key ARN or ``alias/...``) wraps new data keys; ``previous_key_ids``
    are accepted for unwrapping until a rotation has moved everything off them. Ids are
    resolved to key ARNs once, on first use, with ``DescribeKey``.
    """

    algorithm = KMS_ALGORITHM

    def __init__(
        self,
        key_id: str,
        *,
        previous_key_ids: Sequence[str] = (),
        region: str | None = None,
        endpoint_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
        client: KMSClient | None = None,
    ) -> None:
        if not key_id:
            raise KeyringError("no KMS key id configured for wrapping data keys")
        self._key_id = key_id
        self._previous_key_ids = tuple(previous_key_ids)
        self._client: KMSClient = client or _make_client(
            region=region,
            endpoint_url=endpoint_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
        )
        self._arns: dict[str, str | None] = {}

    @classmethod
    def from_spec(cls, spec: str) -> KmsKeyWrapper:
        """Parse ``aws-kms:?key_id=ID[&previous_key_ids=ID,ID][&region=R][&endpoint_url=URL]``."""
        parts = urlsplit(spec)
        if parts.scheme != "aws-kms":
            raise KeyringError("a KMS key-wrapper setting starts with aws-kms:?key_id=...")
        options = dict(parse_qsl(parts.query))
        unknown = sorted(set(options) - {"key_id", "previous_key_ids", "region", "endpoint_url"})
        if unknown:
            raise KeyringError(f"unknown KMS option(s): {', '.join(unknown)}")
        previous = [item for item in options.get("previous_key_ids", "").split(",") if item]
        return cls(
            options.get("key_id", ""),
            previous_key_ids=previous,
            region=options.get("region") or None,
            endpoint_url=options.get("endpoint_url") or None,
        )

    @property
    def current_key_id(self) -> str:
        """The ARN of the key new data keys are wrapped under."""
        arn = self._resolve(self._key_id)
        if arn is None:
            raise UnknownKeyError(self._key_id, where="AWS KMS")
        return arn

    def wrap(self, data_key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        """KMS ``Encrypt`` of the data key under the current key with ``context``."""
        check_data_key(data_key)
        canonical_context(context)  # same validation as the local wrapper
        try:
            response = self._client.encrypt(
                KeyId=self._key_id,
                Plaintext=bytes(data_key),
                EncryptionContext=dict(context),
                EncryptionAlgorithm="SYMMETRIC_DEFAULT",
            )
        except Exception as exc:
            raise self._translate(exc, self._key_id) from exc
        return WrappedKey(response["KeyId"], response["CiphertextBlob"], KMS_ALGORITHM)

    def unwrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        """KMS ``Decrypt``, pinned to the recorded key; see :meth:`KeyWrapper.unwrap`."""
        self._check_configured(wrapped_key)
        canonical_context(context)
        try:
            response = self._client.decrypt(
                CiphertextBlob=wrapped_key.wrapped,
                EncryptionContext=dict(context),
                KeyId=wrapped_key.key_id,
                EncryptionAlgorithm="SYMMETRIC_DEFAULT",
            )
        except Exception as exc:
            raise self._translate(exc, wrapped_key.key_id) from exc
        data_key = response["Plaintext"]
        if len(data_key) != DATA_KEY_BYTES:
            raise KeyUnwrapFailed("KMS returned something other than a 32-byte data key")
        return data_key

    def needs_rewrap(self, wrapped_key: WrappedKey) -> bool:
        """True unless wrapped under the current key's ARN."""
        if wrapped_key.algorithm != KMS_ALGORITHM:
            raise UnsupportedWrapAlgorithm(wrapped_key.algorithm, KMS_ALGORITHM)
        return wrapped_key.key_id != self.current_key_id

    def rewrap(self, wrapped_key: WrappedKey, *, context: Mapping[str, str]) -> WrappedKey:
        """KMS ``ReEncrypt`` to the current key; the same object if already under it."""
        if not self.needs_rewrap(wrapped_key):
            return wrapped_key
        self._check_configured(wrapped_key)
        canonical_context(context)
        try:
            response = self._client.re_encrypt(
                CiphertextBlob=wrapped_key.wrapped,
                SourceEncryptionContext=dict(context),
                SourceKeyId=wrapped_key.key_id,
                DestinationKeyId=self._key_id,
                DestinationEncryptionContext=dict(context),
                SourceEncryptionAlgorithm="SYMMETRIC_DEFAULT",
                DestinationEncryptionAlgorithm="SYMMETRIC_DEFAULT",
            )
        except Exception as exc:
            raise self._translate(exc, wrapped_key.key_id) from exc
        return WrappedKey(response["KeyId"], response["CiphertextBlob"], KMS_ALGORITHM)

    def _check_configured(self, wrapped_key: WrappedKey) -> None:
        if wrapped_key.algorithm != KMS_ALGORITHM:
            raise UnsupportedWrapAlgorithm(wrapped_key.algorithm, KMS_ALGORITHM)
        # Only keys this portal is configured for: a row pointing at some other key the role
        # happens to be allowed to use is refused before KMS is asked.
        configured = {self._resolve(key) for key in (self._key_id, *self._previous_key_ids)}
        if wrapped_key.key_id not in configured:
            raise UnknownKeyError(wrapped_key.key_id, where=_NOT_CONFIGURED)

    def _resolve(self, key_id: str) -> str | None:
        """The ARN of a configured key id or alias (cached); None if KMS does not know it."""
        if key_id not in self._arns:
            try:
                metadata = self._client.describe_key(KeyId=key_id)["KeyMetadata"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NotFoundException":
                    raise self._translate(exc, key_id) from exc
                # Not cached: a key created later should be found without a restart.
                return None
            except Exception as exc:
                raise self._translate(exc, key_id) from exc
            self._arns[key_id] = metadata["Arn"]
        return self._arns[key_id]

    @staticmethod
    def _translate(exc: Exception, key_id: str) -> Exception:
        """A named exception with the key id and the KMS error code, nothing secret."""
        if isinstance(exc, BotocoreConnectionError | HTTPClientError):
            return KeyServiceUnavailable(f"AWS KMS is unreachable ({type(exc).__name__})")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return KeyServiceError(
                "no usable AWS credentials for KMS (set them in the environment, a profile or a role)"
            )
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code == "NotFoundException":
                return UnknownKeyError(key_id, where="AWS KMS")
            if code in _TAMPERED_CODES:
                return KeyUnwrapFailed(
                    "KMS refused the wrapped data key (altered, or belongs to another document)"
                )
            if code in _UNAVAILABLE_CODES or status >= 500:
                return KeyServiceUnavailable(f"AWS KMS is failing ({code})")
            if code in ("DisabledException", "KMSInvalidStateException"):
                return KeyServiceError(f"KMS key {key_id!r} is disabled or pending deletion")
            return KeyServiceError(f"AWS KMS refused the request for key {key_id!r}: {code}")
        if isinstance(exc, BotoCoreError):
            return KeyServiceError(f"AWS KMS request failed: {type(exc).__name__}")
        return exc


def _make_client(
    *,
    region: str | None,
    endpoint_url: str | None,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
) -> KMSClient:
    # boto3 is imported here: it is slow to import and a local-keyring portal never needs it.
    import boto3

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
    )
    return boto3.session.Session().client("kms", region_name=region, endpoint_url=endpoint_url, config=config)
