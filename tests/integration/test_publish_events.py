"""A push publishes with three events: the finalize event's manifest lists the files.

The views take a pushed package's file rows (and its blobs' storage locations) from the
manifest when the package is finalized; replay rebuilds them identically, and a package
assembled file by file (a `v1.file.ingested` event each, the only format of older logs) still
replays as before. A blob staged on two backends, which the manifest cannot tie to its files,
is published the old way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from artifactstore import ArtifactStore
from artifactstore import publish as publish_module
from artifactstore.database import Database
from artifactstore.identity import ContentAddress
from artifactstore.manifest.model import format_timestamp
from artifactstore.publish import encode_manifest, publish, spool
from artifactstore.registry import get_package, package_files
from artifactstore.storage.spi import object_key
from artifactstore.uploads import StagedFile, held, stage

TREE = {"a/one": b"1" * 10, "a/same": b"1" * 10, "big": b"b" * 100_000, "z": b""}


def _tree(root: Path) -> Path:
    for rel, data in TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _types(store: ArtifactStore) -> list[str]:
    return [event.event_type for event in store.tail_events()]


def test_a_push_is_three_events_and_its_manifest_is_what_its_rows_encode(
    store: ArtifactStore, tmp_path: Path
) -> None:
    result = store.push("acme/app", "1", _tree(tmp_path / "dist"))
    assert _types(store) == ["v1.package.created", "v1.retention.assigned", "v1.package.finalized"]
    files = store.list_files(store.get_package("acme/app", "1"))
    assert {f.path: f.size for f in files} == {path: len(data) for path, data in TREE.items()}
    assert {f.path: f.backend_id for f in files}["big"] == "local"
    assert {f.path: f.backend_id for f in files}["a/one"] == "local-small"
    # The rows the finalize event gave the package encode back to the very manifest it carries.
    stored = store.get_manifest_bytes(store.get_package("acme/app", "1"))
    with store.engine.connect() as connection, spool() as out:
        package = get_package(connection, (result.name, result.version))
        assert package.finalized_at is not None
        again = encode_manifest(connection, package, package.finalized_at, out)
        assert b"".join(again.chunks()) == stored
    report = store.replay(check=True)
    assert report.identical and not report.differences
    assert store.verify_all().ok


def test_replay_rebuilds_pushed_and_assembled_packages_alike(
    store: ArtifactStore, tmp_path: Path
) -> None:
    tree = _tree(tmp_path / "dist")
    store.push("acme/app", "1", tree)
    assembled = store.create_package("acme/app", "2")
    for path, data in TREE.items():
        store.ingest_file(assembled, path, data)
    store.finalize_package(assembled)
    store.push("acme/app", "3", tree)
    assert _types(store).count("v1.file.ingested") == len(TREE)
    before = store.state_digest()
    report = store.replay()
    assert report.events == len(_types(store))
    assert store.state_digest() == before == report.digest_after
    listed = [
        [
            (f.path, f.blake3, f.backend_id)
            for f in store.list_files(store.get_package("acme/app", v))
        ]
        for v in ("1", "2", "3")
    ]
    assert listed[0] == listed[1] == listed[2]


def test_a_blob_staged_on_two_backends_is_published_with_an_event_per_file(
    store: ArtifactStore,
) -> None:
    address = ContentAddress("blake3", "ab" * 32)
    stamp = format_timestamp(datetime.now(UTC))
    staged = [
        StagedFile(path, 3, "ab" * 32, "cd" * 32, False, backend, object_key(address), stamp)
        for path, backend in (("one", "local"), ("two", "local-small"))
    ]
    db = Database(store.engine, "test", "tests@localhost", lambda: datetime.now(UTC))
    with held(db) as session:
        with db.write(lock=False) as connection:
            stage(connection, session, staged, db.now())
        publish(db, session, "acme/app", "1", "standard", None, None)
    assert _types(store).count("v1.file.ingested") == 2
    # The view rows keep each file's own backend (reads of the manifest pick one per blob).
    with store.engine.connect() as connection:
        files = package_files(connection, get_package(connection, ("acme/app", "1")).id)
    assert [(f.path, f.backend_id) for f in files] == [("one", "local"), ("two", "local-small")]
    assert store.replay(check=True).identical


def test_a_publish_of_more_blobs_than_the_listed_limit_appends_an_event_per_file(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Applying a listed finalize holds a map of its receipts: past the limit (20,000 blobs),
    # the files go as events in pages, so a 100,000-file push keeps its memory flat.
    monkeypatch.setattr(publish_module, "LISTED_BLOBS", 2)
    store.push("acme/app", "1", _tree(tmp_path / "dist"))
    assert _types(store).count("v1.file.ingested") == len(TREE)
    assert store.replay(check=True).identical
