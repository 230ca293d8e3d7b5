"""The local filesystem backend: objects are files under a root directory.

An object lives at `<root>/<key>`. A write streams into a uniquely named temp file in
`<root>/.tmp/` (the same filesystem, so publishing it is one atomic directory operation), is
fsynced, hard-linked into place and its directory fsynced. `os.link` fails rather than replace an
existing file, so a concurrent writer of the same key can never clobber a published object and a
half-written file is never visible under a key. Blob files are created read-only
(`permissions.BLOB_FILE_MODE`) and directories never world-writable, whatever the umask.

Temp files left by killed processes are swept by the first write of each process
(`sweep_stale_temp`): those untouched for `STALE_TEMP_AGE`. A running writer touches its temp
file with every chunk, so only one stalled for that long could lose it (its commit then fails
with a StorageError; nothing half-written is ever published).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from artifactstore.durability import fsync_path, start_writeback, sync_filesystem
from artifactstore.errors import BlobNotFoundError, StorageError
from artifactstore.identity import CHUNK_SIZE
from artifactstore.permissions import BLOB_FILE_MODE, make_directories
from artifactstore.storage.base import PublishingStage, RootedBackend, utc
from artifactstore.storage.spi import (
    BackendHealth,
    ObjectInfo,
    StorageReceipt,
    check_key,
    check_range,
    storage_errors,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_log = logging.getLogger(__name__)

_TEMP_DIR = ".tmp"
_TEMP_SUFFIX = ".part"
_FSYNC_EACH_LIMIT = 16
"""Up to this many objects, sync() fsyncs each; beyond it, one syncfs of the filesystem."""
_WRITEBACK = 8 << 20
"""Bytes of a staged object after which the disk is told to start writing them."""
STALE_TEMP_AGE = timedelta(hours=1)
"""Temp files untouched this long belong to a killed writer and are swept."""


class LocalBackend(RootedBackend):
    """A StorageBackend over a directory; the root is created on the first write."""

    def __init__(self, root: Path, backend_id: str = "local") -> None:
        super().__init__(root, backend_id)
        # Directories whose own entry this process has made durable. Nothing removes
        # directories under the root, so each needs its parent synced once per process.
        self._durable_dirs: set[Path] = set()
        # Directories known to exist, so a write skips mkdir; nothing removes them.
        self._existing_dirs: set[Path] = set()

    @property
    def root(self) -> Path:
        """The directory holding the objects."""
        return self._root

    def stage(self) -> _LocalStagedObject:
        """Open a new temp file under `<root>/.tmp/`; StorageError if that fails."""
        temp_dir = self._root / _TEMP_DIR
        # pid names the writer for a human looking at leftovers; the random part makes the
        # name unique across threads and pid reuse.
        temp_path = temp_dir / f"{os.getpid()}-{secrets.token_hex(8)}{_TEMP_SUFFIX}"
        with storage_errors(f"create temp file {temp_path}"):
            if temp_dir not in self._existing_dirs:
                make_directories(temp_dir)
                self._existing_dirs.add(temp_dir)
            # Created read-only: the descriptor may still write, and the file keeps that mode
            # when it is linked into place as the blob.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            file = os.fdopen(os.open(temp_path, flags, BLOB_FILE_MODE), "wb")
        return _LocalStagedObject(self, temp_path, file)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Stream bytes [start, end), clamped to the size; BlobNotFoundError if absent.

        The bytes are read as the caller reads, never loaded whole.
        """
        path = self._path(key)
        check_range(key, start, end)
        with storage_errors(f"open {path}", missing=f"no object {key!r} under {self._root}"):
            raw = io.FileIO(path, "rb")
        with storage_errors(f"read {path}"):
            try:
                size = os.fstat(raw.fileno()).st_size
                stop = size if end is None else min(end, size)
                begin = min(start, stop)
                raw.seek(begin)
            except BaseException:
                raw.close()
                raise
        reader = _RangeReader(raw, path, stop - begin, whole=begin == 0 and stop == size)
        return io.BufferedReader(reader, buffer_size=CHUNK_SIZE)

    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object under key, or None if there is none."""
        path = self._path(key)
        with storage_errors(f"stat {path}"):
            try:
                stat = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
        return ObjectInfo(key, stat.st_size, utc(stat.st_mtime))

    def delete(self, key: str) -> None:
        """Unlink the object under key; a missing key is not an error."""
        path = self._path(key)
        with storage_errors(f"delete {path}"), contextlib.suppress(NotADirectoryError):
            path.unlink(missing_ok=True)

    def iter_keys(self) -> Iterator[str]:
        """Yield every stored key in sorted order; temp files and stray names are skipped."""
        with storage_errors(f"list objects under {self._root}"):
            try:
                # Sorting each level by "name/" gives the order plain sorting of the keys would.
                for algo_dir in self._sorted_dirs(self._root):
                    for first in self._sorted_dirs(algo_dir):
                        for second in self._sorted_dirs(first):
                            for entry in sorted(second.iterdir()):
                                key = entry.relative_to(self._root).as_posix()
                                if self._is_key(key) and entry.is_file():
                                    yield key
            except FileNotFoundError:
                return

    def sync(self, keys: Iterable[str]) -> None:
        """Make objects committed with durable=False durable, choosing the cheaper way.

        A few objects are fsynced one by one with their new directories. Many are made durable
        by one syncfs(2) of the root's filesystem, which costs about as much as one fsync
        whatever the count (10,000 files of 4 KiB: 0.2 s against 5-7 s here), but also flushes
        whatever else is dirty on that filesystem, so it is not worth it for a handful.
        """
        paths: list[Path] = []
        for key in keys:
            path = self._path(key)
            with storage_errors(f"stat {path}"):
                if not path.is_file():
                    raise BlobNotFoundError(f"no object {key!r} under {self._root} to sync")
            paths.append(path)
        if len(paths) > _FSYNC_EACH_LIMIT:
            with storage_errors(f"sync the filesystem of {self._root}"):
                sync_filesystem(self._root)
            for path in paths:
                self._durable_dirs.update((path.parent, *path.parent.parents[:3]))
            return
        for path in paths:
            with storage_errors(f"fsync {path}"):
                fsync_path(path)
        self._sync_directories({path.parent for path in paths})

    def close(self) -> None:
        """Nothing to release: every object is opened and closed by its own call."""

    def health(self) -> BackendHealth:
        """Reachable if the root is a writable directory; free and total bytes from statvfs."""
        root = self._root
        if not root.is_dir():
            detail = (
                f"root {root} is not a directory" if root.exists() else f"root {root} is missing"
            )
            return BackendHealth(self._backend_id, False, detail, None, None)
        try:
            stats = os.statvfs(root)
        except OSError as exc:
            return BackendHealth(
                self._backend_id, False, f"cannot statvfs {root}: {exc}", None, None
            )
        free = stats.f_bavail * stats.f_frsize
        total = stats.f_blocks * stats.f_frsize
        if not os.access(root, os.W_OK | os.X_OK):
            return BackendHealth(
                self._backend_id, False, f"root {root} is not writable", free, total
            )
        return BackendHealth(self._backend_id, True, f"root {root}", free, total)

    def sweep_stale_temp(self) -> None:
        """Remove temp files older than STALE_TEMP_AGE; a failure is logged, never raised.

        The data plane calls it before the first write of each process.
        """
        try:
            removed = self.clean_stale_temp(STALE_TEMP_AGE)
        except StorageError as exc:
            _log.warning("cannot sweep stale temp files: %s", exc)
            return
        if removed:
            _log.info("removed %d stale temp file(s) under %s", removed, self._root / _TEMP_DIR)

    def clean_stale_temp(self, older_than: timedelta) -> int:
        """Remove temp files untouched for older_than (left by killed writers); return the count."""
        temp_dir = self._root / _TEMP_DIR
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        with storage_errors(f"list temp files in {temp_dir}"):
            entries = sorted(temp_dir.glob(f"*{_TEMP_SUFFIX}"))
        for entry in entries:
            with storage_errors(f"remove stale temp file {entry}"):
                try:
                    if entry.stat().st_mtime < cutoff:
                        entry.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue  # another cleaner, or the writer itself, got there first
        return removed

    def _path(self, key: str) -> Path:
        return self._root / check_key(key)

    @staticmethod
    def _is_key(key: str) -> bool:
        try:
            check_key(key)
        except ValueError:
            return False
        return True

    @staticmethod
    def _sorted_dirs(directory: Path) -> list[Path]:
        entries = [p for p in directory.iterdir() if not p.name.startswith(".") and p.is_dir()]
        return sorted(entries, key=lambda p: p.name + "/")

    def _sync_directories(self, leaves: set[Path]) -> None:
        """fsync the fan-out directories holding objects, and the entries of those above them.

        An entry lives in its parent directory, so a directory created since the last sync is
        only durable once its parent is synced too, up to the root's own entry.
        """
        chains = {directory: directory.parents[:3] for directory in leaves}
        pending = set(leaves)
        for leaf, above in chains.items():
            pending.update(d.parent for d in (leaf, *above) if d not in self._durable_dirs)
        # Deepest first, so a directory's entry is synced after its contents.
        for directory in sorted(pending, key=lambda d: len(d.parts), reverse=True):
            with storage_errors(f"fsync directory {directory}"):
                fsync_path(directory)
        for leaf, above in chains.items():
            self._durable_dirs.update((leaf, *above))

    def _publish(self, temp_path: Path, key: str, durable: bool) -> tuple[StorageReceipt, bool]:
        """Link a closed temp file into place under key; the caller removes the temp file.

        An object already there of another size than the temp file was torn by a crash (linked
        before it was synced, then the power went): the temp file replaces it.
        """
        path = self._path(key)
        with storage_errors(f"store {key!r} under {self._root}"):
            # Checking first skips the fsync of a temp file that is about to be discarded.
            size = _size(path)
            torn = size is not None and size != temp_path.stat().st_size
            existed = size is not None and not torn
            if torn:
                if durable:
                    fsync_path(temp_path)
                temp_path.replace(path)
            elif not existed:
                if durable:
                    fsync_path(temp_path)
                if path.parent not in self._existing_dirs:
                    make_directories(path.parent)
                    self._existing_dirs.add(path.parent)
                try:
                    # link, unlike replace, never overwrites: a concurrent writer of the same
                    # key keeps its published inode, and we learn that the key existed.
                    os.link(temp_path, path)
                except FileExistsError:
                    existed = True
            if durable:
                if existed:
                    # The existing object may come from a durable=False commit not yet synced.
                    fsync_path(path)
                self._sync_directories({path.parent})
            stat = path.stat()
        receipt = StorageReceipt(self._backend_id, key, stat.st_size, utc(stat.st_mtime))
        return receipt, existed


def _size(path: Path) -> int | None:
    """The size of the file at path; None if there is none."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


class _LocalStagedObject(PublishingStage):
    """A temp file under `<root>/.tmp/`, linked into place by commit and removed either way."""

    def __init__(self, backend: LocalBackend, temp_path: Path, file: BinaryIO) -> None:
        self._backend = backend
        self._temp_path = temp_path
        self._file = file
        self._finished = False
        self._written = 0
        self._flushed = 0

    def write(self, chunk: bytes) -> None:
        """Append chunk to the temp file; StorageError naming it if the write fails.

        Every _WRITEBACK bytes the disk is told to start writing them (`start_writeback`), so
        the sync that makes the blob durable has little left to wait for.
        """
        self._check_open()
        with storage_errors(f"write temp file {self._temp_path}"):
            self._file.write(chunk)
            self._written += len(chunk)
            if self._written - self._flushed >= _WRITEBACK:
                self._file.flush()
                start_writeback(self._file.fileno(), self._flushed, self._written - self._flushed)
                self._flushed = self._written

    def abort(self) -> None:
        """Close and remove the temp file; idempotent and never raises."""
        if self._finished:
            return
        self._finished = True
        # The bytes are being discarded, so a failed flush loses nothing.
        with contextlib.suppress(OSError):
            self._file.close()
        try:
            self._temp_path.unlink(missing_ok=True)
        except OSError as exc:
            # Raising here would mask a successful commit or the error that caused the abort;
            # the file is invisible under every key and a later sweep removes it.
            _log.warning("cannot remove temp file %s: %s", self._temp_path, exc)

    def _check_open(self) -> None:
        if self._finished:
            raise StorageError(f"staged object {self._temp_path} was already committed or aborted")

    def _publish(self, key: str, durable: bool) -> tuple[StorageReceipt, bool]:
        with storage_errors(f"write temp file {self._temp_path}"):
            self._file.close()
        return self._backend._publish(self._temp_path, key, durable)


class _RangeReader(io.RawIOBase):
    """A raw reader over an open file that stops after a fixed number of bytes."""

    def __init__(self, file: io.FileIO, path: Path, length: int, whole: bool) -> None:
        self._file = file
        self._path = path
        self._remaining = length
        self._whole = whole

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The file's descriptor, only when the whole file is read (a pull copies it whole)."""
        if not self._whole:
            raise io.UnsupportedOperation("a range of a file has no descriptor of its own")
        return self._file.fileno()

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._remaining <= 0:
            return 0
        view = memoryview(buffer).cast("B")[: self._remaining]
        with storage_errors(f"read {self._path}"):
            count = self._file.readinto(view)
        self._remaining -= count
        return count

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()
