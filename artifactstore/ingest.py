"""Ingest: blobs stored and synced first, then the files that name them committed or staged.

Blob I/O happens outside any database transaction and is made durable before a row names
the blob: one blob at a time (`ingest_source`) or one sync for a batch of COMMIT_BATCH files
(`store_blobs`). No half-written blob is ever visible under a content address. Each batch's
blobs are held by an upload session before anything relies on them, and any that garbage
collection removed before the hold are written again (`liveness`). The files of a batch are
then committed to an open package (`commit_files`) or staged in an upload session
(`stage_directory`) in one short transaction.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Self

from artifactstore import cbor, liveness, registry, tree, trust, uploads
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane, IngestResult
from artifactstore.errors import (
    AlreadyExistsError,
    InvalidPathError,
    PackageFinalizedError,
    StorageError,
)
from artifactstore.events.model import FILE_INGESTED
from artifactstore.identity import ContentAddress, Digest, DualDigest, blake3_stream
from artifactstore.manifest.model import format_timestamp
from artifactstore.naming import check_path, check_paths
from artifactstore.records import Package, PackageRef, Source, StoredFile

COMMIT_BATCH = 2000
"""Files per transaction when a directory is ingested."""

_READ_WHOLE_LIMIT = 1 << 20
"""Files up to this size are read into memory whole when a directory is ingested."""

_HELD_BYTES = 4 << 20
"""Bytes of files read whole that are held before they are handed to the data plane together."""

_PREHASH_AHEAD = 4
"""Large files hashed ahead of the one being stored, when a re-push hashes them apart."""

Ingested = tuple[str, IngestResult, bool]
"""A stored file: its package path, what the data plane stored, and its executable bit."""


def ingest_source(dataplane: DataPlane, source: Source) -> tuple[IngestResult, bool]:
    """Store one source's blob durably; returns it and whether the source file is executable."""
    if isinstance(source, (str, os.PathLike)):
        with tree.open_file(Path(source)) as handle:
            before = os.fstat(handle.fileno())
            result = dataplane.ingest_stream(handle)
            # A pipe, or a /proc or sysfs file (regular but sized 0), has no size to compare;
            # any other regular file must keep its own.
            if stat.S_ISREG(before.st_mode) and before.st_size > 0:
                tree.check_unchanged(
                    str(source), handle, result.size, before.st_size, before.st_mtime_ns
                )
            return result, tree.is_executable(before.st_mode)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return dataplane.ingest_stream(bytes(source)), False
    return dataplane.ingest_stream(source), False


def store_blobs(
    db: Database,
    dataplane: DataPlane,
    session: str,
    found: list[tree.TreeFile],
    progress: Callable[[int], None] | None,
) -> Iterator[list[Ingested]]:
    """Hash and store the files' blobs, COMMIT_BATCH at a time, each batch held by the upload
    session (so garbage collection keeps it: `liveness`) and durable."""
    large = {item.size for item in found if item.size > _READ_WHOLE_LIMIT}
    with db.read() as connection:
        stored = registry.stored_of_sizes(connection, large) if large else {}
    with _Prehashed(found, stored) as prehashed:
        for start in range(0, len(found), COMMIT_BATCH):
            batch = found[start : start + COMMIT_BATCH]
            ingested = _ingest_batch(dataplane, batch, prehashed, progress)
            deduped = [str(r.content_address) for _, r, _ in ingested if r.already_present]
            written = [str(r.content_address) for _, r, _ in ingested if not r.already_present]
            gone = set(liveness.keep_alive(db, dataplane, session, deduped, written))
            if gone:
                ingested = [
                    _ingest_tree_file(dataplane, item, None)
                    if str(stored[1].content_address) in gone
                    else stored
                    for item, stored in zip(batch, ingested, strict=True)
                ]
            # One sync pass for the batch instead of an fsync per file; blobs that were
            # already present are synced too, in case another process wrote them non-durably.
            dataplane.sync(result.content_address for _, result, _ in ingested)
            yield ingested


class _Prehashed:
    """The stored blobs the large files of an unchanged re-push probably are (each file has the
    size of a stored blob), found by BLAKE3 alone: hashed on two threads up to _PREHASH_AHEAD
    ahead of the one being stored, while the calling thread stores the small files.

    BLAKE3 is the content address: a file whose BLAKE3 names a stored blob of its size holds
    that blob's bytes, so its SHA-256 is the one recorded when the blob was stored, and is not
    computed again (ADR-0015). Any other file is stored in one pass that hashes both.
    """

    def __init__(self, found: list[tree.TreeFile], stored: dict[str, tuple[int, str]]) -> None:
        sizes = {size for size, _ in stored.values()}
        self._stored = stored
        self._items = [i for i in found if i.size > _READ_WHOLE_LIMIT and i.size in sizes]
        self._position = {item.path: index for index, item in enumerate(self._items)}
        self._hashing: list[Future[Digest]] = []
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="artifactstore-prehash")

    def __enter__(self) -> Self:
        self._submit_through(_PREHASH_AHEAD - 1)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def digests(self, item: tree.TreeFile) -> DualDigest | None:
        """Both digests of item if it is a stored blob: its BLAKE3 and the recorded SHA-256;
        None if it is not hashed apart or names no stored blob. InvalidInputError if it
        changed since the scan."""
        index = self._position.get(item.path)
        if index is None:
            return None
        self._submit_through(index + _PREHASH_AHEAD)
        blake3_digest = self._hashing[index].result()
        recorded = self._stored.get(str(ContentAddress.of(blake3_digest)))
        if recorded is None or recorded[0] != item.size:
            return None
        return DualDigest(blake3_digest, Digest("sha256", recorded[1]), item.size)

    def _submit_through(self, index: int) -> None:
        while len(self._hashing) <= min(index, len(self._items) - 1):
            item = self._items[len(self._hashing)]
            self._hashing.append(self._pool.submit(_blake3_unchanged, item))


def _blake3_unchanged(item: tree.TreeFile) -> Digest:
    """The BLAKE3 digest of a scanned file, on this thread; InvalidInputError if it changed."""
    with tree.open_file(item.source) as handle:
        digest, size = blake3_stream(handle)
        tree.check_unchanged(item.source, handle, size, item.size, item.mtime_ns)
    return digest


def _ingest_batch(
    dataplane: DataPlane,
    batch: list[tree.TreeFile],
    prehashed: _Prehashed,
    progress: Callable[[int], None] | None,
) -> list[Ingested]:
    """Store the batch's blobs, in order: files read whole go to the data plane up to
    _HELD_BYTES at a time (`ingest_many`: one lookup for many small blobs), others one by one,
    looked up by their digests first when they were hashed apart (`_Prehashed`)."""
    ingested: list[Ingested] = []
    whole: list[tuple[tree.TreeFile, bytes]] = []

    def flush() -> None:
        results = dataplane.ingest_many([data for _, data in whole])
        for (item, _), result in zip(whole, results, strict=True):
            if progress is not None:
                progress(result.size)
            ingested.append((item.path, result, item.executable))
        whole.clear()

    held = 0
    for item in batch:
        if item.size > _READ_WHOLE_LIMIT:
            flush()
            ingested.append(_ingest_large(dataplane, item, prehashed, progress))
            continue
        data = tree.read_whole(item)
        whole.append((item, data))
        held += len(data)
        if held >= _HELD_BYTES:
            flush()
            held = 0
    flush()
    return ingested


def _ingest_large(
    dataplane: DataPlane,
    item: tree.TreeFile,
    prehashed: _Prehashed,
    progress: Callable[[int], None] | None,
) -> Ingested:
    """A large file's blob: the stored one its BLAKE3 names (`_Prehashed`), else stored in one
    pass that hashes what it writes (so it is stored under its own name even if it changed
    since it was hashed apart, which the write's check of the file then refuses)."""
    digests = prehashed.digests(item)
    found = None if digests is None else dataplane.find_stored(digests, durable=False)
    if found is None:
        return _ingest_tree_file(dataplane, item, progress)
    if progress is not None:
        progress(found.size)
    return item.path, found, item.executable


def _ingest_tree_file(
    dataplane: DataPlane, item: tree.TreeFile, progress: Callable[[int], None] | None
) -> Ingested:
    with tree.open_file(item.source) as handle:
        # Small files are read whole so the data plane can skip writing a known blob.
        source = handle.read() if item.size <= _READ_WHOLE_LIMIT else handle
        result = dataplane.ingest_stream(source, durable=False)
        tree.check_unchanged(item.source, handle, result.size, item.size, item.mtime_ns)
    if progress is not None:
        progress(result.size)
    return item.path, result, item.executable


def stage_directory(
    db: Database,
    dataplane: DataPlane,
    session: str,
    found: list[tree.TreeFile],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Store the blobs of scanned files and stage the files in an upload session."""
    for ingested in store_blobs(db, dataplane, session, found, progress):
        staged = [staged_file(path, result, executable) for path, result, executable in ingested]
        with db.write(lock=False) as connection:
            uploads.stage(connection, session, staged, db.now())


def add_file(
    db: Database,
    dataplane: DataPlane,
    ref: PackageRef,
    path: str,
    source: Source,
    replace: bool,
    executable: bool | None,
    actor: str | None,
) -> StoredFile:
    """Store one source's blob and add it to an open package as path (see `add`)."""
    check_path(path)

    def stored_blob(session: str) -> Iterator[list[Ingested]]:
        result, inferred = ingest_source(dataplane, source)
        address = [str(result.content_address)]
        deduped, written = (address, []) if result.already_present else ([], address)
        if liveness.keep_alive(db, dataplane, session, deduped, written):
            if not isinstance(source, (bytes, str, os.PathLike)):
                raise StorageError(
                    f"the blob of {path!r} was removed by garbage collection while it was "
                    "being added; add the file again"
                )
            result, _ = ingest_source(dataplane, source)
        yield [(path, result, inferred if executable is None else executable)]

    with uploads.held(db, actor) as session:
        [stored] = add(db, ref, [path], stored_blob(session), replace, actor)
    return stored


def add_directory(
    db: Database,
    dataplane: DataPlane,
    ref: PackageRef,
    found: list[tree.TreeFile],
    replace: bool,
    actor: str | None,
    progress: Callable[[int], None] | None,
) -> list[StoredFile]:
    """Store scanned files' blobs and add the files to an open package (see `add`)."""
    with uploads.held(db, actor) as session:
        batches = store_blobs(db, dataplane, session, found, progress)
        return add(db, ref, [f.path for f in found], batches, replace, actor)


def add(
    db: Database,
    ref: PackageRef,
    paths: list[str],
    batches: Iterable[list[Ingested]],
    replace: bool,
    actor: str | None,
) -> list[StoredFile]:
    """Add files to an open package: every path checked first (batches is lazy, so no blob is
    stored before), then each batch of stored files committed in its own transaction.

    A path the package has already is compared once its content is known (`commit_files`):
    the same BLAKE3 and executable bit is kept as it is, anything else is AlreadyExistsError.
    """
    known = check_can_add(db, ref, paths)
    stored: list[StoredFile] = []
    for ingested in batches:
        files, known = commit_files(db, ref, ingested, replace, actor, known)
        stored.extend(files)
    return stored


def check_can_add(db: Database, ref: PackageRef, paths: list[str]) -> int:
    """Raise unless the package is open and none of paths clashes with its files
    (naming.check_paths: prefixes, NFC and case twins); returns how many files it has.

    A path the package has already is no clash here: its content is not known yet, so
    `commit_files` decides.
    """
    with db.read() as connection:
        package = registry.get_package(connection, ref)
        require_open(package)
        existing = registry.package_paths(connection, package.id)
        _require_no_clash(package, paths, existing)
        return len(existing)


def commit_files(
    db: Database,
    ref: PackageRef,
    ingested: list[Ingested],
    replace: bool,
    actor: str | None,
    known: int,
) -> tuple[list[StoredFile], int]:
    """Add stored files to an open package in one transaction (one v1.file.ingested each);
    returns them and the package's file count after.

    Under the write lock, a path the package has already is checked (`_require_addable`):
    without replace, the same content is kept and appends nothing (a retried job, or two jobs
    adding one file, succeed), and other content raises AlreadyExistsError with nothing of the
    batch added; with replace, the file is recorded again whatever it holds. known is the file
    count when the paths were checked: files are never taken out of an open package, so an
    unchanged count means nobody added a path since, and the clash check holds.
    """
    with db.write() as connection:
        package = registry.get_package(connection, ref)
        require_open(package)
        paths = [path for path, _, _ in ingested]
        present = registry.package_files_at(connection, package.id, paths)
        new = _require_addable(package, ingested, present, replace)
        if registry.file_count(connection, package.id) != known:
            # Another writer added files since: check again, under the lock.
            existing = registry.package_paths(connection, package.id)
            _require_no_clash(package, [path for path, _, _ in new], existing)
        # One commit, one moment: the batch's events share their timestamp.
        now = format_timestamp(db.now())
        events = [
            db.event(FILE_INGESTED, package.id, staged_payload(staged_file(*item)), actor, now)
            for item in new
        ]
        if events:
            db.record(connection, events)
        count = registry.file_count(connection, package.id)
    stored = [
        StoredFile(
            path=path,
            size=result.size,
            blake3=result.digests.blake3,
            sha256=result.digests.sha256,
            executable=executable,
            backend_id=result.receipt.backend_id,
        )
        for path, result, executable in ingested
    ]
    return stored, count


def require_open(package: Package) -> None:
    """Raise PackageFinalizedError if the package is finalized, PackageStateError if ended."""
    trust.require_not_ended(package)
    if package.is_finalized:
        raise PackageFinalizedError(f"package {package} is finalized and cannot change")


def _require_addable(
    package: Package, ingested: list[Ingested], present: dict[str, StoredFile], replace: bool
) -> list[Ingested]:
    """The files to record: all with replace; else those at a new path, after raising
    AlreadyExistsError for one the package has with another BLAKE3 or executable bit."""
    if replace:
        return ingested
    new: list[Ingested] = []
    for path, result, executable in ingested:
        there = present.get(path)
        if there is None:
            new.append((path, result, executable))
        elif there.blake3.hex != result.digests.blake3.hex:
            raise AlreadyExistsError(
                f"package {package} already has {path!r} with other content "
                f"({there.blake3}; this one is {result.digests.blake3})"
            )
        elif there.executable != executable:
            raise AlreadyExistsError(
                f"package {package} already has {path!r} with the executable bit "
                f"{'set' if there.executable else 'unset'} (this one has it "
                f"{'set' if executable else 'unset'})"
            )
    return new


def _require_no_clash(package: Package, paths: list[str], existing: set[str]) -> None:
    try:
        check_paths(paths, existing)
    except InvalidPathError as exc:
        raise InvalidPathError(f"package {package}: {exc}") from None


def staged_file(path: str, result: IngestResult, executable: bool) -> uploads.StagedFile:
    """What a v1.file.ingested event will say of a stored file."""
    return uploads.StagedFile(
        path=path,
        size=result.size,
        blake3=result.digests.blake3.hex,
        sha256=result.digests.sha256.hex,
        executable=executable,
        backend_id=result.receipt.backend_id,
        object_key=result.receipt.key,
        stored_at=format_timestamp(result.receipt.stored_at),
    )


def staged_payload(staged: uploads.StagedFile) -> bytes:
    """The payload of the v1.file.ingested event for a staged file."""
    return cbor.encode(
        {
            "path": staged.path,
            "size": staged.size,
            "blake3": staged.blake3,
            "sha256": staged.sha256,
            "executable": staged.executable,
            "backend_id": staged.backend_id,
            "object_key": staged.object_key,
            "stored_at": staged.stored_at,
        }
    )
