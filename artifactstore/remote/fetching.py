"""A version's small files fetched many to a request (`POST .../blobs`), a few batches ahead.

A pull or verify of many small files paid one request each, and the per-request cost (a new
connection, a token check, a look-up) was most of its time. Files of at most `batch.MAX_BLOB`
bytes are grouped instead, in the order they are asked for, into batches of up to
BATCH_BYTES or BATCH_BLOBS distinct blobs. Opening a file of a batch fetches that batch and
starts the next AHEAD ones on their own threads; each blob's bytes are kept until every file
naming it has been opened, so memory holds a few batches, not the version. The bytes are not
judged here: the caller verifies each file (pull's VerifyingReader, verify's digests). A batch
that fails (cut short, refused, a server without the route) is not tried again as a whole:
its files are then fetched one by one, each with its own resumes and its own error.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import BinaryIO, Self

import httpx

from artifactstore import batch
from artifactstore.errors import ArtifactStoreError
from artifactstore.records import StoredFile
from artifactstore.remote.transport import Transport

BATCH_BYTES = 4 << 20
BATCH_BLOBS = 1000
AHEAD = 2
CHUNK = 1 << 16


class SmallBlobs:
    """The small files of one version, fetched in batches; see the module docstring."""

    def __init__(
        self,
        transport: Transport,
        route: str,
        files: Iterable[StoredFile],
        download: Callable[[StoredFile], BinaryIO],
    ) -> None:
        self._transport = transport
        self._route = f"{route}/blobs"
        self._download = download
        self._batch_of: dict[str, int] = {}
        self._wanted: dict[str, int] = {}
        self._batches: list[list[batch.Entry]] = []
        self._plan(files)
        self._fetches: dict[int, Future[dict[str, bytes] | None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(AHEAD + 1, thread_name_prefix="artifactstore-fetch")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def open(self, stored: StoredFile) -> BinaryIO:
        """The bytes of stored: from its batch if it is small and the batch came, else alone."""
        address = str(stored.content_address)
        number = self._batch_of.get(address)
        if number is None:
            return self._download(stored)
        with self._lock:
            for ahead in range(number, min(number + AHEAD + 1, len(self._batches))):
                if ahead not in self._fetches:
                    self._fetches[ahead] = self._pool.submit(self._fetch, ahead)
            fetch = self._fetches[number]
        blobs = fetch.result()
        if blobs is None:
            return self._download(stored)
        with self._lock:
            self._wanted[address] -= 1
            data = blobs[address] if self._wanted[address] else blobs.pop(address)
        return io.BytesIO(data)

    def _plan(self, files: Iterable[StoredFile]) -> None:
        """Group the distinct small blobs of files into batches, in order; count each one's
        files."""
        size = 0
        for stored in files:
            address = str(stored.content_address)
            if stored.size > batch.MAX_BLOB:
                continue
            self._wanted[address] = self._wanted.get(address, 0) + 1
            if address in self._batch_of:
                continue
            current = self._batches[-1] if self._batches else None
            if current is None or len(current) >= BATCH_BLOBS or size + stored.size > BATCH_BYTES:
                current, size = [], 0
                self._batches.append(current)
            current.append(batch.Entry(stored.content_address, stored.size))
            size += stored.size
            self._batch_of[address] = len(self._batches) - 1

    def _fetch(self, number: int) -> dict[str, bytes] | None:
        """The blobs of batch number by address, or None if the batch failed."""
        entries = self._batches[number]
        body = json.dumps({"blobs": [str(e.address) for e in entries]}).encode()
        try:
            response = self._transport.send(
                "POST",
                self._route,
                body=lambda: body,
                headers={"Content-Type": "application/json"},
                stream=True,
                scope="read",
            )
            try:
                answer = io.BufferedReader(_Body(response.iter_raw()), CHUNK)
                return {str(entry.address): data for entry, data in batch.frames(answer, entries)}
            finally:
                response.close()
        except (ArtifactStoreError, httpx.TransportError):
            return None


class _Body(io.RawIOBase):
    """An answer's body, read as it arrives, as a raw binary stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill buffer with the next bytes; 0 at the end of the body."""
        if not self._pending:
            self._pending = memoryview(next(self._chunks, b""))
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count
