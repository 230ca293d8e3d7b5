"""Push: publish a directory as (name, version) atomically, safe to retry and to race.

The blobs are stored and synced first, held by an upload session, with no package in sight;
then one transaction under the log lock publishes the whole version (created, files,
finalized), or finds it identical (success, same digest, nothing appended), or conflicts
(ConflictError naming the first difference). A push never joins an open package: racing
pushes of one version cannot mix their files, and an interrupted push leaves no package, only
blobs its session holds until it expires.

A version that is already finalized when the push starts is compared by hashing the tree,
without storing anything: a retried CI job costs one read of its files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from artifactstore import ingest, publish, registry, tree, uploads
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane
from artifactstore.identity import digest_stream
from artifactstore.manifest.model import validate_metadata
from artifactstore.naming import check_name, check_version
from artifactstore.publish import FileFacts, PushResult


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
) -> PushResult:
    """Store directory's files and publish them as (name, version); see the module docstring."""
    check_name(name)
    check_version(version)
    checked = validate_metadata(metadata or {})
    with db.read() as connection:
        registry.retention_class(connection, retention_class)
    found = tree.scan(directory)
    if on_scanned is not None:
        on_scanned(len(found), sum(item.size for item in found))
    with db.read() as connection:
        existing = registry.find_package(connection, name, version)
        if existing is not None:
            hashed = _hashed(found, progress)
            return publish.confirm(connection, existing, hashed, retention_class, checked)
    with uploads.held(db, actor) as session:
        ingest.stage_directory(db, dataplane, session, found, progress)
        return publish.publish(db, session, name, version, retention_class, metadata, actor)


def _hashed(
    found: list[tree.TreeFile], progress: Callable[[int], None] | None
) -> Iterator[FileFacts]:
    """What each file is, hashed as the comparison reaches it (in path order, like the scan)."""
    for item in found:
        with tree.open_file(item.source) as handle:
            digests = digest_stream(handle)
        if progress is not None:
            progress(digests.size)
        yield item.path, digests.size, digests.blake3.hex, digests.sha256.hex, item.executable
