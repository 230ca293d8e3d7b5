"""Writing a package's files into a directory for `artifactstore pull`, verified as they land.

Each file streams from the store (whose reader checks BLAKE3 at end of file) into a temp file
beside its final name while SHA-256 is computed over the same bytes; only a file whose size and
both digests match is given its mode, fsynced and renamed into place. A failure removes the temp
file, so no half-written or unverified file is ever visible under a package path.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from artifactstore.errors import IntegrityError, InvalidPathError
from artifactstore.naming import check_path
from artifactstore.registry import StoredFile
from artifactstore.store import ArtifactStore

TEMP_PREFIX = ".artifactstore-pull-"
_CHUNK = 1 << 20


def is_empty_directory(path: Path) -> bool:
    """True when path is missing or an empty directory (what pull accepts without --force)."""
    if not path.exists():
        return True
    return path.is_dir() and not any(path.iterdir())


def write_files(
    store: ArtifactStore,
    ref: tuple[str, str],
    files: Iterable[StoredFile],
    destination: Path,
    progress: Callable[[int], None],
) -> None:
    """Write every file of the package under destination, verifying each before it appears."""
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    directories = {root}
    for stored in files:
        target = _target(root, stored.path)
        _write_one(store, ref, stored, target)
        directories.add(target.parent)
        progress(stored.size)
    # The renames are durable only once their directories are synced.
    for directory in sorted(directories):
        _fsync_directory(directory)


def _target(root: Path, path: str) -> Path:
    """Where a package path goes under root; refuses anything that would land outside it."""
    # The store validated paths on ingest; checking again costs nothing and guards against a
    # tampered database. resolve() after mkdir also catches a symlinked directory in DEST.
    check_path(path)
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.parent.resolve().is_relative_to(root):
        raise InvalidPathError(f"{path!r} would be written outside {str(root)!r}")
    return target


def _write_one(
    store: ArtifactStore, ref: tuple[str, str], stored: StoredFile, target: Path
) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out, store.get_file(ref, stored.path) as reader:
            sha256 = hashlib.sha256()
            size = 0
            while chunk := reader.read(_CHUNK):
                out.write(chunk)
                sha256.update(chunk)
                size += len(chunk)
            actual = sha256.hexdigest()
            if (size, actual) != (stored.size, stored.sha256.hex):
                raise IntegrityError(
                    f"{ref[0]}:{ref[1]} {stored.path}: expected {stored.size} bytes with "
                    f"sha256:{stored.sha256.hex}, read {size} bytes with sha256:{actual}"
                )
            os.fchmod(out.fileno(), 0o755 if stored.executable else 0o644)
            out.flush()
            os.fsync(out.fileno())
        temp.replace(target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
