"""Blobs onto the server: hash locally, ask which are missing, upload only those, a few at once.

Each file is hashed once on the client (BLAKE3 and SHA-256 in one pass: `digest_here` of a
small file read whole, `digest_stream_here` of a larger one, or `digest_stream` on two cores
if it is the only one), HASH_THREADS files at once, the larger ones first, and checked
unchanged by that read (`tree.check_unchanged`). A push of a new version hashes with BLAKE3
alone (`sha256=False`): the server needs only the addresses, and most of a CI push's blobs are
ones it has; the SHA-256 of a large file it lacks is computed as the file is sent.
`POST /v1/blobs/missing` is asked in batches of MISSING_BATCH addresses; the server holds the
blobs it has for a later publish. The missing blobs of at most `batch.MAX_BLOB` bytes are sent
many to a request (`POST /v1/blobs/batch`, up to BATCH_BYTES or BATCH_BLOBS each: one request,
one hold and one durable write on the server instead of one per blob), the larger ones one by
one with `PUT /v1/blobs/<address>`, streamed from disk in CHUNK pieces with a Content-Length,
never read whole into memory; UPLOAD_THREADS requests are in flight at most. A batch is
idempotent, so it is tried again on a connection error or a 5xx answer as a PUT is. Every file
is hashed again as it is sent, and its last piece (a small one: its frame) is held back until
the file is known unchanged and its bytes known to be those hashed: a file written to meanwhile
is refused (InvalidInputError) and the server, short of its Content-Length, stores nothing of
it. The SHA-256 the server answers for a blob sent alone must be the client's (an end-to-end
check of the server's hashing).
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from artifactstore import batch, tree
from artifactstore.errors import IntegrityError, InvalidInputError
from artifactstore.identity import (
    ContentAddress,
    Digest,
    DualDigest,
    blake3_stream,
    digest_here,
    digest_stream,
    digest_stream_here,
)
from artifactstore.remote.transport import Transport
from artifactstore.remote.values import field

MISSING_BATCH = 10_000
UPLOAD_THREADS = 4
HASH_THREADS = 2
CHUNK = 1 << 20
BATCH_BYTES = 8 << 20
BATCH_BLOBS = 1000


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file on disk to send: its package path, where it is, what the scan saw, its digests."""

    path: str
    source: str
    size: int
    mtime_ns: int
    executable: bool
    address: ContentAddress
    sha256: str | None
    """None for a file hashed for its address alone (`hash_files`): `put_blob` hashes a large
    one as it sends it."""

    def file_json(self) -> dict[str, object]:
        """The file as a publish or add names it."""
        return {
            "content_address": str(self.address),
            "executable": self.executable,
            "path": self.path,
        }


def hash_files(found: Sequence[tree.TreeFile], sha256: bool = True) -> list[LocalFile]:
    """Hash scanned files with both digests, or BLAKE3 alone without sha256, HASH_THREADS
    files at once; in found's order.

    Hashing releases the GIL, and a small file's Python work overlaps another's reads. The
    files larger than batch.MAX_BLOB start first, the largest first, so the last to finish is
    a small one; when there are two or more, each is hashed on its own thread alone.
    """
    large = sorted(
        (n for n, item in enumerate(found) if item.size > batch.MAX_BLOB),
        key=lambda n: found[n].size,
        reverse=True,
    )
    digest: Callable[[BinaryIO], DualDigest | tuple[Digest, int]] = (
        (digest_stream_here if len(large) > 1 else digest_stream) if sha256 else blake3_stream
    )
    if len(found) < 2:
        return [hash_file(item, digest) for item in found]
    order = large + [n for n, item in enumerate(found) if item.size <= batch.MAX_BLOB]
    with ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="artifactstore-hash") as pool:
        hashing = {n: pool.submit(hash_file, found[n], digest) for n in order}
        try:
            return [hashing[n].result() for n in range(len(found))]
        except BaseException:  # a file that changed, an interrupt: hash no more
            pool.shutdown(cancel_futures=True)
            raise


def hash_file(
    found: tree.TreeFile,
    digest: Callable[[BinaryIO], DualDigest | tuple[Digest, int]] = digest_stream,
) -> LocalFile:
    """Hash one scanned file by digest (both digests, or BLAKE3 alone: `blake3_stream`);
    InvalidInputError if it changed meanwhile.

    A file of at most batch.MAX_BLOB bytes is read whole and hashed on this thread: the
    threads of `hash_files` are the parallelism, and a hand-off per file only waited. A
    larger one is read in chunks.
    """
    if found.size > batch.MAX_BLOB:
        return _hash(found.path, found.source, found.size, found.mtime_ns, found.executable, digest)
    data = tree.read_whole(found)
    if digest is blake3_stream:  # BLAKE3 alone, as for the large files
        blake3_digest, sha256 = blake3_stream(data)[0], None
    else:
        digests = digest_here(data)
        blake3_digest, sha256 = digests.blake3, digests.sha256.hex
    address = ContentAddress.of(blake3_digest)
    return LocalFile(
        found.path, found.source, found.size, found.mtime_ns, found.executable, address, sha256
    )


def hash_path(path: str, source: str | os.PathLike[str], executable: bool | None) -> LocalFile:
    """Hash one file given by its location; executable None takes the file's own bit."""
    location = os.fspath(source)
    try:
        info = Path(location).stat()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {location!r}: {exc.strerror}") from exc
    own = tree.is_executable(info.st_mode)
    chosen = own if executable is None else executable
    return _hash(path, location, info.st_size, info.st_mtime_ns, chosen, digest_stream)


def _hash(
    path: str,
    source: str,
    size: int,
    mtime_ns: int,
    executable: bool,
    digest: Callable[[BinaryIO], DualDigest | tuple[Digest, int]],
) -> LocalFile:
    with tree.open_file(source) as handle:
        digests = digest(handle)
        if isinstance(digests, DualDigest):
            blake3_digest, sha256, read = digests.blake3, digests.sha256.hex, digests.size
        else:
            (blake3_digest, read), sha256 = digests, None
        tree.check_unchanged(source, handle, read, size, mtime_ns)
    address = ContentAddress.of(blake3_digest)
    return LocalFile(path, source, size, mtime_ns, executable, address, sha256)


def missing(transport: Transport, addresses: Iterable[ContentAddress]) -> set[str]:
    """The addresses (text) the server lacks, asked in batches of MISSING_BATCH."""
    unique = sorted({str(a) for a in addresses})
    lacking: set[str] = set()
    for start in range(0, len(unique), MISSING_BATCH):
        batch = unique[start : start + MISSING_BATCH]
        answer = transport.call("POST", "/v1/blobs/missing", body={"blobs": batch})
        found = field(answer, "missing", list, "POST /v1/blobs/missing")
        lacking.update(str(item) for item in found)
    return lacking


def upload(
    transport: Transport,
    files: Sequence[LocalFile],
    wanted: set[str],
    settled: Callable[[LocalFile], None] | None = None,
) -> int:
    """Upload the blob of every file whose address is in wanted, once each; the count sent.

    settled hears each file once its blob is on the server (present already, or sent).
    """
    groups: dict[str, list[LocalFile]] = {}
    for item in files:
        if str(item.address) in wanted:
            groups.setdefault(str(item.address), []).append(item)
        elif settled is not None:
            settled(item)
    # The large blobs first: the longest requests start soonest.
    stop = threading.Event()
    jobs: list[tuple[Callable[[], None], list[LocalFile]]] = [
        (functools.partial(put_blob, transport, group[0], stop), group)
        for group in groups.values()
        if group[0].size > batch.MAX_BLOB
    ]
    for chunk in _batches([g for g in groups.values() if g[0].size <= batch.MAX_BLOB]):
        members = [item for group in chunk for item in group]
        job = functools.partial(put_batch, transport, [g[0] for g in chunk], stop)
        jobs.append((job, members))
    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="artifactstore-upload") as pool:
        futures = {pool.submit(job): members for job, members in jobs}
        try:
            for future in as_completed(futures):
                future.result()
                if settled is not None:
                    for item in futures[future]:
                        settled(item)
        except BaseException:
            # The requests under way end after their current piece, cut short of their
            # Content-Length: the server stores nothing of them.
            stop.set()
            pool.shutdown(cancel_futures=True)
            raise
    return len(groups)


def _batches(groups: list[list[LocalFile]]) -> Iterator[list[list[LocalFile]]]:
    """The groups in runs of at most BATCH_BLOBS blobs and BATCH_BYTES bytes (at least one)."""
    run: list[list[LocalFile]] = []
    size = 0
    for group in groups:
        if run and (len(run) == BATCH_BLOBS or size + group[0].size > BATCH_BYTES):
            yield run
            run, size = [], 0
        run.append(group)
        size += group[0].size
    if run:
        yield run


def put_batch(
    transport: Transport, items: list[LocalFile], stop: threading.Event | None = None
) -> None:
    """Send small files' bytes as their blobs in one batch; check the server took them all.

    A stop set meanwhile ends the body before the next file (StoppedError)."""
    entries = [batch.Entry(item.address, item.size) for item in items]
    index = batch.index_line(entries)
    length = len(index) + sum(len(e.frame_line()) + e.size for e in entries)
    route = "/v1/blobs/batch"
    answer = transport.send(
        "POST",
        route,
        body=lambda: _batch_body(index, items, stop),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)},
        idempotent=True,
    )
    try:
        document = answer.json()
    except ValueError as exc:
        raise IntegrityError(f"the server answered POST {route} with no JSON") from exc
    taken = {
        str(address)
        for key in ("stored", "present")
        for address in field(document, key, list, f"POST {route}")
    }
    sent = {str(item.address) for item in items}
    if taken != sent:
        raise IntegrityError(
            f"the server took {len(taken & sent)} of the {len(sent)} blobs of a batch "
            f"(first missing: {min(sent - taken, default='none')})"
        )


def _batch_body(
    index: bytes, items: list[LocalFile], stop: threading.Event | None
) -> Iterator[bytes]:
    """The batch's index, then each file's frame once its bytes are read and checked."""
    yield index
    for item in items:
        _check_not_stopped(stop)
        with tree.open_file(item.source) as handle:
            data = handle.read(batch.MAX_BLOB + 1)
            tree.check_unchanged(item.source, handle, len(data), item.size, item.mtime_ns)
        if blake3.blake3(data).hexdigest() != item.address.hex:
            raise _changed(item)
        yield batch.Entry(item.address, item.size).frame_line() + data


def put_blob(transport: Transport, item: LocalFile, stop: threading.Event | None = None) -> None:
    """Send one file's bytes as its blob; check what the server says it stored.

    A stop set meanwhile ends the body after its current piece (StoppedError)."""
    route = f"/v1/blobs/{item.address}"
    sent = _Sent(item, stop)
    answer = transport.send(
        "PUT",
        route,
        body=sent.body,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(item.size)},
    )
    try:
        document = answer.json()
    except ValueError as exc:
        raise IntegrityError(f"the server answered PUT {route} with no JSON") from exc
    sha256 = field(document, "sha256", str, f"PUT {route}").removeprefix("sha256:")
    size = field(document, "size", int, f"PUT {route}")
    ours = item.sha256 or sent.sha256
    if (sha256, size) != (ours, item.size):
        raise IntegrityError(
            f"the server stored {item.address} as {size} bytes with sha256:{sha256}; "
            f"{item.source!r} has {item.size} bytes with sha256:{ours}"
        )


class _Sent:
    """A file's bytes as a request body, made afresh for each attempt; the SHA-256 of the
    last body sent whole, when the file was not hashed with it before."""

    def __init__(self, item: LocalFile, stop: threading.Event | None) -> None:
        self._item = item
        self._stop = stop
        self.sha256: str | None = None

    def body(self) -> Iterator[bytes]:
        """The file's bytes in CHUNK pieces, the last held back until they are known
        unchanged (the bytes hashed to its address)."""
        item = self._item
        sha256 = None if item.sha256 else hashlib.sha256()
        with tree.open_file(item.source) as handle:
            hasher = blake3.blake3()
            read = 0
            held = b""
            while chunk := handle.read(CHUNK):
                _check_not_stopped(self._stop)
                if held:
                    yield held
                held = chunk
                read += len(chunk)
                hasher.update(chunk)
                if sha256 is not None:
                    sha256.update(chunk)
            tree.check_unchanged(item.source, handle, read, item.size, item.mtime_ns)
            if hasher.hexdigest() != item.address.hex:
                raise _changed(item)
            if sha256 is not None:
                self.sha256 = sha256.hexdigest()
            if held:
                yield held


class StoppedError(Exception):
    """An upload given up because another of the same push failed (or was interrupted)."""


def _check_not_stopped(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise StoppedError


def _changed(item: LocalFile) -> InvalidInputError:
    return InvalidInputError(
        f"{item.source!r} changed while reading it (its bytes are no longer "
        f"{item.address}); it was not uploaded: try again once it is complete"
    )
