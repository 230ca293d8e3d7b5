"""ArtifactStore: the library surface, a thin face over the recipes that do the work.

Every mutation follows the same order, so a crash leaves at worst an unreferenced blob, never
a row naming a missing one: blobs are hashed, written and made durable through the data plane
outside any transaction (`ingest`); then one short write transaction takes the log lock first,
checks the package state, appends the events and applies them to the views
(`database.Database.write` and `record`). A push (`push`) stores its blobs under an upload
session (`uploads`) and publishes the whole version in one such transaction (`publish`).

Reads of a finalized package go through its manifest, taken from the finalize event in the log
and checked against the digest the views name (`trust`). Reads never take the write lock. One
store may be shared by threads, and a forked child gets fresh database connections
(`database.Database`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from sqlalchemy import Engine

from artifactstore import (
    assembly,
    audit,
    database,
    ingest,
    lifecycle,
    maintenance,
    migration,
    pull,
    push,
    records,
    registry,
    retention,
    schema,
    tokens,
    tree,
    trust,
)
from artifactstore.config import Settings, load_settings, local_root, redact_url
from artifactstore.database import Database
from artifactstore.dataplane.factory import dataplane_from_settings
from artifactstore.dataplane.spi import DataPlane
from artifactstore.errors import (
    ArtifactStoreError,
    InvalidInputError,
    PackageFileNotFoundError,
)
from artifactstore.events import log
from artifactstore.events import replay as rebuild
from artifactstore.events.model import Event
from artifactstore.gc import DEFAULT_GRACE, GcReport, collect
from artifactstore.maintenance import MaintenanceReport
from artifactstore.manifest import codec, projection
from artifactstore.manifest.model import Manifest
from artifactstore.oci.packages import OciPackages
from artifactstore.records import Package, PackageRef, PushResult, Source, StoredFile
from artifactstore.registry import RetentionClass
from artifactstore.selection import select_files
from artifactstore.storage.spi import BackendHealth
from artifactstore.tokens import Token
from artifactstore.uploaded import UploadedBlobs
from artifactstore.verifying import VerifyingReader

ManifestFormat = str
_FORMATS = ("cbor", "jcs")


class ArtifactStore:
    """A store of immutable, named, versioned packages over one database and one data plane."""

    def __init__(
        self,
        engine: Engine,
        dataplane: DataPlane,
        *,
        redacted_url: str = "",
        actor: str | None = None,
        now: Callable[[], datetime] = database.utc_now,
        blob_root: Path | None = None,
    ) -> None:
        url = redacted_url or redact_url(engine.url.render_as_string(hide_password=True))
        self._db = Database(engine, url, actor or database.default_actor(), now)
        self._dataplane = dataplane
        self._own_files = push.own_files(engine.url, blob_root)
        self._blob_root = blob_root

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        database_url: str | None = None,
        storage_root: str | os.PathLike[str] | None = None,
        *,
        storage_url: str | None = None,
        actor: str | None = None,
        create: bool = True,
    ) -> ArtifactStore:
        """Open a store: explicit arguments, else ARTIFACTSTORE_* variables, else ./.artifactstore/.

        Blobs under storage_root, or where storage_url says (file:///path, s3://bucket/prefix).
        A missing SQLite database is created and migrated, or with create=False raises
        StoreNotFoundError; any other must be at this code's schema revision
        (SchemaVersionError says to run 'artifactstore migrate').
        """
        root = None if storage_root is None else Path(storage_root)
        settings = load_settings(os.environ, database_url, root, storage_url)
        return cls.from_settings(settings, actor=actor, create=create)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, actor: str | None = None, create: bool = True
    ) -> ArtifactStore:
        """Open a store described by Settings (see open())."""
        engine = schema.make_engine(settings.database_url)
        redacted = settings.redacted_database_url
        try:
            with database.errors(redacted, "open"):
                created = migration.prepare(engine, redacted, create)
            # A new store gets its blob folder now, so it is healthy from the start. An
            # existing store's missing folder stays missing (and unhealthy): it may be an
            # unmounted volume, and blobs written in its place would be lost.
            dataplane = dataplane_from_settings(settings, create=created)
        except ArtifactStoreError:
            engine.dispose()
            raise
        root = local_root(settings.storage_url)
        return cls(engine, dataplane, redacted_url=redacted, actor=actor, blob_root=root)

    def close(self) -> None:
        """Close the data plane (pending blob writes are written) and the database connections."""
        try:
            self._dataplane.close()
        finally:
            self._db.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the registry database."""
        return self._db.engine

    @property
    def dataplane(self) -> DataPlane:
        """The data plane holding the blobs."""
        return self._dataplane

    @property
    def uploads(self) -> UploadedBlobs:
        """Blobs received over the network, and packages published or assembled from them."""
        return UploadedBlobs(self._db, self._dataplane)

    @property
    def oci(self) -> OciPackages:
        """Packages as OCI image layouts (export, import) and images (/v2): ADR-0013."""
        return OciPackages(self._db, self._dataplane, self._blob_root)

    @property
    def redacted_url(self) -> str:
        """The database URL with its password hidden."""
        return self._db.url

    # -- packages --------------------------------------------------------------------------

    def create_package(
        self,
        name: str,
        version: str,
        retention_class: str = retention.DEFAULT_CLASS,
        metadata: Mapping[str, object] | None = None,
        *,
        actor: str | None = None,
    ) -> Package:
        """Create an open package; AlreadyExistsError if (name, version) is taken.

        Writing calls record `actor` (default: the store's) as who made each event.
        """
        return assembly.create(self._db, name, version, retention_class, metadata, actor)

    def get_package(self, name: str, version: str) -> Package:
        """Look a package up by name and version; PackageNotFoundError if there is none."""
        with self._db.read() as connection:
            return registry.get_package(connection, (name, version))

    def package(self, ref: PackageRef) -> Package:
        """Resolve a package object, id or (name, version) pair to its current state."""
        with self._db.read() as connection:
            return registry.get_package(connection, ref)

    def list_packages(self, name: str | None = None, include_ended: bool = False) -> list[Package]:
        """Every package, or every version of one name, sorted by name and version; the
        tombstones of abandoned, expired and deleted ones only with include_ended."""
        with self._db.read() as connection:
            return registry.list_packages(connection, name, include_ended)

    def list_files(self, ref: PackageRef) -> list[StoredFile]:
        """The files of a package, sorted by path (a finalized one's from its manifest)."""
        with self._db.read() as connection:
            package = registry.get_package(connection, ref)
            trust.require_not_ended(package)
            if not package.is_finalized:
                return registry.package_files(connection, package.id)
            event = trust.finalize_event(connection, package, trust.pinned(ref))
        return trust.manifest_files(event.payload)

    def retention_class(self, name: str) -> RetentionClass:
        """One retention class; InvalidRetentionClassError lists the known ones if it is unknown."""
        with self._db.read() as connection:
            return registry.retention_class(connection, name)

    def abandon_package(self, ref: PackageRef, *, actor: str | None = None) -> None:
        """Drop an open package (for example one a killed job left behind); its blobs stay."""
        assembly.abandon(self._db, ref, actor)

    # -- retention and garbage collection -------------------------------------------------

    def change_retention(
        self, ref: PackageRef, class_name: str, *, actor: str | None = None
    ) -> Package:
        """Give a finalized package another retention class; its expiry is recomputed."""
        return lifecycle.change_retention(self._db, ref, class_name, actor)

    def hold(self, ref: PackageRef, reason: str, *, actor: str | None = None) -> Package:
        """Place a hold on a finalized package: it cannot expire or be deleted until released."""
        return lifecycle.hold(self._db, ref, reason, actor)

    def unhold(self, ref: PackageRef, *, actor: str | None = None) -> Package:
        """Release a package's hold (none is no error)."""
        return lifecycle.unhold(self._db, ref, actor)

    def delete_package(self, ref: PackageRef, *, actor: str | None = None) -> Package:
        """End a finalized package now; PackageHeldError under a hold or class legal-hold."""
        return lifecycle.delete(self._db, ref, actor)

    def expire(
        self, as_of: datetime | None = None, dry_run: bool = False, *, actor: str | None = None
    ) -> Iterator[Package]:
        """End every package whose retention ran out by as_of (default now), yielding each."""
        return lifecycle.expire(self._db, as_of, dry_run, actor)

    def gc(
        self,
        grace: timedelta = DEFAULT_GRACE,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        *,
        actor: str | None = None,
    ) -> GcReport:
        """Remove the blobs no live package or upload session needs, older than grace."""
        return collect(self._db, self._dataplane, grace, dry_run, actor, progress)

    def maintain(
        self, holder: str, interval: timedelta, grace: timedelta = DEFAULT_GRACE
    ) -> MaintenanceReport | None:
        """Run expiry then gc if holder takes the maintenance lease (None: another has it)."""
        return maintenance.run(self._db, self._dataplane, holder, interval, grace)

    # -- ingest ----------------------------------------------------------------------------

    def ingest_file(
        self,
        ref: PackageRef,
        path: str,
        source: Source,
        replace: bool = False,
        executable: bool | None = None,
        *,
        actor: str | None = None,
    ) -> StoredFile:
        """Stream one file into an open package.

        A path already there with the same content (BLAKE3 and executable bit) succeeds and
        appends nothing; with other content it raises AlreadyExistsError, unless replace=True,
        which records the file again whatever it holds (ingest.commit_files).
        """
        args = (self._db, self._dataplane, ref, path, source, replace, executable, actor)
        return ingest.add_file(*args)

    def ingest_directory(
        self,
        ref: PackageRef,
        directory: str | os.PathLike[str],
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
        *,
        actor: str | None = None,
        prefix: str = "",
    ) -> list[StoredFile]:
        """Add every regular file under directory to an open package, as prefix/<its path there>.

        Paths are checked before any blob is written (tree.scan); one already there is kept or
        refused as in ingest_file. Batches of ingest.COMMIT_BATCH files keep memory flat; if
        the process dies (or a batch is refused) the package keeps the batches before.
        """
        found = tree.scan(directory, self._own_files, prefix)
        args = (self._db, self._dataplane, ref, found, replace, actor, progress)
        return ingest.add_directory(*args)

    # -- finalize and push -----------------------------------------------------------------

    def finalize_package(self, ref: PackageRef, *, actor: str | None = None) -> Manifest:
        """Make a package immutable and return its manifest; finalizing again returns the same."""
        return codec.decode(assembly.finalize(self._db, ref, actor)[0])

    def finalize(self, ref: PackageRef, *, actor: str | None = None) -> PushResult:
        """finalize_package, answered as a push is: digest, created, finalize event, size."""
        return assembly.finalize(self._db, ref, actor)[1]

    def push(
        self,
        name: str,
        version: str,
        directory: str | os.PathLike[str],
        retention_class: str = retention.DEFAULT_CLASS,
        metadata: Mapping[str, object] | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        actor: str | None = None,
        on_scanned: Callable[[int, int], None] | None = None,
        allow_empty: bool = False,
    ) -> PushResult:
        """Store a directory's files and publish them as (name, version) in one step.

        Pushing exactly the same files, class and metadata again succeeds with the same digest
        and appends nothing; anything different raises ConflictError naming the first
        difference, with nothing changed. Never joins an open package (see push.py).
        on_scanned hears the count of files and bytes; an empty tree needs allow_empty (push.py).
        """
        return push.push(
            self._db,
            self._dataplane,
            name,
            version,
            directory,
            retention_class,
            metadata,
            progress,
            actor,
            on_scanned,
            self._own_files,
            allow_empty,
        )

    # -- reading ---------------------------------------------------------------------------

    def get_manifest(self, ref: PackageRef, expect_digest: str | None = None) -> Manifest:
        """The manifest of a finalized package; PackageStateError while it is open."""
        return codec.decode(self.get_manifest_bytes(ref, "cbor", expect_digest))

    def get_manifest_bytes(
        self,
        ref: PackageRef,
        format: ManifestFormat = "cbor",
        expect_digest: str | None = None,
    ) -> bytes:
        """The manifest as canonical CBOR ('cbor') or its RFC 8785 JSON projection ('jcs').

        DigestMismatchError if expect_digest (or the digest a 'NAME@blake3:...' ref pins) is
        not the manifest's digest.
        """
        if format not in _FORMATS:
            raise InvalidInputError(f"manifest format {format!r} is not one of {_FORMATS}")
        data = trust.read_manifest(self._db, ref, expect_digest)
        return data if format == "cbor" else projection.jcs(codec.decode(data))

    def get_file(self, ref: PackageRef, path: str, expect_digest: str | None = None) -> BinaryIO:
        """A streaming reader of one file of a finalized package, checked against its digest.

        The reader raises IntegrityError at the end if the bytes are not the recorded ones.
        """
        found = next((f for f in self.finalized_files(ref, expect_digest) if f.path == path), None)
        if found is None:
            raise PackageFileNotFoundError(f"package {trust.label(ref)} has no file {path!r}")
        return self.open_file(found, f"{trust.label(ref)} {path}")

    def open_file(self, entry: StoredFile, label: str) -> BinaryIO:
        """A streaming reader of a file entry of a checked manifest (from finalized_files); it
        raises IntegrityError at the end if the bytes are not the entry's. label names it."""
        stream = self._dataplane.serve_object(entry.content_address)
        return io.BufferedReader(VerifyingReader(stream, entry.content_address, entry.size, label))

    def finalized_files(
        self, ref: PackageRef, expect_digest: str | None = None
    ) -> list[StoredFile]:
        """The files of a finalized package from its manifest; PackageStateError if it is open."""
        return trust.manifest_files(trust.read_manifest(self._db, ref, expect_digest))

    def pull(
        self,
        ref: PackageRef,
        destination: str | os.PathLike[str],
        progress: Callable[[int], None] | None = None,
        expect_digest: str | None = None,
        include: Sequence[str] = (),
    ) -> list[StoredFile]:
        """Write every file of a finalized package (or those include's globs name, see
        selection) under destination, each verified."""
        files = select_files(self.finalized_files(ref, expect_digest), include, trust.label(ref))
        plane, to = self._dataplane, Path(destination)
        # The files pull writes in order are read ahead for it; the others are copied on a
        # thread of their own.
        small = [f for f in files if pull.written_in_order(f)]
        contents = plane.small_blobs([(f.content_address, f.size) for f in small])
        opener = pull.reading_ahead(
            small, contents, lambda f: plane.serve_object(f.content_address)
        )
        return pull.pull(opener, trust.label(ref), files, to, progress)

    def verify_package(
        self,
        ref: PackageRef,
        progress: Callable[[int], None] | None = None,
        expect_digest: str | None = None,
    ) -> records.VerifyReport:
        """Re-read and re-hash every blob of a finalized package; the report lists each problem.

        An open package is a problem ("not finalized"), and so is a manifest whose digest is
        not the expected one or not the one the log fixed.
        """
        with self._db.read() as connection:
            package = registry.get_package(connection, ref)
        expected = trust.expected(ref, expect_digest)
        return audit.verify_package(self._db, self._dataplane, package, progress, expected, False)

    def verify_all(
        self,
        progress: Callable[[int], None] | None = None,
        checkpoints: Mapping[int, str] | None = None,
    ) -> records.VerifyReport:
        """Verify every package's blobs, the log (chain, rules, checkpoints) and the views.

        An open package under assembly is not a problem. checkpoints maps sequences to the
        chain digests (hex) the caller kept; a log rewritten before one of them fails.
        """
        return audit.verify_store(self._db, self._dataplane, progress, checkpoints)

    # -- the log ---------------------------------------------------------------------------

    def tail_events(
        self, since: int = 0, follow: bool = False, timeout: float | None = None
    ) -> Iterator[Event]:
        """Events after sequence `since`; with follow, wait for new ones until timeout."""
        # A generator: the boundary has to be inside it, around each step of the tail.
        with database.errors(self._db.url):
            yield from log.tail(self._db.engine, since, follow, timeout)

    def checkpoint(self) -> log.LogHead:
        """The log head: the last sequence and its chain digest (hex)."""
        with self._db.read() as connection:
            return log.read_head(connection)

    def verify_chain(self, checkpoints: Mapping[int, str] | None = None) -> log.ChainReport:
        """Check the event log: gapless, hash-chained, package rules kept, checkpoints held."""
        with self._db.read() as connection:
            return log.verify_chain(connection, checkpoints)

    def replay(self, check: bool = False, force: bool = False) -> rebuild.ReplayReport:
        """Rebuild every view from the log; with check, compare only and change nothing.

        Refuses (LogIntegrityError, nothing changed) a log with a gap, a broken chain or an
        event the package rules forbid, unless force is set. Holds the log lock throughout.
        """
        return audit.replay(self._db, check, force)

    def state_digest(self) -> str:
        """BLAKE3 over a canonical dump of every view row."""
        with self._db.read() as connection:
            return rebuild.state_digest(connection)

    # -- server tokens (see tokens.py) -----------------------------------------------------

    def create_token(
        self,
        name: str,
        scope: str,
        prefix: str | None = None,
        expires_in: timedelta | None = None,
        *,
        actor: str | None = None,
    ) -> tuple[Token, str]:
        """Create a token; returns it and its secret, which is never shown again."""
        return tokens.create(self._db, name, scope, prefix, expires_in, actor)

    def list_tokens(self) -> list[Token]:
        """Every token by name, revoked and expired ones too; never a secret."""
        return tokens.list_tokens(self._db)

    def revoke_token(self, name: str, *, actor: str | None = None) -> Token:
        """Revoke a token (again: no change); TokenNotFoundError if there is none."""
        return tokens.revoke(self._db, name, actor)

    def authenticate_token(self, secret: str) -> Token | None:
        """The token a secret belongs to, revoked or expired too (see Token.allows), or None."""
        return tokens.authenticate(self._db, secret)

    # -- health ----------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The schema revision recorded in the database."""
        with self._db.read() as connection:
            return migration.current_revision(connection)

    def storage_health(self) -> BackendHealth:
        """Whether the blob backend is reachable, and its free space."""
        return self._dataplane.health()
