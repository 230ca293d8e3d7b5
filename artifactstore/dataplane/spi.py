"""The data plane SPI: blob operations addressed by content, not by storage key.

A data plane hashes what it stores, so a caller hands it a byte stream and gets back the
stream's content address and both digests. Ingest makes one pass over the source and skips the
write when the blob is already present; serving and verifying stream, so memory stays flat
whatever the blob size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO, Protocol

from artifactstore.identity import ContentAddress, Digest, DualDigest
from artifactstore.storage.spi import BackendHealth, ObjectInfo, StorageReceipt

__all__ = ["BackendHealth", "DataPlane", "Expected", "IngestResult", "VerifyResult"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The digests of an ingested stream, where it is stored, and whether it was already there."""

    digests: DualDigest
    receipt: StorageReceipt
    already_present: bool

    @property
    def content_address(self) -> ContentAddress:
        """The content address of the ingested bytes."""
        return self.digests.content_address

    @property
    def size(self) -> int:
        """The number of bytes ingested."""
        return self.digests.size


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of re-hashing a stored blob; problem says what is wrong when ok is False.

    actual is None when the blob could not be read (problem "missing").
    """

    address: ContentAddress
    ok: bool
    problem: str | None
    actual: DualDigest | None


Expected = tuple[ContentAddress, Digest | None, int | None]
"""What a blob should be for `verify_objects`: its address, SHA-256 and size (None: unchecked)."""


class DataPlane(Protocol):
    """Blobs by content address over one storage backend; never half a blob under an address."""

    @property
    def backend_id(self) -> str:
        """The id of the backend holding the blobs, as recorded in receipts."""

    def ingest_stream(
        self,
        source: bytes | Iterable[bytes] | BinaryIO,
        *,
        durable: bool = True,
        expected: ContentAddress | None = None,
    ) -> IngestResult:
        """Hash and store the source (one bytes object, chunks, or a binary file) in one pass.

        With expected, bytes that hash to another address raise DigestMismatchError and
        nothing is stored (an upload that must be the blob it names).

        A blob already present is left untouched (already_present=True). With durable=True the
        blob is on stable storage on return; otherwise call `sync`. Raises StorageError if the
        backend fails; then nothing new is visible.
        """

    def find_stored(self, digests: DualDigest, *, durable: bool = True) -> IngestResult | None:
        """What ingest_stream of bytes with these digests would return, if their blob is
        already stored whole; else None. Nothing is written: for a caller that hashed a file
        itself and writes it (ingest_stream) only when this says it is absent."""

    def ingest_many(self, sources: list[bytes]) -> list[IngestResult]:
        """ingest_stream(source, durable=False) of each in-memory source, in order: the same
        blobs and results, with fewer lookups where the backend allows (files read whole)."""

    def serve_object(
        self, address: ContentAddress, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        """Stream the blob's bytes [start, end), clamped; BlobNotFoundError if absent."""

    def verify_object(
        self,
        address: ContentAddress,
        expected_sha256: Digest | None = None,
        expected_size: int | None = None,
    ) -> VerifyResult:
        """Re-read and re-hash the blob, comparing with its address and the given expectations.

        A missing or mismatching blob is reported in the result, not raised.
        """

    def verify_objects(self, expected: Iterable[Expected]) -> Iterator[VerifyResult]:
        """verify_object of each blob, in order; where the medium allows, several at a time."""

    def small_blobs(
        self, wanted: Iterable[tuple[ContentAddress, int | None]]
    ) -> Iterator[bytes | None]:
        """For each (address, expected size), in order, the bytes of a blob small enough to be
        read ahead in a batch, else None (serve_object it then)."""

    def stat_object(self, address: ContentAddress) -> ObjectInfo | None:
        """Describe the stored blob, or return None if it is absent."""

    def delete_object(self, address: ContentAddress) -> None:
        """Remove the blob; a missing blob is not an error."""

    def delete_objects(self, addresses: Iterable[ContentAddress]) -> None:
        """Remove many blobs at once (one transaction or request where the medium allows)."""

    def stored_addresses(self) -> Iterator[ContentAddress]:
        """The address of every stored blob (garbage collection looks for orphans)."""

    def clean_stale_temp(self, older_than: timedelta) -> int:
        """Remove temp objects older than older_than (left by killed writers); the count."""

    def sync(self, addresses: Iterable[ContentAddress]) -> None:
        """Make blobs ingested with durable=False durable; BlobNotFoundError if one is absent."""

    def health(self) -> BackendHealth:
        """Report whether the backend is usable now."""

    def close(self) -> None:
        """Close the backends: pending writes are written, connections released; idempotent."""
