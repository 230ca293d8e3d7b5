"""RemoteStore: the library surface over a running server's /v1 API (`artifactstore.connect`).

The method names and arguments are ArtifactStore's, and so are the errors: the server's error
codes come back as the same classes (`transport`). What the client can check, it checks
itself: a finalized package's files come from the manifest it hashed (`reading`), every byte
it downloads is checked against BLAKE3 and size (`download` under a VerifyingReader, or
`checking` for verify, which re-hashes SHA-256 too), and pull writes through the same safe,
verified-before-visible path as a local pull (`artifactstore.pull`). A push hashes the tree
locally and uploads only the blobs the server lacks (`upload`), then publishes the version
in one request. Writes are recorded on the server with the token as actor (`token:<name>`),
so the `actor` arguments of ArtifactStore are refused here.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from artifactstore import pull as pulling
from artifactstore import tree
from artifactstore.errors import (
    ConflictError,
    InvalidInputError,
    MissingBlobsError,
    PackageFileNotFoundError,
    PackageNotFoundError,
    PackageStateError,
)
from artifactstore.events.model import Event
from artifactstore.identity import iter_chunks
from artifactstore.manifest import projection
from artifactstore.manifest.model import Manifest, Metadata, validate_new_metadata
from artifactstore.naming import check_name, check_path, check_version
from artifactstore.records import (
    FileFacts,
    Package,
    PackageRef,
    PushResult,
    Source,
    StoredFile,
    VerifyReport,
    compare,
)
from artifactstore.remote import checking, events, reading, upload
from artifactstore.remote.download import download
from artifactstore.remote.fetching import SmallBlobs
from artifactstore.remote.transport import Transport
from artifactstore.remote.values import (
    field,
    file_from_json,
    manifest_files,
    package_from_json,
    push_result_from_json,
)
from artifactstore.selection import select_files
from artifactstore.verifying import VerifyingReader

_FORMATS = ("cbor", "jcs")
_ADD_BATCH = 2000
"""Files per add request of ingest_directory, as a local ingest commits them."""
PULL_IN_FLIGHT = 2
"""Files over a batch's size (1 MiB) a pull downloads at once: one request's wait for the server
hides behind the other's transfer. Four cost more CPU (GIL hand-offs between the threads) than
they saved: over loopback on 2 cores, pulls of mixed took 3-19 % longer than with two."""


def connect(url: str, token: str | None = None) -> RemoteStore:
    """A client of the artifactstore server at url (http:// or https://), with a token."""
    return RemoteStore(url, token)


class RemoteStore:
    """A store on a server: ArtifactStore's methods over HTTP (see the module docstring)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self._transport = Transport(url, token)
        self.uploaded_blobs = 0
        """How many blobs this client has sent (the rest the server had)."""

    def __repr__(self) -> str:
        return f"RemoteStore({self._transport.shown_url!r})"

    @property
    def url(self) -> str:
        """The server's URL (a password in it hidden)."""
        return self._transport.shown_url

    def close(self) -> None:
        """Close the connections to the server."""
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- packages --------------------------------------------------------------------------

    def list_packages(self, name: str | None = None, include_ended: bool = False) -> list[Package]:
        """Every package the token may see, or every version of one name (ended ones only with
        include_ended)."""
        return reading.list_packages(self._transport, name, include_ended)

    def get_package(self, name: str, version: str) -> Package:
        """Look a package up by name and version; PackageNotFoundError if there is none."""
        return reading.get_package(self._transport, name, version)

    def package(self, ref: PackageRef) -> Package:
        """Resolve a package object, id, (name, version) or 'NAME:VERSION' / 'NAME@digest'."""
        located = reading.resolve(self._transport, ref)
        return reading.get_package(self._transport, located.name, located.version)

    def list_files(self, ref: PackageRef) -> list[StoredFile]:
        """The files of a package, sorted by path (a finalized one's from its manifest)."""
        located = reading.resolve(self._transport, ref)
        document = self._transport.call("GET", located.route)
        if field(document, "state", str, f"GET {located.route}") == "finalized":
            return self.finalized_files(located.pair)
        listed = field(document, "files", list, f"GET {located.route}")
        return [file_from_json(item, f"GET {located.route}") for item in listed]

    # -- reading ---------------------------------------------------------------------------

    def get_manifest_bytes(
        self, ref: PackageRef, format: str = "cbor", expect_digest: str | None = None
    ) -> bytes:
        """The manifest as canonical CBOR or its JCS projection, checked on the client.

        DigestMismatchError if expect_digest (or the digest a 'NAME@blake3:...' ref pins) is
        not the manifest's digest; the JCS bytes are made here from the checked CBOR.
        """
        if format not in _FORMATS:
            raise InvalidInputError(f"manifest format {format!r} is not one of {_FORMATS}")
        located = reading.resolve(self._transport, ref)
        data = reading.manifest_bytes(self._transport, located, located.expected(expect_digest))
        manifest = reading.decode(located, data)
        return data if format == "cbor" else projection.jcs(manifest)

    def get_manifest(self, ref: PackageRef, expect_digest: str | None = None) -> Manifest:
        """The manifest of a finalized package; PackageStateError while it is open."""
        located = reading.resolve(self._transport, ref)
        data = reading.manifest_bytes(self._transport, located, located.expected(expect_digest))
        return reading.decode(located, data)

    def finalized_files(
        self, ref: PackageRef, expect_digest: str | None = None
    ) -> list[StoredFile]:
        """The files of a finalized package from its checked manifest."""
        return manifest_files(self.get_manifest(ref, expect_digest))

    def get_file(self, ref: PackageRef, path: str, expect_digest: str | None = None) -> BinaryIO:
        """A streaming reader of one file, checked against BLAKE3 and size at its end.

        An interrupted download resumes by itself; the reader raises IntegrityError at the
        end if the bytes are not the recorded ones.
        """
        located = reading.resolve(self._transport, ref)
        files = self.finalized_files(located.pair, located.expected(expect_digest))
        match = [f for f in files if f.path == path]
        if not match:
            raise PackageFileNotFoundError(f"package {located} has no file {path!r}")
        return io.BufferedReader(self._verified(located, match[0]))

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
        located = reading.resolve(self._transport, ref)
        listed = self.finalized_files(located.pair, located.expected(expect_digest))
        files = select_files(listed, include, str(located))
        download = functools.partial(self._download, located)
        with SmallBlobs(self._transport, located.route, files, download) as blobs:
            return pulling.pull(
                blobs.open, str(located), files, Path(destination), progress, PULL_IN_FLIGHT
            )

    def verify_package(
        self,
        ref: PackageRef,
        progress: Callable[[int], None] | None = None,
        expect_digest: str | None = None,
    ) -> VerifyReport:
        """Download and re-hash (BLAKE3, SHA-256, size) every file on the client."""
        located = reading.resolve(self._transport, ref)
        return checking.verify_package(
            self._transport, located, progress, located.expected(expect_digest)
        )

    def tail_events(
        self, since: int = 0, follow: bool = False, timeout: float | None = None
    ) -> Iterator[Event]:
        """Events after sequence since; with follow, long-poll for new ones until timeout."""
        return events.tail(self._transport, since, follow, timeout)

    # -- push ------------------------------------------------------------------------------

    def push(
        self,
        name: str,
        version: str,
        directory: str | os.PathLike[str],
        retention_class: str = "standard",
        metadata: Mapping[str, object] | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        actor: str | None = None,
        on_scanned: Callable[[int, int], None] | None = None,
        allow_empty: bool = False,
    ) -> PushResult:
        """Publish a directory's files as (name, version), uploading only missing blobs.

        Same outcome as ArtifactStore.push: identical again is success with the same digest,
        anything different ConflictError. A version already finalized is compared without
        uploading anything.
        """
        _no_actor(actor)
        located = reading.Located(check_name(name), check_version(version), None)
        checked_metadata = validate_new_metadata(metadata or {})
        checked = dict(checked_metadata)
        found = tree.scan(directory)
        if not found and not allow_empty:
            raise InvalidInputError(
                f"directory {str(directory)!r} is empty (it holds no file to push); "
                "use --allow-empty (allow_empty=True) to push an empty package"
            )
        if on_scanned is not None:
            on_scanned(len(found), sum(item.size for item in found))
        existing = self._find(located)
        # A new version needs no SHA-256 from the client (see upload).
        files = upload.hash_files(found, sha256=existing is not None)

        def settled(item: upload.LocalFile) -> None:
            if progress is not None:
                progress(item.size)

        wanted = upload.missing(self._transport, (f.address for f in files))
        if existing is None:
            self.uploaded_blobs += upload.upload(self._transport, files, wanted, settled)
        else:
            self._compare(existing, located, files, retention_class, checked_metadata)
            for item in files:
                settled(item)
        body = {
            "files": [f.file_json() for f in files],
            "metadata": checked,
            "retention_class": retention_class,
        }
        answer = self._retry_missing(
            files, lambda: self._transport.call("PUT", located.route, body=body)
        )
        return push_result_from_json(answer, f"PUT {located.route}")

    # -- assembly --------------------------------------------------------------------------

    def create_package(
        self,
        name: str,
        version: str,
        retention_class: str = "standard",
        metadata: Mapping[str, object] | None = None,
        *,
        actor: str | None = None,
    ) -> Package:
        """Create an open package on the server; AlreadyExistsError if it is taken."""
        _no_actor(actor)
        located = reading.Located(check_name(name), check_version(version), None)
        checked = dict(validate_new_metadata(metadata or {}))
        body = {"metadata": checked, "retention_class": retention_class}
        answer = self._transport.call("POST", f"{located.route}/open", body=body)
        return package_from_json(answer, f"POST {located.route}/open")

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
        """Upload one file into an open package; a path already there needs replace=True."""
        _no_actor(actor)
        check_path(path)
        located = reading.resolve(self._transport, ref)
        if isinstance(source, str | os.PathLike):
            local = upload.hash_path(path, source, executable)
            [stored] = self._add(located, [local], replace)
            return stored
        # A stream can be read once: it is kept in a temp file to hash, then to send.
        with tempfile.NamedTemporaryFile(prefix="artifactstore-upload-") as spool:
            for chunk in iter_chunks(source):
                spool.write(chunk)
            spool.flush()
            local = upload.hash_path(path, spool.name, bool(executable))
            [stored] = self._add(located, [local], replace)
            return stored

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
        """Upload every regular file under directory into an open package, as prefix/<path>.

        Paths are all checked before anything is sent; files are added in batches.
        """
        _no_actor(actor)
        located = reading.resolve(self._transport, ref)
        found = tree.scan(directory, (), prefix)
        files = upload.hash_files(found)
        stored: list[StoredFile] = []
        for start in range(0, len(files), _ADD_BATCH):
            batch = files[start : start + _ADD_BATCH]
            stored.extend(self._add(located, batch, replace))
            if progress is not None:
                for item in batch:
                    progress(item.size)
        return stored

    def finalize_package(self, ref: PackageRef, *, actor: str | None = None) -> Manifest:
        """Make a package immutable and return its manifest (checked against its digest)."""
        located = reading.resolve(self._transport, ref)
        result = self.finalize(located.pair, actor=actor)
        data = reading.manifest_bytes(self._transport, located, str(result.digest))
        return reading.decode(located, data)

    def finalize(self, ref: PackageRef, *, actor: str | None = None) -> PushResult:
        """finalize_package, answered as a push is: digest, created, finalize event, size."""
        _no_actor(actor)
        located = reading.resolve(self._transport, ref)
        answer = self._transport.call("POST", f"{located.route}/finalize", body={})
        return push_result_from_json(answer, f"POST {located.route}/finalize")

    def abandon_package(self, ref: PackageRef, *, actor: str | None = None) -> None:
        """Drop an open package on the server; its blobs stay."""
        _no_actor(actor)
        located = reading.resolve(self._transport, ref)
        self._transport.call("POST", f"{located.route}/abandon", body={})

    # -- helpers ---------------------------------------------------------------------------

    def _compare(
        self,
        existing: Package,
        located: reading.Located,
        files: list[upload.LocalFile],
        retention_class: str,
        metadata: Metadata,
    ) -> None:
        """Check a push against the version that exists, as a local push does, uploading
        nothing: ConflictError naming the first difference, PackageStateError if it is open."""
        if not existing.is_finalized:
            raise PackageStateError(
                f"package {existing} is open for assembly; finalize or abandon it "
                "(a push never adds to an open package)"
            )
        data = reading.manifest_bytes(self._transport, located, existing.manifest_digest)
        found = compare(
            data, existing.retention_class, map(_facts, files), retention_class, metadata
        )
        if found.difference is not None:
            raise ConflictError(
                f"package {existing} already exists with other content: {found.difference}; "
                "versions are immutable, push a new version"
            )

    def _find(self, located: reading.Located) -> Package | None:
        """The version a push is about to write, if it exists (a refusal names write)."""
        route = located.route
        try:
            answer = self._transport.call("GET", route, scope="write")
        except PackageNotFoundError:
            return None
        return package_from_json(answer, f"GET {route}")

    def _upload(
        self, files: list[upload.LocalFile], settled: Callable[[upload.LocalFile], None] | None
    ) -> None:
        wanted = upload.missing(self._transport, (f.address for f in files))
        self.uploaded_blobs += upload.upload(self._transport, files, wanted, settled)

    def _retry_missing(self, files: list[upload.LocalFile], send: Callable[[], object]) -> object:
        """send(); if the server lacks blobs (held ones expired, a race), upload them, again."""
        try:
            return send()
        except MissingBlobsError as exc:
            lacking = set(exc.missing)
            self.uploaded_blobs += upload.upload(self._transport, files, lacking)
            return send()

    def _add(
        self, located: reading.Located, files: list[upload.LocalFile], replace: bool
    ) -> list[StoredFile]:
        self._upload(files, None)
        route = f"{located.route}/add"
        body = {"files": [f.file_json() for f in files], "replace": replace}
        answer = self._retry_missing(files, lambda: self._transport.call("POST", route, body=body))
        listed = field(answer, "files", list, f"POST {route}")
        return [file_from_json(item, f"POST {route}") for item in listed]

    def _download(self, located: reading.Located, stored: StoredFile) -> BinaryIO:
        return download(self._transport, located.route, stored, f"{located} {stored.path}")

    def _verified(self, located: reading.Located, stored: StoredFile) -> VerifyingReader:
        label = f"{located} {stored.path}"
        return VerifyingReader(
            self._download(located, stored), stored.content_address, stored.size, label
        )


def _facts(item: upload.LocalFile) -> FileFacts:
    # A push hashes every file with both digests when its version exists (see push).
    assert item.sha256 is not None
    return item.path, item.size, item.address.hex, item.sha256, item.executable


def _no_actor(actor: str | None) -> None:
    if actor is not None:
        raise InvalidInputError(
            "a remote store records the token as actor ('token:<name>'); actor cannot be given"
        )
