"""One file's bytes from the server as a stream that resumes an interrupted body by itself.

`Download` is a raw binary reader over `GET .../file?path=P`. When the body stops early (the
connection drops, a read times out, the server closes before Content-Length), it asks again
from the byte it got to, `Range: bytes=<pos>-` with `If-Match: <content address>`, and goes
on; the caller reads one unbroken stream. The answer's ETag must be the content address the
manifest names, and a resumed answer must be 206 starting at that byte, so a resume never
splices in other bytes. It does not judge the bytes: wrap it in a VerifyingReader (BLAKE3 and
size) or hash it. A body still cut short after RESUMES tries is an IntegrityError: the server
cuts a file off when its own check of the stored bytes fails (api.stream_range).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import BinaryIO

import httpx

from artifactstore.errors import IntegrityError, ServerUnavailableError
from artifactstore.identity import ContentAddress
from artifactstore.records import StoredFile
from artifactstore.remote.transport import Transport

RESUMES = 5
CHUNK = 1 << 20


def download(transport: Transport, route: str, stored: StoredFile, label: str) -> BinaryIO:
    """The bytes of stored, a file of the version at route, buffered; see Download."""
    raw = Download(
        transport, f"{route}/file", stored.path, stored.content_address, stored.size, label
    )
    return io.BufferedReader(raw)


class Download(io.RawIOBase):
    """The bytes of one file of a package version, resumed across interruptions."""

    def __init__(
        self,
        transport: Transport,
        route: str,
        path: str,
        address: ContentAddress,
        size: int,
        label: str,
    ) -> None:
        self._transport = transport
        self._route = route
        self._path = path
        self._address = address
        self._size = size
        self._label = label
        self._position = 0
        self._resumes = 0
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._pending = b""
        self._done = False

    @property
    def resumes(self) -> int:
        """How many times the body was resumed with a Range request."""
        return self._resumes

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill buffer with the next bytes; 0 at the end of the file."""
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._done:
            self._pending = self._next_chunk()
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self._position += count
        return count

    def close(self) -> None:
        """Close the answer being read."""
        self._end_answer()
        super().close()

    def _next_chunk(self) -> bytes:
        """The next piece of the body, resuming when it broke off; b"" with _done at the end."""
        if self._chunks is None:
            self._chunks = self._open()
        try:
            chunk = next(self._chunks, None)
        except httpx.TransportError:
            chunk = None
        if chunk is not None:
            return chunk
        # The body ended: completely, or early (an error, or a close before all of it). Only
        # called with nothing pending, so the position is that of the bytes received.
        position = self._position
        self._end_answer()
        if position >= self._size:
            self._done = True
            return b""
        if self._resumes >= RESUMES:
            raise IntegrityError(
                f"{self._label}: the download was cut short {self._resumes + 1} times, last at "
                f"byte {position} of {self._size}; the server could not send the recorded bytes"
            )
        self._resumes += 1
        time.sleep(0.1 * self._resumes)
        return b""

    def _open(self) -> Iterator[bytes]:
        """Ask for the body from the current position on."""
        headers = {}
        if self._position:
            headers = {
                "Range": f"bytes={self._position}-",
                "If-Match": f'"{self._address}"',
            }
        response = self._transport.send(
            "GET", self._route, params={"path": self._path}, headers=headers, stream=True
        )
        self._response = response
        self._check(response)
        return response.iter_raw()  # as the bytes arrive: a chunk size would hold them back

    def _check(self, response: httpx.Response) -> None:
        etag = response.headers.get("ETag", "").removeprefix("W/").strip('"')
        if etag and etag != str(self._address):
            raise IntegrityError(
                f"{self._label}: the server sent the bytes of {etag}, not {self._address}"
            )
        if self._position:
            wanted = f"bytes {self._position}-"
            if response.status_code != 206 or not response.headers.get(
                "Content-Range", ""
            ).startswith(wanted):
                raise ServerUnavailableError(
                    f"{self._label}: the server at {self._transport.shown_url} did not resume "
                    f"the download at byte {self._position} (answered {response.status_code})"
                )

    def _end_answer(self) -> None:
        if self._response is not None:
            response, self._response, self._chunks = self._response, None, None
            response.close()
