"""Fixtures for tests that run against a real database: a migrated URL and an open store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3
import pytest
from clock import Clock

from artifactstore import ArtifactStore, migration, schema
from artifactstore.dataplane.inproc import InProcessDataPlane


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """A fresh database of this leg's kind, migrated to the head revision."""
    engine = schema.make_engine(database_url)
    try:
        migration.upgrade(engine)
    finally:
        engine.dispose()
    return database_url


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    """An empty folder for the local blob backend."""
    return tmp_path / "blobs"


@pytest.fixture
def store(migrated_url: str, blob_root: Path) -> Iterator[ArtifactStore]:
    """An ArtifactStore over a fresh migrated database and an empty blob root."""
    with ArtifactStore.open(migrated_url, blob_root, actor="tests@localhost") as opened:
        yield opened


@pytest.fixture
def timed(migrated_url: str, blob_root: Path, clock: Clock) -> Iterator[ArtifactStore]:
    """A store over a fresh database whose notion of now is the module's `clock` fixture."""
    engine = schema.make_engine(migrated_url)
    with ArtifactStore(engine, InProcessDataPlane.local(blob_root), now=clock) as store:
        yield store
    engine.dispose()


def corrupt_blob(root: Path, data: bytes) -> None:
    """Change the stored bytes of data's blob in place, wherever the data plane put it."""
    hex_digest = blake3.blake3(data).hexdigest()
    key = f"blake3/{hex_digest[:2]}/{hex_digest[2:4]}/{hex_digest}"
    flipped = bytes([data[0] ^ 0xFF]) + data[1:] if data else b"x"
    if (root / key).is_file():
        (root / key).chmod(0o644)
        (root / key).write_bytes(flipped)
        return
    with sqlite3.connect(root / "small-blobs.db") as connection:
        changed = connection.execute(
            "UPDATE blobs SET data = ? WHERE key = ?", (flipped, key)
        ).rowcount
    assert changed == 1, f"no blob {key} under {root}"


@pytest.fixture(name="corrupt_blob")
def corrupt_blob_fixture() -> Callable[[Path, bytes], None]:
    """corrupt_blob(root, data): flip the first byte of the stored blob of data."""
    return corrupt_blob


def stored_blobs(root: Path) -> int:
    """How many blobs the local data plane holds under root, in files and in the small pack."""
    files = sum(1 for p in (root / "blake3").rglob("*") if p.is_file()) if root.exists() else 0
    if not (root / "small-blobs.db").exists():
        return files
    with sqlite3.connect(root / "small-blobs.db") as connection:
        packed: int = connection.execute("SELECT count(*) FROM blobs").fetchone()[0]
    return files + packed


@pytest.fixture(name="stored_blobs")
def stored_blobs_fixture() -> Callable[[Path], int]:
    """stored_blobs(root): the number of blobs under a local blob root."""
    return stored_blobs
