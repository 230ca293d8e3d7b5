"""ArtifactStore: the library surface, and the one place that orders blob I/O against commits.

Every mutation follows the same order, so a crash leaves at worst an unreferenced blob, never
a row naming a missing one:

1. Hash and write blobs through the data plane, outside any database transaction, and make
   them durable: one at a time (ingest_file) or one sync for the whole batch
   (ingest_directory). No half-written blob is ever visible under a content address.
2. In one short write transaction, take the log lock first (`events.log.lock_head`), then
   check the package state, append the events and apply them to the views (`events.views`),
   then commit. The writer also checks the package rules against the log itself.

A push (`push.py`) stores and syncs its blobs under an upload session first (`uploads`), then
publishes the whole version in one such transaction (`publish`): it creates the version, finds
the identical version, or conflicts; it never joins an open package.

Reads of a finalized package go through its manifest, taken from the finalize event in the log
and checked against the digest the views name, never through the file view rows. Reads use
plain transactions and never take the write lock. One store may be shared by threads, and a
forked child gets fresh database connections (`_forget_connections_after_fork`).
"""

from __future__ import annotations

import getpass
import io
import os
import socket
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from sqlalchemy import Connection, Engine

from artifactstore import (
    audit,
    database,
    migration,
    registry,
    retention,
    schema,
    tree,
    trust,
    uploads,
)
from artifactstore.config import Settings, load_settings, redact_url
from artifactstore.dataplane.factory import dataplane_from_settings
from artifactstore.dataplane.spi import DataPlane, IngestResult
from artifactstore.errors import (
    AlreadyExistsError,
    ArtifactStoreError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    PackageFileNotFoundError,
    PackageFinalizedError,
    PackageStateError,
    StorageError,
)
from artifactstore.events import log, views
from artifactstore.events.model import (
    FILE_INGESTED,
    PACKAGE_ABANDONED,
    PACKAGE_CREATED,
    PACKAGE_FINALIZED,
    RETENTION_ASSIGNED,
    Event,
    NewEvent,
)
from artifactstore.manifest import codec, projection
from artifactstore.manifest.model import Manifest, Metadata, format_timestamp, validate_metadata
from artifactstore.naming import check_name, check_path, check_version
from artifactstore.publish import FileFacts, PushResult, compare, encode_manifest
from artifactstore.pull import pull as pull_package
from artifactstore.push import push as push_directory
from artifactstore.registry import Package, PackageRef, RetentionClass, StoredFile
from artifactstore.storage.spi import BackendHealth
from artifactstore.verifying import VerifyingReader

Source = bytes | str | os.PathLike[str] | BinaryIO | Iterable[bytes]
"""What ingest_file accepts: bytes, a filesystem path, a binary file object, or chunks."""

COMMIT_BATCH = 2000
"""Files per transaction when a directory is ingested."""

_READ_WHOLE_LIMIT = 1 << 20
"""Files up to this size are read into memory whole when a directory is ingested."""

ManifestFormat = str
_FORMATS = ("cbor", "jcs")


def _utc_now() -> datetime:
    return datetime.now(UTC)


_open_stores: weakref.WeakSet[ArtifactStore] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    # A child must not use the parent's database connections (SQLAlchemy's advice for
    # multiprocessing): drop them from the pool without closing the parent's sockets.
    for store in list(_open_stores):
        store.engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_connections_after_fork)


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


class ArtifactStore:
    """A store of immutable, named, versioned packages over one database and one data plane."""

    def __init__(
        self,
        engine: Engine,
        dataplane: DataPlane,
        *,
        redacted_url: str = "",
        actor: str | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._engine = engine
        self._writer = schema.writer(engine)
        self._dataplane = dataplane
        self._url = redacted_url or redact_url(engine.url.render_as_string(hide_password=True))
        self._actor = actor or _default_actor()
        self._now = now
        _open_stores.add(self)

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        database_url: str | None = None,
        storage_root: str | os.PathLike[str] | None = None,
        *,
        actor: str | None = None,
    ) -> ArtifactStore:
        """Open a store: explicit arguments, else ARTIFACTSTORE_* variables, else ./.artifactstore/.

        A new SQLite database is created and migrated; any other database must already be at
        this code's schema revision (SchemaVersionError says to run 'artifactstore migrate').
        """
        root = None if storage_root is None else Path(storage_root)
        return cls.from_settings(load_settings(os.environ, database_url, root), actor=actor)

    @classmethod
    def from_settings(cls, settings: Settings, *, actor: str | None = None) -> ArtifactStore:
        """Open a store described by Settings (see open())."""
        engine = schema.make_engine(settings.database_url)
        redacted = settings.redacted_database_url
        try:
            with database.errors(redacted, "open"):
                created = migration.prepare(engine, redacted)
        except ArtifactStoreError:
            engine.dispose()
            raise
        if created and settings.storage_root is not None:
            # A new embedded store gets its blob folder now, so it is healthy from the start.
            # An existing store's missing root stays missing (and unhealthy): it may be an
            # unmounted volume, and blobs written in its place would be lost.
            _create_storage_root(settings.storage_root)
        try:
            dataplane = dataplane_from_settings(settings)
        except ArtifactStoreError:
            engine.dispose()
            raise
        return cls(engine, dataplane, redacted_url=redacted, actor=actor)

    def close(self) -> None:
        """Close the data plane (pending blob writes are written) and the database connections."""
        try:
            self._dataplane.close()
        finally:
            self._engine.dispose()

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
        return self._engine

    @property
    def dataplane(self) -> DataPlane:
        """The data plane holding the blobs."""
        return self._dataplane

    @property
    def redacted_url(self) -> str:
        """The database URL with its password hidden."""
        return self._url

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with database.errors(self._url), self._engine.connect() as connection:
            yield connection

    @contextmanager
    def _write(self, lock: bool = True) -> Iterator[Connection]:
        """A write transaction; with lock (the default) it holds the log lock from the start."""
        with database.errors(self._url), self._writer.begin() as connection:
            if lock:
                log.lock_head(connection)
            yield connection

    def _record(self, connection: Connection, new_events: list[NewEvent]) -> list[Event]:
        sealed = log.write(connection, new_events)
        views.apply(connection, sealed)
        return sealed

    def _event(
        self,
        event_type: str,
        package_id: str | None,
        payload: bytes,
        actor: str | None,
        occurred_at: str | None = None,
    ) -> NewEvent:
        return NewEvent(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            occurred_at=occurred_at or format_timestamp(self._now()),
            actor=actor or self._actor,
            package_id=package_id,
            payload=payload,
        )

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
        check_name(name)
        check_version(version)
        checked = dict(validate_metadata(metadata or {}))
        package_id = str(uuid.uuid4())
        created = self._event(
            PACKAGE_CREATED,
            package_id,
            codec.encode_value({"name": name, "version": version, "metadata": checked}),
            actor,
        )
        assigned = self._event(
            RETENTION_ASSIGNED, package_id, codec.encode_value({"class": retention_class}), actor
        )
        try:
            with self._write() as connection:
                registry.retention_class(connection, retention_class)
                if registry.find_package(connection, name, version) is not None:
                    raise AlreadyExistsError(f"package {name}:{version} already exists")
                self._record(connection, [created, assigned])
                return registry.get_package(connection, package_id)
        except ConflictError as exc:
            if isinstance(exc, AlreadyExistsError):
                raise
            raise AlreadyExistsError(f"package {name}:{version} already exists") from exc

    def get_package(self, name: str, version: str) -> Package:
        """Look a package up by name and version; PackageNotFoundError if there is none."""
        with self._read() as connection:
            return registry.get_package(connection, (name, version))

    def find_package(self, name: str, version: str) -> Package | None:
        """The package (name, version), or None if there is none."""
        with self._read() as connection:
            return registry.find_package(connection, check_name(name), check_version(version))

    def package(self, ref: PackageRef) -> Package:
        """Resolve a package object, id or (name, version) pair to its current state."""
        with self._read() as connection:
            return registry.get_package(connection, ref)

    def list_packages(self, name: str | None = None) -> list[Package]:
        """Every package, or every version of one name, sorted by name and version."""
        with self._read() as connection:
            return registry.list_packages(connection, name)

    def list_files(self, ref: PackageRef) -> list[StoredFile]:
        """The files of a package, sorted by path (a finalized one's from its manifest)."""
        with self._read() as connection:
            package = registry.get_package(connection, ref)
            if not package.is_finalized:
                return registry.package_files(connection, package.id)
            return trust.manifest_files(self._manifest(connection, package, trust.pinned(ref)))

    def retention_class(self, name: str) -> RetentionClass:
        """One retention class; InvalidRetentionClassError lists the known ones if it is unknown."""
        with self._read() as connection:
            return registry.retention_class(connection, name)

    def abandon_package(self, ref: PackageRef, *, actor: str | None = None) -> None:
        """Drop an open package (for example one a killed job left behind); its blobs stay."""
        with self._write() as connection:
            package = registry.get_package(connection, ref)
            _require_open(package)
            self._record(
                connection,
                [self._event(PACKAGE_ABANDONED, package.id, codec.encode_value({}), actor)],
            )

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
        """Stream one file into an open package; a path already there needs replace=True."""
        check_path(path)
        self._check_can_add(ref, [path], replace)
        result, inferred = self._ingest_source(source)
        is_executable = inferred if executable is None else executable
        [stored] = self._commit_files(ref, [(path, result, is_executable)], replace, actor)
        return stored

    def ingest_directory(
        self,
        ref: PackageRef,
        directory: str | os.PathLike[str],
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
        *,
        actor: str | None = None,
    ) -> list[StoredFile]:
        """Add every regular file under directory to an open package (sorted; symlinks refused).

        Paths are all checked before any blob is written. Files are committed in batches of
        COMMIT_BATCH, which keeps memory flat however many files there are; if the process
        dies between batches the package stays open with the batches before.
        """
        found = tree.scan(directory)
        self._check_can_add(ref, [f.path for f in found], replace)
        stored: list[StoredFile] = []
        for ingested in self._store_blobs(found, progress):
            stored.extend(self._commit_files(ref, ingested, replace, actor))
        return stored

    def stage_directory(
        self,
        session: str,
        found: list[tree.TreeFile],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Store the blobs of scanned files and stage the files in an upload session."""
        for ingested in self._store_blobs(found, progress):
            staged = [_staged(path, result, executable) for path, result, executable in ingested]
            with self._write(lock=False) as connection:
                uploads.stage(connection, session, staged, self._now())

    def _store_blobs(
        self, found: list[tree.TreeFile], progress: Callable[[int], None] | None
    ) -> Iterator[list[tuple[str, IngestResult, bool]]]:
        """Hash and store the files' blobs, COMMIT_BATCH at a time, each batch durable."""
        large = [item.size for item in found if item.size > _READ_WHOLE_LIMIT]
        with self._read() as connection:
            seen_sizes = registry.stored_sizes(connection, large) if large else set()
        for start in range(0, len(found), COMMIT_BATCH):
            ingested = [
                self._ingest_tree_file(item, seen_sizes, progress)
                for item in found[start : start + COMMIT_BATCH]
            ]
            # One sync pass for the batch instead of an fsync per file; blobs that were
            # already present are synced too, in case another process wrote them non-durably.
            self._dataplane.sync(result.content_address for _, result, _ in ingested)
            yield ingested

    def _ingest_tree_file(
        self,
        item: tree.TreeFile,
        seen_sizes: set[int],
        progress: Callable[[int], None] | None,
    ) -> tuple[str, IngestResult, bool]:
        with tree.open_file(item.source) as handle:
            # Small files are read whole so the data plane can skip writing a known blob; a
            # large file the size of a stored blob is probably that blob (an unchanged
            # re-push), so it is hashed before anything is written.
            source = handle.read() if item.size <= _READ_WHOLE_LIMIT else handle
            result = self._dataplane.ingest_stream(
                source, durable=False, probe=item.size in seen_sizes
            )
        if progress is not None:
            progress(result.size)
        return item.path, result, item.executable

    def _check_can_add(self, ref: PackageRef, paths: list[str], replace: bool) -> None:
        with self._read() as connection:
            package = registry.get_package(connection, ref)
            _require_open(package)
            if not replace:
                _require_new_paths(package, paths, registry.package_paths(connection, package.id))

    def _ingest_source(self, source: Source) -> tuple[IngestResult, bool]:
        if isinstance(source, (str, os.PathLike)):
            with tree.open_file(Path(source)) as handle:
                return self._dataplane.ingest_stream(handle), tree.is_executable(
                    os.fstat(handle.fileno()).st_mode
                )
        if isinstance(source, (bytes, bytearray, memoryview)):
            return self._dataplane.ingest_stream(bytes(source)), False
        return self._dataplane.ingest_stream(source), False

    def _commit_files(
        self,
        ref: PackageRef,
        ingested: list[tuple[str, IngestResult, bool]],
        replace: bool,
        actor: str | None,
    ) -> list[StoredFile]:
        with self._write() as connection:
            package = registry.get_package(connection, ref)
            _require_open(package)
            if not replace:
                paths = [path for path, _, _ in ingested]
                _require_new_paths(package, paths, registry.package_paths(connection, package.id))
            # One commit, one moment: the batch's events share their timestamp.
            now = format_timestamp(self._now())
            new_events = [
                self._event(FILE_INGESTED, package.id, _staged_payload(_staged(*item)), actor, now)
                for item in ingested
            ]
            self._record(connection, new_events)
        return [
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

    # -- finalize and push -----------------------------------------------------------------

    def finalize_package(self, ref: PackageRef, *, actor: str | None = None) -> Manifest:
        """Make a package immutable and return its manifest; finalizing again returns the same."""
        with self._write() as connection:
            package = registry.get_package(connection, ref)
            if not package.is_finalized:
                payload = encode_manifest(connection, package, format_timestamp(self._now()))
                finalized = self._event(PACKAGE_FINALIZED, package.id, payload, actor)
                self._record(connection, [finalized])
                return codec.decode(payload)
            return codec.decode(self._manifest(connection, package))

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
    ) -> PushResult:
        """Store a directory's files and publish them as (name, version) in one step.

        Pushing exactly the same files, class and metadata again succeeds with the same digest
        and appends nothing; anything different raises ConflictError naming the first
        difference, with nothing changed. Never joins an open package (see push.py).
        """
        return push_directory(
            self, name, version, directory, retention_class, metadata, progress, actor
        )

    @contextmanager
    def upload_session(self, *, actor: str | None = None) -> Iterator[str]:
        """An upload session (its id) that holds the blobs staged in it until it ends."""
        session = str(uuid.uuid4())
        with self._write(lock=False) as connection:
            uploads.open_session(connection, session, actor or self._actor, self._now())
        try:
            yield session
        finally:
            with self._write(lock=False) as connection:
                uploads.end_session(connection, session)

    def publish(
        self,
        session: str,
        name: str,
        version: str,
        retention_class: str = retention.DEFAULT_CLASS,
        metadata: Mapping[str, object] | None = None,
        *,
        actor: str | None = None,
    ) -> PushResult:
        """Publish the files staged in an upload session as (name, version), atomically.

        In one transaction under the log lock: create and finalize the version (created=True),
        or confirm that the version already holds exactly this (created=False), or raise
        ConflictError (a difference) or PackageStateError (the version is open for assembly).
        The session ends in the same transaction.
        """
        check_name(name)
        check_version(version)
        checked = validate_metadata(metadata or {})
        with self._write() as connection:
            registry.retention_class(connection, retention_class)
            existing = registry.find_package(connection, name, version)
            if existing is not None:
                staged = (
                    (f.path, f.size, f.blake3, f.sha256, f.executable)
                    for page in uploads.staged_files(connection, session)
                    for f in page
                )
                result = self._confirm(connection, existing, staged, retention_class, checked)
            else:
                result = self._create_from_session(
                    connection, session, name, version, retention_class, dict(checked), actor
                )
            uploads.end_session(connection, session)
            return result

    def confirm_push(
        self,
        ref: PackageRef,
        files: Iterable[FileFacts],
        retention_class: str = retention.DEFAULT_CLASS,
        metadata: Mapping[str, object] | None = None,
    ) -> PushResult:
        """Succeed (created=False) if the version holds exactly these files, class and metadata.

        Otherwise raise ConflictError naming the first difference, or PackageStateError if the
        version is open for assembly.
        """
        checked = validate_metadata(metadata or {})
        with self._read() as connection:
            package = registry.get_package(connection, ref)
            return self._confirm(connection, package, files, retention_class, checked)

    def _confirm(
        self,
        connection: Connection,
        package: Package,
        files: Iterable[FileFacts],
        retention_class: str,
        metadata: Metadata,
    ) -> PushResult:
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
            digest=codec.manifest_digest_of_bytes(event.payload),
            created=False,
            sequence=event.sequence,
            chain_digest=event.chain_digest,
            files=found.files,
            bytes=found.bytes,
        )

    def _create_from_session(
        self,
        connection: Connection,
        session: str,
        name: str,
        version: str,
        retention_class: str,
        metadata: dict[str, object],
        actor: str | None,
    ) -> PushResult:
        package_id = str(uuid.uuid4())
        now = format_timestamp(self._now())
        created = self._event(
            PACKAGE_CREATED,
            package_id,
            codec.encode_value({"name": name, "version": version, "metadata": metadata}),
            actor,
            now,
        )
        assigned = self._event(
            RETENTION_ASSIGNED,
            package_id,
            codec.encode_value({"class": retention_class}),
            actor,
            now,
        )
        self._record(connection, [created, assigned])
        for page in uploads.staged_files(connection, session):
            self._record(
                connection,
                [
                    self._event(FILE_INGESTED, package_id, _staged_payload(f), actor, now)
                    for f in page
                ],
            )
        package = registry.get_package(connection, package_id)
        payload = encode_manifest(connection, package, now)
        [finalized] = self._record(
            connection, [self._event(PACKAGE_FINALIZED, package_id, payload, actor, now)]
        )
        files, total, _ = registry.package_totals(connection, package_id)
        return PushResult(
            name=name,
            version=version,
            digest=codec.manifest_digest_of_bytes(payload),
            created=True,
            sequence=finalized.sequence,
            chain_digest=finalized.chain_digest,
            files=files,
            bytes=total,
        )

    # -- reading ---------------------------------------------------------------------------

    def _manifest(
        self, connection: Connection, package: Package, expect_digest: str | None = None
    ) -> bytes:
        """The canonical CBOR manifest of a finalized package, as its finalize event holds it."""
        return trust.finalize_event(connection, package, expect_digest).payload

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
        with self._read() as connection:
            package = registry.get_package(connection, ref)
            data = self._manifest(connection, package, trust.expected(ref, expect_digest))
        return data if format == "cbor" else projection.jcs(codec.decode(data))

    def get_file(self, ref: PackageRef, path: str, expect_digest: str | None = None) -> BinaryIO:
        """A streaming reader of one file of a finalized package, checked against its digest.

        The reader raises IntegrityError at the end if the bytes are not the recorded ones.
        """
        files = self.finalized_files(ref, expect_digest)
        found = [f for f in files if f.path == path]
        if not found:
            raise PackageFileNotFoundError(f"package {trust.label(ref)} has no file {path!r}")
        return self._open_verified(trust.label(ref), found[0])

    def finalized_files(
        self, ref: PackageRef, expect_digest: str | None = None
    ) -> list[StoredFile]:
        """The files of a finalized package from its manifest; PackageStateError if it is open."""
        with self._read() as connection:
            package = registry.get_package(connection, ref)
            data = self._manifest(connection, package, trust.expected(ref, expect_digest))
        return trust.manifest_files(data)

    def _open_verified(self, label: str, stored: StoredFile) -> BinaryIO:
        stream = self._dataplane.serve_object(stored.content_address)
        return io.BufferedReader(
            VerifyingReader(stream, stored.content_address, stored.size, f"{label} {stored.path}")
        )

    def pull(
        self,
        ref: PackageRef,
        destination: str | os.PathLike[str],
        progress: Callable[[int], None] | None = None,
        expect_digest: str | None = None,
    ) -> list[StoredFile]:
        """Write every file of a finalized package under destination, each verified."""
        files = self.finalized_files(ref, expect_digest)
        return pull_package(self, trust.label(ref), files, Path(destination), progress)

    def verify_package(
        self,
        ref: PackageRef,
        progress: Callable[[int], None] | None = None,
        expect_digest: str | None = None,
    ) -> audit.VerifyReport:
        """Re-read and re-hash every blob of a finalized package; the report lists each problem.

        An open package is a problem ("not finalized"), and so is a manifest whose digest is
        not the expected one or not the one the log fixed.
        """
        with self._read() as connection:
            package = registry.get_package(connection, ref)
        return self._verify(package, progress, trust.expected(ref, expect_digest), open_is_ok=False)

    def _verify(
        self,
        package: Package,
        progress: Callable[[int], None] | None,
        expect_digest: str | None,
        open_is_ok: bool,
    ) -> audit.VerifyReport:
        problems: list[audit.Problem] = []
        with self._read() as connection:
            if package.is_finalized:
                try:
                    files = trust.manifest_files(self._manifest(connection, package, expect_digest))
                except IntegrityError as exc:
                    problems.append(audit.Problem(str(package), None, str(exc)))
                    files = registry.package_files(connection, package.id)
            else:
                if not open_is_ok:
                    problems.append(audit.Problem(str(package), None, "not finalized (open)"))
                files = registry.package_files(connection, package.id)
        count, total, found = audit.check_files(self._dataplane, str(package), files, progress)
        return audit.VerifyReport(1, count, total, tuple(problems + found))

    def verify_all(
        self,
        progress: Callable[[int], None] | None = None,
        checkpoints: Mapping[int, str] | None = None,
    ) -> audit.VerifyReport:
        """Verify every package's blobs, the log (chain, rules, checkpoints) and the views.

        An open package under assembly is not a problem. checkpoints maps sequences to the
        chain digests (hex) the caller kept; a log rewritten before one of them fails.
        """
        packages = files = total = 0
        problems: list[audit.Problem] = []
        for package in self.list_packages():
            report = self._verify(package, progress, None, open_is_ok=True)
            packages += 1
            files += report.files
            total += report.bytes
            problems.extend(report.problems)
        chain = self.verify_chain(checkpoints)
        problems.extend(audit.chain_problems(chain))
        if chain.ok:
            # Only a sound log can say what the views should be.
            replayed = self.replay(check=True)
            problems.extend(audit.Problem("views", None, d) for d in replayed.differences)
        return audit.VerifyReport(packages, files, total, tuple(problems), chain)

    # -- the log ---------------------------------------------------------------------------

    def tail_events(
        self, since: int = 0, follow: bool = False, timeout: float | None = None
    ) -> Iterator[Event]:
        """Events after sequence `since`; with follow, wait for new ones until timeout."""
        # A generator: the boundary has to be inside it, around each step of the tail.
        with database.errors(self._url):
            yield from log.tail(self._engine, since, follow, timeout)

    def checkpoint(self) -> log.Head:
        """The log head: the last sequence and its chain digest (hex)."""
        with self._read() as connection:
            return log.read_head(connection)

    def verify_chain(self, checkpoints: Mapping[int, str] | None = None) -> log.ChainReport:
        """Check the event log: gapless, hash-chained, package rules kept, checkpoints held."""
        with self._read() as connection:
            return log.verify_chain(connection, checkpoints)

    def replay(self, check: bool = False, force: bool = False) -> views.ReplayReport:
        """Rebuild every view from the log; with check, compare only and change nothing.

        Refuses (LogIntegrityError, nothing changed) a log with a gap, a broken chain or an
        event the package rules forbid, unless force is set. Holds the log lock throughout.
        """
        with self._write() as connection:
            report = views.replay(connection, check, force)
            if check:
                connection.rollback()
            return report

    def state_digest(self) -> str:
        """BLAKE3 over a canonical dump of every view row."""
        with self._read() as connection:
            return views.state_digest(connection)

    # -- health ----------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The schema revision recorded in the database."""
        with self._read() as connection:
            return migration.current_revision(connection)

    def storage_health(self) -> BackendHealth:
        """Whether the blob backend is reachable, and its free space."""
        return self._dataplane.health()


def _create_storage_root(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the blob folder {root}: {exc.strerror}") from exc


def _require_open(package: Package) -> None:
    if package.is_finalized:
        raise PackageFinalizedError(f"package {package} is finalized and cannot change")


def _require_new_paths(package: Package, paths: list[str], existing: set[str]) -> None:
    seen: set[str] = set()
    for path in paths:
        if path in existing or path in seen:
            raise AlreadyExistsError(
                f"package {package} already has {path!r}; pass replace=True to overwrite it"
            )
        seen.add(path)


def _staged(path: str, result: IngestResult, executable: bool) -> uploads.StagedFile:
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


def _staged_payload(staged: uploads.StagedFile) -> bytes:
    return codec.encode_value(
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
