"""The storage SPI: what a blob backend promises, and the keys it stores bytes under.

A *backend* stores opaque bytes under *keys* and never interprets them. A key is derived from a
digest as `<algorithm>/<hex[0:2]>/<hex[2:4]>/<hex>`; the two fan-out levels keep directories
small. `check_key` is the SPI boundary: every backend calls it before touching its medium, so a
key that could escape the backend's root never reaches a filesystem call. A *staged object* is
a write in progress that no reader can see until `commit` publishes it under a key in one step,
so no half-written blob is ever visible. Backends translate every `OSError` (and the small-blob
tier's `sqlite3.Error`) into `StorageError` at one edge, `storage_errors`, which code above the
backends may use for its own file I/O too.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import BinaryIO, Protocol, Self

from artifactstore.errors import (
    BlobNotFoundError,
    InvalidAddressError,
    InvalidInputError,
    StorageError,
)
from artifactstore.identity import Digest, algorithm

_KEY = re.compile(r"([a-z0-9]+)/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]+)")


@dataclass(frozen=True, slots=True)
class StorageReceipt:
    """Proof that a backend holds an object: where, how large, and since when (UTC)."""

    backend_id: str
    key: str
    size: int
    stored_at: datetime


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a backend knows about one stored object without reading it."""

    key: str
    size: int
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """Whether a backend can be used right now, with free and total bytes when it knows them."""

    backend_id: str
    reachable: bool
    detail: str
    free_bytes: int | None
    total_bytes: int | None


def object_key(address: Digest) -> str:
    """Return the key a digest's object is stored under: '<algo>/<hex[0:2]>/<hex[2:4]>/<hex>'."""
    hex_digits = address.hex
    return f"{address.algorithm}/{hex_digits[0:2]}/{hex_digits[2:4]}/{hex_digits}"


def check_key(key: str) -> str:
    """Return key unchanged if it has the layout `object_key` produces; else InvalidAddressError."""
    if key.startswith("/") or "\\" in key or "\x00" in key or ".." in key.split("/"):
        raise InvalidAddressError(f"storage key {key!r} could escape the backend root")
    match = _KEY.fullmatch(key)
    if match is None:
        raise InvalidAddressError(
            f"storage key {key!r} is not '<algorithm>/<hex[0:2]>/<hex[2:4]>/<lowercase hex>'"
        )
    name, first, second, hex_digits = match.groups()
    try:
        expected_length = algorithm(name).hex_length
    except InvalidAddressError as exc:
        raise InvalidAddressError(f"storage key {key!r}: {exc}") from None
    if len(hex_digits) != expected_length:
        raise InvalidAddressError(
            f"storage key {key!r}: {name} needs {expected_length} hex digits, got {len(hex_digits)}"
        )
    if (first, second) != (hex_digits[0:2], hex_digits[2:4]):
        raise InvalidAddressError(f"storage key {key!r}: fan-out does not match the digest")
    return key


def check_range(key: str, start: int, end: int | None) -> None:
    """Accept [start, end) as a range to read of key; InvalidInputError if it runs backwards."""
    if start < 0 or (end is not None and end < start):
        raise InvalidInputError(f"invalid byte range [{start}, {end}) for {key!r}")


@contextmanager
def storage_errors(what: str, *, missing: str | None = None) -> Iterator[None]:
    """Turn an OSError or sqlite3.Error raised inside into StorageError('cannot <what>: ...').

    The error is chained as the cause. With missing given, a FileNotFoundError or
    NotADirectoryError (there is no such object) becomes BlobNotFoundError(missing) instead.
    """
    try:
        yield
    except OSError as exc:
        if missing is not None and isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise BlobNotFoundError(missing) from exc
        # strerror drops the paths str(exc) shows; keep those `what` does not name already
        # (os.link fails naming two, and either may be the one at fault).
        paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
        named = "".join(f" ({path})" for path in paths if path not in what)
        raise StorageError(f"cannot {what}: {exc.strerror or exc}{named}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"cannot {what}: {exc}") from exc


class StagedObject(Protocol):
    """A write in progress; invisible under any key until `commit` publishes it."""

    def write(self, chunk: bytes) -> None:
        """Append chunk to the staged bytes; StorageError if the backend fails."""

    def commit(self, key: str, *, durable: bool = True) -> tuple[StorageReceipt, bool]:
        """Publish the staged bytes under key atomically; return the receipt and whether the key
        already existed.

        If the key already existed, the staged bytes are discarded, the existing object is left
        untouched and the receipt describes it. With durable=True the object and its directory
        entries are on stable storage when this returns (also when it already existed); with
        durable=False they are not until `StorageBackend.sync`. The staged object is finished
        afterwards, whether commit succeeded or raised. Raises InvalidAddressError for a bad key
        (before any I/O) and StorageError if the backend fails; then nothing is visible under key
        that was not there before.
        """

    def abort(self) -> None:
        """Discard the staged bytes; idempotent, and a no-op after commit."""

    def __enter__(self) -> Self:
        """Return self; leaving the block without commit aborts."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Abort unless commit was called."""


class StorageBackend(Protocol):
    """Bytes keyed by digest; never interprets them, never leaves half an object visible.

    Every method validates its key with `check_key` before any I/O (InvalidAddressError) and
    raises StorageError, chaining the OSError, when the medium fails.
    """

    @property
    def backend_id(self) -> str:
        """The name this backend is registered and recorded under, e.g. 'local'."""

    def stage(self) -> StagedObject:
        """Start a write; the bytes become visible only when the staged object is committed."""

    def put(
        self, key: str, chunks: Iterable[bytes], *, durable: bool = True
    ) -> tuple[StorageReceipt, bool]:
        """Store the chunks under key, as `stage`, `write` each chunk, `commit`.

        Idempotent: an existing key is left as is and reported with True. If chunks raises, the
        error propagates and nothing is visible under key.
        """

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Stream the object's bytes [start, end); end None means to the end of the object.

        A range past the end is clamped (possibly to nothing). Raises BlobNotFoundError if the
        key is absent and InvalidInputError if start is negative or end is before start.
        """

    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object under key, or return None if there is none."""

    def delete(self, key: str) -> None:
        """Remove the object under key; a missing key is not an error. Not made durable."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove the objects under keys, as `delete` each; one transaction or request for
        many where the medium allows (garbage collection removes pages of 500)."""

    def iter_keys(self) -> Iterator[str]:
        """Yield every stored key in sorted order; staged objects are not listed."""

    def sync(self, keys: Iterable[str]) -> None:
        """Make objects committed with durable=False durable; BlobNotFoundError if one is absent.

        Idempotent; cheaper than durable commits one by one because each directory is synced
        once however many of the keys it holds.
        """

    def health(self) -> BackendHealth:
        """Report whether the backend is usable now; never raises for an unreachable medium."""

    def close(self) -> None:
        """Write what is pending and release connections and handles; idempotent."""
