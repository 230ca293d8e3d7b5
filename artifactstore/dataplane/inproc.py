"""The in-process data plane: hashing and blob I/O in the caller's process over a StorageBackend.

Ingest streams the source once: each chunk is fed to the dual hasher and written to a staged
object, which is committed under the resulting content address (or discarded if the blob is
already there). Verification re-reads through the backend and re-hashes with both digests.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, cast

from artifactstore.config import S3Location
from artifactstore.dataplane.spi import Expected, IngestResult, VerifyResult
from artifactstore.errors import BlobNotFoundError, DigestMismatchError, InvalidInputError
from artifactstore.identity import (
    ContentAddress,
    Digest,
    DualDigest,
    DualHasher,
    digest_stream,
    digest_stream_here,
    iter_chunks,
)
from artifactstore.storage.backends.local import LocalBackend
from artifactstore.storage.backends.sqlite_blobs import SQLiteBlobBackend
from artifactstore.storage.catalog import open_backend, s3_backend
from artifactstore.storage.spi import (
    BackendHealth,
    ObjectInfo,
    StorageBackend,
    StorageReceipt,
    object_key,
)

SMALL_BLOB_LIMIT = 64 * 1024
"""Blobs up to this size go to the small-blob backend when the data plane has one."""
_BATCH_BYTES = 4 << 20
"""Bytes of small blobs `verify_objects` reads with one query (and holds at once)."""
_HASH_APART = 1 << 20
"""Blobs over this size are hashed on their own threads when `verify_objects` has two or more."""
_APART_AHEAD = 4
"""How many such blobs `verify_objects` hashes ahead of the one it is waiting for."""


class InProcessDataPlane:
    """A DataPlane that hashes and moves bytes in the calling process.

    With a `small` backend, blobs of at most `small_limit` bytes are stored there and all others
    in `backend`; the size decides, so a blob is only ever stored in one of them.
    `before_first_write` runs once, when the first blob is ingested; `clean_temp` removes temp
    objects older than a given age (garbage collection calls it). With `hash_first` (a remote
    backend, S3), a source whose address can be known before it is written (bytes, a seekable
    file, an upload naming its blob) is written straight to its key by `backend.put`, checked
    as it streams (ADR-0010): no temp object to copy into place.
    """

    def __init__(
        self,
        backend: StorageBackend,
        small: StorageBackend | None = None,
        small_limit: int = SMALL_BLOB_LIMIT,
        *,
        before_first_write: Callable[[], None] | None = None,
        clean_temp: Callable[[timedelta], int] | None = None,
        hash_first: bool = False,
    ) -> None:
        self._backend = backend
        self._clean_temp = clean_temp
        self._small = small
        self._small_limit = small_limit if small is not None else -1
        self._before_first_write = before_first_write
        self._hash_first = hash_first
        # Which backend took each blob ingested with durable=False, so sync() need not ask.
        self._unsynced: dict[str, StorageBackend] = {}

    @classmethod
    def local(cls, root: Path) -> InProcessDataPlane:
        """Blobs under root: small ones packed in one SQLite file, the rest one file each.

        The first write (a push) sweeps the temp files killed writers left under root.
        """
        large = LocalBackend(root)
        small = open_backend("local-small", root=root)
        return cls(
            large,
            small,
            before_first_write=large.sweep_stale_temp,
            clean_temp=large.clean_stale_temp,
        )

    @classmethod
    def s3(cls, location: S3Location) -> InProcessDataPlane:
        """Blobs in an S3 bucket, every one an object of its own: no small-blob tier, since
        `small-blobs.db` is one host's file (ADR-0010).

        The first write sweeps the temp objects and uploads killed writers left in the bucket.
        """
        backend = s3_backend(location)
        return cls(
            backend,
            before_first_write=backend.sweep_stale_temp,
            clean_temp=backend.clean_stale_temp,
            hash_first=True,
        )

    @property
    def backend_id(self) -> str:
        """The id of the backend holding the large blobs (and, without a small tier, all)."""
        return self._backend.backend_id

    def ingest_stream(
        self,
        source: bytes | Iterable[bytes] | BinaryIO,
        *,
        durable: bool = True,
        expected: ContentAddress | None = None,
    ) -> IngestResult:
        """Hash and store the source in one pass; a blob already present is left untouched."""
        if self._before_first_write is not None:
            # Threads racing here may both run it; the sweep it is for tolerates that.
            run, self._before_first_write = self._before_first_write, None
            run()
        if self._hash_first:
            if expected is not None:
                return self._ingest_to_key(source, expected, durable)
            if isinstance(source, bytes) or _seekable(source):
                return self._ingest_hashed_first(cast(bytes | BinaryIO, source), durable)
        if isinstance(source, bytes) and expected is None:
            if len(source) <= self._small_limit:
                return self._ingest_small(source, durable)
            if not durable:
                return self._ingest_bytes(source)
        chunks = iter(iter_chunks(source))
        # Read up to the small limit first: a source that ends there is a small blob.
        head: list[bytes] = []
        size = 0
        for chunk in chunks:
            head.append(chunk)
            size += len(chunk)
            if size > self._small_limit:
                break
        else:
            return self._ingest_small(b"".join(head), durable, expected)
        hasher = DualHasher()
        with self._backend.stage() as staged:
            # SHA-256 already runs on a worker thread inside DualHasher; a writer thread on top
            # measured no faster for 1 GiB (within noise on 2 cores), so writes stay inline.
            for chunk in itertools.chain(head, chunks):
                hasher.update(chunk)
                staged.write(chunk)
            digests = hasher.result()
            _check_expected(digests, expected)
            key = object_key(digests.content_address)
            receipt, existed = staged.commit(key, durable=durable)
        return self._result(digests, receipt, existed, durable, self._backend)

    def ingest_many(self, sources: list[bytes]) -> list[IngestResult]:
        """ingest_stream(source, durable=False) of each in-memory source, in order; the small
        ones are looked up and written with one query for the lot (`put_many`)."""
        small = self._small
        if not isinstance(small, SQLiteBlobBackend) or self._hash_first:
            return [self.ingest_stream(source, durable=False) for source in sources]
        if self._before_first_write is not None:
            run, self._before_first_write = self._before_first_write, None
            run()
        results: dict[int, IngestResult] = {}
        hashed: list[tuple[int, DualDigest, str, bytes]] = []
        for index, source in enumerate(sources):
            if len(source) > self._small_limit:
                results[index] = self.ingest_stream(source, durable=False)
                continue
            digests = digest_stream(source)
            hashed.append((index, digests, object_key(digests.content_address), source))
        stored = small.put_many([(key, data) for _, _, key, data in hashed])
        for (index, digests, _, _), (receipt, existed) in zip(hashed, stored, strict=True):
            results[index] = self._result(digests, receipt, existed, False, small)
        return [results[index] for index in range(len(sources))]

    def _ingest_hashed_first(self, source: bytes | BinaryIO, durable: bool) -> IngestResult:
        """Hash a re-readable source, then write it straight to its key, hashed again as it goes
        (a file that changed in between is refused). A large blob already stored is not read
        again; the backend looks small ones up itself, on its upload threads."""
        if isinstance(source, bytes):
            return self._ingest_to_key(source, digest_stream(source).content_address, durable)
        start = source.tell()
        digests = digest_stream(source)
        key = object_key(digests.content_address)
        info = self._backend.head(key)
        if info is not None:
            receipt = StorageReceipt(self._backend.backend_id, key, info.size, info.modified_at)
            return self._result(digests, receipt, True, durable, self._backend)
        source.seek(start)
        return self._ingest_to_key(source, digests.content_address, durable, reread=True)

    def _ingest_to_key(
        self,
        source: bytes | Iterable[bytes] | BinaryIO,
        address: ContentAddress,
        durable: bool,
        reread: bool = False,
    ) -> IngestResult:
        """Write the source under address's key in one pass, raising from the chunks, before
        the backend publishes them, if they hash to another address."""
        hasher = DualHasher()
        found: list[DualDigest] = []

        def checked() -> Iterator[bytes]:
            for chunk in iter_chunks(source):
                hasher.update(chunk)
                yield chunk
            found.append(hasher.result())
            if reread and found[0].content_address.hex != address.hex:
                raise InvalidInputError(
                    "the file changed between hashing it and storing it; nothing was stored: "
                    "try again once it is complete"
                )
            _check_expected(found[0], address)

        receipt, existed = self._backend.put(object_key(address), checked(), durable=durable)
        return self._result(found[0], receipt, existed, durable, self._backend)

    def find_stored(self, digests: DualDigest, *, durable: bool = True) -> IngestResult | None:
        """The result of ingesting bytes with these digests if their blob is stored whole
        (its size agrees), else None; nothing is written."""
        key = object_key(digests.content_address)
        holder = self._holder(key)
        info = holder.head(key)
        if info is None or info.size != digests.size:  # absent, or torn by a crash: write it
            return None
        if durable:
            # It may be another writer's blob that is not durable yet.
            holder.sync([key])
        receipt = StorageReceipt(holder.backend_id, key, info.size, info.modified_at)
        return self._result(digests, receipt, True, durable, holder)

    def _ingest_small(
        self, data: bytes, durable: bool, expected: ContentAddress | None = None
    ) -> IngestResult:
        digests = digest_stream(data)
        _check_expected(digests, expected)
        backend = self._small or self._backend
        key = object_key(digests.content_address)
        receipt, existed = backend.put(key, (data,), durable=durable)
        return self._result(digests, receipt, existed, durable, backend)

    def _ingest_bytes(self, data: bytes) -> IngestResult:
        # Bytes already in memory can be hashed before anything is written, so a blob that is
        # already stored costs one stat instead of a temp file, a link and an unlink (the
        # dedup path of a re-push). Only for durable=False: the caller's sync() then covers an
        # existing object that another writer has not made durable yet.
        digests = digest_stream(data)
        key = object_key(digests.content_address)
        info = self._backend.head(key)
        if info is None or info.size != digests.size:  # absent, or torn by a crash
            receipt, existed = self._backend.put(key, (data,), durable=False)
        else:
            receipt = StorageReceipt(self._backend.backend_id, key, info.size, info.modified_at)
            existed = True
        return self._result(digests, receipt, existed, False, self._backend)

    def _result(
        self,
        digests: DualDigest,
        receipt: StorageReceipt,
        existed: bool,
        durable: bool,
        backend: StorageBackend,
    ) -> IngestResult:
        if not durable:
            self._unsynced[receipt.key] = backend
        return IngestResult(digests, receipt, existed)

    def _holder(self, key: str) -> StorageBackend:
        """The backend that holds key: the small tier if it has it, else the large one."""
        if self._small is not None and self._small.head(key) is not None:
            return self._small
        return self._backend

    def serve_object(
        self, address: ContentAddress, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        """Stream bytes [start, end) of the blob; BlobNotFoundError if absent."""
        key = object_key(address)
        if self._small is not None:
            # One lookup, not a `head` and then an `open`: a pull opens thousands.
            with contextlib.suppress(BlobNotFoundError):
                return self._small.open(key, start, end)
        return self._backend.open(key, start, end)

    def verify_object(
        self,
        address: ContentAddress,
        expected_sha256: Digest | None = None,
        expected_size: int | None = None,
    ) -> VerifyResult:
        """Re-hash the stored blob and compare; missing or mismatching blobs are reported."""
        hasher = DualHasher()
        try:
            with self.serve_object(address) as stream:
                for chunk in iter_chunks(stream):
                    hasher.update(chunk)
        except BlobNotFoundError:
            return VerifyResult(address, False, "missing", None)
        return _verdict(address, expected_sha256, expected_size, hasher.result())

    def verify_objects(self, expected: Iterable[Expected]) -> Iterator[VerifyResult]:
        """verify_object of each (address, SHA-256, size), in order; the blobs the small tier
        holds are read a batch at a time (see small_blobs).

        With two or more blobs over _HASH_APART bytes, those are hashed on two threads, up to
        _APART_AHEAD of them ahead, both digests on the thread that reads the blob, while this
        one goes through the rest; a lone large blob keeps both cores for its two digests.
        """
        listed = list(expected)
        apart = list(dict.fromkeys(item for item in listed if (item[2] or 0) > _HASH_APART))
        position = {item: index for index, item in enumerate(apart)} if len(apart) > 1 else {}
        verdicts: list[Future[VerifyResult]] = []
        pool = ThreadPoolExecutor(2, thread_name_prefix="artifactstore-verify")

        def submit_through(index: int) -> None:
            while len(verdicts) <= min(index, len(position) - 1):
                verdicts.append(pool.submit(self._verify_here, *apart[len(verdicts)]))

        try:
            submit_through(_APART_AHEAD - 1)
            contents = self.small_blobs([(address, size) for address, _, size in listed])
            for item, data in zip(listed, contents, strict=True):
                address, sha256, size = item
                index = position.get(item)
                if index is not None:
                    submit_through(index + _APART_AHEAD)
                    yield verdicts[index].result()
                elif data is None:  # in the large backend, or missing
                    yield self.verify_object(address, sha256, size)
                else:
                    yield _verdict(address, sha256, size, digest_stream(data))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _verify_here(
        self, address: ContentAddress, expected_sha256: Digest | None, expected_size: int | None
    ) -> VerifyResult:
        """verify_object with both digests on the calling thread (`digest_stream_here`)."""
        try:
            with self.serve_object(address) as stream:
                actual = digest_stream_here(stream)
        except BlobNotFoundError:
            return VerifyResult(address, False, "missing", None)
        return _verdict(address, expected_sha256, expected_size, actual)

    def small_blobs(
        self, wanted: Iterable[tuple[ContentAddress, int | None]]
    ) -> Iterator[bytes | None]:
        """For each (address, expected size), in order, the blob's bytes if the small tier
        holds it, else None (a large blob, or a missing one: serve_object it).

        Blobs small enough for the small tier are looked up a batch at a time, one query per
        batch instead of one per blob; a batch holds at most _BATCH_BYTES, so memory stays
        flat. Without a small tier every answer is None.
        """
        small = self._small if isinstance(self._small, SQLiteBlobBackend) else None
        batch: list[ContentAddress] = []
        total = 0
        for address, size in wanted:
            fits = small is not None and size is not None and size <= self._small_limit
            if batch and (not fits or total + (size or 0) > _BATCH_BYTES):
                yield from _read_batch(cast(SQLiteBlobBackend, small), batch)
                batch, total = [], 0
            if fits:
                batch.append(address)
                total += size or 0
            else:
                yield None
        if batch:
            yield from _read_batch(cast(SQLiteBlobBackend, small), batch)

    def stat_object(self, address: ContentAddress) -> ObjectInfo | None:
        """Describe the stored blob, or None if it is absent."""
        key = object_key(address)
        return self._holder(key).head(key)

    def delete_object(self, address: ContentAddress) -> None:
        """Remove the blob from whichever backend holds it; a missing blob is not an error."""
        key = object_key(address)
        self._backend.delete(key)
        if self._small is not None:
            self._small.delete(key)

    def delete_objects(self, addresses: Iterable[ContentAddress]) -> None:
        """Remove the blobs from whichever backend holds each; missing ones are no error."""
        keys = [object_key(address) for address in addresses]
        self._backend.delete_many(keys)
        if self._small is not None:
            self._small.delete_many(keys)

    def stored_addresses(self) -> Iterator[ContentAddress]:
        """The address of every stored blob, backend by backend, each in key order."""
        for backend in (self._backend, self._small):
            if backend is None:
                continue
            for key in backend.iter_keys():
                name, _, _, hex_digits = key.split("/")
                if name == "blake3":
                    yield ContentAddress(name, hex_digits)

    def clean_stale_temp(self, older_than: timedelta) -> int:
        """Remove temp objects (and S3 multipart uploads) older than older_than; the count."""
        return 0 if self._clean_temp is None else self._clean_temp(older_than)

    def sync(self, addresses: Iterable[ContentAddress]) -> None:
        """Make blobs ingested with durable=False durable, in each backend at once."""
        by_backend: dict[int, tuple[StorageBackend, list[str]]] = {}
        for address in addresses:
            key = object_key(address)
            holder = self._unsynced.pop(key, None) or self._holder(key)
            by_backend.setdefault(id(holder), (holder, []))[1].append(key)
        for backend, keys in by_backend.values():
            backend.sync(keys)

    def close(self) -> None:
        """Close the large backend and the small tier."""
        self._backend.close()
        if self._small is not None:
            self._small.close()

    def health(self) -> BackendHealth:
        """The large backend's health, unless the small tier is the one failing."""
        health = self._backend.health()
        if health.reachable and self._small is not None:
            small = self._small.health()
            if not small.reachable:
                return small
        return health


def _read_batch(small: SQLiteBlobBackend, batch: list[ContentAddress]) -> Iterator[bytes | None]:
    found = small.read_many([object_key(address) for address in batch])
    return (found.get(object_key(address)) for address in batch)


def _verdict(
    address: ContentAddress,
    expected_sha256: Digest | None,
    expected_size: int | None,
    actual: DualDigest,
) -> VerifyResult:
    """Compare the digests of the bytes read with what they should be."""
    problems = []
    # Compare hex, not values: ContentAddress and Digest are different dataclasses.
    if actual.blake3.hex != address.hex:
        problems.append(f"blake3 mismatch: expected {address.hex} got {actual.blake3.hex}")
    if expected_sha256 is not None and str(actual.sha256) != str(expected_sha256):
        problems.append(f"sha256 mismatch: expected {expected_sha256.hex} got {actual.sha256.hex}")
    if expected_size is not None and actual.size != expected_size:
        problems.append(f"size mismatch: expected {expected_size} got {actual.size}")
    problem = "; ".join(problems) if problems else None
    return VerifyResult(address, problem is None, problem, actual)


def _seekable(source: Iterable[bytes] | BinaryIO) -> bool:
    """Whether the source is a file that can be read again (a pipe or a request body cannot)."""
    seekable = getattr(source, "seekable", None)
    return callable(seekable) and bool(seekable())


def _check_expected(digests: DualDigest, expected: ContentAddress | None) -> None:
    """Raise DigestMismatchError if the bytes are not the blob the caller named."""
    if expected is not None and digests.content_address.hex != expected.hex:
        raise DigestMismatchError(
            f"the bytes sent for {expected} hash to {digests.content_address}; nothing was stored"
        )
