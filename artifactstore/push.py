"""Push: publish a directory as (name, version) in one call, safe to retry.

CI jobs get retried, so pushing exactly the same files again (paths, digests, executable bits)
returns the existing manifest and appends nothing, while different files for a finalized
version are a ConflictError that changes nothing. A package left open by an interrupted push
is resumed. Built only on the public ArtifactStore methods.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from artifactstore import tree
from artifactstore.errors import ConflictError
from artifactstore.identity import digest_stream
from artifactstore.manifest.model import Manifest, validate_metadata
from artifactstore.naming import check_name, check_version
from artifactstore.registry import Package

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
) -> Manifest:
    """Ingest directory as (name, version) and finalize it; idempotent for the same files."""
    check_name(name)
    check_version(version)
    validate_metadata(metadata or {})
    found = tree.scan(directory)
    existing = store.find_package(name, version)
    if existing is not None and existing.is_finalized:
        _require_same_files(store, existing, found)
        return store.get_manifest(existing)
    if existing is None:
        existing = store.create_package(name, version, retention_class, metadata)
    else:
        extra = {f.path for f in store.list_files(existing)} - {f.path for f in found}
        if extra:
            raise ConflictError(
                f"open package {existing} holds files not in {str(directory)!r} "
                f"(first: {sorted(extra)[0]!r}); abandon it first"
            )
    store.ingest_directory(existing, directory, replace=True, progress=progress)
    return store.finalize_package(existing)


def _require_same_files(store: ArtifactStore, package: Package, found: list[tree.TreeFile]) -> None:
    recorded = {f.path: f for f in store.list_files(package)}
    if set(recorded) != {f.path for f in found}:
        different = sorted(set(recorded) ^ {f.path for f in found})
        raise ConflictError(
            f"package {package} is finalized with different files "
            f"(first difference: {different[0]!r})"
        )
    for item in found:
        with tree.open_file(item.source) as handle:
            digests = digest_stream(handle)
        stored = recorded[item.path]
        if (digests.blake3, digests.sha256, item.executable) != (
            stored.blake3,
            stored.sha256,
            stored.executable,
        ):
            raise ConflictError(f"package {package} is finalized with a different {item.path!r}")
