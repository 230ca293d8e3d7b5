"""Walking a directory to push: regular files only, sorted, validated before anything is stored.

Symlinks are never followed and special files (FIFOs, sockets, devices) are refused: either
would make a package that does not reproduce the tree. Every path is checked against SPEC's
path rules up front, alone and against the others, and every file must be readable, so a bad
tree is rejected before a single blob is written. The store's own files (its database, the
blob root) are skipped when the tree holds them: they change while they are read.

A file is read after the scan; `check_unchanged` compares what was read with what the scan
saw, so a file written to meanwhile is refused rather than stored torn.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from artifactstore.errors import InvalidInputError, InvalidPathError
from artifactstore.naming import check_path, check_paths

_Skipped = frozenset[tuple[int, int, str]]
"""Entries to leave out: (st_dev, st_ino) of the directory holding each, and its name."""


@dataclass(frozen=True, slots=True)
class TreeRoot:
    """Where a scan started on disk, and the package directory (prefix) its files go under."""

    directory: str
    prefix: str
    """Empty, or a package directory with a trailing '/'."""


@dataclass(frozen=True, slots=True)
class TreeFile:
    """A regular file found in the tree: its package path, the scan's root, size, mtime, mode.

    Every file of a scan shares one TreeRoot; its location on disk (`source`) is made when it
    is opened. A text per file, held for the whole push, was 8 MB in a 100,000-file push.
    """

    path: str
    root: TreeRoot
    size: int
    mtime_ns: int
    executable: bool

    @property
    def source(self) -> str:
        """Where the file is on disk: the root directory joined with its path below the prefix."""
        relative = self.path[len(self.root.prefix) :]
        return os.path.join(self.root.directory, relative)  # noqa: PTH118 (text: see above)


def is_executable(mode: int) -> bool:
    """True when any execute bit is set in a file mode."""
    return bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))


def scan(
    root: str | os.PathLike[str], skip: Iterable[Path] = (), prefix: str = ""
) -> list[TreeFile]:
    """Every regular file under root, sorted by the UTF-8 bytes of its package path: prefix
    (a directory inside the package; a trailing '/' is optional) joined with its path here.

    Entries that are one of the skip paths (compared by the identity of the directory holding
    them and their name, not by text) are left out, with everything under them.
    InvalidPathError names a path SPEC forbids, two paths that clash, a symlink, a special file
    or a file that cannot be read.
    """
    base = Path(root)
    try:
        info = base.lstat()
    except OSError as exc:
        raise InvalidPathError(f"cannot read directory {str(base)!r}: {exc.strerror}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidPathError(f"{str(base)!r} is not a directory")
    found: list[TreeFile] = []
    top = prefix.removesuffix("/")
    _walk(
        base,
        TreeRoot(str(base), f"{top}/" if top else ""),
        (info.st_dev, info.st_ino),
        top,
        _identities(skip),
        found,
    )
    found.sort(key=lambda f: f.path.encode("utf-8"))
    check_paths(f.path for f in found)
    return found


def _identities(paths: Iterable[Path]) -> _Skipped:
    # The directory is identified by (st_dev, st_ino), so a path spelled another way (relative,
    # through a symlink, a bind mount) still matches; by name inside it, so a file that does
    # not exist yet (a SQLite -journal) matches too.
    identities: set[tuple[int, int, str]] = set()
    for path in paths:
        try:
            parent = path.parent.stat()
        except OSError:
            continue
        identities.add((parent.st_dev, parent.st_ino, path.name))
    return frozenset(identities)


def _walk(
    directory: Path,
    root: TreeRoot,
    identity: tuple[int, int],
    prefix: str,
    skip: _Skipped,
    found: list[TreeFile],
) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise InvalidPathError(f"cannot read directory {str(directory)!r}: {exc.strerror}") from exc
    for entry in entries:
        if (*identity, entry.name) in skip:
            continue
        path = f"{prefix}/{entry.name}" if prefix else entry.name
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            raise InvalidPathError(f"{entry.path!r} is a symbolic link; symlinks are not stored")
        if stat.S_ISDIR(info.st_mode):
            _walk(Path(entry.path), root, (info.st_dev, info.st_ino), path, skip, found)
        elif stat.S_ISREG(info.st_mode):
            check_path(path)
            # access() is one cheap system call; finding an unreadable file here, not halfway
            # through storing blobs, leaves nothing behind.
            if not os.access(entry.path, os.R_OK):
                raise InvalidPathError(f"cannot read {entry.path!r}: permission denied")
            found.append(
                TreeFile(path, root, info.st_size, info.st_mtime_ns, is_executable(info.st_mode))
            )
        else:
            raise InvalidPathError(f"{entry.path!r} is not a regular file, directory or symlink")


def open_file(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a file to ingest; InvalidInputError names it if it cannot be read."""
    try:
        return open(path, "rb")  # noqa: PTH123 (a text path; see TreeFile)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {str(path)!r}: {exc.strerror}") from exc


def read_whole(item: TreeFile) -> bytes:
    """The bytes of a scanned file read whole with plain system calls (a buffered file object
    per small file cost more than reading it); InvalidInputError if it cannot be read or
    changed since the scan (`check_unchanged`)."""
    source = item.source
    try:
        descriptor = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {source!r}: {exc.strerror}") from exc
    try:
        pieces = []
        while piece := os.read(descriptor, max(item.size, 1 << 16)):
            pieces.append(piece)
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        now = os.fstat(descriptor)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {source!r}: {exc.strerror}") from exc
    finally:
        os.close(descriptor)
    _require_unchanged(source, len(data), item.size, now, item.mtime_ns)
    return data


def check_unchanged(source: str, handle: BinaryIO, read: int, size: int, mtime_ns: int) -> None:
    """Raise InvalidInputError if the open file is not what was seen before reading it.

    read is the number of bytes read to its end; size and mtime_ns are what a stat before the
    read saw. A file written to in between was read torn: its bytes are no snapshot of it.
    """
    _require_unchanged(source, read, size, os.fstat(handle.fileno()), mtime_ns)


def _require_unchanged(
    source: str, read: int, size: int, now: os.stat_result, mtime_ns: int
) -> None:
    if read == size == now.st_size and now.st_mtime_ns == mtime_ns:
        return
    raise InvalidInputError(
        f"{source!r} changed while reading it ({size} bytes when scanned, {read} read, "
        f"{now.st_size} now); it was not added: try again once it is complete"
    )
