"""Publishing a version: building its manifest, and telling an identical re-push from a conflict.

A version is immutable, so a push of (name, version) that already exists either carries exactly
what the version holds (the same files with the same digests and executable bits, the same
retention class and the same metadata: idempotent success) or is a conflict whose message names
the first difference. The store calls these inside its write transaction, under the log lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection

from artifactstore import registry, retention
from artifactstore._version import __version__
from artifactstore.identity import ContentAddress
from artifactstore.manifest.model import (
    FileEntry,
    Manifest,
    Metadata,
    PackageInfo,
    Provenance,
    ReceiptEntry,
    RetentionSummary,
)
from artifactstore.registry import Package

FileFacts = tuple[str, int, str, str, bool]
"""What a push says of one file: path, size, BLAKE3 hex, SHA-256 hex, executable."""


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: the manifest, whether it created the version, and its finalize event.

    `sequence` and `chain_digest` (hex) are those of the version's v1.package.finalized event:
    a checkpoint of the log that proves, later, that the version was not rewritten.
    """

    manifest: Manifest
    created: bool
    sequence: int
    chain_digest: str

    @property
    def digest(self) -> ContentAddress:
        """The manifest digest, 'blake3:<hex>'."""
        return self.manifest.digest


def first_difference(
    manifest: Manifest,
    current_class: str,
    files: Iterable[FileFacts],
    retention_class: str,
    metadata: Metadata,
) -> str | None:
    """What first differs between a finalized version and a push of it, or None if nothing."""
    recorded = {f.path: (f.size, f.blake3.hex, f.sha256.hex, f.executable) for f in manifest.files}
    differing: list[tuple[bytes, str]] = []
    for path, size, blake3_hex, sha256_hex, executable in files:
        kept = recorded.pop(path, None)
        if kept is None:
            differing.append((path.encode(), f"file {path!r} is not in the stored version"))
        elif kept != (size, blake3_hex, sha256_hex, executable):
            what = "executable bit" if kept[:3] == (size, blake3_hex, sha256_hex) else "content"
            differing.append((path.encode(), f"file {path!r} has a different {what}"))
    differing.extend(
        (path.encode(), f"file {path!r} of the stored version is missing") for path in recorded
    )
    if differing:
        return min(differing)[1]
    if retention_class != current_class:
        return f"retention class {retention_class!r} (the stored version has {current_class!r})"
    if metadata != manifest.package.metadata:
        return "different metadata"
    return None


def build_manifest(connection: Connection, package: Package, finalized_at: str) -> Manifest:
    """The manifest of an open package from its view rows, as of finalized_at."""
    files = registry.package_files(connection, package.id)
    keep_days = registry.retention_class(connection, package.retention_class).keep_days
    receipts: dict[tuple[str, str], ReceiptEntry] = {}
    by_backend: dict[str, set[str]] = {}
    for stored in files:
        by_backend.setdefault(stored.backend_id, set()).add(str(stored.content_address))
    for backend_id, addresses in by_backend.items():
        for address, stored_at in registry.stored_at(connection, backend_id, addresses).items():
            receipts[(address, backend_id)] = ReceiptEntry(
                ContentAddress.parse(address), backend_id, stored_at
            )
    return Manifest.build(
        package=PackageInfo(
            id=package.id,
            name=package.name,
            version=package.version,
            created_at=package.created_at,
            finalized_at=finalized_at,
            metadata=package.metadata,
        ),
        files=[FileEntry(f.path, f.size, f.blake3, f.sha256, f.executable) for f in files],
        storage_receipts=receipts.values(),
        retention=RetentionSummary(
            package.retention_class, retention.expires_at(finalized_at, keep_days)
        ),
        provenance=Provenance(producer=f"artifactstore {__version__}"),
    )
