"""Data keys wrapped by the local keyring: binding, missing keys, rotation and rewrap."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from portal.crypto import (
    KeyringError,
    KeyUnwrapFailed,
    LocalKeyring,
    LocalKeyWrapper,
    UnknownKeyError,
    UnsupportedWrapAlgorithm,
    WrappedKey,
    document_key_context,
    key_wrapper_from_spec,
    new_data_key,
)
from portal.crypto.wrapping import LOCAL_ALGORITHM

CONTEXT = document_key_context(organisation_id=3, transfer_id=41, document_id=7)


def rotated(keyring: LocalKeyring, new_id: str = "kek-2026-07") -> LocalKeyring:
    """The same keyring with a newer key appended, as an operator's rotation does."""
    keys = [f"{key_id}:{base64.b64encode(keyring.material(key_id)).decode()}" for key_id in keyring.key_ids]
    return LocalKeyring.from_spec(",".join([*keys, LocalKeyring.generate_spec(new_id)]))


def test_a_wrapped_data_key_unwraps_with_the_same_context(keyring: LocalKeyring) -> None:
    wrapper = LocalKeyWrapper(keyring)
    data_key = new_data_key()

    wrapped = wrapper.wrap(data_key, context=CONTEXT)

    assert wrapped.key_id == "kek-2026-01"
    assert wrapped.algorithm == LOCAL_ALGORITHM
    assert data_key not in wrapped.wrapped
    assert wrapper.unwrap(wrapped, context=dict(reversed(CONTEXT.items()))) == data_key


def test_a_wrapped_key_copied_onto_another_document_does_not_unwrap(keyring: LocalKeyring) -> None:
    wrapper = LocalKeyWrapper(keyring)
    wrapped = wrapper.wrap(new_data_key(), context=CONTEXT)

    for other in (
        document_key_context(organisation_id=3, transfer_id=41, document_id=8),
        document_key_context(organisation_id=4, transfer_id=41, document_id=7),
        {**CONTEXT, "extra": "x"},
    ):
        with pytest.raises(KeyUnwrapFailed):
            wrapper.unwrap(wrapped, context=other)


def test_an_altered_wrapped_key_does_not_unwrap(keyring: LocalKeyring) -> None:
    wrapper = LocalKeyWrapper(keyring)
    wrapped = wrapper.wrap(new_data_key(), context=CONTEXT)
    altered = bytearray(wrapped.wrapped)
    altered[-1] ^= 1

    with pytest.raises(KeyUnwrapFailed):
        wrapper.unwrap(dataclasses.replace(wrapped, wrapped=bytes(altered)), context=CONTEXT)
    with pytest.raises(KeyUnwrapFailed):
        wrapper.unwrap(dataclasses.replace(wrapped, wrapped=b"\x07junk"), context=CONTEXT)


def test_a_missing_key_encryption_key_is_named_in_the_error(keyring: LocalKeyring) -> None:
    wrapped = LocalKeyWrapper(keyring).wrap(new_data_key(), context=CONTEXT)
    other_portal = LocalKeyWrapper(LocalKeyring.from_spec(LocalKeyring.generate_spec("kek-other")))

    with pytest.raises(UnknownKeyError, match="kek-2026-01") as raised:
        other_portal.unwrap(wrapped, context=CONTEXT)

    assert raised.value.key_id == "kek-2026-01"


def test_a_recorded_key_id_that_disagrees_with_the_sealed_one_is_refused(keyring: LocalKeyring) -> None:
    newer = rotated(keyring)
    wrapped = LocalKeyWrapper(keyring).wrap(new_data_key(), context=CONTEXT)

    with pytest.raises(KeyUnwrapFailed, match="disagrees"):
        LocalKeyWrapper(newer).unwrap(dataclasses.replace(wrapped, key_id="kek-2026-07"), context=CONTEXT)


def test_rewrap_moves_an_old_key_to_the_newest_kek_and_is_then_a_no_op(keyring: LocalKeyring) -> None:
    data_key = new_data_key()
    old = LocalKeyWrapper(keyring).wrap(data_key, context=CONTEXT)
    wrapper = LocalKeyWrapper(rotated(keyring))
    assert wrapper.needs_rewrap(old)

    moved = wrapper.rewrap(old, context=CONTEXT)

    assert moved.key_id == "kek-2026-07"
    assert not wrapper.needs_rewrap(moved)
    assert wrapper.unwrap(moved, context=CONTEXT) == data_key
    assert wrapper.unwrap(old, context=CONTEXT) == data_key  # the old KEK still opens old rows
    again = wrapper.rewrap(moved, context=CONTEXT)
    assert again is moved  # idempotent: an interrupted rotation can simply run again


def test_rewrap_with_the_wrong_context_fails_rather_than_rewrapping(keyring: LocalKeyring) -> None:
    old = LocalKeyWrapper(keyring).wrap(new_data_key(), context=CONTEXT)
    wrapper = LocalKeyWrapper(rotated(keyring))

    with pytest.raises(KeyUnwrapFailed):
        wrapper.rewrap(old, context={**CONTEXT, "document": "8"})


def test_a_key_wrapped_by_another_kind_of_wrapper_is_refused_by_name(keyring: LocalKeyring) -> None:
    foreign = WrappedKey("arn:aws:kms:eu-west-2:111122223333:key/x", b"blob", "aws-kms-symmetric-default")

    with pytest.raises(UnsupportedWrapAlgorithm, match="aws-kms-symmetric-default"):
        LocalKeyWrapper(keyring).unwrap(foreign, context=CONTEXT)


@pytest.mark.parametrize("context", [{}, {"": "x"}, {"a": 1}])
def test_malformed_contexts_are_refused(keyring: LocalKeyring, context: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LocalKeyWrapper(keyring).wrap(new_data_key(), context=context)  # type: ignore[arg-type]


def test_only_32_byte_data_keys_are_wrapped(keyring: LocalKeyring) -> None:
    with pytest.raises(ValueError):
        LocalKeyWrapper(keyring).wrap(b"short", context=CONTEXT)


def test_the_wrapper_setting_chooses_local_or_kms(keyring: LocalKeyring) -> None:
    assert isinstance(key_wrapper_from_spec("local", keyring=keyring), LocalKeyWrapper)
    with pytest.raises(KeyringError, match="no keyring"):
        key_wrapper_from_spec("local")
    with pytest.raises(KeyringError):
        key_wrapper_from_spec("vault:transit")


def test_the_keyrings_unknown_key_message_is_unchanged_for_existing_callers() -> None:
    assert str(UnknownKeyError("k1")) == "key-encryption key 'k1' is not in the keyring"
