"""A local directory as an object store (the default, ``file:///abs/path``).

Layout: ``<root>/<shard>/<name>`` for key ``"<shard>/<name>"``, plus ``<root>/.tmp/`` for uploads
in progress. Objects are written to a temporary file in ``.tmp`` (same file system, so the final
rename is atomic), flushed and fsynced, then renamed into place: a crash or a failing source
never leaves a partial object under a real key. Files are 0600 and directories 0700 so only
the portal's own user can read the ciphertext.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from portal.storage.base import (
    READ_CHUNK_BYTES,
    ObjectMissing,
    ReadableStream,
    SourceReader,
    StorageError,
    validate_key_prefix,
    validate_object_key,
)

_TEMP_DIR = ".tmp"
_TEMP_PREFIX = "put-"


class LocalDirectoryStore:
    """Objects as files under one directory owned by the portal's user."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        root_path = Path(root)
        if not root_path.is_absolute():
            raise StorageError("the local object store needs an absolute directory path")
        try:
            root_path.mkdir(mode=0o700, parents=True, exist_ok=True)
            (root_path / _TEMP_DIR).mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the object store directory {root_path}: {exc.strerror}"
            ) from exc
        # Resolved once so a symlinked mount point is followed at start-up, not per request.
        self.root = root_path.resolve()
        self._temp_dir = self.root / _TEMP_DIR

    def __repr__(self) -> str:
        return f"LocalDirectoryStore({str(self.root)!r})"

    def put(self, key: str, stream: ReadableStream) -> int:
        """Write ``stream`` to ``key`` atomically; see :meth:`ObjectStore.put`."""
        target = self._path(key)
        source = SourceReader(stream, fill=False)
        try:
            fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self._temp_dir)  # mode 0600
        except OSError as exc:
            raise _storage_error("create a temporary file", exc) from exc
        try:
            with os.fdopen(fd, "wb") as temp_file:
                while chunk := source.read(READ_CHUNK_BYTES):
                    temp_file.write(chunk)
                temp_file.flush()
                # Durable before it becomes visible: after a power cut the key holds the whole
                # object or nothing.
                os.fsync(temp_file.fileno())
            new_shard = not target.parent.exists()
            target.parent.mkdir(mode=0o700, exist_ok=True)
            Path(temp_name).replace(target)
            _fsync_directory(target.parent)
            if new_shard:
                _fsync_directory(self.root)
        except BaseException as exc:
            with suppress(FileNotFoundError):
                Path(temp_name).unlink()
            if isinstance(exc, OSError) and not source.failed:
                raise _storage_error("write an object", exc) from exc
            raise
        return source.bytes_read

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """Yield the stored file opened for binary reading; see :meth:`ObjectStore.open`."""
        path = self._path(key)
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise _storage_error("open an object", exc) from exc
        with stream:
            yield stream

    def delete(self, key: str) -> None:
        """Remove the file if present; see :meth:`ObjectStore.delete`."""
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _storage_error("delete an object", exc) from exc
        _fsync_directory(path.parent)

    def exists(self, key: str) -> bool:
        """Whether a file is stored under ``key``."""
        return self._path(key).is_file()

    def list_keys(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Stored keys starting with ``prefix`` and their modification times (UTC), sorted."""
        validate_key_prefix(prefix)
        shard_prefix = prefix[:2]
        try:
            shards = sorted(
                entry.name
                for entry in os.scandir(self.root)
                if entry.is_dir(follow_symlinks=False) and entry.name.startswith(shard_prefix)
            )
        except OSError as exc:
            raise _storage_error("list objects", exc) from exc
        for shard in shards:
            try:
                names = sorted(entry.name for entry in os.scandir(self.root / shard))
            except FileNotFoundError:
                continue
            for name in names:
                key = f"{shard}/{name}"
                if not key.startswith(prefix):
                    continue
                try:
                    validate_object_key(key)
                    mtime = (self.root / shard / name).stat().st_mtime
                except (StorageError, FileNotFoundError):
                    # Not one of ours, or deleted since the directory was read.
                    continue
                yield key, datetime.fromtimestamp(mtime, tz=UTC)

    def remove_stale_temp_files(self, older_than: timedelta = timedelta(hours=1)) -> int:
        """Delete temporary files left by a crashed process; returns how many were removed.

        A running upload keeps writing to its file, so one untouched for ``older_than`` belongs
        to a process that died (``kill -9``, power cut) between creating it and renaming it.
        """
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for entry in os.scandir(self._temp_dir):
            if entry.name.startswith(_TEMP_PREFIX) and entry.stat().st_mtime < cutoff:
                with suppress(FileNotFoundError):
                    Path(entry.path).unlink()
                    removed += 1
        return removed

    def _path(self, key: str) -> Path:
        return self.root / validate_object_key(key)


def _fsync_directory(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (POSIX needs the directory fsynced too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _storage_error(action: str, exc: OSError) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"could not {action}: the object store's disk is full")
    return StorageError(f"could not {action} in the local object store: {exc.strerror or exc}")
