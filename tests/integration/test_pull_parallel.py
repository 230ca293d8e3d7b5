"""A pull with several files in flight (the remote pull's): bounded, and verified before visible.

`artifactstore.pull.pull` is given its byte streams by a function; here that function hands
out in-memory streams and records how many are open at once, which a server cannot show.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import BinaryIO

import blake3
import pytest

from artifactstore import IntegrityError
from artifactstore.identity import Digest
from artifactstore.pull import TEMP_PREFIX, pull
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
    """Streams of the given bytes by path; counts those open at once, each held a little."""

    def __init__(self, contents: dict[str, bytes], hold: float) -> None:
        self._contents = contents
        self._hold = hold
        self._lock = threading.Lock()
        self.open_now = 0
        self.most = 0
        self.opened = 0

    def __call__(self, entry: StoredFile) -> BinaryIO:
        with self._lock:
            self.open_now += 1
            self.opened += 1
            self.most = max(self.most, self.open_now)
        time.sleep(self._hold)  # a server's answer on its way
        with self._lock:
            self.open_now -= 1
        return io.BytesIO(self._contents[entry.path])


def tree(count: int) -> dict[str, bytes]:
    return {f"d{n % 3}/f{n}.bin": f"file {n}\n".encode() * (n + 1) for n in range(count)}


def test_files_are_fetched_several_at_once_and_never_more_than_in_flight(tmp_path: Path) -> None:
    contents = tree(FILES)
    streams = Streams(contents, 0.05)
    entries = [stored(path, data) for path, data in sorted(contents.items())]
    pull(streams, "acme/par:1", entries, tmp_path / "out", None, IN_FLIGHT)
    assert streams.most == IN_FLIGHT
    for path, data in contents.items():
        assert (tmp_path / "out" / path).read_bytes() == data
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_one_bad_file_leaves_nothing_visible_and_stops_the_others(tmp_path: Path) -> None:
    contents = tree(FILES)
    entries = [stored(path, data) for path, data in sorted(contents.items())]
    bad = entries[2].path
    contents[bad] = b"X" + contents[bad][1:]  # the server sends other bytes for this one
    streams = Streams(contents, 0.05)
    with pytest.raises(IntegrityError, match=bad):
        pull(streams, "acme/par:1", entries, tmp_path / "out", None, IN_FLIGHT)
    # Only the directories were made; no file of the package, and no staging directory.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d0", "d1", "d2"]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    # The files not yet started were given up, not fetched to be thrown away.
    assert streams.opened < FILES // 2
