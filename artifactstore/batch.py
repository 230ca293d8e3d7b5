"""Blobs many to a request: the body of a batch upload (`POST /v1/blobs/batch`), an index line
then one frame per blob, and the answer of a batch download (`POST .../blobs`), frames alone.

The body starts with one line of JSON, `{"blobs": [{"content_address": A, "size": N}, ...]}`,
naming every blob the request sends, so the server can hold them all at once before it writes
a byte (`liveness`). Each blob then follows, in the index's order, as a frame: the line
`blake3:<hex> <size>\\n` and exactly size bytes. Limits: each blob at most MAX_BLOB bytes, at
most MAX_BLOBS blobs and MAX_BYTES bytes of blobs per request; the body is read as it comes,
one frame (at most MAX_BLOB bytes) at a time, never whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

from artifactstore.errors import InvalidInputError, PackageFileNotFoundError
from artifactstore.identity import ContentAddress
from artifactstore.records import StoredFile

MAX_BLOB = 1 << 20
"""The largest blob a batch carries; larger ones are sent alone (PUT)."""
MAX_BLOBS = 10_000
"""The most blobs one batch carries."""
MAX_BYTES = 64 << 20
"""The most bytes of blobs one batch carries."""
MAX_INDEX = 2 << 20
"""The longest index line: MAX_BLOBS entries of about 100 bytes each fit."""
_MAX_HEADER = 100
"""The longest frame line: 'blake3:' and 64 hex digits, a space, a size, a newline."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One blob a batch announces: its address and its size."""

    address: ContentAddress
    size: int

    def frame_line(self) -> bytes:
        """The line that starts this blob's frame."""
        return frame_line(self.address, self.size)


def frame_line(address: ContentAddress, size: int) -> bytes:
    """The line that starts the frame of a blob of size bytes at address."""
    return f"{address} {size}\n".encode()


def index_line(entries: list[Entry]) -> bytes:
    """The first line of a batch body announcing entries."""
    blobs = [{"content_address": str(e.address), "size": e.size} for e in entries]
    return json.dumps({"blobs": blobs}, separators=(",", ":")).encode() + b"\n"


def read_index(source: BinaryIO | IO[bytes]) -> list[Entry]:
    """The entries a batch body announces; InvalidInputError if the index is malformed, names
    a blob twice, or goes beyond the limits."""
    line = source.readline(MAX_INDEX + 1)
    if not line.endswith(b"\n"):
        if len(line) > MAX_INDEX:
            raise InvalidInputError(f"the batch's index line is longer than {MAX_INDEX} bytes")
        raise InvalidInputError("the batch body ended before its index line did")
    try:
        blobs = json.loads(line)["blobs"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise InvalidInputError(
            "a batch body starts with a line of JSON: "
            '{"blobs": [{"content_address": ..., "size": ...}, ...]}'
        ) from None
    if not isinstance(blobs, list):
        raise InvalidInputError("the batch's index needs 'blobs': a list")
    if len(blobs) > MAX_BLOBS:
        raise InvalidInputError(f"{len(blobs)} blobs in one batch; the most is {MAX_BLOBS}")
    entries = [_entry(item) for item in blobs]
    if len({str(e.address) for e in entries}) != len(entries):
        raise InvalidInputError("the batch's index names a blob twice")
    total = sum(e.size for e in entries)
    if total > MAX_BYTES:
        raise InvalidInputError(f"{total} bytes of blobs in one batch; the most is {MAX_BYTES}")
    return entries


def _entry(item: object) -> Entry:
    if not isinstance(item, dict):
        raise InvalidInputError("each entry of the batch's index is {content_address, size}")
    address, size = item.get("content_address"), item.get("size")
    if not isinstance(address, str) or not isinstance(size, int) or isinstance(size, bool):
        raise InvalidInputError("each entry of the batch's index is {content_address, size}")
    if not 0 <= size <= MAX_BLOB:
        raise InvalidInputError(
            f"{address}: {size} bytes; a batch carries blobs of at most {MAX_BLOB} bytes"
        )
    return Entry(ContentAddress.parse(address), size)


def wanted_blobs(files: Iterable[StoredFile], wanted: object, label: str) -> list[StoredFile]:
    """The files of label (a version) whose blobs a batch download names, in its order;
    PackageFileNotFoundError for one it lacks, InvalidInputError for a body that is not
    `{"blobs": [content addresses]}` within the limits."""
    if not isinstance(wanted, list) or not all(isinstance(a, str) for a in wanted):
        raise InvalidInputError("the body needs 'blobs': a list of content addresses")
    if len(wanted) > MAX_BLOBS:
        raise InvalidInputError(f"{len(wanted)} blobs asked for at once; the most is {MAX_BLOBS}")
    by_address = {str(f.content_address): f for f in files}
    found: list[StoredFile] = []
    for address in wanted:
        stored = by_address.get(address)
        if stored is None:
            raise PackageFileNotFoundError(f"package {label} has no file {address}")
        if stored.size > MAX_BLOB:
            raise InvalidInputError(
                f"{address} is {stored.size} bytes; a batch carries blobs of at most "
                f"{MAX_BLOB} bytes (larger ones: GET .../file)"
            )
        found.append(stored)
    total = sum(f.size for f in found)
    if total > MAX_BYTES:
        raise InvalidInputError(f"{total} bytes asked for at once; the most is {MAX_BYTES}")
    return found


def frames(source: BinaryIO | IO[bytes], entries: list[Entry]) -> Iterator[tuple[Entry, bytes]]:
    """Each announced blob with its bytes, read frame by frame; InvalidInputError if a frame
    line is not the next entry's, the body ends inside a frame, or bytes follow the last one."""
    for entry in entries:
        line = source.readline(_MAX_HEADER)
        if line != entry.frame_line():
            if not line.endswith(b"\n"):
                raise InvalidInputError(f"the batch body ended before the frame of {entry.address}")
            raise InvalidInputError(
                f"the batch's frame {line[:_MAX_HEADER].decode(errors='replace')!r} is not the "
                f"next one its index names ({entry.address} {entry.size})"
            )
        yield entry, _exactly(source, entry)
    if source.read(1):
        raise InvalidInputError("the batch body goes on after its last frame")


def _exactly(source: BinaryIO | IO[bytes], entry: Entry) -> bytes:
    """The entry's size in bytes from source; InvalidInputError if it ends sooner."""
    pieces: list[bytes] = []
    left = entry.size
    while left > 0:
        piece = source.read(left)
        if not piece:
            raise InvalidInputError(
                f"the batch body ended inside the frame of {entry.address} "
                f"({entry.size - left} of {entry.size} bytes); it was not stored"
            )
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)
