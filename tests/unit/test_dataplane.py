"""InProcessDataPlane over a LocalBackend in tmp_path: ingest, serve, verify, stat, delete.

Digests are checked against hashlib and blake3 directly, and corruption is real: a byte of the
stored file is flipped on disk.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import blake3
import pytest

from artifactstore.dataplane import inproc
from artifactstore.dataplane.inproc import InProcessDataPlane
from artifactstore.dataplane.spi import Expected
from artifactstore.errors import BlobNotFoundError
from artifactstore.identity import ContentAddress, Digest, DualDigest, digest_stream_here
from artifactstore.storage.spi import object_key

DATA = os.urandom(3 * 1024 * 1024 + 17)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def plane(root: Path) -> InProcessDataPlane:
    return InProcessDataPlane.local(root)


def address_of(data: bytes) -> ContentAddress:
    return ContentAddress("blake3", blake3.blake3(data).hexdigest())


def test_ingest_returns_both_digests_and_stores_the_bytes(
    plane: InProcessDataPlane, root: Path
) -> None:
    result = plane.ingest_stream(io.BytesIO(DATA))
    assert result.digests.blake3.hex == blake3.blake3(DATA).hexdigest()
    assert result.digests.sha256.hex == hashlib.sha256(DATA).hexdigest()
    assert result.size == len(DATA)
    assert result.content_address == address_of(DATA)
    assert not result.already_present
    assert result.receipt.backend_id == plane.backend_id == "local"
    assert result.receipt.key == object_key(result.content_address)
    assert (root / result.receipt.key).read_bytes() == DATA


@pytest.mark.parametrize(
    "source",
    [DATA, [DATA[:100], DATA[100:5000], DATA[5000:]], io.BytesIO(DATA)],
    ids=["bytes", "chunks", "file"],
)
def test_every_source_kind_gives_the_same_address(
    plane: InProcessDataPlane, source: bytes | list[bytes] | io.BytesIO
) -> None:
    assert plane.ingest_stream(source).content_address == address_of(DATA)


def test_empty_source(plane: InProcessDataPlane) -> None:
    result = plane.ingest_stream([])
    assert result.size == 0
    assert result.content_address == address_of(b"")
    with plane.serve_object(result.content_address) as stream:
        assert stream.read() == b""


def test_second_ingest_is_already_present_and_rewrites_nothing(
    plane: InProcessDataPlane, root: Path
) -> None:
    first = plane.ingest_stream(DATA)
    path = root / first.receipt.key
    before = path.stat()
    second = plane.ingest_stream(io.BytesIO(DATA))
    after = path.stat()
    assert second.already_present
    assert second.digests == first.digests
    assert (after.st_ino, after.st_mtime_ns, after.st_nlink) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_nlink,
    )
    assert list((root / ".tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 10), (1024 * 1024 - 3, 1024 * 1024 + 3), (len(DATA) - 5, None), (9, 9)],
)
def test_serve_object_ranges(plane: InProcessDataPlane, start: int, end: int | None) -> None:
    address = plane.ingest_stream(DATA).content_address
    with plane.serve_object(address, start, end) as stream:
        assert stream.read() == DATA[start:end]


def test_serve_missing_object_raises(plane: InProcessDataPlane) -> None:
    with pytest.raises(BlobNotFoundError):
        plane.serve_object(address_of(b"absent"))


def test_verify_ok_with_expectations(plane: InProcessDataPlane) -> None:
    result = plane.ingest_stream(DATA)
    verdict = plane.verify_object(result.content_address, result.digests.sha256, len(DATA))
    assert verdict.ok
    assert verdict.problem is None
    assert verdict.actual == result.digests


def test_verify_missing(plane: InProcessDataPlane) -> None:
    verdict = plane.verify_object(address_of(b"absent"))
    assert (verdict.ok, verdict.problem, verdict.actual) == (False, "missing", None)


def test_verify_reports_corruption_with_expected_and_actual(
    plane: InProcessDataPlane, root: Path
) -> None:
    result = plane.ingest_stream(DATA)
    path = root / result.receipt.key
    with path.open("r+b") as stored:
        stored.seek(12345)
        byte = stored.read(1)
        stored.seek(12345)
        stored.write(bytes([byte[0] ^ 0xFF]))
    verdict = plane.verify_object(result.content_address, result.digests.sha256, len(DATA))
    assert not verdict.ok
    assert verdict.actual is not None
    assert verdict.problem is not None
    assert f"blake3 mismatch: expected {result.content_address.hex}" in verdict.problem
    assert f"got {verdict.actual.blake3.hex}" in verdict.problem
    assert "sha256 mismatch" in verdict.problem
    assert "size" not in verdict.problem


def test_verify_reports_wrong_sha256_and_size(plane: InProcessDataPlane) -> None:
    result = plane.ingest_stream(DATA)
    wrong_sha = Digest("sha256", hashlib.sha256(b"other").hexdigest())
    verdict = plane.verify_object(result.content_address, wrong_sha, len(DATA) + 1)
    assert not verdict.ok
    assert verdict.problem == (
        f"sha256 mismatch: expected {wrong_sha.hex} got {result.digests.sha256.hex}; "
        f"size mismatch: expected {len(DATA) + 1} got {len(DATA)}"
    )


def test_stat_and_delete(plane: InProcessDataPlane) -> None:
    address = plane.ingest_stream(DATA).content_address
    info = plane.stat_object(address)
    assert info is not None
    assert info.size == len(DATA)
    plane.delete_object(address)
    plane.delete_object(address)
    assert plane.stat_object(address) is None


def test_non_durable_ingest_then_sync(plane: InProcessDataPlane) -> None:
    addresses = [plane.ingest_stream(p, durable=False).content_address for p in (b"x", b"y")]
    plane.sync(addresses)
    with pytest.raises(BlobNotFoundError):
        plane.sync([address_of(b"absent")])


def test_health(plane: InProcessDataPlane) -> None:
    assert not plane.health().reachable
    plane.ingest_stream(b"x")
    assert plane.health().reachable


def test_50_mib_ingest_from_chunks(plane: InProcessDataPlane, root: Path) -> None:
    chunk = os.urandom(1024 * 1024)
    count = 50
    expected_b3, expected_sha = blake3.blake3(), hashlib.sha256()
    for index in range(count):
        piece = bytes([index]) + chunk[1:]
        expected_b3.update(piece)
        expected_sha.update(piece)

    def chunks() -> Iterator[bytes]:
        for index in range(count):
            yield bytes([index]) + chunk[1:]

    result = plane.ingest_stream(chunks())
    assert result.size == count * len(chunk)
    assert result.digests.blake3.hex == expected_b3.hexdigest()
    assert result.digests.sha256.hex == expected_sha.hexdigest()
    assert (root / result.receipt.key).stat().st_size == result.size
    assert plane.verify_object(result.content_address).ok


def test_verify_objects_gives_verify_object_of_each_in_order(
    plane: InProcessDataPlane, root: Path
) -> None:
    # More small blobs than one query looks up and one batch holds (4 MiB), a large blob among
    # them, a missing one, a changed small one, and a large one said to be small.
    small = [os.urandom(8 * 1024) for _ in range(600)]
    results = [plane.ingest_stream(data) for data in small]
    large = plane.ingest_stream(DATA)
    changed = results[555]
    with sqlite3.connect(root / "small-blobs.db") as connection:
        connection.execute(
            "UPDATE blobs SET data = ? WHERE key = ?", (b"x" * 8192, changed.receipt.key)
        )
    expected: list[Expected] = [(r.content_address, r.digests.sha256, r.size) for r in results]
    expected.insert(300, (large.content_address, large.digests.sha256, large.size))
    expected.insert(10, (address_of(b"absent"), None, 6))
    expected.append((large.content_address, None, 100))
    verdicts = list(plane.verify_objects(expected))
    assert verdicts == [plane.verify_object(*item) for item in expected]
    problems = [(v.address, v.problem) for v in verdicts if not v.ok]
    assert [address for address, _ in problems] == [
        address_of(b"absent"),
        changed.content_address,
        large.content_address,
    ]
    assert problems[0][1] == "missing"
    assert problems[2][1] == f"size mismatch: expected 100 got {len(DATA)}"


def test_verify_objects_hashes_large_blobs_apart_and_answers_in_order(
    plane: InProcessDataPlane, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More large blobs than are hashed ahead, one changed in place, one missing, one listed
    # twice and one with the wrong size, between small ones.
    threads: list[str] = []

    def recorded(source: BinaryIO) -> DualDigest:
        threads.append(threading.current_thread().name)
        return digest_stream_here(source)

    monkeypatch.setattr(inproc, "digest_stream_here", recorded)
    large = [plane.ingest_stream(os.urandom((1 << 20) + index)) for index in range(9)]
    small = [plane.ingest_stream(os.urandom(100)) for _ in range(5)]
    with (root / large[3].receipt.key).open("r+b") as stored:
        stored.write(b"changed")
    expected: list[Expected] = []
    for big, little in itertools.zip_longest(large, small):
        expected += [(r.content_address, r.digests.sha256, r.size) for r in (big, little) if r]
    expected.insert(4, (address_of(b"absent" * 300_000), None, 1_800_000))
    expected.append((large[0].content_address, large[0].digests.sha256, large[0].size))
    expected.append((large[5].content_address, None, 100))
    verdicts = list(plane.verify_objects(expected))
    assert threads and set(threads) <= {f"artifactstore-verify_{n}" for n in range(2)}
    assert verdicts == [plane.verify_object(*item) for item in expected]
    assert [v.address for v in verdicts if not v.ok] == [
        address_of(b"absent" * 300_000),
        large[3].content_address,
        large[5].content_address,
    ]


def test_ingest_many_is_ingest_stream_of_each_with_one_lookup(
    plane: InProcessDataPlane, root: Path
) -> None:
    stored = b"stored before"
    plane.ingest_stream(stored)
    sources = [b"new", stored, b"x" * 200_000, b"new", b""]
    results = plane.ingest_many(sources)
    assert [r.content_address for r in results] == [address_of(s) for s in sources]
    assert [r.digests.sha256.hex for r in results] == [
        hashlib.sha256(s).hexdigest() for s in sources
    ]
    # Already stored, or written earlier in the same call, is already present.
    assert [r.already_present for r in results] == [False, True, False, True, False]
    assert [r.receipt.backend_id for r in results] == ["local-small"] * 2 + ["local"] + [
        "local-small"
    ] * 2
    assert results[3].receipt == results[0].receipt
    plane.sync(r.content_address for r in results)
    reopened = InProcessDataPlane.local(root)
    for source in sources:
        assert reopened.serve_object(address_of(source)).read() == source
