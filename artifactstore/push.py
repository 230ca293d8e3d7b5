"""Push: publish a directory as (name, version) atomically, safe to retry and to race.

The blobs are stored and synced first, held by an upload session, with no package in sight;
then one transaction under the log lock publishes the whole version (created, files,
finalized), or finds it identical (success, same digest, nothing appended), or conflicts
(ConflictError naming the first difference). A push never joins an open package: racing
pushes of one version cannot mix their files, and an interrupted push leaves no package, only
blobs its session holds until it expires.

A version that is already finalized when the push starts is compared by hashing the tree,
without storing anything: a retried CI job costs one read of its files.

The tree leaves out the store's own files (`own_files`: `push x 1 .` beside the default
./.artifactstore/ must not store the live database), a tree with no file is refused unless
the caller allows an empty package, and a file that changes while it is read is refused
(`tree.check_unchanged`) rather than stored torn.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from sqlalchemy.engine import URL

from artifactstore import ingest, publish, registry, schema, tree, uploads
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane
from artifactstore.errors import InvalidInputError
from artifactstore.identity import digest_stream
from artifactstore.manifest.model import validate_new_metadata
from artifactstore.naming import check_name, check_version
from artifactstore.records import FileFacts, PushResult

_DATABASE_COMPANIONS = ("-wal", "-shm", "-journal", ".lock")
"""Files beside a SQLite database: SQLite's own, and the lock migration.prepare takes."""


def push(
    db: Database,
    dataplane: DataPlane,
    name: str,
    version: str,
    directory: str | os.PathLike[str],
    retention_class: str,
    metadata: Mapping[str, object] | None,
    progress: Callable[[int], None] | None,
    actor: str | None = None,
    on_scanned: Callable[[int, int], None] | None = None,
    skip: Iterable[Path] = (),
    allow_empty: bool = False,
) -> PushResult:
    """Store directory's files and publish them as (name, version); see the module docstring.

    The skip paths (the store's own files) are left out of the tree. A tree without files is
    refused (InvalidInputError) unless allow_empty is set.
    """
    check_name(name)
    check_version(version)
    checked = validate_new_metadata(metadata or {})
    with db.read() as connection:
        registry.retention_class(connection, retention_class)
    found = tree.scan(directory, skip)
    if not found and not allow_empty:
        raise InvalidInputError(
            f"directory {str(directory)!r} is empty (it holds no file to push); "
            "use --allow-empty (allow_empty=True) to push an empty package"
        )
    if on_scanned is not None:
        on_scanned(len(found), sum(item.size for item in found))
    with db.read() as connection:
        existing = registry.find_package(connection, name, version)
        if existing is not None:
            hashed = _hashed(found, progress)
            return publish.confirm(connection, existing, hashed, retention_class, checked)
    with uploads.held(db, actor) as session:
        ingest.stage_directory(db, dataplane, session, found, progress)
        # The publish reads the staged rows, not the scan: let the scan's objects (25 MB for
        # 100,000 files) go before it.
        del found
        return publish.publish(db, session, name, version, retention_class, metadata, actor)


def own_files(database_url: URL, blob_root: Path | None) -> list[Path]:
    """A store's own files, which a push leaves out of its tree: the SQLite database file, with
    the files kept beside it (-wal, -shm, -journal, .lock), and the local blob root.

    They change while they are read, so a re-push of the tree would never be identical. The
    database path is made absolute now: SQLite opened it relative to the working directory of
    the time.
    """
    found = [] if blob_root is None else [blob_root.absolute()]
    database = schema.sqlite_file(database_url)
    if database is not None:
        database = database.absolute()
        found.append(database)
        found.extend(database.with_name(database.name + end) for end in _DATABASE_COMPANIONS)
    return found


def _hashed(
    found: list[tree.TreeFile], progress: Callable[[int], None] | None
) -> Iterator[FileFacts]:
    """What each file is, hashed as the comparison reaches it (in path order, like the scan)."""
    for item in found:
        with tree.open_file(item.source) as handle:
            digests = digest_stream(handle)
            tree.check_unchanged(item.source, handle, digests.size, item.size, item.mtime_ns)
        if progress is not None:
            progress(digests.size)
        yield item.path, digests.size, digests.blake3.hex, digests.sha256.hex, item.executable
