"""Packages from blobs sent over the network: which blobs a client must send, receiving one,
and publishing or adding files that name blobs already received.

A remote push hashes on the client, asks which blobs the store lacks (`missing`), sends only
those (`receive`), then names them in one publish (`publish`) or, for assembly by several
jobs, adds them to an open package (`add`). The server hashes every byte it receives and
stores a blob only under the address its bytes hash to, so a client can never make a file
entry name bytes it did not send: the size and SHA-256 of each file come from the server's own
hash (kept in the upload session that holds the blob) or from the blobs packages already name,
never from the client.

Every blob a client is told it need not send, and every blob it sends, is held by an upload
session for a day (`uploads.SESSION_LIFETIME`), so garbage collection keeps it until a publish
names it. A client gone mid-upload leaves no blob: bytes become visible only whole and
checked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, BinaryIO

from artifactstore import batch, ingest, liveness, publish, uploads
from artifactstore.database import Database
from artifactstore.dataplane.spi import DataPlane, IngestResult
from artifactstore.errors import InvalidInputError, InvalidPathError, MissingBlobsError
from artifactstore.identity import ContentAddress, Digest, DualDigest
from artifactstore.manifest.model import format_timestamp, parse_timestamp
from artifactstore.naming import check_path, check_paths
from artifactstore.records import PackageRef, PushResult, StoredFile
from artifactstore.storage.spi import StorageReceipt

MAX_BLOBS_ASKED = 10000
"""The most addresses one `missing` call takes."""


@dataclass(frozen=True, slots=True)
class NamedBlob:
    """A file a client names: its package path, the address of a blob it sent, its mode."""

    path: str
    content_address: ContentAddress
    executable: bool

    @classmethod
    def checked(cls, path: object, content_address: object, executable: object) -> NamedBlob:
        """A NamedBlob from untrusted values; InvalidInputError (or a subclass) names the bad
        one."""
        if not isinstance(path, str) or not isinstance(content_address, str):
            raise InvalidInputError("a file needs a text 'path' and 'content_address'")
        if not isinstance(executable, bool):
            raise InvalidInputError(f"file {path!r}: 'executable' must be true or false")
        return cls(check_path(path), ContentAddress.parse(content_address), executable)


class UploadedBlobs:
    """Blobs received over the network and packages made of them (see the module docstring)."""

    def __init__(self, db: Database, dataplane: DataPlane) -> None:
        self._db = db
        self._dataplane = dataplane

    def missing(self, addresses: Iterable[str], actor: str | None = None) -> list[str]:
        """The addresses (in the order given, once each) whose blobs the store does not have.

        The ones it has are held by a new upload session, so they stay until a publish names
        them. InvalidInputError for a malformed address or more than MAX_BLOBS_ASKED of them.
        """
        wanted = list(dict.fromkeys(str(ContentAddress.parse(a)) for a in addresses))
        if len(wanted) > MAX_BLOBS_ASKED:
            raise InvalidInputError(
                f"{len(wanted)} blobs asked about at once; the most is {MAX_BLOBS_ASKED}"
            )
        _, unlisted = self._open_holding(actor, wanted)
        present = self._present(wanted, unlisted)
        return [address for address in wanted if address not in present]

    def receive(
        self, address: str, source: BinaryIO | IO[bytes], actor: str | None = None
    ) -> tuple[uploads.BlobFacts, bool]:
        """Store the blob address from source, streamed and hashed as it is written; returns
        what the store knows of it and whether it was stored now (False: it was there).

        DigestMismatchError, with nothing stored, if the bytes hash to another address. The
        blob is held before it is written, so garbage collection cannot remove it between the
        write and the hold (`liveness`).
        """
        expected = ContentAddress.parse(address)
        session, _ = self._open_holding(actor, [str(expected)])
        result = self._dataplane.ingest_stream(source, expected=expected)
        facts = _facts(result)
        with self._db.write(lock=False) as connection:
            uploads.hold_blobs(connection, session, [facts], self._db.now())
        return facts, not result.already_present

    def receive_many(
        self, source: BinaryIO | IO[bytes], actor: str | None = None
    ) -> tuple[list[str], list[str]]:
        """Store the blobs of a batch body (`batch`) read from source; returns the addresses
        stored now and those that were there already.

        All the announced blobs are held in one transaction before any byte is written
        (`liveness`), each frame is checked against its address as it is written, all are made
        durable at once, and what the store knows of them is recorded in one transaction.
        DigestMismatchError names the first frame whose bytes hash to another address, and
        InvalidInputError a malformed or truncated body: nothing of that frame is stored, while
        the blobs of the frames before it, whole and checked, stay stored and held.
        """
        entries = batch.read_index(source)
        session, _ = self._open_holding(actor, [str(e.address) for e in entries])
        results: list[IngestResult] = []
        try:
            for entry, data in batch.frames(source, entries):
                results.append(
                    self._dataplane.ingest_stream(data, expected=entry.address, durable=False)
                )
        finally:
            # Also when a frame fails: the blobs before it are whole and checked, so they are
            # kept, and known, as if sent alone.
            self._dataplane.sync([r.content_address for r in results])
            with self._db.write(lock=False) as connection:
                facts = [_facts(r) for r in results]
                uploads.hold_blobs(connection, session, facts, self._db.now())
        stored = [str(r.content_address) for r in results if not r.already_present]
        present = [str(r.content_address) for r in results if r.already_present]
        return stored, present

    def publish(
        self,
        name: str,
        version: str,
        files: list[NamedBlob],
        retention_class: str,
        metadata: Mapping[str, object] | None,
        actor: str | None = None,
    ) -> PushResult:
        """Publish files of received blobs as (name, version), atomically, like a push.

        MissingBlobsError lists the blobs the store does not have; the rest as
        ArtifactStore.push (identical again: created=False; different: ConflictError).
        """
        paths = [file.path for file in files]
        if len(set(paths)) != len(paths):
            twice = next(p for p in paths if paths.count(p) > 1)
            raise InvalidPathError(f"file path {twice!r} is listed twice")
        check_paths(paths)
        with uploads.held(self._db, actor) as session:
            staged = self._staged(session, files)
            with self._db.write(lock=False) as connection:
                uploads.stage(connection, session, staged, self._db.now())
            return publish.publish(
                self._db, session, name, version, retention_class, metadata, actor
            )

    def add(
        self, ref: PackageRef, files: list[NamedBlob], replace: bool, actor: str | None = None
    ) -> list[StoredFile]:
        """Add files of received blobs to an open package (as ArtifactStore.ingest_file does)."""
        with uploads.held(self._db, actor) as session:
            staged = self._staged(session, files)
            ingested = [(s.path, _result(s), s.executable) for s in staged]
            return ingest.add(self._db, ref, [s.path for s in files], [ingested], replace, actor)

    def _present(self, addresses: list[str], unlisted: set[str]) -> dict[str, uploads.BlobFacts]:
        """What is known of each address whose blob is stored; the others are left out.

        Call it once the addresses are held, with those the holding transaction found
        unlisted in `storage_locations`: only their bytes are looked for. A blob listed there
        when its hold committed is stored until the hold ends (`liveness`)."""
        with self._db.read() as connection:
            known = uploads.known_blobs(connection, addresses)
        return {
            address: facts
            for address, facts in known.items()
            if address not in unlisted
            or self._dataplane.stat_object(ContentAddress.parse(address)) is not None
        }

    def _open_holding(self, actor: str | None, addresses: list[str]) -> tuple[str, set[str]]:
        """A new upload session that holds the addresses' blobs for a day, and those of them
        `storage_locations` did not list when the hold committed (`liveness`)."""
        session, now = str(uuid.uuid4()), self._db.now()
        with self._db.write(lock=False) as connection:
            liveness.fence(connection)
            uploads.open_session(connection, session, actor or self._db.actor, now)
            uploads.hold_addresses(connection, session, addresses, now)
            unlisted = liveness.unvouched(connection, addresses)
        return session, set(unlisted)

    def _staged(self, session: str, files: list[NamedBlob]) -> list[uploads.StagedFile]:
        """The files as a push stages them, their blobs held by the session; MissingBlobsError
        if a blob is not stored."""
        addresses = [str(f.content_address) for f in files]
        unlisted = liveness.hold(self._db, session, addresses)
        present = self._present(addresses, set(unlisted))
        missing = list(dict.fromkeys(str(f.content_address) for f in files) - present.keys())
        if missing:
            raise MissingBlobsError(
                f"{len(missing)} blob(s) named by the files are not in the store "
                f"(first: {missing[0]}); send them first",
                missing,
            )
        staged = []
        for file in files:
            facts = present[str(file.content_address)]
            staged.append(
                uploads.StagedFile(
                    path=file.path,
                    size=facts.size,
                    blake3=file.content_address.hex,
                    sha256=facts.sha256,
                    executable=file.executable,
                    backend_id=facts.backend_id,
                    object_key=facts.object_key,
                    stored_at=facts.stored_at,
                )
            )
        return staged


def _facts(result: IngestResult) -> uploads.BlobFacts:
    return uploads.BlobFacts(
        content_address=str(result.content_address),
        size=result.size,
        sha256=result.digests.sha256.hex,
        backend_id=result.receipt.backend_id,
        object_key=result.receipt.key,
        stored_at=format_timestamp(result.receipt.stored_at),
    )


def _result(staged: uploads.StagedFile) -> IngestResult:
    """An IngestResult for a blob already stored (what ingest.commit_files records)."""
    digests = DualDigest(
        Digest("blake3", staged.blake3), Digest("sha256", staged.sha256), staged.size
    )
    receipt = StorageReceipt(
        staged.backend_id, staged.object_key, staged.size, parse_timestamp(staged.stored_at)
    )
    return IngestResult(digests, receipt, True)
