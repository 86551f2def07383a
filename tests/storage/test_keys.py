"""Object keys are random, server-generated and strictly shaped."""

from __future__ import annotations

import pytest

from portal.storage import InvalidObjectKey, new_object_key, validate_object_key


def test_new_keys_have_the_documented_shape_and_validate() -> None:
    key = new_object_key()

    shard, name = key.split("/")
    assert len(name) == 32 and name.startswith(shard)
    assert validate_object_key(key) == key


def test_new_keys_do_not_repeat() -> None:
    assert len({new_object_key() for _ in range(10_000)}) == 10_000


def test_the_refusal_does_not_echo_the_offending_key() -> None:
    with pytest.raises(InvalidObjectKey) as raised:
        validate_object_key("../../\r\nFAKE LOG LINE")

    assert "FAKE LOG LINE" not in str(raised.value)
