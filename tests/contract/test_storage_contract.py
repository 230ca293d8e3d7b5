"""The StorageBackend contract, run against every backend and through a fault-injecting wrapper.

Each test states one promise of `storage.spi.StorageBackend` and checks it on LocalBackend (a
real directory under tmp_path), SQLiteBlobBackend (a real database file), S3Backend (a fresh
bucket on the loopback S3 server) and MemoryBackend alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import pytest
from memory_backend import FailingBackend, MemoryBackend

from artifactstore import durability
from artifactstore.config import S3Location
from artifactstore.errors import (
    BlobNotFoundError,
    InvalidAddressError,
    InvalidInputError,
    StorageError,
)
from artifactstore.identity import digest_bytes
from artifactstore.storage.backends.local import LocalBackend
from artifactstore.storage.backends.s3 import S3Backend
from artifactstore.storage.backends.sqlite_blobs import SQLiteBlobBackend
from artifactstore.storage.spi import StorageBackend, object_key

DATA = b"0123456789abcdefghij"


def key_for(data: bytes) -> str:
    return object_key(digest_bytes(data))


@pytest.fixture(params=["local", "sqlite-blobs", "s3", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageBackend]:
    opened = _open(request, tmp_path)
    yield opened
    opened.close()


def _open(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    if request.param == "s3":
        location: S3Location = request.getfixturevalue("s3_location")
        return S3Backend(location)
    if request.param == "local":
        return LocalBackend(tmp_path / "blobs")
    if request.param == "sqlite-blobs":
        return SQLiteBlobBackend(tmp_path / "blobs")
    return MemoryBackend()


def test_put_then_open_head_and_receipt(backend: StorageBackend) -> None:
    key = key_for(DATA)
    receipt, existed = backend.put(key, [DATA[:7], DATA[7:]])
    assert not existed
    assert (receipt.backend_id, receipt.key, receipt.size) == (backend.backend_id, key, len(DATA))
    assert receipt.stored_at.tzinfo is not None
    assert receipt.stored_at.utcoffset() == UTC.utcoffset(None)
    with backend.open(key) as stream:
        assert stream.read() == DATA
    info = backend.head(key)
    assert info is not None
    assert (info.key, info.size) == (key, len(DATA))


def test_second_put_keeps_existing_object(backend: StorageBackend) -> None:
    key = key_for(DATA)
    first, _ = backend.put(key, [DATA])
    # Different bytes under the same key show that the existing object is never overwritten
    # (bytes of another size would not: the local backend replaces an object of the wrong
    # size, which only a crash leaves, test_local_backend.py).
    second, existed = backend.put(key, [bytes(len(DATA))])
    assert existed
    assert second.size == first.size
    with backend.open(key) as stream:
        assert stream.read() == DATA


def test_delete_removes_and_missing_delete_is_fine(backend: StorageBackend) -> None:
    key = key_for(DATA)
    backend.put(key, [DATA])
    backend.delete(key)
    backend.delete(key)
    assert backend.head(key) is None
    with pytest.raises(BlobNotFoundError, match=key):
        backend.open(key)


def test_delete_many_removes_each_and_leaves_the_others(backend: StorageBackend) -> None:
    blobs = [DATA + bytes([n]) for n in range(5)]
    keys = [key_for(data) for data in blobs]
    for key, data in zip(keys, blobs, strict=True):
        backend.put(key, [data])
    backend.delete_many([*keys[:3], key_for(b"never stored")])
    assert [backend.head(key) is None for key in keys] == [True, True, True, False, False]
    assert sorted(backend.iter_keys()) == sorted(keys[3:])
    backend.delete_many([])


def test_head_and_open_of_missing_key(backend: StorageBackend) -> None:
    key = key_for(b"never stored")
    assert backend.head(key) is None
    with pytest.raises(BlobNotFoundError):
        backend.open(key)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, DATA),
        (0, 5, DATA[:5]),
        (5, 12, DATA[5:12]),
        (15, None, DATA[15:]),
        (7, 7, b""),
        (15, 100, DATA[15:]),
        (25, None, b""),
        (25, 30, b""),
    ],
)
def test_range_reads(backend: StorageBackend, start: int, end: int | None, expected: bytes) -> None:
    key = key_for(DATA)
    backend.put(key, [DATA])
    with backend.open(key, start, end) as stream:
        assert stream.read() == expected


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4)])
def test_invalid_range_is_rejected(backend: StorageBackend, start: int, end: int | None) -> None:
    key = key_for(DATA)
    backend.put(key, [DATA])
    with pytest.raises(InvalidInputError):
        backend.open(key, start, end)


def test_iter_keys_is_sorted_and_complete(backend: StorageBackend) -> None:
    payloads = [f"object {i}".encode() for i in range(12)]
    for payload in payloads:
        backend.put(key_for(payload), [payload])
    backend.put(object_key(digest_bytes(DATA, "sha256")), [DATA])
    keys = list(backend.iter_keys())
    expected = sorted([key_for(p) for p in payloads] + [object_key(digest_bytes(DATA, "sha256"))])
    assert keys == expected


def test_staged_object_is_invisible_until_commit(backend: StorageBackend) -> None:
    key = key_for(DATA)
    with backend.stage() as staged:
        staged.write(DATA)
        assert backend.head(key) is None
        assert list(backend.iter_keys()) == []
        _, existed = staged.commit(key)
    assert not existed
    assert backend.head(key) is not None


def test_staged_object_not_committed_is_discarded(backend: StorageBackend) -> None:
    key = key_for(DATA)
    with backend.stage() as staged:
        staged.write(DATA)
    staged.abort()
    assert list(backend.iter_keys()) == []
    with pytest.raises(StorageError):
        staged.commit(key)
    assert backend.head(key) is None


def test_failing_source_leaves_nothing(backend: StorageBackend) -> None:
    def chunks() -> Iterator[bytes]:
        yield DATA
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        backend.put(key_for(DATA), chunks())
    assert list(backend.iter_keys()) == []


@pytest.mark.parametrize("key", ["../x", "/abs", "blake3/../../etc", "sha256/AB/CD/x"])
def test_bad_keys_are_rejected(backend: StorageBackend, key: str) -> None:
    with pytest.raises(InvalidAddressError, match="storage key"):
        backend.put(key, [DATA])
    for call in (backend.open, backend.head, backend.delete):
        with pytest.raises(InvalidAddressError):
            call(key)
    with pytest.raises(InvalidAddressError):
        backend.sync([key])
    with backend.stage() as staged, pytest.raises(InvalidAddressError):
        staged.commit(key)
    assert list(backend.iter_keys()) == []


@pytest.fixture
def is_durable(
    backend: StorageBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], bool]:
    """Whether a key's object is on stable storage, observed the way each backend allows.

    Memory: its model of stable storage. SQLite blobs: another connection (a later process)
    sees the committed row. Local files: the object and its directory were fsynced, or the
    whole filesystem was synced, since the fixture started recording.
    """
    if isinstance(backend, MemoryBackend):
        return lambda key: key in backend.durable
    if isinstance(backend, S3Backend):
        # S3 has an object once it acknowledges it: another client sees it.
        return lambda key: S3Backend(backend.location).head(key) is not None
    if isinstance(backend, SQLiteBlobBackend):

        def committed(key: str) -> bool:
            other = SQLiteBlobBackend(tmp_path / "blobs")
            try:
                return other.head(key) is not None
            finally:
                other.close()

        return committed
    fsynced: set[tuple[int, int]] = set()  # (device, inode): a temp file becomes the object
    filesystems: list[Path] = []

    def fsync(path: Path) -> None:
        durability.fsync_path(path)
        info = Path(path).stat()
        fsynced.add((info.st_dev, info.st_ino))

    def syncfs(path: Path) -> None:
        durability.sync_filesystem(path)
        filesystems.append(Path(path))

    monkeypatch.setattr("artifactstore.storage.backends.local.fsync_path", fsync)
    monkeypatch.setattr("artifactstore.storage.backends.local.sync_filesystem", syncfs)

    def on_disk(key: str) -> bool:
        path = tmp_path / "blobs" / key
        inodes = {(i.st_dev, i.st_ino) for i in (path.stat(), path.parent.stat())}
        return bool(filesystems) or inodes <= fsynced

    return on_disk


def test_sync_makes_non_durable_commits_durable(
    backend: StorageBackend, is_durable: Callable[[str], bool]
) -> None:
    keys = [key_for(p) for p in (b"a", b"b")]
    for key, payload in zip(keys, (b"a", b"b"), strict=True):
        backend.put(key, [payload], durable=False)
    if not isinstance(backend, S3Backend):  # S3 writes are durable when acknowledged
        assert [is_durable(key) for key in keys] == [False, False]
    backend.sync(keys)
    assert [is_durable(key) for key in keys] == [True, True]
    backend.sync(keys)
    assert list(backend.iter_keys()) == sorted(keys)


def test_a_durable_put_is_durable_on_return(
    backend: StorageBackend, is_durable: Callable[[str], bool]
) -> None:
    key = key_for(DATA)
    backend.put(key, [DATA])
    assert is_durable(key)


def test_close_keeps_what_was_put_and_may_be_called_twice(
    backend: StorageBackend, tmp_path: Path
) -> None:
    keys = [key_for(p) for p in (b"a", b"b")]
    for key, payload in zip(keys, (b"a", b"b"), strict=True):
        backend.put(key, [payload], durable=False)
    backend.close()
    backend.close()
    if isinstance(backend, MemoryBackend):
        return
    # A fresh backend over the same root (another process, later) sees both objects.
    root = tmp_path / "blobs"
    reopened: StorageBackend
    if isinstance(backend, S3Backend):
        reopened = S3Backend(backend.location)
    elif isinstance(backend, LocalBackend):
        reopened = LocalBackend(root)
    else:
        reopened = SQLiteBlobBackend(root)
    assert sorted(reopened.iter_keys()) == sorted(keys)
    reopened.close()


def test_sync_of_missing_key_raises(backend: StorageBackend) -> None:
    with pytest.raises(BlobNotFoundError):
        backend.sync([key_for(b"absent")])


def test_health_is_reachable_after_a_write(backend: StorageBackend) -> None:
    backend.put(key_for(DATA), [DATA])
    health = backend.health()
    assert health.reachable
    assert health.backend_id == backend.backend_id


@pytest.mark.parametrize("n", [1, 2, 3])
def test_nth_write_fault_surfaces_and_leaves_nothing(backend: StorageBackend, n: int) -> None:
    failing = FailingBackend(backend, "write", n)
    key = key_for(DATA)
    with pytest.raises(StorageError, match="injected fault"):
        failing.put(key, [DATA[:5], DATA[5:10], DATA[10:]])
    assert backend.head(key) is None
    assert list(backend.iter_keys()) == []


def test_commit_fault_leaves_nothing_and_retry_succeeds(backend: StorageBackend) -> None:
    failing = FailingBackend(backend, "commit", 1)
    key = key_for(DATA)
    with pytest.raises(StorageError, match="injected fault"):
        failing.put(key, [DATA])
    assert backend.head(key) is None
    _, existed = failing.put(key, [DATA])
    assert not existed
    with backend.open(key) as stream:
        assert stream.read() == DATA
