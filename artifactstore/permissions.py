"""The modes of what the store creates: nothing world-writable whatever the umask.

The store asks for explicit modes instead of the usual 0o777 / 0o666, so a process running
under umask 000 (some CI images and containers) still makes no world-writable directory or
file: directories are `DIRECTORY_MODE` and blob files `BLOB_FILE_MODE` (read-only: a blob never
changes once published), each less the umask. Group and others may read, which a CI user group
sharing a store needs; a stricter umask (027, 077) narrows that further.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

DIRECTORY_MODE = 0o755
"""Mode of every directory the store creates (blob folders, the database's folder)."""

BLOB_FILE_MODE = 0o444
"""Mode of every blob file: read-only for everyone, the owner included."""

LOCK_FILE_MODE = 0o644
"""Mode of the lock file beside a SQLite registry database."""


def make_directories(path: Path) -> None:
    """Create path and its missing parents, each DIRECTORY_MODE less the umask.

    Unlike `Path.mkdir(parents=True)`, the parents get that mode too (not 0o777). An existing
    directory is fine; a file in the way raises NotADirectoryError naming it. The OSError is the
    caller's to translate.
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir() and current.parent != current:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(DIRECTORY_MODE)
        except FileExistsError:
            # Another process made it first, which is fine, unless it is not a directory.
            if not directory.is_dir():
                error = errno.ENOTDIR
                raise NotADirectoryError(error, os.strerror(error), str(directory)) from None
