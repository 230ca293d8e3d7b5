"""ArtifactStore end to end on a real database and a real blob folder."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import blake3
import pytest
from sqlalchemy import select, text

from artifactstore import (
    AlreadyExistsError,
    ArtifactStore,
    ConflictError,
    DatabaseError,
    IntegrityError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidNameError,
    InvalidPathError,
    InvalidRetentionClassError,
    PackageFileNotFoundError,
    PackageFinalizedError,
    PackageNotFoundError,
    PackageStateError,
    ingest,
    publish,
    schema,
    uploads,
)
from artifactstore.identity import ContentAddress, Digest, blake3_stream
from artifactstore.manifest import codec, model, projection
from artifactstore.tree import scan

FILES = {
    "README.md": b"# acme app\n",
    "bin/app": b"\x7fELF" + bytes(range(256)) * 64,
    "lib/libacme.so": os.urandom(200_000),
    "docs/\u00fcber.txt": "unicode path \u2713\n".encode(),
    "empty": b"",
}


def make_tree(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (root / "bin/app").chmod(0o755)
    return root


def event_count(store: ArtifactStore) -> int:
    return len(list(store.tail_events()))


def test_ingest_finalize_read_back_and_replay(store: ArtifactStore, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "dist")
    package = store.create_package("acme/app", "1.4.2", "ci", {"git_sha": "3f2a", "build": 7})
    stored = store.ingest_directory(package, tree)
    manifest = store.finalize_package(package)

    assert [f.path for f in stored] == sorted(FILES, key=lambda p: p.encode())
    cbor = store.get_manifest_bytes(package, "cbor")
    jcs = store.get_manifest_bytes(("acme/app", "1.4.2"), "jcs")
    assert codec.decode(cbor) == manifest
    assert model.encode(projection.from_jcs(jcs)) == cbor
    assert store.package(package).manifest_digest == str(model.manifest_digest(manifest))
    assert manifest.digest == model.manifest_digest_of_bytes(cbor)
    assert store.package(package).finalized_at == manifest.package.finalized_at
    with store.engine.connect() as connection:
        expires_at = connection.execute(
            select(schema.retention_state.c.expires_at).where(
                schema.retention_state.c.package_id == package.id
            )
        ).scalar_one()
    assert expires_at == manifest.retention.expires_at
    assert dict(manifest.package.metadata) == {"build": 7, "git_sha": "3f2a"}
    assert manifest.retention.retention_class == "ci"
    assert manifest.retention.expires_at is not None
    for entry in manifest.files:
        with store.get_file(package, entry.path) as handle:
            data = handle.read()
        assert data == FILES[entry.path]
        assert entry.blake3.hex == blake3.blake3(data).hexdigest()
        assert entry.sha256.hex == hashlib.sha256(data).hexdigest()
        assert entry.executable == (entry.path == "bin/app")

    types = [event.event_type for event in store.tail_events()]
    assert types == [
        "v1.package.created",
        "v1.retention.assigned",
        *["v1.file.ingested"] * len(FILES),
        "v1.package.finalized",
    ]
    [finalized] = [e for e in store.tail_events() if e.event_type == "v1.package.finalized"]
    assert finalized.payload == cbor

    before = store.state_digest()
    report = store.replay()
    assert report.identical and report.events == len(types)
    assert store.state_digest() == before
    assert store.verify_package(package).ok
    assert store.verify_chain().ok


def test_finalize_again_returns_the_same_manifest_and_appends_nothing(
    store: ArtifactStore,
) -> None:
    package = store.create_package("acme/app", "1")
    store.ingest_file(package, "a", b"a")
    first = store.finalize_package(package)
    count = event_count(store)
    assert store.finalize_package(package) == first
    assert event_count(store) == count


def test_every_source_kind_is_accepted(store: ArtifactStore, tmp_path: Path) -> None:
    on_disk = tmp_path / "tool"
    on_disk.write_bytes(b"from a path")
    on_disk.chmod(0o755)
    package = store.create_package("acme/sources", "1")
    store.ingest_file(package, "bytes", b"from bytes")
    store.ingest_file(package, "path", str(on_disk))
    store.ingest_file(package, "file", io.BytesIO(b"from a file object"))
    store.ingest_file(package, "chunks", iter([b"from ", b"chunks"]))
    files = {f.path: f for f in store.list_files(package)}
    assert files["path"].executable and not files["bytes"].executable
    store.finalize_package(package)
    for path, expected in [("bytes", b"from bytes"), ("chunks", b"from chunks")]:
        with store.get_file(package, path) as handle:
            assert handle.read() == expected


def test_a_path_twice_needs_replace(store: ArtifactStore) -> None:
    package = store.create_package("acme/app", "1")
    store.ingest_file(package, "a", b"one")
    count = event_count(store)
    with pytest.raises(AlreadyExistsError, match="'a'"):
        store.ingest_file(package, "a", b"two")
    assert event_count(store) == count
    store.ingest_file(package, "a", b"two", replace=True)
    store.finalize_package(package)
    with store.get_file(package, "a") as handle:
        assert handle.read() == b"two"


def test_finalized_package_is_immutable(store: ArtifactStore) -> None:
    package = store.create_package("acme/app", "1")
    store.finalize_package(package)
    with pytest.raises(PackageFinalizedError, match="acme/app:1"):
        store.ingest_file(package, "late", b"x")


def test_name_and_version_are_unique(store: ArtifactStore) -> None:
    store.create_package("acme/app", "1")
    with pytest.raises(AlreadyExistsError, match="acme/app:1"):
        store.create_package("acme/app", "1")


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda s: s.create_package("Acme/App", "1"), InvalidNameError, "Acme/App"),
        (lambda s: s.create_package("acme/app", "-1"), InvalidNameError, "-1"),
        (
            lambda s: s.create_package("acme/app", "1", "weekly"),
            InvalidRetentionClassError,
            "weekly",
        ),
        (
            lambda s: s.create_package("acme/app", "1", metadata={"x": 1.5}),
            InvalidMetadataError,
            "1.5",
        ),
        (
            lambda s: s.create_package("acme/app", "1", metadata={"x": 2**60}),
            InvalidMetadataError,
            "x",
        ),
        (lambda s: s.get_package("acme/app", "404"), PackageNotFoundError, "acme/app:404"),
    ],
)
def test_bad_input_is_a_specific_error_and_changes_nothing(
    store: ArtifactStore, call: object, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment.replace(".", r"\.")):
        call(store)  # type: ignore[operator]
    assert event_count(store) == 0
    assert store.list_packages() == []


@pytest.mark.parametrize("path", ["/abs", "a/../b", "a//b", "./a", "a\\b", "a\x00b", ""])
def test_forbidden_paths_are_rejected(store: ArtifactStore, path: str) -> None:
    package = store.create_package("acme/app", "1")
    with pytest.raises(InvalidPathError):
        store.ingest_file(package, path, b"x")
    assert store.list_files(package) == []


def test_a_symlink_in_the_tree_records_nothing(
    store: ArtifactStore, tmp_path: Path, stored_blobs: Callable[[Path], int]
) -> None:
    tree = make_tree(tmp_path / "dist")
    (tree / "link").symlink_to(tree / "README.md")
    package = store.create_package("acme/app", "1")
    count = event_count(store)
    with pytest.raises(InvalidPathError, match="link"):
        store.ingest_directory(package, tree)
    assert event_count(store) == count
    assert stored_blobs(tmp_path / "blobs") == 0


def test_a_fifo_in_the_tree_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "dist")
    os.mkfifo(tree / "pipe")
    package = store.create_package("acme/app", "1")
    with pytest.raises(InvalidPathError, match="pipe"):
        store.ingest_directory(package, tree)


def test_push_is_idempotent_and_conflicts_on_different_files(
    store: ArtifactStore, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "dist")
    first = store.push("acme/app", "2.0", tree, metadata={"job": "1"})
    assert first.created
    count = event_count(store)
    again = store.push("acme/app", "2.0", tree, metadata={"job": "1"})
    assert (again.digest, again.created) == (first.digest, False)
    assert (again.sequence, again.chain_digest) == (first.sequence, first.chain_digest)
    assert event_count(store) == count

    (tree / "README.md").write_bytes(b"changed")
    with pytest.raises(ConflictError, match=r"README\.md"):
        store.push("acme/app", "2.0", tree, metadata={"job": "1"})
    (tree / "README.md").write_bytes(FILES["README.md"])
    (tree / "bin/app").chmod(0o644)
    with pytest.raises(ConflictError, match="bin/app"):
        store.push("acme/app", "2.0", tree, metadata={"job": "1"})
    (tree / "bin/app").chmod(0o755)
    with pytest.raises(ConflictError, match="metadata"):
        store.push("acme/app", "2.0", tree)
    with pytest.raises(ConflictError, match="retention class 'ci'"):
        store.push("acme/app", "2.0", tree, "ci", metadata={"job": "1"})
    assert event_count(store) == count


def test_push_never_joins_an_open_package(store: ArtifactStore, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "dist")
    package = store.create_package("acme/app", "3.0")
    store.ingest_file(package, "README.md", FILES["README.md"])
    count = event_count(store)
    with pytest.raises(PackageStateError, match="open for assembly"):
        store.push("acme/app", "3.0", tree)
    assert event_count(store) == count
    assert {f.path for f in store.list_files(package)} == {"README.md"}


def test_an_abandoned_package_keeps_its_name(store: ArtifactStore) -> None:
    package = store.create_package("acme/app", "1")
    store.ingest_file(package, "a", b"a")
    store.abandon_package(package)
    assert store.list_packages() == []
    [tombstone] = store.list_packages(include_ended=True)
    assert (tombstone.state, tombstone.ended_at is not None) == ("abandoned", True)
    with pytest.raises(AlreadyExistsError):
        store.create_package("acme/app", "1")
    assert store.replay(check=True).identical


def test_open_package_has_no_manifest(store: ArtifactStore) -> None:
    package = store.create_package("acme/app", "1")
    with pytest.raises(PackageStateError, match="finalize"):
        store.get_manifest_bytes(package)


def test_missing_file_in_package(store: ArtifactStore) -> None:
    package = store.create_package("acme/app", "1")
    store.finalize_package(package)
    with pytest.raises(PackageFileNotFoundError, match="nope"):
        store.get_file(package, "nope")


@pytest.mark.parametrize("size", [10_000, 200_000])  # a packed small blob, a one-file blob
def test_corrupted_blob_is_reported_by_verify_and_refused_on_read(
    store: ArtifactStore,
    blob_root: Path,
    size: int,
    corrupt_blob: Callable[[Path, bytes], None],
) -> None:
    data = os.urandom(size)
    package = store.create_package("acme/app", "1")
    store.ingest_file(package, "data.bin", data)
    store.finalize_package(package)
    corrupt_blob(blob_root, data)

    report = store.verify_package(package)
    assert not report.ok
    [problem] = report.problems
    assert problem.path == "data.bin" and "mismatch" in problem.message
    with (
        pytest.raises(IntegrityError, match=r"data\.bin"),
        store.get_file(package, "data.bin") as handle,
    ):
        handle.read()
    assert not store.verify_all().ok


def test_list_packages_is_sorted(store: ArtifactStore) -> None:
    for name, version in [("b/x", "2"), ("a/y", "1"), ("b/x", "10")]:
        store.create_package(name, version)
    assert [(p.name, p.version) for p in store.list_packages()] == [
        ("a/y", "1"),
        ("b/x", "10"),
        ("b/x", "2"),
    ]
    assert [p.version for p in store.list_packages("b/x")] == ["10", "2"]


def test_embedded_default_store_needs_no_server(
    tmp_path: Path, stored_blobs: Callable[[Path], int]
) -> None:
    make_tree(tmp_path / "dist")
    script = (
        "from artifactstore import ArtifactStore\n"
        "with ArtifactStore.open() as store:\n"
        "    m = store.push('acme/app', '1', 'dist')\n"
        "    assert store.verify_package(('acme/app', '1')).ok\n"
        "    print(m.files)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(len(FILES))
    assert (tmp_path / ".artifactstore" / "registry.db").is_file()
    assert stored_blobs(tmp_path / ".artifactstore" / "blobs") == len(FILES)


def test_pull_writes_every_file_verified_with_its_mode(
    store: ArtifactStore,
    tmp_path: Path,
    blob_root: Path,
    corrupt_blob: Callable[[Path, bytes], None],
) -> None:
    tree = make_tree(tmp_path / "dist")
    store.push("acme/app", "1", tree)
    written = store.pull(("acme/app", "1"), tmp_path / "out")
    assert {f.path for f in written} == set(FILES)
    for rel, data in FILES.items():
        assert (tmp_path / "out" / rel).read_bytes() == data
    assert os.access(tmp_path / "out" / "bin/app", os.X_OK)
    assert not os.access(tmp_path / "out" / "README.md", os.X_OK)

    corrupt_blob(blob_root, FILES["lib/libacme.so"])
    with pytest.raises(IntegrityError, match="libacme"):
        store.pull(("acme/app", "1"), tmp_path / "again")
    assert [p for p in (tmp_path / "again").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("change", ["last byte", "shorter", "longer"])
def test_a_large_blob_is_copied_whole_and_a_changed_one_refused(
    store: ArtifactStore, tmp_path: Path, blob_root: Path, change: str
) -> None:
    # Large enough for the kernel copy (the staged copy is hashed before it is renamed).
    data = os.urandom(3 << 20)
    tree = make_tree(tmp_path / "dist", {"bin/app": b"tool", "lib/tool.so": data})
    store.push("acme/large", "1", tree)
    store.pull(("acme/large", "1"), tmp_path / "out")
    assert (tmp_path / "out" / "lib/tool.so").read_bytes() == data
    hex_digest = blake3.blake3(data).hexdigest()
    blob = blob_root / f"blake3/{hex_digest[:2]}/{hex_digest[2:4]}/{hex_digest}"
    blob.chmod(0o644)
    blob.write_bytes(
        {"last byte": data[:-1] + bytes([data[-1] ^ 1]), "shorter": data[:-1]}.get(
            change, data + b"x"
        )
    )
    with pytest.raises(IntegrityError, match="tool"):
        store.pull(("acme/large", "1"), tmp_path / "again")
    assert [p for p in (tmp_path / "again").rglob("*") if p.is_file()] == []


def _large_tree(root: Path) -> dict[str, bytes]:
    """Six files over 1 MiB (hashed apart on a re-push), each after a small one."""
    files: dict[str, bytes] = {}
    for n in range(6):
        files[f"small/{n}.txt"] = b"small %d\n" % n
        files[f"large/{n}.bin"] = os.urandom((1 << 20) + 1000 * n + 1)
    make_tree(root, {**files, "bin/app": b"tool"})
    return files


def _blob_of(blob_root: Path, data: bytes) -> Path:
    hex_digest = blake3.blake3(data).hexdigest()
    return blob_root / f"blake3/{hex_digest[:2]}/{hex_digest[2:4]}/{hex_digest}"


def test_a_re_push_hashes_large_files_apart_and_stores_a_changed_one(
    store: ArtifactStore, tmp_path: Path, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "dist"
    files = _large_tree(tree)
    store.push("acme/large", "1", tree)
    kept = {p: _blob_of(blob_root, d).stat() for p, d in files.items() if p.startswith("large/")}
    # The same size as before (so it is hashed apart), other bytes: a blob to write.
    changed = os.urandom(len(files["large/2.bin"]))
    (tree / "large/2.bin").write_bytes(changed)
    threads: list[str] = []

    def recorded(source: BinaryIO) -> tuple[Digest, int]:
        threads.append(threading.current_thread().name)
        return blake3_stream(source)

    monkeypatch.setattr(ingest, "blake3_stream", recorded)
    store.push("acme/large", "2", tree)
    assert len(threads) == 6
    assert set(threads) <= {f"artifactstore-prehash_{n}" for n in range(2)}
    store.pull(("acme/large", "2"), tmp_path / "out")
    for path, data in {**files, "large/2.bin": changed}.items():
        assert (tmp_path / "out" / path).read_bytes() == data
    for path, before in kept.items():
        # Found by its digests: the stored blob was not written again.
        now = _blob_of(blob_root, files[path]).stat()
        assert (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert store.verify_package(("acme/large", "2")).ok


def test_a_re_push_takes_a_stored_blobs_recorded_sha256_by_its_blake3(
    store: ArtifactStore, tmp_path: Path
) -> None:
    data = os.urandom((1 << 20) + 1)
    tree = make_tree(tmp_path / "dist", {"one.bin": data, "bin/app": b"tool"})
    store.push("acme/lone", "1", tree)
    address = f"blake3:{blake3.blake3(data).hexdigest()}"
    # A record that disagrees with the bytes: a re-push that computed SHA-256 would not copy it.
    recorded = "0" * 64
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE storage_locations SET digest_sha256 = :d WHERE content_address = :a"),
            {"d": recorded, "a": address},
        )
    store.push("acme/lone", "2", tree)
    files = {f.path: f for f in store.get_manifest(("acme/lone", "2")).files}
    assert files["one.bin"].sha256.hex == recorded
    # verify hashes both digests again and tells the record from the bytes.
    [problem] = store.verify_package(("acme/lone", "2")).problems
    assert "sha256 mismatch" in problem.message
    assert hashlib.sha256(data).hexdigest() in problem.message


def test_a_local_pull_copies_large_files_on_a_thread_of_their_own(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "dist"
    files = _large_tree(tree)
    store.push("acme/large", "1", tree)
    plane = store.dataplane
    serve = plane.serve_object
    threads: dict[str, str] = {}

    def recorded(address: ContentAddress, start: int = 0, end: int | None = None) -> BinaryIO:
        threads[address.hex] = threading.current_thread().name
        return serve(address, start, end)

    monkeypatch.setattr(plane, "serve_object", recorded)
    store.pull(("acme/large", "1"), tmp_path / "out")
    large = {blake3.blake3(d).hexdigest() for p, d in files.items() if p.startswith("large/")}
    # The small files were read ahead from the small tier, on this thread, not opened alone.
    assert set(threads) == large
    assert set(threads.values()) == {"artifactstore-pull_0"}
    for path, data in files.items():
        assert (tmp_path / "out" / path).read_bytes() == data


def test_a_large_file_changed_while_a_re_push_hashes_it_apart_is_refused(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "dist"
    files = _large_tree(tree)
    store.push("acme/large", "1", tree)
    events = event_count(store)
    target = tree / "large/4.bin"

    def rewritten_first(source: BinaryIO) -> tuple[Digest, int]:
        if getattr(source, "name", None) == str(target):
            # Written again after the scan, with bytes that are stored: only the check that
            # the file is unchanged since the scan can tell.
            target.write_bytes(files["large/4.bin"])
            seen = target.stat().st_mtime_ns
            os.utime(target, ns=(seen + 10**9, seen + 10**9))
        return blake3_stream(source)

    monkeypatch.setattr(ingest, "blake3_stream", rewritten_first)
    with pytest.raises(InvalidInputError, match=r"large/4\.bin' changed while reading"):
        store.push("acme/large", "2", tree)
    assert event_count(store) == events
    assert [p.version for p in store.list_packages("acme/large")] == ["1"]


def test_a_manifest_streamed_from_the_views_is_the_canonical_encoding(
    store: ArtifactStore, tmp_path: Path
) -> None:
    # Paths whose UTF-8 byte order differs from case-insensitive, locale and UTF-16 orders.
    files = {
        name: name.encode() * 3
        for name in ["b", "a/\u00fc", "Z", "a/z", "\uff01", "\U0001f600", "a-b", "a.b", "_x"]
    }
    tree = make_tree(tmp_path / "dist", {**files, "bin/app": b"tool"})
    pushed = store.push("acme/order", "1", tree)
    data = store.get_manifest_bytes(("acme/order", "1"))
    manifest = codec.decode(data)  # strict: canonical bytes, files sorted by UTF-8 bytes
    assert model.encode(manifest) == data
    assert manifest.digest == pushed.digest
    assert [f.path for f in manifest.files] == sorted([*files, "bin/app"], key=lambda p: p.encode())
    assembled = store.create_package("acme/order", "2")
    store.ingest_directory(assembled, tree)
    finalized = store.finalize_package(assembled)
    assert model.encode(finalized) == store.get_manifest_bytes(assembled)
    assert [f.path for f in finalized.files] == [f.path for f in manifest.files]


def test_writing_calls_record_the_actor_they_are_given(
    store: ArtifactStore, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "dist")
    store.push("acme/app", "1", tree, actor="token:ci-push")
    package = store.create_package("acme/app", "2", actor="token:assembler")
    store.ingest_file(package, "a", b"a", actor="token:job-1")
    store.ingest_file(package, "b", b"b")
    store.finalize_package(package, actor="token:assembler")
    actors = [(e.event_type, e.actor) for e in store.tail_events()]
    pushed = actors[:3]  # created, retention assigned, finalized (the manifest lists the files)
    assert {actor for _, actor in pushed} == {"token:ci-push"}
    assert actors[len(pushed) :] == [
        ("v1.package.created", "token:assembler"),
        ("v1.retention.assigned", "token:assembler"),
        ("v1.file.ingested", "token:job-1"),
        ("v1.file.ingested", "tests@localhost"),
        ("v1.package.finalized", "token:assembler"),
    ]


def test_database_errors_reach_callers_as_ours_even_from_a_generator(
    store: ArtifactStore,
) -> None:
    store.create_package("acme/app", "1")
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE events"))
    with pytest.raises(DatabaseError, match="database"):
        list(store.tail_events())
    with pytest.raises(DatabaseError):
        store.create_package("acme/app", "2")


def test_a_manifest_that_cannot_be_spooled_publishes_and_finalizes_nothing(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The manifest is encoded into a temporary file in TMPDIR; here TMPDIR does not exist.
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"a")
    package = store.create_package("acme/assembled", "1")
    store.ingest_file(package, "a.txt", b"a")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    spool_error = r"cannot write the manifest to a temporary file in .*missing: .*set TMPDIR"
    with pytest.raises(DatabaseError, match=spool_error):
        store.push("acme/spooled", "1", tree)
    with pytest.raises(DatabaseError, match=spool_error):
        store.finalize_package(package)
    assert [(p.name, p.state) for p in store.list_packages()] == [("acme/assembled", "open")]
    monkeypatch.undo()
    assert store.push("acme/spooled", "1", tree).created
    assert store.finalize_package(package).files[0].path == "a.txt"
    assert store.verify_all().ok


def test_a_push_stores_again_a_blob_a_crash_left_torn(
    store: ArtifactStore, blob_root: Path, tmp_path: Path
) -> None:
    """A blob linked into place before it was synced can be empty after a power cut; a push
    of the same bytes must not take it as stored."""
    tree = tmp_path / "dist"
    tree.mkdir()
    data = os.urandom(300_000)  # a file of the large tier
    (tree / "app.bin").write_bytes(data)
    store.push("acme/app", "1", tree)
    address = store.get_manifest("acme/app:1").files[0].content_address
    blob = blob_root / "blake3" / address.hex[:2] / address.hex[2:4] / address.hex
    blob.chmod(0o644)
    blob.write_bytes(b"")
    store.push("acme/app", "2", tree)
    assert blob.read_bytes() == data
    assert store.verify_package("acme/app:2").ok


def test_a_publish_whose_upload_session_was_swept_publishes_nothing(
    store: ArtifactStore, tmp_path: Path
) -> None:
    """A push that made no progress for a day loses its session (and its staged files) to the
    next writer's or collection's sweep; its publish must not make an empty package."""
    tree = tmp_path / "dist"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"a")
    with uploads.held(store._db) as session:
        ingest.stage_directory(store._db, store.dataplane, session, scan(tree))
        with store._db.write(lock=False) as connection:
            uploads.end_session(connection, session)  # what the sweep of an expired one does
        with pytest.raises(ConflictError, match="ended before its publish"):
            publish.publish(store._db, session, "acme/app", "1", "standard", None, None)
    assert store.list_packages("acme/app") == []
