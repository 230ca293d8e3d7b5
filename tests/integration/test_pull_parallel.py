"""A pull with several files in flight (the remote pull's): bounded, and verified before visible.

`artifactstore.pull.pull` is given its byte streams by a function; here that function hands
out in-memory streams and records how many are open at once, which a server cannot show.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

import blake3
import pytest

from artifactstore import IntegrityError
from artifactstore.batch import MAX_BLOB
from artifactstore.identity import Digest
from artifactstore.pull import TEMP_PREFIX, pull, reading_ahead
from artifactstore.records import StoredFile

FILES = 24
IN_FLIGHT = 4


def stored(path: str, data: bytes) -> StoredFile:
    """The file entry of data at path (the SHA-256 is not what a pull checks)."""
    return StoredFile(
        path,
        len(data),
        Digest("blake3", blake3.blake3(data).hexdigest()),
        Digest("sha256", "0" * 64),
        False,
        "local",
    )


class Streams:
    """Streams of the given bytes by path, each held a little; counts the large ones (fetched in
    flight) open at once, and names the threads that open the small ones."""

    def __init__(self, contents: dict[str, bytes], hold: float) -> None:
        self._contents = contents
        self._hold = hold
        self._lock = threading.Lock()
        self.open_now = 0
        self.most = 0
        self.opened = 0
        self.small_threads: set[str] = set()
        self.large_threads: set[str] = set()

    def __call__(self, entry: StoredFile) -> BinaryIO:
        large = entry.size > MAX_BLOB
        with self._lock:
            self.opened += 1
            if large:
                self.open_now += 1
                self.most = max(self.most, self.open_now)
                self.large_threads.add(threading.current_thread().name)
            else:
                self.small_threads.add(threading.current_thread().name)
        time.sleep(self._hold)  # a server's answer on its way
        with self._lock:
            self.open_now -= large
        return io.BytesIO(self._contents[entry.path])


def tree(count: int, large: bool = False) -> dict[str, bytes]:
    """count files in three directories; large ones are over MAX_BLOB (downloaded alone)."""
    padding = bytes(MAX_BLOB) if large else b""
    kind = "large" if large else "small"
    return {
        f"d{n % 3}/{kind}{n}.bin": f"file {n}\n".encode() * (n + 1) + padding for n in range(count)
    }


def test_large_files_are_fetched_in_flight_and_small_ones_on_the_calling_thread(
    tmp_path: Path,
) -> None:
    contents = {**tree(FILES, large=True), **tree(FILES)}
    streams = Streams(contents, 0.05)
    entries = [stored(path, data) for path, data in sorted(contents.items())]
    pull(streams, "acme/par:1", entries, tmp_path / "out", None, IN_FLIGHT)
    assert streams.most == IN_FLIGHT
    assert streams.small_threads == {threading.current_thread().name}
    assert streams.large_threads <= {f"artifactstore-pull_{n}" for n in range(IN_FLIGHT)}
    for path, data in contents.items():
        assert (tmp_path / "out" / path).read_bytes() == data
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize("kind", ["large", "small"])
def test_one_bad_file_leaves_nothing_visible_and_stops_the_others(
    tmp_path: Path, kind: str
) -> None:
    contents = {**tree(FILES, large=True), **tree(FILES)}
    entries = [stored(path, data) for path, data in sorted(contents.items())]
    bad = next(e.path for e in entries if kind in e.path and e.path.endswith("2.bin"))
    contents[bad] = b"X" + contents[bad][1:]  # the server sends other bytes for this one
    streams = Streams(contents, 0.05)
    with pytest.raises(IntegrityError, match=bad):
        pull(streams, "acme/par:1", entries, tmp_path / "out", None, IN_FLIGHT)
    # Only the directories were made; no file of the package, and no staging directory.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d0", "d1", "d2"]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    # The files not yet started were given up, not fetched to be thrown away.
    assert streams.opened < len(entries) // 2


class Trickle(io.RawIOBase):
    """A stream that fills at most step bytes per readinto, as a socket or a pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._step, len(self._data))
        buffer[:count] = self._data[:count]
        self._data = self._data[count:]
        return count


class ReadOnly:
    """A stream with read() and close() only: no readinto."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def close(self) -> None:
        self._stream.close()


@pytest.mark.parametrize("kind", ["trickle", "read-only"])
def test_a_file_of_many_chunks_is_written_whole_and_a_changed_last_byte_refused(
    tmp_path: Path, kind: str
) -> None:
    # More than one read buffer and more than one writeback step (8 MiB) of bytes.
    data = os.urandom(9 << 20) + b"end"
    entry = stored("big/blob.bin", data)

    def streams(changed: bytes) -> Callable[[StoredFile], BinaryIO]:
        if kind == "trickle":
            return lambda _: cast(BinaryIO, Trickle(changed, 300_000))
        return lambda _: cast(BinaryIO, ReadOnly(changed))

    pull(streams(data), "acme/big:1", [entry], tmp_path / "out")
    assert (tmp_path / "out" / "big/blob.bin").read_bytes() == data
    with pytest.raises(IntegrityError, match=r"blob\.bin"):
        pull(streams(data[:-1] + b"!"), "acme/big:1", [entry], tmp_path / "again")
    assert not [p for p in (tmp_path / "again").rglob("*") if p.is_file()]


def test_reading_ahead_serves_in_order_files_from_the_bytes_read_ahead(tmp_path: Path) -> None:
    contents = tree(6)
    entries = [stored(path, data) for path, data in sorted(contents.items())]
    ahead = [contents[e.path] if n % 2 else None for n, e in enumerate(entries)]
    opened: list[str] = []

    def open_blob(entry: StoredFile) -> BinaryIO:
        opened.append(entry.path)
        return io.BytesIO(contents[entry.path])

    pull(reading_ahead(entries, ahead, open_blob), "acme/ra:1", entries, tmp_path / "out")
    assert opened == [e.path for n, e in enumerate(entries) if not n % 2]
    for path, data in contents.items():
        assert (tmp_path / "out" / path).read_bytes() == data
    # A file it does not list (a large one, on a thread of its own) takes nothing ahead.
    opened.clear()
    small = entries[1:]
    opener = reading_ahead(small, [contents[e.path] for e in small], open_blob)
    assert opener(entries[0]).read() == contents[entries[0].path]
    assert [opener(e).read() for e in small] == [contents[e.path] for e in small]
    assert opened == [entries[0].path]
    # Asked out of order, every file still gets its own bytes: from open_blob.
    opened.clear()
    opener = reading_ahead(entries, [b"not these"] * 6, open_blob)
    assert opener(entries[1]).read() == contents[entries[1].path]
    assert opened == [entries[1].path]
