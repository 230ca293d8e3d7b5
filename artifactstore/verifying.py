"""A read-only file object that checks the BLAKE3 content address of what it delivers.

`ArtifactStore.get_file` returns one, so a caller reading to the end either got exactly the
recorded bytes or an IntegrityError, never silently different bytes.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import blake3

from artifactstore.errors import IntegrityError
from artifactstore.identity import ContentAddress


class VerifyingReader(io.RawIOBase):
    """Reads a blob stream and raises IntegrityError at end of file if its digest is wrong."""

    def __init__(self, stream: BinaryIO, address: ContentAddress, size: int, label: str) -> None:
        self._stream = stream
        self._address = address
        self._size = size
        self._label = label
        self._hasher = blake3.blake3()
        self._seen = 0
        self._checked = False

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill buffer from the blob; at end of stream, check what was read."""
        view = memoryview(buffer).cast("B")
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            count = readinto(view) or 0  # straight into the caller's buffer: no copy
        else:
            data = self._stream.read(len(view))
            count = len(data)
            view[:count] = data
        if not count:
            self._check()
            return 0
        self._hasher.update(view[:count])
        self._seen += count
        return count

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        actual = self._hasher.hexdigest()
        if self._seen != self._size or actual != self._address.hex:
            raise IntegrityError(
                f"{self._label}: expected {self._size} bytes with {self._address}, "
                f"read {self._seen} bytes with blake3:{actual}"
            )

    def close(self) -> None:
        """Close the underlying stream."""
        self._stream.close()
        super().close()
