"""Local directory store: permissions, crash safety, temporary files, URL parsing."""

from __future__ import annotations

import io
import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest

from portal.storage import LocalDirectoryStore, StorageError, new_object_key, store_from_url

from .test_contract import MIB, PatternStream


def all_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_objects_are_private_to_the_portal_user(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "objects")
    key = new_object_key()

    store.put(key, io.BytesIO(b"x"))

    path = store.root / key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700


def test_a_failing_source_leaves_neither_object_nor_temporary_file(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "objects")
    key = new_object_key()

    with pytest.raises(ConnectionResetError):
        store.put(key, PatternStream(8 * MIB, fail_after=3 * MIB))

    assert all_files(store.root) == []
    assert not store.exists(key)


def test_a_failed_replacement_keeps_the_previous_object_whole(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "objects")
    key = new_object_key()
    store.put(key, io.BytesIO(b"the complete earlier version"))

    with pytest.raises(ConnectionResetError):
        store.put(key, PatternStream(4 * MIB, fail_after=2 * MIB))

    with store.open(key) as stream:
        assert stream.read() == b"the complete earlier version"
    assert all_files(store.root) == [store.root / key]


def test_an_upload_in_progress_is_invisible_under_its_key(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "objects")
    key = new_object_key()
    seen_during_upload: list[bool] = []

    class Watching(PatternStream):
        def read(self, size: int = -1, /) -> bytes:
            seen_during_upload.append(store.exists(key))
            return super().read(size)

    store.put(key, Watching(3 * MIB))

    assert seen_during_upload and not any(seen_during_upload)
    assert store.exists(key)


def test_temporary_files_are_never_listed_and_stale_ones_can_be_swept(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "objects")
    key = new_object_key()
    store.put(key, io.BytesIO(b"x"))
    # What a process killed mid-upload leaves behind.
    crashed = store.root / ".tmp" / "put-crashed"
    crashed.write_bytes(b"half an object")
    an_hour_ago = time.time() - 3600
    os.utime(crashed, (an_hour_ago, an_hour_ago))
    fresh = store.root / ".tmp" / "put-still-running"
    fresh.write_bytes(b"being written")

    assert [listed for listed, _ in store.list_keys()] == [key]
    assert store.remove_stale_temp_files(older_than=timedelta(minutes=30)) == 1
    assert not crashed.exists()
    assert fresh.exists()


def test_foreign_files_in_the_directory_are_not_listed(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "objects")
    key = new_object_key()
    store.put(key, io.BytesIO(b"x"))
    (store.root / key[:2] / "notes.txt").write_text("someone else's")
    (store.root / "lost+found").mkdir()

    assert [listed for listed, _ in store.list_keys()] == [key]


def test_file_urls_name_an_absolute_directory(tmp_path: Path) -> None:
    store = store_from_url(f"file://{tmp_path}/with%20space")

    assert isinstance(store, LocalDirectoryStore)
    assert store.root == tmp_path / "with space"


@pytest.mark.parametrize(
    "url", ["file://relative/path", "file:///srv/objects?mode=0777", "file://otherhost/srv/objects"]
)
def test_malformed_file_urls_are_refused(url: str) -> None:
    with pytest.raises(StorageError):
        store_from_url(url)


def test_a_directory_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")

    with pytest.raises(StorageError, match="cannot create"):
        LocalDirectoryStore(blocker / "objects")
