"""In-process physical limits: read or hash every file of a tree, run as a subprocess.

`python -m benchmarks.hashfiles MODE ROOT` with MODE one of:

- `read`: read every file in 1 MiB chunks and discard the bytes;
- `sha256`: hashlib SHA-256 of every file, one thread;
- `blake3`: BLAKE3 of every file, one thread;
- `dual`: both digests of every file on two threads, SHA-256 on a worker while BLAKE3 runs
  on the main thread over the same chunk (both release the GIL), so two cores hash at once;
  chunks under 64 KiB are hashed inline, where handing them to a thread costs more than it saves.

These are the floors artifactstore's push, pull and verify are compared with: the same work
in the same language, without a database, fsync or a second copy of the bytes.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3

from benchmarks.workloads import KIB, MIB, tree_files

_INLINE = 64 * KIB


def _each_chunk(path: Path, buffer: bytearray, consume: Callable[[memoryview], object]) -> None:
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while size := handle.readinto(buffer):
            consume(view[:size])


def read(files: list[Path]) -> None:
    """Read every file, keeping nothing."""
    buffer = bytearray(MIB)
    for path in files:
        _each_chunk(path, buffer, lambda _: None)


def sha256(files: list[Path]) -> None:
    """SHA-256 of every file on one thread."""
    buffer = bytearray(MIB)
    for path in files:
        digest = hashlib.sha256()
        _each_chunk(path, buffer, digest.update)
        digest.hexdigest()


def blake3_one_thread(files: list[Path]) -> None:
    """BLAKE3 of every file on one thread."""
    buffer = bytearray(MIB)
    for path in files:
        digest = blake3.blake3(max_threads=1)
        _each_chunk(path, buffer, digest.update)
        digest.hexdigest()


def dual(files: list[Path]) -> None:
    """SHA-256 and BLAKE3 of every file, the two digests on two threads."""
    buffer = bytearray(MIB)
    with ThreadPoolExecutor(max_workers=1) as worker:
        for path in files:
            _dual_file(path, buffer, worker)


def _dual_file(path: Path, buffer: bytearray, worker: ThreadPoolExecutor) -> None:
    sha = hashlib.sha256()
    b3 = blake3.blake3(max_threads=1)

    def both(chunk: memoryview) -> None:
        if len(chunk) < _INLINE:
            sha.update(chunk)
            b3.update(chunk)
            return
        pending = worker.submit(sha.update, chunk)
        b3.update(chunk)
        pending.result()

    _each_chunk(path, buffer, both)
    sha.hexdigest()
    b3.hexdigest()


MODES: dict[str, Callable[[list[Path]], None]] = {
    "read": read,
    "sha256": sha256,
    "blake3": blake3_one_thread,
    "dual": dual,
}


def main(argv: list[str]) -> None:
    """Run MODE over every file under ROOT."""
    mode, root = argv
    MODES[mode](tree_files(Path(root)))


if __name__ == "__main__":
    main(sys.argv[1:])
