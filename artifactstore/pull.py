"""Pull: write a package's files into a directory, each verified before it appears.

Every file streams from the data plane into a temp file beside its final name through a
`VerifyingReader` (BLAKE3, the content address, and the size, over the bytes written); a file
whose size or digest differs from the record stops the pull, and every temp file is removed.
Only when all files are written and verified is the destination filesystem synced once, the
temp files renamed into place (with their executable bits), and the filesystem synced again
for the new directory entries: two syncs however many files, and never a half-written or
unverified file under a package path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from artifactstore.dataplane.spi import DataPlane
from artifactstore.durability import sync_filesystem
from artifactstore.errors import InvalidPathError
from artifactstore.naming import check_path
from artifactstore.registry import StoredFile
from artifactstore.storage.spi import storage_errors
from artifactstore.verifying import VerifyingReader

TEMP_PREFIX = ".artifactstore-pull-"
_CHUNK = 1 << 20


def pull(
    dataplane: DataPlane,
    label: str,
    files: list[StoredFile],
    destination: Path,
    progress: Callable[[int], None] | None = None,
) -> list[StoredFile]:
    """Write files (of the package called label) under destination, verified; returns them."""
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    checked_dirs = {root}
    staged: list[tuple[Path, Path]] = []
    try:
        for stored in files:
            target = _target(root, stored.path, checked_dirs)
            staged.append((_write_verified(dataplane, label, stored, target), target))
            if progress is not None:
                progress(stored.size)
        _sync(root)
        for temp, target in staged:
            temp.replace(target)
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    _sync(root)
    return files


def _target(root: Path, path: str, checked_dirs: set[Path]) -> Path:
    """Where a package path goes under root; refuses anything that would land outside it."""
    # The store validated paths on ingest; checking again is cheap and guards against a
    # tampered database. resolve() after mkdir also catches a symlinked directory in DEST.
    check_path(path)
    target = root / path
    if target.parent not in checked_dirs:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(root):
            raise InvalidPathError(f"{path!r} would be written outside {str(root)!r}")
        checked_dirs.add(target.parent)
    return target


def _write_verified(dataplane: DataPlane, label: str, stored: StoredFile, target: Path) -> Path:
    """Write one file to a temp name beside target and check it; returns the temp path."""
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
    temp = Path(temp_name)
    try:
        # BLAKE3 is the content address: bytes that match it are the bytes that were pushed.
        # SHA-256 (the slower digest) was checked on ingest and `verify` re-checks both.
        buffer = memoryview(bytearray(_CHUNK))
        with os.fdopen(fd, "wb") as out:
            stream = dataplane.serve_object(stored.content_address)
            label_path = f"{label} {stored.path}"
            with VerifyingReader(stream, stored.content_address, stored.size, label_path) as reader:
                # readinto returns 0 only after the size and digest were checked.
                while count := reader.readinto(buffer):
                    out.write(buffer[:count])
            os.fchmod(out.fileno(), 0o755 if stored.executable else 0o644)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _sync(root: Path) -> None:
    with storage_errors(f"sync the files written under {root}"):
        sync_filesystem(root)
