"""Copying every blob the registry knows from the store's storage to another (migrate-storage).

The way a store moves its bytes, e.g. from a local blob root to an S3 bucket: each blob is read
from the configured storage and ingested into the target as the blob it must be (`expected`),
so the target hashes what it receives and stores nothing that does not hash to its address;
its SHA-256 and size are then checked against the registry. A blob the target has already is
skipped, so a run that was cut short resumes where it stopped (the target only ever holds
verified blobs). The registry is not changed: receipts keep naming the backend a blob was
first stored in, and reads look wherever the storage URL points. Switch the store's storage URL
to the target once a run reports no problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from artifactstore import registry
from artifactstore.config import load_settings
from artifactstore.database import Database, default_actor, utc_now
from artifactstore.dataplane.factory import dataplane_from_settings
from artifactstore.dataplane.spi import DataPlane
from artifactstore.errors import BlobNotFoundError, DigestMismatchError
from artifactstore.identity import ContentAddress
from artifactstore.store import ArtifactStore


@dataclass(slots=True)
class CopyReport:
    """What a copy run did: blobs copied, blobs the target had, and every problem found."""

    blobs: int = 0
    copied: int = 0
    present: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every blob is in the target now."""
        return not self.problems


def copy_blobs(
    store: ArtifactStore, target_url: str, progress: Callable[[int], None] | None = None
) -> CopyReport:
    """Copy every blob the store's registry knows to the storage at target_url, verifying
    each; skip those the target has. progress gets each blob's size once it is handled.

    ConfigError for a target URL that cannot be used; StorageError if either storage fails.
    """
    target = dataplane_from_settings(load_settings({}, storage_url=target_url), create=True)
    db = Database(store.engine, store.redacted_url, default_actor(), utc_now)
    report = CopyReport()
    try:
        after = ""
        while True:
            with db.read() as connection:
                page = registry.stored_blobs(connection, after)
            if not page:
                return report
            for blob in page:
                _copy_one(store.dataplane, target, blob, report)
                if progress is not None:
                    progress(blob.size)
            after = page[-1].address
    finally:
        target.close()


def _copy_one(
    source: DataPlane, target: DataPlane, blob: registry.BlobRow, report: CopyReport
) -> None:
    report.blobs += 1
    address = ContentAddress.parse(blob.address)
    if target.stat_object(address) is not None:
        report.present += 1
        return
    try:
        with source.serve_object(address) as stream:
            result = target.ingest_stream(stream, expected=address)
    except BlobNotFoundError:
        report.problems.append(f"{address}: missing from the store's storage")
        return
    except DigestMismatchError:
        report.problems.append(
            f"{address}: the store's copy does not hash to its address; not copied "
            "(run 'artifactstore verify --all')"
        )
        return
    if (result.digests.sha256.hex, result.size) != (blob.sha256, blob.size):
        report.problems.append(
            f"{address}: SHA-256 or size differ from the registry's "
            f"({result.digests.sha256.hex}, {result.size} bytes)"
        )
        return
    report.copied += 1
