"""Foreign errors never escape (SPEC): every public method of ArtifactStore, driven into its
failure modes, raises an ArtifactStoreError subclass, never a SQLAlchemy, driver or OSError one.

The failure modes are real: the registry database replaced by garbage or dropped (on
PostgreSQL a DROP DATABASE ... WITH (FORCE), which also cuts every open connection, as a
stopped server does), the blob root deleted or replaced by a file, bad arguments and bad
destinations. A foreign exception is not caught here: it fails the test with its traceback.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from artifactstore import ArtifactStore
from artifactstore.errors import ArtifactStoreError, DatabaseError

PACKAGE = ("acme/app", "1")
OPEN = ("acme/open", "1")
LARGE = 200_000
"""Bytes of the file that goes to the local backend (small ones go to small-blobs.db)."""

Call = Callable[[ArtifactStore, Path], object]


def _read_file(store: ArtifactStore, path: str) -> bytes:
    with store.get_file(PACKAGE, path) as reader:
        return reader.read()


DATABASE_CALLS: dict[str, Call] = {
    "create_package": lambda s, t: s.create_package("acme/new", "1"),
    "get_package": lambda s, t: s.get_package(*PACKAGE),
    "uploads.missing": lambda s, t: s.uploads.missing([f"blake3:{'0' * 64}"]),
    "list_packages": lambda s, t: s.list_packages(),
    "list_files": lambda s, t: s.list_files(PACKAGE),
    "retention_class": lambda s, t: s.retention_class("ci"),
    "ingest_file": lambda s, t: s.ingest_file(OPEN, "new.txt", b"new"),
    "ingest_directory": lambda s, t: s.ingest_directory(OPEN, t / "src"),
    "finalize_package": lambda s, t: s.finalize_package(OPEN),
    "abandon_package": lambda s, t: s.abandon_package(OPEN),
    "push": lambda s, t: s.push("acme/new", "1", t / "src"),
    "pull": lambda s, t: s.pull(PACKAGE, t / "out"),
    "get_file": lambda s, t: _read_file(s, "small.txt"),
    "get_manifest": lambda s, t: s.get_manifest(PACKAGE),
    "get_manifest_bytes": lambda s, t: s.get_manifest_bytes(PACKAGE, "jcs"),
    "verify_package": lambda s, t: s.verify_package(PACKAGE),
    "verify_all": lambda s, t: s.verify_all(),
    "tail_events": lambda s, t: list(s.tail_events()),
    "tail_events_follow": lambda s, t: list(s.tail_events(follow=True, timeout=0.2)),
    "checkpoint": lambda s, t: s.checkpoint(),
    "verify_chain": lambda s, t: s.verify_chain(),
    "replay": lambda s, t: s.replay(),
    "replay_check": lambda s, t: s.replay(check=True),
    "state_digest": lambda s, t: s.state_digest(),
}
"""Every call that needs the registry database: each must fail when it is unusable."""

STORAGE_CALLS: dict[str, Call] = {
    "ingest_file_small": lambda s, t: s.ingest_file(OPEN, "new.txt", b"new"),
    "ingest_file_large": lambda s, t: s.ingest_file(OPEN, "new.bin", os.urandom(LARGE)),
    "ingest_directory": lambda s, t: s.ingest_directory(OPEN, t / "src"),
    "push": lambda s, t: s.push("acme/new", "1", t / "src"),
    "pull": lambda s, t: s.pull(PACKAGE, t / "out"),
    "get_file_small": lambda s, t: _read_file(s, "small.txt"),
    "get_file_large": lambda s, t: _read_file(s, "large.bin"),
    "verify_package": lambda s, t: s.verify_package(PACKAGE),
    "verify_all": lambda s, t: s.verify_all(),
    "storage_health": lambda s, t: s.storage_health(),
    "close": lambda s, t: s.close(),
}
"""Every call that touches the blobs: each may succeed (a push recreates a missing root), but
may fail only with our errors."""


def ours(call: Callable[[], object]) -> ArtifactStoreError | None:
    """Run call: None if it succeeded, our error if it raised one; any other error escapes."""
    try:
        call()
    except ArtifactStoreError as exc:
        return exc
    return None


@pytest.fixture
def filled(store: ArtifactStore, tmp_path: Path) -> ArtifactStore:
    """The store with PACKAGE pushed (a small and a large file) and OPEN under assembly."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "small.txt").write_bytes(b"small")
    (source / "large.bin").write_bytes(os.urandom(LARGE))
    store.push(*PACKAGE, source)
    store.create_package(*OPEN)
    return store


def break_database(
    store: ArtifactStore, url: str, how: str, request: pytest.FixtureRequest
) -> None:
    """Make the registry database unusable: 'garbage' (SQLite) or 'dropped'."""
    if store.engine.dialect.name == "postgresql":
        assert how == "dropped"
        server = request.getfixturevalue("postgres_server")
        server.drop_database(make_url(url).database)
        return
    database = Path(str(make_url(url).database))
    # A new process would open the file as it is now; so does the store once its pooled
    # connections (which keep reading the unlinked file) are gone.
    store.engine.dispose()
    for path in database.parent.glob(f"{database.name}*"):
        path.unlink()
    if how == "garbage":
        database.write_bytes(os.urandom(8192))


@pytest.mark.parametrize("how", ["garbage", "dropped"])
@pytest.mark.parametrize("name", sorted(DATABASE_CALLS))
def test_an_unusable_database_fails_every_call_with_our_error(
    filled: ArtifactStore,
    migrated_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    name: str,
    how: str,
) -> None:
    if how == "garbage" and filled.engine.dialect.name != "sqlite":
        pytest.skip("a garbage file is a SQLite failure")
    break_database(filled, migrated_url, how, request)
    error = ours(lambda: DATABASE_CALLS[name](filled, tmp_path))
    assert isinstance(error, ArtifactStoreError), f"{name} succeeded on a {how} database"
    assert "SELECT" not in str(error) and "INSERT" not in str(error)


def test_a_follower_sees_our_error_when_the_database_goes_away(
    filled: ArtifactStore, migrated_url: str, request: pytest.FixtureRequest
) -> None:
    # On PostgreSQL the follower waits on LISTEN, on a connection of its own outside the pool;
    # on SQLite it polls. Either way the database goes while it waits.
    def go_away() -> None:
        time.sleep(0.5)
        break_database(filled, migrated_url, "dropped", request)
        if filled.engine.dialect.name == "sqlite":
            Path(str(make_url(migrated_url).database)).write_bytes(os.urandom(8192))

    breaker = threading.Thread(target=go_away)
    breaker.start()
    try:
        with pytest.raises(DatabaseError):
            for _ in filled.tail_events(follow=True, timeout=30):
                pass
    finally:
        breaker.join()


@pytest.mark.parametrize("how", ["deleted", "a-file"])
@pytest.mark.parametrize("name", sorted(STORAGE_CALLS))
def test_an_unusable_blob_root_never_raises_a_foreign_error(
    filled: ArtifactStore, blob_root: Path, tmp_path: Path, name: str, how: str
) -> None:
    shutil.rmtree(blob_root)
    if how == "a-file":
        blob_root.write_bytes(b"not a directory")
    ours(lambda: STORAGE_CALLS[name](filled, tmp_path))


BAD_ARGUMENTS: dict[str, Call] = {
    "create_package_bad_name": lambda s, t: s.create_package("Acme App", "1"),
    "create_package_bad_version": lambda s, t: s.create_package("acme/app", "../1"),
    "create_package_bad_class": lambda s, t: s.create_package("acme/x", "1", "forever"),
    "create_package_bad_metadata": lambda s, t: s.create_package(
        "acme/x", "1", metadata={"a": 1.5}
    ),
    "ingest_file_bad_path": lambda s, t: s.ingest_file(OPEN, "../escape", b"x"),
    "ingest_file_missing_source": lambda s, t: s.ingest_file(OPEN, "a", str(t / "missing")),
    "ingest_file_directory_source": lambda s, t: s.ingest_file(OPEN, "a", str(t / "src")),
    "ingest_file_finalized": lambda s, t: s.ingest_file(PACKAGE, "a", b"x"),
    "ingest_file_not_a_source": lambda s, t: s.ingest_file(OPEN, "a", 42),  # type: ignore[arg-type]
    "ingest_file_text_mode": lambda s, t: s.ingest_file(
        OPEN,
        "a",
        (t / "src" / "small.txt").open(),  # type: ignore[arg-type]
    ),
    "ingest_file_chunks_of_text": lambda s, t: s.ingest_file(OPEN, "a", ["x"]),  # type: ignore[list-item]
    "list_files_short_ref": lambda s, t: s.list_files(("acme/x",)),  # type: ignore[arg-type]
    "ingest_directory_missing": lambda s, t: s.ingest_directory(OPEN, t / "missing"),
    "ingest_directory_a_file": lambda s, t: s.ingest_directory(OPEN, t / "src" / "small.txt"),
    "push_missing_directory": lambda s, t: s.push("acme/x", "1", t / "missing"),
    "push_a_file": lambda s, t: s.push("acme/x", "1", t / "src" / "small.txt"),
    "get_manifest_unknown": lambda s, t: s.get_manifest(("acme/none", "1")),
    "get_manifest_bytes_bad_format": lambda s, t: s.get_manifest_bytes(PACKAGE, "xml"),
    "get_manifest_wrong_digest": lambda s, t: s.get_manifest(PACKAGE, "blake3:" + "0" * 64),
    "get_manifest_of_open": lambda s, t: s.get_manifest(OPEN),
    "get_file_unknown_path": lambda s, t: s.get_file(PACKAGE, "none.txt"),
    "list_files_unknown": lambda s, t: s.list_files(("acme/none", "1")),
    "finalize_unknown": lambda s, t: s.finalize_package(("acme/none", "1")),
    "abandon_finalized": lambda s, t: s.abandon_package(PACKAGE),
    "verify_unknown": lambda s, t: s.verify_package(("acme/none", "1")),
    "retention_class_unknown": lambda s, t: s.retention_class("forever"),
    "open_storage_root_a_file": lambda s, t: ArtifactStore.open(
        f"sqlite:///{t}/other.db", t / "src" / "small.txt"
    ),
    "open_bad_database_url": lambda s, t: ArtifactStore.open("nope://x", t / "blobs-2"),
}
"""Calls with arguments that cannot work: each must fail with our error."""


@pytest.mark.parametrize("name", sorted(BAD_ARGUMENTS))
def test_bad_arguments_fail_with_our_error(
    filled: ArtifactStore, tmp_path: Path, name: str
) -> None:
    error = ours(lambda: BAD_ARGUMENTS[name](filled, tmp_path))
    assert isinstance(error, ArtifactStoreError), f"{name} succeeded"


def test_opening_a_sqlite_store_in_a_folder_that_is_a_file_fails_with_our_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_bytes(b"x")
    error = ours(lambda: ArtifactStore.open(f"sqlite:///{tmp_path}/a-file/registry.db", tmp_path))
    assert isinstance(error, ArtifactStoreError)


@pytest.mark.parametrize("destination", ["a-file", "a-file/below"])
def test_pull_into_a_bad_destination_fails_with_our_error(
    filled: ArtifactStore, tmp_path: Path, destination: str
) -> None:
    (tmp_path / "a-file").write_bytes(b"x")
    error = ours(lambda: filled.pull(PACKAGE, tmp_path / destination))
    assert isinstance(error, ArtifactStoreError)
