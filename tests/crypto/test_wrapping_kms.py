"""Data keys wrapped by AWS KMS, over real HTTP against moto's server mode."""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

import pytest

from portal.crypto import (
    KeyServiceUnavailable,
    KeyUnwrapFailed,
    UnknownKeyError,
    UnsupportedWrapAlgorithm,
    WrappedKey,
    document_key_context,
    key_wrapper_from_spec,
    new_data_key,
)
from portal.crypto.kms import KmsKeyWrapper
from portal.crypto.wrapping import KMS_ALGORITHM, LOCAL_ALGORITHM
from tests.aws_server import FAKE_CREDENTIALS, REGION

CONTEXT = document_key_context(organisation_id=3, transfer_id=41, document_id=7)


def wrapper_for(endpoint: str, key_id: str, previous: tuple[str, ...] = ()) -> KmsKeyWrapper:
    return KmsKeyWrapper(key_id, previous_key_ids=previous, region=REGION, endpoint_url=endpoint)


def test_a_data_key_round_trips_through_kms(kms_endpoint: str, kms_key_arn: str) -> None:
    wrapper = wrapper_for(kms_endpoint, kms_key_arn)
    data_key = new_data_key()

    wrapped = wrapper.wrap(data_key, context=CONTEXT)

    assert wrapped.key_id == kms_key_arn
    assert wrapped.algorithm == KMS_ALGORITHM
    assert data_key not in wrapped.wrapped
    assert wrapper.unwrap(wrapped, context=CONTEXT) == data_key


def test_an_alias_works_and_records_the_key_arn(kms_endpoint: str, kms_client: Any, kms_key_arn: str) -> None:
    kms_client.create_alias(AliasName="alias/handover-test-documents", TargetKeyId=kms_key_arn)
    wrapper = key_wrapper_from_spec(
        f"aws-kms:?key_id=alias/handover-test-documents&region={REGION}&endpoint_url={kms_endpoint}"
    )

    wrapped = wrapper.wrap(new_data_key(), context=CONTEXT)

    assert wrapped.key_id == kms_key_arn
    assert wrapper.current_key_id == kms_key_arn
    assert not wrapper.needs_rewrap(wrapped)


def test_kms_refuses_a_wrapped_key_presented_with_another_documents_context(
    kms_endpoint: str, kms_key_arn: str
) -> None:
    wrapper = wrapper_for(kms_endpoint, kms_key_arn)
    wrapped = wrapper.wrap(new_data_key(), context=CONTEXT)

    with pytest.raises(KeyUnwrapFailed):
        wrapper.unwrap(wrapped, context={**CONTEXT, "document": "8"})


def test_an_altered_wrapped_key_is_refused(kms_endpoint: str, kms_key_arn: str) -> None:
    wrapper = wrapper_for(kms_endpoint, kms_key_arn)
    wrapped = wrapper.wrap(new_data_key(), context=CONTEXT)
    altered = bytearray(wrapped.wrapped)
    altered[-1] ^= 1

    with pytest.raises(KeyUnwrapFailed):
        wrapper.unwrap(dataclasses.replace(wrapped, wrapped=bytes(altered)), context=CONTEXT)


def test_a_kms_key_that_does_not_exist_is_named_in_the_error(kms_endpoint: str) -> None:
    missing = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"
    wrapper = wrapper_for(kms_endpoint, missing)

    with pytest.raises(UnknownKeyError, match=missing) as raised:
        wrapper.wrap(new_data_key(), context=CONTEXT)

    assert raised.value.key_id == missing


def test_a_wrapped_key_under_a_kek_this_portal_is_not_configured_for_is_refused_by_id(
    kms_endpoint: str, kms_client: Any, kms_key_arn: str
) -> None:
    elsewhere = kms_client.create_key()["KeyMetadata"]["Arn"]
    wrapped = wrapper_for(kms_endpoint, elsewhere).wrap(new_data_key(), context=CONTEXT)

    with pytest.raises(UnknownKeyError, match=elsewhere):
        wrapper_for(kms_endpoint, kms_key_arn).unwrap(wrapped, context=CONTEXT)


def test_rewrap_re_encrypts_under_the_new_key_and_is_then_a_no_op(
    kms_endpoint: str, kms_client: Any, kms_key_arn: str
) -> None:
    data_key = new_data_key()
    old = wrapper_for(kms_endpoint, kms_key_arn).wrap(data_key, context=CONTEXT)
    new_arn = kms_client.create_key()["KeyMetadata"]["Arn"]
    wrapper = wrapper_for(kms_endpoint, new_arn, previous=(kms_key_arn,))
    assert wrapper.needs_rewrap(old)

    moved = wrapper.rewrap(old, context=CONTEXT)

    assert moved.key_id == new_arn
    assert not wrapper.needs_rewrap(moved)
    assert wrapper.unwrap(moved, context=CONTEXT) == data_key
    assert wrapper.unwrap(old, context=CONTEXT) == data_key  # previous keys still open old rows
    assert wrapper.rewrap(moved, context=CONTEXT) is moved


def test_a_locally_wrapped_key_is_refused_by_the_kms_wrapper(kms_endpoint: str, kms_key_arn: str) -> None:
    local = WrappedKey("kek-2026-01", b"\x01sealed", LOCAL_ALGORITHM)

    with pytest.raises(UnsupportedWrapAlgorithm):
        wrapper_for(kms_endpoint, kms_key_arn).unwrap(local, context=CONTEXT)


def test_an_unreachable_kms_is_reported_as_unavailable_without_secrets(kms_endpoint: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    wrapper = KmsKeyWrapper("alias/x", region=REGION, endpoint_url=closed, connect_timeout=1, max_attempts=1)

    with pytest.raises(KeyServiceUnavailable) as raised:
        wrapper.wrap(new_data_key(), context=CONTEXT)

    for secret in FAKE_CREDENTIALS.values():
        assert secret not in str(raised.value)
