"""Pull: write a package's files into a directory, each verified before it appears.

Inside DEST only. DEST is opened once; everything under it is reached through directory file
descriptors, one path component at a time, each opened with O_NOFOLLOW | O_DIRECTORY, and
files are created, renamed and removed only relative to such a descriptor (`dir_fd`). A
symlink (or a file) where a directory is needed stops the pull with InvalidPathError before
anything is created through it; a directory another process swaps for a symlink after it
was opened changes nothing, since the descriptor still names the directory that was checked.
Resolving and checking paths instead would leave a window between the check and the write,
which a racing process hits.

Verified, then visible. Files are written into one private staging directory,
`DEST/.artifactstore-pull-<random>` (mode 0700), rather than beside their targets: a pull then
holds two descriptors (DEST and the staging directory) whatever the number of directories in
the package, and a failure has one directory to remove. Each file streams from its source (the
data plane, or a server's download) through a `VerifyingReader` (BLAKE3, the content address,
and the size, over the bytes written). Only when all files are written and verified is the
filesystem synced once, each file renamed from the staging directory to its final name, and the
filesystem synced again: two syncs however many files. Every 8 MiB of a file the disk is told
to start writing (`start_writeback`), so the first sync has little left to wait for. A source
that is a whole local file of 1 MiB or more is copied by the kernel instead (copy_file_range, 8
MiB at a time, as `cp` does: one copy instead of two through a buffer), and the staged copy
itself, the bytes that will be renamed into place, is then hashed through mmap; a source that
is not a file streams as above, the bytes hashed being the bytes written. Files over 1 MiB
(`batch.MAX_BLOB`) are written on in_flight threads of their own while the calling thread
writes the smaller ones, in order. A local pull has one such thread: its kernel copy and hash
run without the GIL, beside the Python work of the small files (a pull of mixed took 1.01 s
against 1.22 s with every file on one thread, medians of 8 runs). A remote pull has two, so one
answer's wait hides behind the other's transfer; its small files come in batches, their bytes
at hand. Small files are never spread over threads: that cost more CPU than it saved (issue 17;
a remote pull of 10,000 small files on two threads took 2.83 s against 2.04 s). The first
failure stops the others after their current chunk, and nothing is moved into place unless
every one verified. A failure or an interrupt (SIGINT, or SIGTERM in the CLI) removes the
staging directory; files already renamed stay, each whole and verified. A rename cannot cross
filesystems, so a mount point inside DEST is an error.

Modes. Files are created with mode 0666, or 0777 for executables, and directories with 0777;
the kernel takes the umask off as it does for any new file. The umask is never read:
`os.umask` reads it only by setting it, and a thread creating a file in that moment would
get the wrong mode.

Leftovers. A pull killed outright (SIGKILL, power loss) leaves its staging directory behind.
Every pull first removes `.artifactstore-pull-*` entries from DEST and from each directory it
will write into (older versions left temp files beside their targets). The staging directory
of a pull still running holds an flock and is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import mmap
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from artifactstore.batch import MAX_BLOB
from artifactstore.durability import start_writeback, sync_filesystem
from artifactstore.errors import IntegrityError, InvalidPathError
from artifactstore.naming import check_path
from artifactstore.records import StoredFile
from artifactstore.storage.spi import storage_errors
from artifactstore.verifying import VerifyingReader

TEMP_PREFIX = ".artifactstore-pull-"
_STALE_AGE = 60
"""Seconds a staging directory is left alone, locked or not: its pull may have just made it."""
_CHUNK = 1 << 20
_WRITEBACK = 8 << 20
"""Bytes of a file after which the disk is told to start writing them (see start_writeback): 1 GiB
written, then synced, took 0.6-0.7 s + 0.3-0.6 s; with writeback started every 8 MiB,
0.8-1.0 s + 0.01 s."""
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}
"""copy_file_range errors that mean "not between these files": the bytes are streamed instead."""
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def pull(
    open_blob: Callable[[StoredFile], BinaryIO],
    label: str,
    files: list[StoredFile],
    destination: Path,
    progress: Callable[[int], None] | None = None,
    in_flight: int = 1,
) -> list[StoredFile]:
    """Write files (of the package called label) under destination, verified; returns them.

    open_blob gives a stream of one file's bytes: from the data plane, or from a server. It is
    called on this thread for the files of at most batch.MAX_BLOB bytes, in order, and for the
    larger ones from in_flight other threads at once (`_write_files`).
    """
    for stored in files:
        # The store validated paths on ingest; checking again guards against a tampered
        # database.
        check_path(stored.path)
    with _opened(_open_destination(destination)) as root:
        dirs = _Directories(root, destination)
        for parent in sorted({_parent(stored.path) for stored in files}):
            os.close(dirs.open(parent))  # creates them, checked, before any byte is fetched
        staging_name = TEMP_PREFIX + secrets.token_hex(8)
        with _opened(_make_staging(root, staging_name, destination)) as staging:
            staged = [str(index) for index in range(len(files))]
            try:
                job = _Job(open_blob, label, staging, destination, threading.Event())
                _write_files(job, files, staged, progress, in_flight)
                _sync(destination)
                for name, stored in zip(staged, files, strict=True):
                    _move_into_place(dirs, staging, name, stored.path)
                staged.clear()  # all moved: nothing left to remove but the directory
            finally:
                dirs.close()
                for name in staged:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=staging)
                with contextlib.suppress(OSError):
                    os.rmdir(staging_name, dir_fd=root)
    _sync(destination)
    return files


def written_in_order(stored: StoredFile) -> bool:
    """Whether pull writes this file on the calling thread, in order (at most batch.MAX_BLOB
    bytes), rather than on a thread of its own."""
    return stored.size <= MAX_BLOB


def reading_ahead(
    files: list[StoredFile],
    contents: Iterable[bytes | None],
    open_blob: Callable[[StoredFile], BinaryIO],
) -> Callable[[StoredFile], BinaryIO]:
    """An open_blob for files that are opened in their order on one thread: each from contents
    (the bytes read ahead, or None), else, or out of order, from open_blob. Any other file (a
    large one, written on a thread of its own) comes from open_blob and takes nothing from
    contents."""
    ahead = zip(files, contents, strict=False)
    paths = {f.path for f in files}

    def opened(stored: StoredFile) -> BinaryIO:
        if stored.path not in paths:
            return open_blob(stored)
        listed, data = next(ahead, (None, None))
        if listed is not stored or data is None:
            return open_blob(stored)
        return io.BytesIO(data)

    return opened


class _Directories:
    """Directories under DEST by relative path, opened and made one component at a time.

    The last one opened stays open, as consecutive files mostly share a directory.
    """

    def __init__(self, root: int, destination: Path) -> None:
        self._root = root
        self._destination = destination
        self._cleaned: set[str] = set()
        self._last: tuple[str, int] | None = None
        self._clean("", root)

    def open(self, relative: str) -> int:
        """A new descriptor for the directory DEST/relative, made where missing."""
        fd = os.dup(self._root)
        try:
            done: list[str] = []
            for name in relative.split("/") if relative else []:
                done.append(name)
                where = "/".join(done)
                with storage_errors(f"create {where!r} under {str(self._destination)!r}"):
                    child = self._child(fd, name, where)
                os.close(fd)
                fd = child
                self._clean(where, fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def cached(self, relative: str) -> int:
        """The descriptor for DEST/relative, kept open until the next directory or close()."""
        if self._last is None or self._last[0] != relative:
            fd = self.open(relative)
            self.close()
            self._last = (relative, fd)
        return self._last[1]

    def close(self) -> None:
        """Close the kept descriptor."""
        if self._last is not None:
            os.close(self._last[1])
            self._last = None

    def _child(self, parent: int, name: str, where: str) -> int:
        try:
            try:
                return os.open(name, _DIRECTORY, dir_fd=parent)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=parent)
                return os.open(name, _DIRECTORY, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            kind = "not a directory"
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                    kind = "a symlink"
            raise InvalidPathError(
                f"{where!r} under {str(self._destination)!r} is {kind}; "
                "pull writes only into real directories inside DEST"
            ) from exc

    def _clean(self, where: str, fd: int) -> None:
        if where not in self._cleaned:
            place = f"{where!r} under " if where else ""
            with storage_errors(f"remove stale temp files in {place}{str(self._destination)!r}"):
                _remove_stale(fd)
            self._cleaned.add(where)


def _remove_stale(directory: int) -> None:
    """Remove `.artifactstore-pull-*` files and directories no running pull holds."""
    with os.scandir(directory) as entries:
        names = [entry.name for entry in entries if entry.name.startswith(TEMP_PREFIX)]
    for name in names:
        try:
            fd = os.open(name, _DIRECTORY, dir_fd=directory)
        except FileNotFoundError:
            continue  # another pull removed it
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=directory)  # a temp file of an older version
            continue
        with _opened(fd):
            if time.time() - os.fstat(fd).st_mtime < _STALE_AGE:
                continue  # maybe a pull that made it and has not locked it yet
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # the staging directory of a pull still running
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(name, dir_fd=directory)


def _open_destination(destination: Path) -> int:
    try:
        destination.mkdir(parents=True, exist_ok=True)
        return os.open(destination, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        # os.path's tests swallow their own OSErrors: this handler must raise only ours.
        if os.path.islink(destination) and not os.path.exists(destination):  # noqa: PTH114, PTH110
            reason = "it is a symlink to nothing"
        elif isinstance(exc, FileExistsError):
            reason = "it is not a directory"
        else:
            reason = exc.strerror or str(exc)
        raise InvalidPathError(f"cannot pull into {str(destination)!r}: {reason}") from exc


def _make_staging(root: int, name: str, destination: Path) -> int:
    with storage_errors(f"create a temp directory in {str(destination)!r}"):
        os.mkdir(name, 0o700, dir_fd=root)
        fd = os.open(name, _DIRECTORY, dir_fd=root)
        with contextlib.suppress(OSError):  # no locks (some network filesystems): age alone
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # tells _remove_stale it is alive
        return fd


class _StoppedError(Exception):
    """A write given up because another file of the pull failed."""


@dataclass(frozen=True, slots=True)
class _Job:
    """What every file of one pull is written with; stop set gives up the writes under way."""

    open_blob: Callable[[StoredFile], BinaryIO]
    label: str
    staging: int
    destination: Path
    stop: threading.Event

    def write(self, stored: StoredFile, name: str) -> None:
        """Write one file into the staging directory under name and check it."""
        with storage_errors(f"write {stored.path!r} under {str(self.destination)!r}"):
            mode = 0o777 if stored.executable else 0o666
            fd = os.open(name, _NEW_FILE, mode, dir_fd=self.staging)
            try:
                label_path = f"{self.label} {stored.path}"
                stream = self.open_blob(stored)
                with contextlib.closing(stream):
                    source = _whole_file(stream, stored.size)
                    if source is None or not self._copy(source, fd, stored, label_path):
                        self._stream(stream, fd, stored, label_path)
            finally:
                os.close(fd)

    def _stream(self, stream: BinaryIO, fd: int, stored: StoredFile, label: str) -> None:
        # BLAKE3 is the content address: bytes that match it are the bytes that were pushed.
        # SHA-256 (the slower digest) was checked on ingest; `verify` re-checks both. The bytes
        # hashed are the bytes written, from one buffer.
        buffer = _buffer()
        with VerifyingReader(stream, stored.content_address, stored.size, label) as reader:
            # readinto returns 0 only after the size and digest were checked.
            written = flushed = 0
            while count := reader.readinto(buffer):
                if self.stop.is_set():
                    raise _StoppedError
                _write_all(fd, buffer[:count])
                written += count
                if written - flushed >= _WRITEBACK:
                    start_writeback(fd, flushed, written - flushed)
                    flushed = written

    def _copy(self, source: int, fd: int, stored: StoredFile, label: str) -> bool:
        """Copy in the kernel, then hash the staged copy (the bytes that will be visible);
        False if the kernel cannot copy between these files."""
        hasher = blake3.blake3()
        done = 0
        while done < stored.size:
            if self.stop.is_set():
                raise _StoppedError
            try:
                count = os.copy_file_range(
                    source, fd, min(_WRITEBACK, stored.size - done), done, done
                )
            except OSError as exc:
                if done == 0 and exc.errno in _NO_KERNEL_COPY:
                    return False
                raise
            if not count:
                break  # the source is shorter than recorded: the check below says so
            start_writeback(fd, done, count)
            start = done - done % mmap.ALLOCATIONGRANULARITY
            with mmap.mmap(fd, done + count - start, access=mmap.ACCESS_READ, offset=start) as m:
                view = memoryview(m)
                hasher.update(view[done - start :])
                view.release()
            done += count
        actual = hasher.hexdigest()
        if done != stored.size or actual != stored.content_address.hex:
            raise IntegrityError(
                f"{label}: expected {stored.size} bytes with {stored.content_address}, "
                f"read {done} bytes with blake3:{actual}"
            )
        return True


def _whole_file(stream: BinaryIO, size: int) -> int | None:
    """The descriptor of the regular file of exactly size bytes that stream reads whole, if
    it is one (a local blob) and large enough for a kernel copy to pay; else None."""
    if size < _CHUNK:
        return None
    try:
        fd = stream.fileno()
        info = os.fstat(fd)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return fd if stat.S_ISREG(info.st_mode) and info.st_size == size else None


_buffers = threading.local()


def _buffer() -> memoryview:
    """This thread's read buffer, made once: a new one per file would cost a fresh allocation."""
    buffer: memoryview | None = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = memoryview(bytearray(_CHUNK))
    return buffer


def _write_all(fd: int, data: memoryview) -> None:
    """Write all of data (os.write may write less than it is given)."""
    while data:
        data = data[os.write(fd, data) :]


def _write_files(
    job: _Job,
    files: list[StoredFile],
    names: list[str],
    progress: Callable[[int], None] | None,
    in_flight: int,
) -> None:
    """Write the files over batch.MAX_BLOB with in_flight threads while this thread writes the
    others, in order (see the module docstring). The first failure stops the rest and is
    raised."""

    def write_alone(stored: StoredFile, name: str) -> None:
        try:
            job.write(stored, name)
        except BaseException:
            job.stop.set()  # this thread's writes stop too; the failure is raised below
            raise

    with ThreadPoolExecutor(in_flight, thread_name_prefix="artifactstore-pull") as pool:
        alone: dict[Future[None], StoredFile] = {
            pool.submit(write_alone, stored, name): stored
            for stored, name in zip(files, names, strict=True)
            if not written_in_order(stored)
        }
        try:
            with contextlib.suppress(_StoppedError):
                for stored, name in zip(files, names, strict=True):
                    if written_in_order(stored):
                        job.write(stored, name)
                        if progress is not None:
                            progress(stored.size)
            for future in as_completed(alone):
                with contextlib.suppress(_StoppedError):  # stopped by another's failure
                    future.result()
                    if progress is not None:
                        progress(alone[future].size)
        except BaseException:
            # Leaving the pool waits for the writes under way; stop makes that one chunk each.
            job.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _move_into_place(dirs: _Directories, staging: int, name: str, path: str) -> None:
    parent = dirs.cached(_parent(path))
    with storage_errors(f"move {path!r} into place"):
        os.replace(name, path.rsplit("/", 1)[-1], src_dir_fd=staging, dst_dir_fd=parent)


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


@contextlib.contextmanager
def _opened(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _sync(destination: Path) -> None:
    with storage_errors(f"sync the files written under {destination}"):
        sync_filesystem(destination)
