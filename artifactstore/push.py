"""Push: publish a directory as (name, version) atomically, safe to retry and to race.

The blobs are stored and synced first, held by an upload session, with no package in sight;
then one transaction under the log lock publishes the whole version (created, files,
finalized), or finds it identical (success, same digest, nothing appended), or conflicts
(ConflictError naming the first difference). A push never joins an open package: racing
pushes of one version cannot mix their files, and an interrupted push leaves no package, only
blobs its session holds until it expires.

A version that is already finalized when the push starts is compared by hashing the tree,
without storing anything: a retried CI job costs one read of its files. Built only on the
public ArtifactStore methods.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from artifactstore import tree
from artifactstore.errors import PackageStateError
from artifactstore.identity import digest_stream
from artifactstore.manifest.model import validate_metadata
from artifactstore.naming import check_name, check_version
from artifactstore.publish import FileFacts, PushResult

if TYPE_CHECKING:
    from artifactstore.store import ArtifactStore


def push(
    store: ArtifactStore,
    name: str,
    version: str,
    directory: str | os.PathLike[str],
    retention_class: str,
    metadata: Mapping[str, object] | None,
    progress: Callable[[int], None] | None,
    actor: str | None = None,
) -> PushResult:
    """Store directory's files and publish them as (name, version); see the module docstring."""
    check_name(name)
    check_version(version)
    validate_metadata(metadata or {})
    store.retention_class(retention_class)
    found = tree.scan(directory)
    existing = store.find_package(name, version)
    if existing is not None:
        if not existing.is_finalized:
            raise PackageStateError(
                f"package {existing} is open for assembly; finalize or abandon it "
                "(a push never adds to an open package)"
            )
        return store.confirm_push(existing, _hashed(found, progress), retention_class, metadata)
    with store.upload_session(actor=actor) as session:
        store.stage_directory(session, found, progress)
        return store.publish(session, name, version, retention_class, metadata, actor=actor)


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
