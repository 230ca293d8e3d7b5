"""Publishing a version: its manifest streamed from the views, and re-pushes told from conflicts.

A version is immutable, so a push of (name, version) that already exists either carries exactly
what the version holds (the same files with the same digests and executable bits, the same
retention class and the same metadata: idempotent success) or is a conflict whose message names
the first difference. `publish` does either in one write transaction, under the log lock.

Both work a file at a time, so memory does not grow with the number of files: the manifest is
encoded straight from the view rows in manifest order (`manifest.model.manifest_map`, the one
layout of a manifest), and a re-push is compared with the stored manifest by walking both file
lists, each sorted by the UTF-8 bytes of the path, side by side.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import BinaryIO

from sqlalchemy import Connection

from artifactstore import cbor, registry, retention, trust, uploads
from artifactstore._version import __version__
from artifactstore.database import Database
from artifactstore.errors import ConflictError, DatabaseError, ManifestError, PackageStateError
from artifactstore.events.model import (
    FILE_INGESTED,
    PACKAGE_CREATED,
    PACKAGE_FINALIZED,
    RETENTION_ASSIGNED,
    NewEvent,
    SpooledPayload,
)
from artifactstore.identity import ContentAddress
from artifactstore.ingest import staged_payload
from artifactstore.manifest.model import (
    FileEntry,
    Metadata,
    PackageInfo,
    Provenance,
    ReceiptEntry,
    RetentionSummary,
    file_map,
    file_value,
    format_timestamp,
    manifest_digest_of_bytes,
    manifest_digest_of_chunks,
    manifest_map,
    receipt_map,
    receipt_value,
    validate_new_metadata,
)
from artifactstore.naming import check_name, check_version
from artifactstore.records import FileFacts, Package, PushResult, compare

LISTED_BLOBS = 20_000
"""Most blobs a publish lists in its finalize event alone: applying that event holds a map of
its receipts (~0.5 KB a blob); a larger publish appends a file event per file, in pages, so a
100,000-file push stays under 100 MiB."""


def encode_manifest(
    connection: Connection, package: Package, finalized_at: str, out: BinaryIO
) -> SpooledPayload:
    """Write the canonical CBOR manifest of an open package, streamed from its view rows, to
    out (a temporary file, see `spool`); the manifest as a payload the log copies in pieces."""
    files, _, blobs = registry.package_totals(connection, package.id)
    entries = cbor.Array(files, map(file_value, _entries(connection, package.id)), presorted=True)
    receipts = cbor.Array(
        blobs, map(receipt_value, _receipts(connection, package.id)), presorted=True
    )
    return _encode(connection, package, finalized_at, entries, receipts, out)


def encode_staged_manifest(
    connection: Connection, package: Package, session: str, finalized_at: str, out: BinaryIO
) -> SpooledPayload:
    """encode_manifest of a package with no file rows yet, its files the upload session's
    staged ones (which `views` then inserts from the manifest)."""
    files, blobs, _ = uploads.staged_counts(connection, session)
    entries = cbor.Array(files, _staged_entries(connection, session), presorted=True)
    receipts = cbor.Array(
        blobs,
        (receipt_map(*receipt) for receipt in uploads.staged_receipts(connection, session)),
        presorted=True,
    )
    return _encode(connection, package, finalized_at, entries, receipts, out)


def _encode(
    connection: Connection,
    package: Package,
    finalized_at: str,
    files: cbor.Array,
    receipts: cbor.Array,
    out: BinaryIO,
) -> SpooledPayload:
    keep_days = registry.retention_class(connection, package.retention_class).keep_days
    value = manifest_map(
        PackageInfo(
            id=package.id,
            name=package.name,
            version=package.version,
            created_at=package.created_at,
            finalized_at=finalized_at,
            metadata=package.metadata,
        ),
        files,
        receipts,
        RetentionSummary(package.retention_class, retention.expires_at(finalized_at, keep_days)),
        Provenance(producer=f"artifactstore {__version__}"),
    )
    out.seek(0)
    out.truncate()
    cbor.encode_to(value, out)
    out.flush()
    return SpooledPayload(out, out.tell())


def _staged_entries(connection: Connection, session: str) -> Iterator[dict[str, object]]:
    previous = b""
    for page in uploads.staged_files(connection, session):
        for f in page:
            key = f.path.encode()
            if key <= previous:
                raise ManifestError(f"staged files out of order from the database at {f.path!r}")
            previous = key
            yield file_map(f.path, f.size, f.blake3, f.sha256, f.executable)


@contextmanager
def spool() -> Iterator[BinaryIO]:
    """A temporary file (in TMPDIR, gone when closed) to encode a manifest into.

    A 100,000-file manifest is ~43 MB; built in memory it was most of a push's peak. An
    OSError while it is used (TMPDIR missing or full) is a DatabaseError naming TMPDIR.
    """
    try:
        with tempfile.TemporaryFile() as out:
            yield out
    except OSError as exc:
        raise DatabaseError(
            f"cannot write the manifest to a temporary file in {tempfile.gettempdir()}: "
            f"{exc.strerror or exc}; set TMPDIR to a writable directory with room"
        ) from exc


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


def opening_events(
    db: Database,
    package_id: str,
    name: str,
    version: str,
    retention_class: str,
    metadata: Metadata,
    actor: str | None,
    now: str | None = None,
) -> list[NewEvent]:
    """The v1.package.created and v1.retention.assigned events that open a package."""
    created = cbor.encode({"name": name, "version": version, "metadata": dict(metadata)})
    assigned = cbor.encode({"class": retention_class})
    return [
        db.event(PACKAGE_CREATED, package_id, created, actor, now),
        db.event(RETENTION_ASSIGNED, package_id, assigned, actor, now),
    ]


def publish(
    db: Database,
    session: str,
    name: str,
    version: str,
    retention_class: str,
    metadata: Mapping[str, object] | None,
    actor: str | None,
) -> PushResult:
    """Publish an upload session's staged files as (name, version) in one transaction under
    the log lock (see ArtifactStore.publish); the session ends in the same transaction."""
    check_name(name)
    check_version(version)
    checked = validate_new_metadata(metadata or {})
    with db.write() as connection:
        # A swept session has no staged files left: publishing it would make an empty package.
        uploads.require_session(connection, session)
        registry.retention_class(connection, retention_class)
        existing = registry.find_package(connection, name, version)
        if existing is not None:
            staged = (
                (f.path, f.size, f.blake3, f.sha256, f.executable)
                for page in uploads.staged_files(connection, session)
                for f in page
            )
            result = confirm(connection, existing, staged, retention_class, checked)
        else:
            result = _create(
                db, connection, session, name, version, retention_class, checked, actor
            )
        uploads.end_session(connection, session)
        return result


def confirm(
    connection: Connection,
    package: Package,
    files: Iterable[FileFacts],
    retention_class: str,
    metadata: Metadata,
) -> PushResult:
    """Succeed (created=False) if the finalized package holds exactly these files, class and
    metadata; else ConflictError naming the first difference (PackageStateError if open or
    ended)."""
    trust.require_not_ended(package)
    if not package.is_finalized:
        raise PackageStateError(
            f"package {package} is open for assembly; finalize or abandon it "
            "(a push never adds to an open package)"
        )
    event = trust.finalize_event(connection, package, None)
    found = compare(event.payload, package.retention_class, files, retention_class, metadata)
    if found.difference is not None:
        raise ConflictError(
            f"package {package} already exists with other content: {found.difference}; "
            "versions are immutable, push a new version"
        )
    return PushResult(
        name=package.name,
        version=package.version,
        digest=manifest_digest_of_bytes(event.payload),
        created=False,
        sequence=event.sequence,
        chain_digest=event.chain_digest,
        files=found.files,
        bytes=found.bytes,
    )


def _create(
    db: Database,
    connection: Connection,
    session: str,
    name: str,
    version: str,
    retention_class: str,
    metadata: Metadata,
    actor: str | None,
) -> PushResult:
    package_id = str(uuid.uuid4())
    now = format_timestamp(db.now())
    db.record(
        connection,
        opening_events(db, package_id, name, version, retention_class, metadata, actor, now),
    )
    # The manifest lists the files, and its finalize event gives the package its file rows
    # (`events.listed`): no event per file. A blob staged on two backends, which the manifest
    # cannot tie to its files, or more blobs than LISTED_BLOBS take a v1.file.ingested event
    # per file first.
    _, pairs, blobs = uploads.staged_counts(connection, session)
    listed = pairs == blobs <= LISTED_BLOBS
    if not listed:
        for page in uploads.staged_files(connection, session):
            events = [
                db.event(FILE_INGESTED, package_id, staged_payload(f), actor, now) for f in page
            ]
            db.record(connection, events)
    with spool() as out:
        package = registry.get_package(connection, package_id)
        if listed:
            manifest = encode_staged_manifest(connection, package, session, now, out)
        else:
            manifest = encode_manifest(connection, package, now, out)
        [finalized] = db.record(
            connection, [db.event(PACKAGE_FINALIZED, package_id, manifest, actor, now)]
        )
        digest = manifest_digest_of_chunks(manifest.chunks())
    files, total, _ = registry.package_totals(connection, package_id)
    return PushResult(
        name=name,
        version=version,
        digest=digest,
        created=True,
        sequence=finalized.sequence,
        chain_digest=finalized.chain_digest,
        files=files,
        bytes=total,
    )
