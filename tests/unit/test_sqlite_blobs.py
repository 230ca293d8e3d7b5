"""The small-blob backend: batching, visibility to other processes, and tier routing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import blake3
import pytest

from artifactstore.dataplane.inproc import SMALL_BLOB_LIMIT, InProcessDataPlane
from artifactstore.identity import digest_bytes
from artifactstore.storage.backends.sqlite_blobs import DATABASE_NAME, SQLiteBlobBackend
from artifactstore.storage.spi import object_key


def key_for(data: bytes) -> str:
    return object_key(digest_bytes(data))


def test_non_durable_writes_are_invisible_elsewhere_until_sync(tmp_path: Path) -> None:
    writer = SQLiteBlobBackend(tmp_path)
    reader = SQLiteBlobBackend(tmp_path)
    data = b"small blob"
    writer.put(key_for(data), [data], durable=False)
    assert writer.head(key_for(data)) is not None
    assert reader.head(key_for(data)) is None
    writer.sync([key_for(data)])
    with reader.open(key_for(data)) as stream:
        assert stream.read() == data


def test_pending_writes_are_flushed_before_they_exceed_the_batch_limit(tmp_path: Path) -> None:
    writer = SQLiteBlobBackend(tmp_path)
    reader = SQLiteBlobBackend(tmp_path)
    blobs = [os.urandom(64 * 1024) for _ in range(200)]  # 12.5 MiB in all
    for data in blobs:
        writer.put(key_for(data), [data], durable=False)
    # Memory stays bounded: most of the batch reached the database without a sync.
    committed = sum(reader.head(key_for(d)) is not None for d in blobs)
    assert 100 <= committed < 200
    writer.close()
    assert all(reader.head(key_for(d)) is not None for d in blobs)


def test_durable_put_is_visible_at_once(tmp_path: Path) -> None:
    data = b"durable"
    SQLiteBlobBackend(tmp_path).put(key_for(data), [data])
    assert SQLiteBlobBackend(tmp_path).head(key_for(data)) is not None


def test_health_reports_a_missing_root(tmp_path: Path) -> None:
    health = SQLiteBlobBackend(tmp_path / "absent").health()
    assert not health.reachable and "missing" in health.detail


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from artifactstore.identity import digest_bytes
    from artifactstore.storage.backends.sqlite_blobs import SQLiteBlobBackend
    from artifactstore.storage.spi import object_key

    backend = SQLiteBlobBackend(Path(sys.argv[1]))
    keys = []
    for n in range(300):
        data = b"shared %d" % n if n % 2 else b"own %s %d" % (sys.argv[2].encode(), n)
        key = object_key(digest_bytes(data))
        backend.put(key, [data], durable=False)
        keys.append(key)
    backend.sync(keys)
    """
)


def test_concurrent_processes_store_shared_blobs_once(tmp_path: Path) -> None:
    workers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(n)]) for n in range(4)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0] * 4
    keys = list(SQLiteBlobBackend(tmp_path).iter_keys())
    assert len(keys) == 150 + 4 * 150
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("size", "chunked", "backend_id"),
    [
        (10, False, "local-small"),
        (SMALL_BLOB_LIMIT, True, "local-small"),
        (SMALL_BLOB_LIMIT + 1, True, "local"),
        (3 << 20, False, "local"),
    ],
)
def test_the_data_plane_routes_by_size(
    tmp_path: Path, size: int, chunked: bool, backend_id: str
) -> None:
    plane = InProcessDataPlane.local(tmp_path)
    data = os.urandom(size)
    source = [data[i : i + 4096] for i in range(0, size, 4096)] if chunked else data
    result = plane.ingest_stream(source, durable=False)
    assert result.receipt.backend_id == backend_id
    assert result.content_address.hex == blake3.blake3(data).hexdigest()
    plane.sync([result.content_address])
    with plane.serve_object(result.content_address) as stream:
        assert stream.read() == data
    assert plane.verify_object(result.content_address, result.digests.sha256, size).ok
    in_pack = (tmp_path / DATABASE_NAME).exists() and any(SQLiteBlobBackend(tmp_path).iter_keys())
    assert in_pack == (backend_id == "local-small")
    assert (tmp_path / object_key(result.content_address)).is_file() == (backend_id == "local")
