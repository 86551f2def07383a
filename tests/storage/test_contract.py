"""One contract, every store: each test runs against the local directory store and S3 (moto)."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest

from portal.storage import InvalidObjectKey, ObjectMissing, ObjectStore, iter_chunks, new_object_key

MIB = 1024 * 1024


class PatternStream:
    """``size`` bytes of a repeating pattern, produced on demand and never seekable."""

    def __init__(self, size: int, *, fail_after: int | None = None) -> None:
        self._block = bytes(range(256)) * 4096  # 1 MiB
        self._remaining = size
        self._produced = 0
        self._fail_after = fail_after
        self.digest = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        if self._fail_after is not None and self._produced >= self._fail_after:
            raise ConnectionResetError("the uploading browser went away")
        size = self._remaining if size < 0 else min(size, self._remaining, len(self._block))
        data = self._block[:size]
        self._remaining -= size
        self._produced += size
        self.digest.update(data)
        return data


def read_all(store: ObjectStore, key: str) -> bytes:
    with store.open(key) as stream:
        return stream.read()


def test_put_then_open_returns_the_same_bytes(store: ObjectStore) -> None:
    key = new_object_key()

    written = store.put(key, io.BytesIO(b"ciphertext goes here"))

    assert written == len(b"ciphertext goes here")
    assert read_all(store, key) == b"ciphertext goes here"


def test_an_empty_object_round_trips(store: ObjectStore) -> None:
    key = new_object_key()

    assert store.put(key, io.BytesIO(b"")) == 0
    assert read_all(store, key) == b""


def test_an_object_larger_than_one_multipart_part_streams_both_ways(store: ObjectStore) -> None:
    key = new_object_key()
    source = PatternStream(11 * MIB + 123)  # three 5 MiB-part uploads on S3

    assert store.put(key, source) == 11 * MIB + 123

    downloaded = hashlib.sha256()
    largest_read = 0
    with store.open(key) as stream:
        for chunk in iter_chunks(stream, 64 * 1024):
            largest_read = max(largest_read, len(chunk))
            downloaded.update(chunk)
    assert downloaded.hexdigest() == source.digest.hexdigest()
    assert largest_read <= 64 * 1024


def test_putting_an_existing_key_replaces_the_object(store: ObjectStore) -> None:
    key = new_object_key()
    store.put(key, io.BytesIO(b"first"))

    store.put(key, io.BytesIO(b"second"))

    assert read_all(store, key) == b"second"


def test_opening_a_missing_key_raises_object_missing(store: ObjectStore) -> None:
    key = new_object_key()

    with pytest.raises(ObjectMissing) as raised, store.open(key):
        pass

    assert raised.value.key == key


def test_exists_follows_put_and_delete(store: ObjectStore) -> None:
    key = new_object_key()
    assert not store.exists(key)

    store.put(key, io.BytesIO(b"x"))
    assert store.exists(key)

    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(ObjectMissing), store.open(key):
        pass


def test_deleting_a_missing_key_is_not_an_error(store: ObjectStore) -> None:
    store.delete(new_object_key())


def test_list_keys_yields_every_key_with_its_last_modified_time_in_utc(store: ObjectStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)  # S3 times have whole seconds
    keys = {new_object_key() for _ in range(5)}
    for key in keys:
        store.put(key, io.BytesIO(b"x"))
    after = datetime.now(UTC) + timedelta(seconds=2)

    listed = dict(store.list_keys())

    assert set(listed) == keys
    for modified in listed.values():
        assert modified.utcoffset() == timedelta(0)
        assert before <= modified <= after


def test_list_keys_filters_by_prefix(store: ObjectStore) -> None:
    keys = [new_object_key() for _ in range(20)]
    for key in keys:
        store.put(key, io.BytesIO(b"x"))
    shard = keys[0][:2]

    listed = [key for key, _ in store.list_keys(prefix=shard)]

    assert sorted(listed) == sorted(key for key in keys if key.startswith(shard))
    assert [key for key, _ in store.list_keys(prefix=keys[0])] == [keys[0]]


def test_list_keys_of_an_empty_store_is_empty(store: ObjectStore) -> None:
    assert list(store.list_keys()) == []


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "../../etc/passwd",
        "ab/../../etc/passwd",
        "/ab/ab0123456789abcdef0123456789abcd",
        "AB/AB0123456789ABCDEF0123456789ABCD",
        "ab/cd0123456789abcdef0123456789abcd",  # shard does not match the name
        "ab/ab0123456789abcdef0123456789abc",  # one digit short
        "ab/ab0123456789abcdef0123456789abcd/",
        "ab/ab0123456789abcdef0123456789abc\x00",
        "report.pdf",
    ],
)
def test_keys_not_generated_by_the_portal_are_refused_everywhere(store: ObjectStore, bad_key: str) -> None:
    with pytest.raises(InvalidObjectKey):
        store.put(bad_key, io.BytesIO(b"x"))
    with pytest.raises(InvalidObjectKey), store.open(bad_key):
        pass
    with pytest.raises(InvalidObjectKey):
        store.exists(bad_key)
    with pytest.raises(InvalidObjectKey):
        store.delete(bad_key)


def test_a_listing_prefix_that_no_key_could_have_is_refused(store: ObjectStore) -> None:
    with pytest.raises(InvalidObjectKey):
        list(store.list_keys(prefix="../"))


def test_a_source_failing_midway_leaves_no_object_and_its_error_propagates(store: ObjectStore) -> None:
    key = new_object_key()

    with pytest.raises(ConnectionResetError):
        store.put(key, PatternStream(12 * MIB, fail_after=6 * MIB))

    assert not store.exists(key)
    assert list(store.list_keys()) == []


def test_a_source_returning_short_reads_is_stored_whole(store: ObjectStore) -> None:
    class Trickle:
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def read(self, size: int = -1, /) -> bytes:
            return self._data.read(min(size, 1000) if size >= 0 else 1000)

    data = bytes(range(256)) * (6 * 4096 + 1)  # just over one 5 MiB part
    key = new_object_key()

    assert store.put(key, Trickle(data)) == len(data)
    assert read_all(store, key) == data
