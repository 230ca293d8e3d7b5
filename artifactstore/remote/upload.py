"""Blobs onto the server: hash locally, ask which are missing, upload only those, a few at once.

Each file is hashed once on the client (BLAKE3 and SHA-256 in one pass, `digest_stream`) and
checked unchanged by that read (`tree.check_unchanged`). `POST /v1/blobs/missing` is asked in
batches of MISSING_BATCH addresses; the server holds the blobs it has for a later publish.
Each missing blob is then sent with `PUT /v1/blobs/<address>` from UPLOAD_THREADS threads,
streamed from disk in CHUNK pieces with a Content-Length, never read whole into memory. The
file is hashed again as it is sent, and the last piece is held back until the file is known
unchanged and its bytes known to be those hashed: a file written to meanwhile is refused
(InvalidInputError) and the server, short of its Content-Length, stores nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import blake3

from artifactstore import tree
from artifactstore.errors import IntegrityError, InvalidInputError
from artifactstore.identity import ContentAddress, digest_stream
from artifactstore.remote.transport import Transport
from artifactstore.remote.values import field

MISSING_BATCH = 10_000
UPLOAD_THREADS = 4
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file on disk to send: its package path, where it is, what the scan saw, its digests."""

    path: str
    source: str
    size: int
    mtime_ns: int
    executable: bool
    address: ContentAddress
    sha256: str

    def file_json(self) -> dict[str, object]:
        """The file as a publish or add names it."""
        return {
            "content_address": str(self.address),
            "executable": self.executable,
            "path": self.path,
        }


def hash_file(found: tree.TreeFile) -> LocalFile:
    """Hash one scanned file with both digests; InvalidInputError if it changed meanwhile."""
    return _hash(found.path, found.source, found.size, found.mtime_ns, found.executable)


def hash_path(path: str, source: str | os.PathLike[str], executable: bool | None) -> LocalFile:
    """Hash one file given by its location; executable None takes the file's own bit."""
    location = os.fspath(source)
    try:
        info = Path(location).stat()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {location!r}: {exc.strerror}") from exc
    own = tree.is_executable(info.st_mode)
    chosen = own if executable is None else executable
    return _hash(path, location, info.st_size, info.st_mtime_ns, chosen)


def _hash(path: str, source: str, size: int, mtime_ns: int, executable: bool) -> LocalFile:
    with tree.open_file(source) as handle:
        digests = digest_stream(handle)
        tree.check_unchanged(source, handle, digests.size, size, mtime_ns)
    return LocalFile(
        path, source, size, mtime_ns, executable, digests.content_address, digests.sha256.hex
    )


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
    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="artifactstore-upload") as pool:
        futures = {pool.submit(put_blob, transport, group[0]): group for group in groups.values()}
        try:
            for future in as_completed(futures):
                future.result()
                if settled is not None:
                    for item in futures[future]:
                        settled(item)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return len(groups)


def put_blob(transport: Transport, item: LocalFile) -> None:
    """Send one file's bytes as its blob; check what the server says it stored."""
    route = f"/v1/blobs/{item.address}"
    answer = transport.send(
        "PUT",
        route,
        body=lambda: _body(item),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(item.size)},
    )
    try:
        document = answer.json()
    except ValueError as exc:
        raise IntegrityError(f"the server answered PUT {route} with no JSON") from exc
    sha256 = field(document, "sha256", str, f"PUT {route}").removeprefix("sha256:")
    size = field(document, "size", int, f"PUT {route}")
    if (sha256, size) != (item.sha256, item.size):
        raise IntegrityError(
            f"the server stored {item.address} as {size} bytes with sha256:{sha256}; "
            f"{item.source!r} has {item.size} bytes with sha256:{item.sha256}"
        )


def _body(item: LocalFile) -> Iterator[bytes]:
    """The file's bytes in CHUNK pieces, the last held back until they are known unchanged."""
    with tree.open_file(item.source) as handle:
        hasher = blake3.blake3()
        read = 0
        held = b""
        while chunk := handle.read(CHUNK):
            if held:
                yield held
            held = chunk
            read += len(chunk)
            hasher.update(chunk)
        tree.check_unchanged(item.source, handle, read, item.size, item.mtime_ns)
        if hasher.hexdigest() != item.address.hex:
            raise InvalidInputError(
                f"{item.source!r} changed while reading it (its bytes are no longer "
                f"{item.address}); it was not uploaded: try again once it is complete"
            )
        if held:
            yield held
