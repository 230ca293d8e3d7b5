"""Fixtures for tests that run against a real database: a migrated URL and an open store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactstore import ArtifactStore, migration, schema


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
