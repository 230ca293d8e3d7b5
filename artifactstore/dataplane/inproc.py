"""The in-process data plane: hashing and blob I/O in the caller's process over a StorageBackend.

Ingest streams the source once: each chunk is fed to the dual hasher and written to a staged
object, which is committed under the resulting content address (or discarded if the blob is
already there). Verification re-reads through the backend and re-hashes with both digests.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from artifactstore.dataplane.spi import IngestResult, VerifyResult
from artifactstore.errors import BlobNotFoundError
from artifactstore.identity import ContentAddress, Digest, DualHasher, digest_stream, iter_chunks
from artifactstore.storage.registry import open_backend
from artifactstore.storage.spi import (
    BackendHealth,
    ObjectInfo,
    StorageBackend,
    StorageReceipt,
    object_key,
)


class InProcessDataPlane:
    """A DataPlane that hashes and moves bytes in the calling process."""

    def __init__(self, backend: StorageBackend) -> None:
        self._backend = backend

    @classmethod
    def local(cls, root: Path) -> InProcessDataPlane:
        """A data plane over a LocalBackend rooted at root."""
        return cls(open_backend("local", root=root))

    @property
    def backend_id(self) -> str:
        """The id of the backend holding the blobs."""
        return self._backend.backend_id

    def ingest_stream(
        self, source: bytes | Iterable[bytes] | BinaryIO, *, durable: bool = True
    ) -> IngestResult:
        """Hash and store the source in one pass; a blob already present is left untouched."""
        if isinstance(source, bytes) and not durable:
            return self._ingest_bytes(source)
        chunks = iter_chunks(source)
        hasher = DualHasher()
        with self._backend.stage() as staged:
            # SHA-256 already runs on a worker thread inside DualHasher; a writer thread on top
            # measured no faster for 1 GiB (within noise on 2 cores), so writes stay inline.
            for chunk in chunks:
                hasher.update(chunk)
                staged.write(chunk)
            digests = hasher.result()
            receipt, existed = staged.commit(object_key(digests.content_address), durable=durable)
        return IngestResult(digests, receipt, existed)

    def _ingest_bytes(self, data: bytes) -> IngestResult:
        # Bytes already in memory can be hashed before anything is written, so a blob that is
        # already stored costs one stat instead of a temp file, a link and an unlink (the
        # dedup path of a re-push). Only for durable=False: the caller's sync() then covers an
        # existing object that another writer has not made durable yet.
        digests = digest_stream(data)
        key = object_key(digests.content_address)
        info = self._backend.head(key)
        if info is None:
            receipt, existed = self._backend.put(key, (data,), durable=False)
            return IngestResult(digests, receipt, existed)
        receipt = StorageReceipt(self._backend.backend_id, key, info.size, info.modified_at)
        return IngestResult(digests, receipt, True)

    def serve_object(
        self, address: ContentAddress, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        """Stream bytes [start, end) of the blob; BlobNotFoundError if absent."""
        return self._backend.open(object_key(address), start, end)

    def verify_object(
        self,
        address: ContentAddress,
        expected_sha256: Digest | None = None,
        expected_size: int | None = None,
    ) -> VerifyResult:
        """Re-hash the stored blob and compare; missing or mismatching blobs are reported."""
        hasher = DualHasher()
        try:
            with self._backend.open(object_key(address)) as stream:
                for chunk in iter_chunks(stream):
                    hasher.update(chunk)
        except BlobNotFoundError:
            return VerifyResult(address, False, "missing", None)
        actual = hasher.result()
        problems = []
        # Compare hex, not values: ContentAddress and Digest are different dataclasses.
        if actual.blake3.hex != address.hex:
            problems.append(f"blake3 mismatch: expected {address.hex} got {actual.blake3.hex}")
        if expected_sha256 is not None and str(actual.sha256) != str(expected_sha256):
            problems.append(
                f"sha256 mismatch: expected {expected_sha256.hex} got {actual.sha256.hex}"
            )
        if expected_size is not None and actual.size != expected_size:
            problems.append(f"size mismatch: expected {expected_size} got {actual.size}")
        problem = "; ".join(problems) if problems else None
        return VerifyResult(address, problem is None, problem, actual)

    def stat_object(self, address: ContentAddress) -> ObjectInfo | None:
        """Describe the stored blob, or None if it is absent."""
        return self._backend.head(object_key(address))

    def delete_object(self, address: ContentAddress) -> None:
        """Remove the blob; a missing blob is not an error."""
        self._backend.delete(object_key(address))

    def sync(self, addresses: Iterable[ContentAddress]) -> None:
        """Make blobs ingested with durable=False durable."""
        self._backend.sync(object_key(address) for address in addresses)

    def health(self) -> BackendHealth:
        """Report the backend's health."""
        return self._backend.health()
