"""LocalBackend on a real directory: layout, atomicity, key checks, durability and cleanup.

The contract suite covers what every backend promises; these tests cover what only a
filesystem can get wrong (temp files, fsync, directories). os.fsync is patched only to observe
it or to inject EIO, a fault that cannot be caused for real.
"""

from __future__ import annotations

import errno
import io
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from artifactstore import durability
from artifactstore.errors import BlobNotFoundError, ConfigError, InvalidAddressError, StorageError
from artifactstore.identity import digest_bytes
from artifactstore.storage.backends import local
from artifactstore.storage.backends.local import LocalBackend
from artifactstore.storage.catalog import open_backend
from artifactstore.storage.spi import check_key, object_key

DATA = b"local backend bytes " * 100
KEY = object_key(digest_bytes(DATA))
HEX = digest_bytes(DATA).hex


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record the path of every fsync, still performing it."""
    calls: list[Path] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        calls.append(Path(f"/proc/self/fd/{fd}").readlink())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def temp_files(root: Path) -> list[Path]:
    return sorted((root / ".tmp").iterdir()) if (root / ".tmp").exists() else []


def test_object_lives_at_root_slash_key(root: Path) -> None:
    LocalBackend(root).put(KEY, [DATA])
    assert f"blake3/{HEX[:2]}/{HEX[2:4]}/{HEX}" == KEY
    assert (root / KEY).read_bytes() == DATA
    assert temp_files(root) == []


def test_root_is_created_on_first_write_not_before(root: Path) -> None:
    backend = LocalBackend(root)
    assert not root.exists()
    health = backend.health()
    assert not health.reachable
    assert str(root) in health.detail
    assert (health.free_bytes, health.total_bytes) == (None, None)
    backend.put(KEY, [DATA])
    health = backend.health()
    assert health.reachable
    assert health.free_bytes is not None and health.total_bytes is not None
    assert 0 < health.free_bytes <= health.total_bytes


def test_root_that_is_a_file_is_unreachable(root: Path) -> None:
    root.write_bytes(b"")
    health = LocalBackend(root).health()
    assert not health.reachable
    assert "not a directory" in health.detail


def test_second_put_leaves_file_untouched(root: Path) -> None:
    backend = LocalBackend(root)
    backend.put(KEY, [DATA])
    before = (root / KEY).stat()
    receipt, existed = backend.put(KEY, [DATA])
    after = (root / KEY).stat()
    assert existed
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert receipt.size == len(DATA)
    assert temp_files(root) == []


def test_a_put_replaces_an_object_torn_to_another_size(root: Path) -> None:
    # What a power cut leaves of a blob linked into place before it was synced.
    backend = LocalBackend(root)
    backend.put(KEY, [DATA], durable=False)
    (root / KEY).write_bytes(DATA[:3])
    receipt, existed = backend.put(KEY, [DATA])
    assert not existed
    assert (root / KEY).read_bytes() == DATA
    assert receipt.size == len(DATA)
    assert temp_files(root) == []


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "/etc/passwd",
        "blake3/../../etc",
        f"blake3\\{HEX[:2]}\\{HEX[2:4]}\\{HEX}",
        f"blake3/{HEX[2:4]}/{HEX[:2]}/{HEX}",
        f"blake3/{HEX[:2].upper()}/{HEX[2:4]}/{HEX.upper()}",
        f"blake3/{HEX[:2]}/{HEX[2:4]}/{HEX}\x00",
        f"blake3/{HEX[:2]}/{HEX[2:4]}/{HEX[:-1]}",
        f"md5/{HEX[:2]}/{HEX[2:4]}/{HEX}",
        f"blake3/{HEX[:2]}/{HEX[2:4]}/../{HEX}",
        "",
    ],
)
def test_escaping_or_malformed_keys_never_touch_the_filesystem(root: Path, key: str) -> None:
    backend = LocalBackend(root)
    with pytest.raises(InvalidAddressError) as caught:
        backend.put(key, [DATA])
    assert repr(key) in str(caught.value)
    for call in (backend.open, backend.head, backend.delete):
        with pytest.raises(InvalidAddressError):
            call(key)
    with pytest.raises(InvalidAddressError):
        backend.sync([key])
    assert not root.exists()


def test_check_key_accepts_object_keys() -> None:
    assert check_key(KEY) == KEY
    sha_key = object_key(digest_bytes(DATA, "sha256"))
    assert check_key(sha_key) == sha_key


def test_interrupted_write_leaves_no_object_and_no_temp_file(root: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield DATA
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalBackend(root).put(KEY, chunks())
    assert not (root / KEY).exists()
    assert temp_files(root) == []


def test_fsync_failure_surfaces_as_storage_error(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match="Input/output error") as caught:
        LocalBackend(root).put(KEY, [DATA])
    assert isinstance(caught.value.__cause__, OSError)
    assert not (root / KEY).exists()
    assert temp_files(root) == []


def test_durable_put_fsyncs_file_and_every_new_directory(root: Path, fsynced: list[Path]) -> None:
    LocalBackend(root).put(KEY, [DATA])
    object_dir = root / KEY
    # The temp file is fsynced before the link; it is the same inode as the object.
    assert fsynced[0].parent == root / ".tmp"
    assert set(fsynced[1:]) == {
        object_dir.parent,
        object_dir.parent.parent,
        object_dir.parent.parent.parent,
        root,
        root.parent,
    }


@pytest.fixture
def synced_filesystems(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every syncfs the local backend makes, still performing it."""
    synced: list[Path] = []
    real_sync = durability.sync_filesystem

    def spy(path: Path) -> None:
        synced.append(path)
        real_sync(path)

    monkeypatch.setattr(local, "sync_filesystem", spy)
    return synced


def test_sync_of_a_few_objects_fsyncs_each_and_their_directories(
    root: Path, fsynced: list[Path], synced_filesystems: list[Path]
) -> None:
    backend = LocalBackend(root)
    other = b"another object"
    other_key = object_key(digest_bytes(other))
    backend.put(KEY, [DATA], durable=False)
    backend.put(other_key, [other], durable=False)
    assert fsynced == []
    backend.sync([KEY, other_key])
    assert synced_filesystems == []
    assert {root / KEY, root / other_key} <= set(fsynced)
    assert {(root / KEY).parent, (root / other_key).parent} <= set(fsynced)


def test_sync_of_many_objects_is_one_filesystem_sync(
    root: Path, fsynced: list[Path], synced_filesystems: list[Path]
) -> None:
    backend = LocalBackend(root)
    keys = []
    for n in range(local._FSYNC_EACH_LIMIT + 1):
        data = b"object %d" % n
        keys.append(object_key(digest_bytes(data)))
        backend.put(keys[-1], [data], durable=False)
    backend.sync(keys)
    assert synced_filesystems == [root]
    assert fsynced == []
    # Their directories' own entries are now known durable: a durable put beside one syncs
    # its file and the directory that gained an entry, nothing above it.
    fsynced.clear()
    neighbour = keys[0][:-1] + ("0" if keys[0][-1] != "0" else "1")
    backend.put(neighbour, [b"x"])
    assert fsynced[1:] == [(root / neighbour).parent]


def test_sync_of_a_missing_object_is_an_error(root: Path) -> None:
    backend = LocalBackend(root)
    with pytest.raises(BlobNotFoundError, match=KEY):
        backend.sync([KEY])


def test_durable_put_next_to_non_durable_one_syncs_the_whole_chain(
    root: Path, fsynced: list[Path]
) -> None:
    backend = LocalBackend(root)
    neighbour = f"blake3/{HEX[:2]}/{HEX[2:4]}/{HEX[:4]}{'0' * 60}"
    backend.put(neighbour, [b"x"], durable=False)
    backend.put(KEY, [DATA])
    path = root / KEY
    assert set(fsynced[1:]) == {*path.parents[:4], root.parent}


def test_durable_puts_sync_each_new_directory_entry_once(root: Path, fsynced: list[Path]) -> None:
    backend = LocalBackend(root)
    neighbour = f"blake3/{HEX[:2]}/{HEX[2:4]}/{HEX[:4]}{'0' * 60}"
    backend.put(neighbour, [b"x"])
    fsynced.clear()
    backend.put(KEY, [DATA])
    assert fsynced[1:] == [(root / KEY).parent]


def test_durable_put_of_existing_non_durable_object_syncs_it(
    root: Path, fsynced: list[Path]
) -> None:
    backend = LocalBackend(root)
    backend.put(KEY, [DATA], durable=False)
    _, existed = backend.put(KEY, [DATA])
    assert existed
    assert root / KEY in fsynced


def test_a_large_staged_object_starts_writeback_of_each_written_range(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[int, int]] = []

    def observed(fd: int, offset: int, length: int) -> None:
        assert os.fstat(fd).st_size >= offset + length  # flushed to the file before the hint
        started.append((offset, length))
        durability.start_writeback(fd, offset, length)

    monkeypatch.setattr(local, "start_writeback", observed)
    data = os.urandom(3 << 20) * 7 + b"tail"
    key = object_key(digest_bytes(data))
    backend = LocalBackend(root)
    backend.put(key, [data[i : i + 3_000_000] for i in range(0, len(data), 3_000_000)])
    assert started == [(0, 9_000_000), (9_000_000, 9_000_000)]
    with backend.open(key) as stream:
        assert stream.read() == data


def test_open_of_missing_key_raises_blob_not_found(root: Path) -> None:
    with pytest.raises(BlobNotFoundError, match=KEY):
        LocalBackend(root).open(KEY)


def test_open_streams_the_range_in_pieces(root: Path) -> None:
    backend = LocalBackend(root)
    backend.put(KEY, [DATA])
    with backend.open(KEY, 10, 110) as stream:
        pieces = [stream.read(30) for _ in range(5)]
    assert pieces[:4] == [DATA[10:40], DATA[40:70], DATA[70:100], DATA[100:110]]
    assert pieces[4] == b""


def test_stale_temp_files_are_cleaned(root: Path) -> None:
    backend = LocalBackend(root)
    stale = backend.stage()
    stale.write(b"killed writer")
    [stale_path] = temp_files(root)
    fresh = backend.stage()
    [fresh_path] = [path for path in temp_files(root) if path != stale_path]
    old = time.time() - 7200
    os.utime(stale_path, (old, old))
    assert backend.clean_stale_temp(timedelta(hours=1)) == 1
    assert temp_files(root) == [fresh_path]
    fresh.abort()
    stale.abort()
    assert temp_files(root) == []


def test_clean_stale_temp_without_temp_dir(root: Path) -> None:
    assert LocalBackend(root).clean_stale_temp(timedelta(0)) == 0


def test_iter_keys_skips_temp_and_stray_files(root: Path) -> None:
    backend = LocalBackend(root)
    backend.put(KEY, [DATA])
    staged = backend.stage()
    (root / "README").write_text("not an object")
    (root / "blake3" / HEX[:2] / HEX[2:4] / "junk").write_text("")
    assert list(backend.iter_keys()) == [KEY]
    staged.abort()


def test_iter_keys_of_missing_root_is_empty(root: Path) -> None:
    assert list(LocalBackend(root).iter_keys()) == []


def test_registry_opens_local_backend(root: Path) -> None:
    backend = open_backend("local", root=root)
    assert backend.backend_id == "local"
    backend.put(KEY, [DATA])
    assert (root / KEY).exists()


def test_registry_rejects_unknown_backend() -> None:
    with pytest.raises(ConfigError, match=r"'gcs'.*known: local, local-small, s3"):
        open_backend("gcs")
    with pytest.raises(ConfigError, match=r"'s3' needs location"):
        open_backend("s3", root="/tmp/x")


@pytest.mark.parametrize(
    "config", [{}, {"root": 3}, {"root": "/tmp/x", "bucket": "b"}], ids=["none", "int", "extra"]
)
def test_registry_rejects_bad_local_config(config: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="local"):
        open_backend("local", **config)


def test_a_whole_object_read_has_the_file_descriptor_a_range_has_none(root: Path) -> None:
    backend = LocalBackend(root)
    backend.put(KEY, [DATA])
    with backend.open(KEY) as whole:
        assert os.pread(whole.fileno(), len(DATA) + 1, 0) == DATA  # what a pull copies
    for start, end in [(1, None), (0, 10)]:
        with backend.open(KEY, start, end) as part, pytest.raises(io.UnsupportedOperation):
            part.fileno()
