"""Publishing a version: its manifest streamed from the views, and re-pushes told from conflicts.

A version is immutable, so a push of (name, version) that already exists either carries exactly
what the version holds (the same files with the same digests and executable bits, the same
retention class and the same metadata: idempotent success) or is a conflict whose message names
the first difference. The store calls these inside its write transaction, under the log lock.

Both work a file at a time, so memory does not grow with the number of files: the manifest is
encoded straight from the view rows in manifest order (`manifest.codec.manifest_map`, the one
layout of a manifest), and a re-push is compared with the stored manifest by walking both file
lists, each sorted by the UTF-8 bytes of the path, side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import Connection

from artifactstore import registry, retention
from artifactstore._version import __version__
from artifactstore.errors import ManifestError
from artifactstore.identity import ContentAddress
from artifactstore.manifest import codec, reader
from artifactstore.manifest.model import (
    FileEntry,
    Metadata,
    PackageInfo,
    Provenance,
    ReceiptEntry,
    RetentionSummary,
    validate_metadata,
)
from artifactstore.registry import Package

FileFacts = tuple[str, int, str, str, bool]
"""What a push says of one file: path, size, BLAKE3 hex, SHA-256 hex, executable."""


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: the version, its manifest digest, whether the push created it, its size,
    and its finalize event.

    `sequence` and `chain_digest` (hex) are those of the version's v1.package.finalized event:
    a checkpoint of the log that proves, later, that the version was not rewritten.
    """

    name: str
    version: str
    digest: ContentAddress
    created: bool
    sequence: int
    chain_digest: str
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """A re-push compared with the stored version: the first difference, or None; and its size."""

    difference: str | None
    files: int
    bytes: int


def compare(
    manifest: bytes,
    current_class: str,
    pushed: Iterable[FileFacts],
    retention_class: str,
    metadata: Metadata,
) -> Comparison:
    """Compare a finalized version's manifest with a push of it, both sorted by path bytes."""
    count = total = 0
    difference: str | None = None
    stored = reader.files(manifest)
    kept = next(stored, None)
    # Both lists are in path order, so the first difference found is the first in that order;
    # the walk stops there (the pushed files may be hashed lazily: no more hashing after it).
    for path, size, blake3_hex, sha256_hex, executable in pushed:
        key = path.encode()
        if kept is not None and kept.path.encode() < key:
            difference = f"file {kept.path!r} of the stored version is missing"
        elif kept is None or kept.path.encode() != key:
            difference = f"file {path!r} is not in the stored version"
        elif (kept.size, kept.blake3.hex, kept.sha256.hex) != (size, blake3_hex, sha256_hex):
            difference = f"file {path!r} has a different content"
        elif kept.executable != executable:
            difference = f"file {path!r} has a different executable bit"
        if difference is not None:
            return Comparison(difference, count, total)
        count += 1
        total += size
        kept = next(stored, None)
    if kept is not None:
        difference = f"file {kept.path!r} of the stored version is missing"
    if difference is None and retention_class != current_class:
        difference = (
            f"retention class {retention_class!r} (the stored version has {current_class!r})"
        )
    if difference is None:
        stored_metadata = reader.small_maps(manifest)["package"]["metadata"]
        if validate_metadata(stored_metadata) != metadata:
            difference = "different metadata"
    return Comparison(difference, count, total)


def encode_manifest(connection: Connection, package: Package, finalized_at: str) -> bytes:
    """The canonical CBOR manifest of an open package, streamed from its view rows."""
    keep_days = registry.retention_class(connection, package.retention_class).keep_days
    files, _, blobs = registry.package_totals(connection, package.id)
    value = codec.manifest_map(
        PackageInfo(
            id=package.id,
            name=package.name,
            version=package.version,
            created_at=package.created_at,
            finalized_at=finalized_at,
            metadata=package.metadata,
        ),
        codec.LazyArray(files, map(codec.file_value, _entries(connection, package.id))),
        codec.LazyArray(blobs, map(codec.receipt_value, _receipts(connection, package.id))),
        RetentionSummary(package.retention_class, retention.expires_at(finalized_at, keep_days)),
        Provenance(producer=f"artifactstore {__version__}"),
    )
    return codec.encode_value(value)


def _entries(connection: Connection, package_id: str) -> Iterator[FileEntry]:
    previous = b""
    for stored in registry.iter_package_files(connection, package_id):
        entry = FileEntry(stored.path, stored.size, stored.blake3, stored.sha256, stored.executable)
        key = entry.path.encode()
        if key <= previous:
            raise ManifestError(f"files out of order from the database at {entry.path!r}")
        previous = key
        yield entry


def _receipts(connection: Connection, package_id: str) -> Iterator[ReceiptEntry]:
    previous = ("", "")
    for address, backend_id, stored_at in registry.iter_receipts(connection, package_id):
        if (address, backend_id) <= previous:
            raise ManifestError(f"storage receipts out of order from the database at {address}")
        previous = (address, backend_id)
        yield ReceiptEntry(ContentAddress.parse(address), backend_id, stored_at)
