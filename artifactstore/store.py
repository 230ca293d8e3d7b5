"""ArtifactStore: the library surface, and the one place that orders blob I/O against commits.

Every mutation follows the same order, so a crash leaves at worst an unreferenced blob, never
a row naming a missing one:

1. Hash and write blobs through the data plane, outside any database transaction, and make
   them durable: one at a time (ingest_file) or one sync for the whole batch
   (ingest_directory). No half-written blob is ever visible under a content address.
2. In one short write transaction, re-check the package state, append the events and apply
   them to the views (`events.views`), then commit.

Reads use plain transactions and never take the write lock.
"""

from __future__ import annotations

import getpass
import io
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import sqlalchemy.exc
from sqlalchemy import Connection, Engine

from artifactstore import audit, migration, registry, retention, schema, tree
from artifactstore._version import __version__
from artifactstore.config import Settings, load_settings, redact_url
from artifactstore.dataplane.inproc import InProcessDataPlane
from artifactstore.dataplane.spi import DataPlane, IngestResult
from artifactstore.errors import (
    AlreadyExistsError,
    ArtifactStoreError,
    ConflictError,
    DatabaseError,
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
from artifactstore.identity import ContentAddress
from artifactstore.manifest import codec, projection
from artifactstore.manifest.model import (
    FileEntry,
    Manifest,
    PackageInfo,
    Provenance,
    ReceiptEntry,
    RetentionSummary,
    format_timestamp,
    validate_metadata,
)
from artifactstore.naming import check_name, check_path, check_version
from artifactstore.pull import pull as pull_package
from artifactstore.push import push as push_directory
from artifactstore.registry import Package, PackageRef, StoredFile
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
            created = migration.prepare(engine, redacted)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise DatabaseError(f"cannot open database {redacted}: {_reason(exc)}") from exc
        except ArtifactStoreError:
            engine.dispose()
            raise
        if created:
            # A new embedded store gets its blob folder now, so it is healthy from the start.
            # An existing store's missing root stays missing (and unhealthy): it may be an
            # unmounted volume, and blobs written in its place would be lost.
            _create_storage_root(settings.storage_root)
        dataplane = InProcessDataPlane.local(settings.storage_root)
        return cls(engine, dataplane, redacted_url=redacted, actor=actor)

    def close(self) -> None:
        """Release database connections."""
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
        try:
            with self._engine.connect() as connection:
                yield connection
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise DatabaseError(f"database {self._url}: {_reason(exc)}") from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._writer.begin() as connection:
                yield connection
        except sqlalchemy.exc.IntegrityError as exc:
            raise ConflictError(
                f"a concurrent change conflicted with this one: {_reason(exc)}"
            ) from exc
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise DatabaseError(f"database {self._url}: {_reason(exc)}") from exc

    def _record(self, connection: Connection, new_events: list[NewEvent]) -> list[Event]:
        sealed = log.write(connection, new_events)
        views.apply(connection, sealed)
        return sealed

    def _event(
        self,
        event_type: str,
        package_id: str | None,
        payload: bytes,
        occurred_at: str | None = None,
    ) -> NewEvent:
        return NewEvent(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            occurred_at=occurred_at or format_timestamp(self._now()),
            actor=self._actor,
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
    ) -> Package:
        """Create an open package; AlreadyExistsError if (name, version) is taken."""
        check_name(name)
        check_version(version)
        checked = dict(validate_metadata(metadata or {}))
        package_id = str(uuid.uuid4())
        created = self._event(
            PACKAGE_CREATED,
            package_id,
            codec.encode_value({"name": name, "version": version, "metadata": checked}),
        )
        assigned = self._event(
            RETENTION_ASSIGNED, package_id, codec.encode_value({"class": retention_class})
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
        """The files of a package, sorted by path."""
        with self._read() as connection:
            package = registry.get_package(connection, ref)
            return registry.package_files(connection, package.id)

    def abandon_package(self, ref: PackageRef) -> None:
        """Drop an open package (for example one a killed job left behind); its blobs stay."""
        with self._write() as connection:
            package = registry.get_package(connection, ref)
            _require_open(package)
            self._record(
                connection, [self._event(PACKAGE_ABANDONED, package.id, codec.encode_value({}))]
            )

    # -- ingest ----------------------------------------------------------------------------

    def ingest_file(
        self,
        ref: PackageRef,
        path: str,
        source: Source,
        replace: bool = False,
        executable: bool | None = None,
    ) -> StoredFile:
        """Stream one file into an open package; a path already there needs replace=True."""
        check_path(path)
        self._check_can_add(ref, [path], replace)
        result, inferred = self._ingest_source(source)
        is_executable = inferred if executable is None else executable
        [stored] = self._commit_files(ref, [(path, result, is_executable)], replace)
        return stored

    def ingest_directory(
        self,
        ref: PackageRef,
        directory: str | os.PathLike[str],
        prefix: str = "",
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[StoredFile]:
        """Add every regular file under directory (sorted; symlinks refused).

        Paths are all checked before any blob is written. Files are committed in batches of
        COMMIT_BATCH, which keeps memory flat however many files there are; if the process
        dies between batches the package stays open with the batches before, and a re-push
        resumes it.
        """
        found = tree.scan(directory, prefix)
        self._check_can_add(ref, [f.path for f in found], replace)
        large = [item.size for item in found if item.size > _READ_WHOLE_LIMIT]
        with self._read() as connection:
            seen_sizes = registry.stored_sizes(connection, large) if large else set()
        stored: list[StoredFile] = []
        for start in range(0, len(found), COMMIT_BATCH):
            ingested = [
                self._ingest_tree_file(item, seen_sizes, progress)
                for item in found[start : start + COMMIT_BATCH]
            ]
            # One sync pass for the batch instead of an fsync per file; blobs that were
            # already present are synced too, in case another process wrote them non-durably.
            self._dataplane.sync(result.content_address for _, result, _ in ingested)
            stored.extend(self._commit_files(ref, ingested, replace))
        return stored

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
                self._event(FILE_INGESTED, package.id, _file_payload(path, result, executable), now)
                for path, result, executable in ingested
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

    def finalize_package(self, ref: PackageRef) -> Manifest:
        """Make a package immutable and return its manifest; finalizing again returns the same."""
        with self._write() as connection:
            package = registry.get_package(connection, ref)
            if package.is_finalized:
                return _stored_manifest(connection, package)
            manifest = self._build_manifest(connection, package)
            payload = codec.encode(manifest)
            self._record(connection, [self._event(PACKAGE_FINALIZED, package.id, payload)])
            return manifest

    def _build_manifest(self, connection: Connection, package: Package) -> Manifest:
        files = registry.package_files(connection, package.id)
        finalized_at = format_timestamp(self._now())
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

    def push(
        self,
        name: str,
        version: str,
        directory: str | os.PathLike[str],
        retention_class: str = retention.DEFAULT_CLASS,
        metadata: Mapping[str, object] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Manifest:
        """Ingest a directory as (name, version) and finalize it, idempotently.

        Pushing the same files again returns the existing manifest and appends nothing;
        different files for a finalized version raise ConflictError with nothing changed. An
        open package left by an interrupted push is resumed.
        """
        return push_directory(self, name, version, directory, retention_class, metadata, progress)

    # -- reading ---------------------------------------------------------------------------

    def get_manifest(self, ref: PackageRef) -> Manifest:
        """The manifest of a finalized package; PackageStateError while it is open."""
        with self._read() as connection:
            return _stored_manifest(connection, registry.get_package(connection, ref))

    def get_manifest_bytes(self, ref: PackageRef, format: ManifestFormat = "cbor") -> bytes:
        """The manifest as canonical CBOR ('cbor') or its RFC 8785 JSON projection ('jcs')."""
        if format not in _FORMATS:
            raise InvalidInputError(f"manifest format {format!r} is not one of {_FORMATS}")
        with self._read() as connection:
            package = registry.get_package(connection, ref)
            data = _stored_manifest_bytes(connection, package)
        return data if format == "cbor" else projection.jcs(codec.decode(data))

    def get_file(self, ref: PackageRef, path: str) -> BinaryIO:
        """A streaming reader of one file that raises IntegrityError if its bytes are wrong."""
        with self._read() as connection:
            package = registry.get_package(connection, ref)
            stored = registry.package_file(connection, package.id, path)
        if stored is None:
            raise PackageFileNotFoundError(f"package {package} has no file {path!r}")
        return self.open_stored_file(package, stored)

    def open_stored_file(self, package: Package, stored: StoredFile) -> BinaryIO:
        """Like get_file, for a file already looked up (from list_files): no database query."""
        stream = self._dataplane.serve_object(stored.content_address)
        label = f"{package} {stored.path}"
        return io.BufferedReader(
            VerifyingReader(stream, stored.content_address, stored.size, label)
        )

    def pull(
        self,
        ref: PackageRef,
        destination: str | os.PathLike[str],
        progress: Callable[[int], None] | None = None,
    ) -> list[StoredFile]:
        """Write every file of a package under destination, each verified (see pull.pull)."""
        return pull_package(self, self.package(ref), Path(destination), progress)

    def verify_package(
        self, ref: PackageRef, progress: Callable[[int], None] | None = None
    ) -> audit.VerifyReport:
        """Re-read and re-hash every blob of a package; the report lists each problem."""
        with self._read() as connection:
            package = registry.get_package(connection, ref)
            files = registry.package_files(connection, package.id)
            manifest = registry.manifest_bytes(connection, package.id)
        count, total, problems = audit.check_package(
            self._dataplane, package, files, manifest, progress
        )
        return audit.VerifyReport(1, count, total, tuple(problems))

    def verify_all(self, progress: Callable[[int], None] | None = None) -> audit.VerifyReport:
        """Verify every package and the event chain."""
        packages = files = total = 0
        problems: list[audit.Problem] = []
        for package in self.list_packages():
            report = self.verify_package(package, progress)
            packages += 1
            files += report.files
            total += report.bytes
            problems.extend(report.problems)
        chain = self.verify_chain()
        problems.extend(audit.chain_problems(chain))
        return audit.VerifyReport(packages, files, total, tuple(problems), chain)

    # -- the log ---------------------------------------------------------------------------

    def tail_events(
        self, since: int = 0, follow: bool = False, timeout: float | None = None
    ) -> Iterator[Event]:
        """Events after sequence `since`; with follow, wait for new ones until timeout."""
        return log.tail(self._engine, since, follow, timeout)

    def verify_chain(self) -> log.ChainReport:
        """Recompute the event log's hash chain."""
        with self._read() as connection:
            return log.verify_chain(connection)

    def replay(self, check: bool = False) -> views.ReplayReport:
        """Rebuild every view from the log; with check, compare only and change nothing."""
        with self._write() as connection:
            report = views.replay(connection)
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


def _reason(exc: sqlalchemy.exc.SQLAlchemyError) -> str:
    """The driver's message without SQL text or parameters (which may hold secrets)."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return redact_url(text[0]) if text else type(exc).__name__


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


def _stored_manifest_bytes(connection: Connection, package: Package) -> bytes:
    data = registry.manifest_bytes(connection, package.id)
    if data is None:
        raise PackageStateError(f"package {package} is open; finalize it to get a manifest")
    return data


def _stored_manifest(connection: Connection, package: Package) -> Manifest:
    return codec.decode(_stored_manifest_bytes(connection, package))


def _file_payload(path: str, result: IngestResult, executable: bool) -> bytes:
    return codec.encode_value(
        {
            "path": path,
            "size": result.size,
            "blake3": result.digests.blake3.hex,
            "sha256": result.digests.sha256.hex,
            "executable": executable,
            "backend_id": result.receipt.backend_id,
            "object_key": result.receipt.key,
            "stored_at": format_timestamp(result.receipt.stored_at),
        }
    )
