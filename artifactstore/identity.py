"""Content addressing: digests, content addresses, and the one-pass dual hash.

A *digest* is an algorithm name and the lowercase hex of its output. A *content address* is
the primary (BLAKE3) digest of a blob written `blake3:<64 hex>`; it names the blob everywhere.
SHA-256 is computed in the same pass and recorded beside it for SHA-256 ecosystems (OCI).
This module is pure: it hashes the bytes it is given and touches no files or databases.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol, TypeVar

import blake3

from artifactstore.errors import InvalidAddressError, InvalidInputError

PRIMARY_ALGORITHM = "blake3"
CHUNK_SIZE = 1 << 20
"""Bytes read per chunk when hashing a file object; large enough that hashing releases the GIL."""

_PARALLEL_THRESHOLD = 64 * 1024
"""Chunks at least this large hash SHA-256 on a worker thread while BLAKE3 runs on the caller's."""

_MAX_BACKLOG = 4
"""Chunks queued for the SHA-256 thread before update() waits; bounds memory per hasher."""


class Hasher(Protocol):
    """The hashlib-style interface every registered algorithm provides."""

    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Algorithm:
    """A registered digest algorithm: its name, a hasher factory and its hex length."""

    name: str
    new: Callable[[], Hasher]
    hex_length: int


_ALGORITHMS: dict[str, Algorithm] = {}


def register_algorithm(name: str, new: Callable[[], Hasher], hex_length: int) -> None:
    """Make a digest algorithm known to parsers; one call per algorithm."""
    _ALGORITHMS[name] = Algorithm(name, new, hex_length)


def algorithm(name: str) -> Algorithm:
    """Return the registered algorithm called name; InvalidAddressError if unknown."""
    try:
        return _ALGORITHMS[name]
    except KeyError:
        known = ", ".join(sorted(_ALGORITHMS))
        raise InvalidAddressError(f"unknown digest algorithm {name!r} (known: {known})") from None


register_algorithm("blake3", blake3.blake3, 64)
register_algorithm("sha256", hashlib.sha256, 64)

_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True, slots=True, eq=False)
class Digest:
    """A digest: algorithm name and lowercase hex; str() gives '<algorithm>:<hex>'.

    A digest equals another digest or a text with the same '<algorithm>:<hex>', so
    `manifest.digest == "blake3:..."` holds (a ContentAddress equals the Digest it names).
    """

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        expected = algorithm(self.algorithm).hex_length
        if len(self.hex) != expected or not _HEX.fullmatch(self.hex):
            raise InvalidAddressError(
                f"{self.algorithm} digest must be {expected} lowercase hex digits, got {self.hex!r}"
            )

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Digest | str):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse '<algorithm>:<hex>'; InvalidAddressError names the text if it is malformed."""
        name, colon, hex_digits = text.partition(":")
        if not colon:
            raise InvalidAddressError(f"digest {text!r} has no ':' between algorithm and hex")
        try:
            return cls(name, hex_digits)
        except InvalidAddressError as exc:
            raise InvalidAddressError(f"invalid digest {text!r}: {exc}") from None


@dataclass(frozen=True, slots=True, eq=False)
class ContentAddress(Digest):
    """The name of a blob: its primary digest, written 'blake3:<64 hex>'."""

    def __post_init__(self) -> None:
        if self.algorithm != PRIMARY_ALGORITHM:
            raise InvalidAddressError(
                f"content address must use {PRIMARY_ALGORITHM}, got {self.algorithm!r}"
            )
        Digest.__post_init__(self)

    @classmethod
    def of(cls, digest: Digest) -> ContentAddress:
        """The content address a BLAKE3 digest names; InvalidAddressError for another
        algorithm's. Its hex was checked when the digest was made: not again (a regex match
        per file was 8 % of a server's batch download requests, py-spy)."""
        if digest.algorithm != PRIMARY_ALGORITHM:
            raise InvalidAddressError(
                f"content address must use {PRIMARY_ALGORITHM}, got {digest.algorithm!r}"
            )
        return _computed(cls, PRIMARY_ALGORITHM, digest.hex)

    @classmethod
    def parse(cls, text: str) -> ContentAddress:
        """Parse 'blake3:<hex>'; InvalidAddressError names the text if it is malformed."""
        digest = Digest.parse(text)
        try:
            return cls(digest.algorithm, digest.hex)
        except InvalidAddressError as exc:
            raise InvalidAddressError(f"invalid content address {text!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class DualDigest:
    """Both digests of one byte stream, and its length."""

    blake3: Digest
    sha256: Digest
    size: int

    @property
    def content_address(self) -> ContentAddress:
        """The content address naming these bytes."""
        return ContentAddress.of(self.blake3)


_D = TypeVar("_D", bound=Digest)


def _computed(kind: type[_D], name: str, hex_digits: str) -> _D:
    """A digest of hex that a hasher here just returned: valid by construction, so not
    validated again (a regex match per digest, several per file, was a measurable part of
    a push of small files)."""
    digest = object.__new__(kind)
    object.__setattr__(digest, "algorithm", name)
    object.__setattr__(digest, "hex", hex_digits)
    return digest


_worker_pool: ThreadPoolExecutor | None = None


def _forget_pool_after_fork() -> None:
    # A forked child inherits the pool object but not its threads: work submitted to it would
    # wait forever. The child starts a pool of its own on first use.
    global _worker_pool
    _worker_pool = None


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _pool() -> ThreadPoolExecutor:
    global _worker_pool
    if _worker_pool is None:
        _worker_pool = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 2, thread_name_prefix="artifactstore-sha256"
        )
    return _worker_pool


class DualHasher:
    """Feed chunks once, get BLAKE3, SHA-256 and the size.

    Large chunks are hashed on two cores: BLAKE3 on the caller's thread, SHA-256 (the slower)
    drained in order from a short backlog by a pool thread (both release the GIL). A chunk
    passed to update() must not be mutated afterwards; `bytes` never is.
    """

    __slots__ = ("_backlog", "_blake3", "_draining", "_error", "_ready", "_sha256", "_size")

    def __init__(self) -> None:
        self._blake3 = blake3.blake3()
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._backlog: deque[bytes] = deque()
        self._ready = threading.Condition()
        self._draining = False
        self._error: BaseException | None = None

    def update(self, chunk: bytes) -> None:
        """Add the next chunk of the stream."""
        # BLAKE3 first: a chunk of the wrong type fails here, on the caller's thread.
        self._blake3.update(chunk)
        self._size += len(chunk)
        with self._ready:
            if not self._draining and len(chunk) < _PARALLEL_THRESHOLD:
                self._sha256.update(chunk)
                return
            # A backlog, not a wait per chunk: waking in lockstep cost a third of the
            # throughput on a busy machine (the digest micro-benchmarks in benchmarks/micro.py).
            while len(self._backlog) >= _MAX_BACKLOG and self._error is None:
                self._ready.wait()
            self._backlog.append(chunk)
            if not self._draining:
                try:
                    _pool().submit(self._drain)
                except BaseException as exc:  # a pool shut down (at interpreter exit)
                    self._error = exc
                    raise
                # Set once a drain is on its way: result() would otherwise wait for none.
                self._draining = True

    def result(self) -> DualDigest:
        """Return the digests of everything fed so far."""
        with self._ready:
            while self._draining:
                self._ready.wait()
            if self._error is not None:
                raise self._error
        return DualDigest(
            _computed(Digest, "blake3", self._blake3.hexdigest()),
            _computed(Digest, "sha256", self._sha256.hexdigest()),
            self._size,
        )

    def _drain(self) -> None:
        # Runs on a pool thread, one at a time per hasher, and never blocks on the caller, so
        # hashers sharing the pool cannot deadlock; it stops when the backlog is empty. It
        # stops draining under the same hold of the lock that found the backlog empty: a chunk
        # update() appends after that starts a new drain, and none is appended to a drain that
        # is stopping (that chunk was once thrown away, and the SHA-256 came out wrong).
        try:
            while True:
                with self._ready:
                    if not self._backlog:
                        self._draining = False
                        self._ready.notify_all()
                        return
                    chunk = self._backlog[0]
                self._sha256.update(chunk)
                with self._ready:
                    self._backlog.popleft()
                    self._ready.notify_all()
        except BaseException as exc:
            with self._ready:
                self._error = exc
                self._backlog.clear()
                self._draining = False
                self._ready.notify_all()


def iter_chunks(
    source: bytes | Iterable[bytes] | BinaryIO, chunk_size: int = CHUNK_SIZE
) -> Iterable[bytes]:
    """Yield a binary file object in chunks, a bytes object whole, or an iterable's chunks."""
    if isinstance(source, bytes):
        # Iterating bytes would yield integers.
        yield source
        return
    read = getattr(source, "read", None)
    if read is not None:
        chunks: Iterable[object] = iter(lambda: read(chunk_size), b"")
    elif isinstance(source, Iterable):
        chunks = source
    else:
        raise InvalidInputError(
            f"cannot read bytes from a {type(source).__name__}; give bytes, a binary file "
            "object or an iterable of bytes"
        )
    for chunk in chunks:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidInputError(
                f"expected bytes from the source, got {type(chunk).__name__} "
                "(is the file open in text mode?)"
            )
        if chunk:
            yield chunk if isinstance(chunk, bytes) else bytes(chunk)


def digest_stream(source: bytes | Iterable[bytes] | BinaryIO) -> DualDigest:
    """Hash a binary file object or an iterable of bytes in one pass with both algorithms."""
    if isinstance(source, bytes) and len(source) < _PARALLEL_THRESHOLD:
        # Small bytes hash on this thread anyway: no hasher, lock or pool to set up.
        return digest_here(source)
    hasher = DualHasher()
    for chunk in iter_chunks(source):
        hasher.update(chunk)
    return hasher.result()


def digest_here(data: bytes) -> DualDigest:
    """Both digests of bytes held whole, on the caller's thread: for callers that hash many
    small files on several threads at once, where handing SHA-256 to the pool only waits."""
    return DualDigest(
        _computed(Digest, "blake3", blake3.blake3(data).hexdigest()),
        _computed(Digest, "sha256", hashlib.sha256(data).hexdigest()),
        len(data),
    )


def digest_stream_here(source: BinaryIO) -> DualDigest:
    """digest_stream of a binary file object, both digests on the caller's thread: for callers
    that hash several large files on several threads at once, where each chunk's hand-off to
    the SHA-256 pool cost a quarter of the time (both cores are busy anyway)."""
    blake3_hasher, sha256_hasher, size = blake3.blake3(), hashlib.sha256(), 0
    for chunk in iter_chunks(source):
        blake3_hasher.update(chunk)
        sha256_hasher.update(chunk)
        size += len(chunk)
    return DualDigest(
        _computed(Digest, "blake3", blake3_hasher.hexdigest()),
        _computed(Digest, "sha256", sha256_hasher.hexdigest()),
        size,
    )


def blake3_stream(source: bytes | BinaryIO) -> tuple[Digest, int]:
    """The BLAKE3 digest of bytes or a binary file object, on the caller's thread, and its
    length: the content address alone, for a caller that needs no SHA-256 (it finds the stored
    blob by its address and takes the SHA-256 recorded for it, or leaves it to the server)."""
    hasher, size = blake3.blake3(), 0
    for chunk in iter_chunks(source):
        hasher.update(chunk)
        size += len(chunk)
    return _computed(Digest, "blake3", hasher.hexdigest()), size


def digest_bytes(data: bytes, algorithm_name: str = PRIMARY_ALGORITHM) -> Digest:
    """Digest one in-memory buffer with a single registered algorithm."""
    return digest_chunks([data], algorithm_name)


def digest_chunks(pieces: Iterable[bytes], algorithm_name: str = PRIMARY_ALGORITHM) -> Digest:
    """Digest bytes given in pieces with a single registered algorithm."""
    hasher = algorithm(algorithm_name).new()
    for piece in pieces:
        hasher.update(piece)
    return Digest(algorithm_name, hasher.hexdigest())
