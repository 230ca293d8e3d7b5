"""OCI image layouts out and in (ADR-0013): export-oci and import-oci over a real store, and
skopeo reading what export wrote."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from oci_clients import skopeo
from test_cli import Cli, base_env

from artifactstore import ArtifactStore, DigestMismatchError, InvalidInputError, InvalidPathError

BIG = os.urandom(300_000)  # above the 64 KiB small-blob limit: a file of its own in the store


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over the `store` fixture's database and blob root."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


def make_tree(root: Path, big: int = 0) -> Path:
    """Executables, unicode paths, an empty file, a large file; and a big one of `big` bytes."""
    (root / "bin").mkdir(parents=True)
    (root / "données" / "ünï").mkdir(parents=True)
    (root / "bin" / "run").write_bytes(b"#!/bin/sh\necho run\n")
    (root / "bin" / "run").chmod(0o755)
    (root / "bin" / "large-tool").write_bytes(BIG)
    (root / "bin" / "large-tool").chmod(0o755)
    (root / "données" / "ünï" / "é.txt").write_text("café\n")
    (root / "empty").write_bytes(b"")
    if big:
        with (root / "huge.bin").open("wb") as out:
            for _ in range(big // (1 << 20)):
                out.write(os.urandom(1 << 20))
    return root


def executables(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.stat().st_mode & stat.S_IXUSR
    }


def same_tree(one: Path, other: Path) -> None:
    """diff -r is clean and the same files are executable."""
    done = subprocess.run(["diff", "-r", str(one), str(other)], capture_output=True, check=False)
    assert done.returncode == 0, done.stdout
    assert executables(one) == executables(other)


def test_export_then_import_gives_the_same_files_and_executable_bits(
    store: ArtifactStore, tmp_path: Path
) -> None:
    # 1.5 s with the 100 MiB file: its blob is hard-linked out and found stored on the way in.
    tree = make_tree(tmp_path / "tree", 100 << 20)
    store.push("acme/app", "1.0", tree)
    image = store.oci.export(("acme/app", "1.0"), tmp_path / "layout")
    result = store.oci.import_layout(tmp_path / "layout", "acme/copy", "1.0")
    assert result.created and result.files == len(image.files)
    assert store.verify_package(("acme/copy", "1.0")).ok
    store.pull(("acme/copy", "1.0"), tmp_path / "out")
    same_tree(tree, tmp_path / "out")
    original = store.list_files(("acme/app", "1.0"))
    assert store.list_files(("acme/copy", "1.0")) == original


def test_the_layout_is_what_skopeo_reads_and_its_blobs_are_the_files(
    store: ArtifactStore, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree")
    store.push("acme/app", "1.0", tree)
    image = store.oci.export(("acme/app", "1.0"), tmp_path / "layout")
    layout = tmp_path / "layout"
    # skopeo 1.9 inspects a non-image artifact only raw: the manifest bytes as written.
    raw = skopeo("inspect", "--raw", f"oci:{layout}:1.0").stdout
    assert raw.encode() == image.manifest
    assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_bytes())
    assert index["manifests"][0]["digest"] == image.digest
    skopeo("copy", f"oci:{layout}:1.0", f"dir:{tmp_path / 'copied'}")
    copied = {p.name for p in (tmp_path / "copied").iterdir()}
    for file in store.list_files(("acme/app", "1.0")):
        data = (tree / file.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == file.sha256.hex
        assert file.sha256.hex in copied
        assert (tmp_path / "copied" / file.sha256.hex).read_bytes() == data
    config = layout / "blobs" / "sha256" / image.config_digest.removeprefix("sha256:")
    assert config.read_bytes() == store.get_manifest_bytes(("acme/app", "1.0"))


def test_large_blobs_are_hard_links_and_small_ones_checked_copies(
    store: ArtifactStore, tmp_path: Path, blob_root: Path
) -> None:
    store.push("acme/app", "1.0", make_tree(tmp_path / "tree"))
    store.oci.export(("acme/app", "1.0"), tmp_path / "layout")
    blobs = tmp_path / "layout" / "blobs" / "sha256"
    large = next(f for f in store.list_files(("acme/app", "1.0")) if f.path == "bin/large-tool")
    hex_digits = large.blake3.hex
    stored = blob_root / "blake3" / hex_digits[:2] / hex_digits[2:4] / hex_digits
    assert (blobs / large.sha256.hex).stat().st_ino == stored.stat().st_ino
    small = next(f for f in store.list_files(("acme/app", "1.0")) if f.path == "bin/run")
    assert (blobs / small.sha256.hex).stat().st_nlink == 1
    assert stat.S_IMODE((blobs / small.sha256.hex).stat().st_mode) & 0o222 == 0


def test_a_corrupt_blob_fails_the_export_and_leaves_no_layout(
    store: ArtifactStore,
    tmp_path: Path,
    blob_root: Path,
    cli: Cli,
    corrupt_blob: Callable[[Path, bytes], None],
) -> None:
    store.push("acme/app", "1.0", make_tree(tmp_path / "tree"))
    corrupt_blob(blob_root, b"#!/bin/sh\necho run\n")
    result = cli("export-oci", "acme/app", "1.0", tmp_path / "layout")
    assert result.code == 1 and len(result.err.splitlines()) == 1, result
    assert not (tmp_path / "layout").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".oci-tmp")] == []


def test_export_oci_prints_the_digest_and_refuses_what_it_cannot_write(
    store: ArtifactStore, tmp_path: Path, cli: Cli
) -> None:
    store.push("acme/app", "1.0", make_tree(tmp_path / "tree"))
    image = store.oci.image(("acme/app", "1.0"))
    assert (
        cli.ok("export-oci", "acme/app:1.0", tmp_path / "layout").out
        == f"{image.digest}\n".encode()
    )
    again = cli("export-oci", "acme/app", "1.0", tmp_path / "layout")
    assert again.code == 2 and "is not empty" in again.err and len(again.err.splitlines()) == 1
    (tmp_path / "empty-dir").mkdir()
    summary = json.loads(cli.ok("--json", "export-oci", "acme/app", "1.0", "empty-dir").out)
    assert summary["digest"] == image.digest and summary["files"] == 4
    assert summary["manifest_digest"] == store.get_package("acme/app", "1.0").manifest_digest
    store.create_package("acme/open", "1")
    refused = cli("export-oci", "acme/open", "1", tmp_path / "open")
    assert refused.code == 2 and "not finalized" in refused.err
    assert cli("export-oci", "acme/none", "1", tmp_path / "none").code == 2
    assert not (tmp_path / "open").exists() and not (tmp_path / "none").exists()


def write_layout(root: Path, layers: list[tuple[str | None, bytes]], config: bytes = b"{}") -> Path:
    """A plain ORAS-style layout: octet-stream layers titled with paths (None: no title)."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    described = []
    for title, data in layers:
        layer = {"mediaType": "application/octet-stream", **blob(data)}
        if title is not None:
            layer["annotations"] = {"org.opencontainers.image.title": title}
        described.append(layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.unknown.artifact.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **blob(config)},
        "layers": described,
    }
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **blob(json.dumps(manifest).encode()),
    }
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


def test_an_oras_layout_imports_its_titled_layers(store: ArtifactStore, tmp_path: Path) -> None:
    layers = [("a/readme.md", b"# hi\n"), (None, b"untitled"), ("z.bin", BIG)]
    write_layout(tmp_path / "oras", layers)
    store.oci.import_layout(tmp_path / "oras", "acme/oras", "1", "ci")
    files = store.list_files(("acme/oras", "1"))
    assert [(f.path, f.size, f.executable) for f in files] == [
        ("a/readme.md", 5, False),
        ("z.bin", len(BIG), False),
    ]
    assert store.get_package("acme/oras", "1").retention_class == "ci"
    with store.get_file(("acme/oras", "1"), "z.bin") as reader:
        assert reader.read() == BIG


def test_importing_again_changes_nothing_and_other_files_conflict(
    store: ArtifactStore, tmp_path: Path, cli: Cli
) -> None:
    write_layout(tmp_path / "one", [("a.txt", b"a")])
    write_layout(tmp_path / "two", [("a.txt", b"b")])
    first = cli.ok("import-oci", "one", "acme/x", "1").out
    assert cli.ok("import-oci", "one", "acme/x", "1").out == first
    assert first.decode().strip() == store.get_package("acme/x", "1").manifest_digest
    head = store.checkpoint()
    conflict = cli("import-oci", "two", "acme/x", "1")
    assert conflict.code == 2 and len(conflict.err.splitlines()) == 1, conflict
    assert store.checkpoint() == head


def break_blob(root: Path, data: bytes, replacement: bytes) -> None:
    blob = root / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
    blob.write_bytes(replacement)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: (root / "index.json").unlink(), "cannot read"),
        (lambda root: (root / "oci-layout").write_text("{}"), "imageLayoutVersion"),
        (lambda root: (root / "index.json").write_text("[1"), "not JSON"),
        (lambda root: break_blob(root, b"a", b""), "not a regular file of 1 bytes"),
        (lambda root: break_blob(root, b"a", b"ab"), "not a regular file of 1 bytes"),
    ],
)
def test_a_layout_that_cannot_be_read_exits_2_with_nothing_created(
    store: ArtifactStore,
    tmp_path: Path,
    cli: Cli,
    damage: Callable[[Path], None],
    message: str,
) -> None:
    damage(write_layout(tmp_path / "layout", [("a.txt", b"a"), ("b.txt", b"b")]))
    head = store.checkpoint()
    result = cli("import-oci", "layout", "acme/x", "1")
    assert result.code == 2 and message in result.err and len(result.err.splitlines()) == 1
    assert store.checkpoint() == head and store.list_packages(include_ended=True) == []


@pytest.mark.parametrize(
    ("layers", "error"),
    [
        ([("../escape", b"a")], InvalidPathError),
        ([("a", b"a"), ("a", b"b")], InvalidPathError),
        ([("a", b"a"), ("a/b", b"b")], InvalidPathError),
        ([("/abs", b"a")], InvalidPathError),
        ([(None, b"a")], InvalidInputError),
    ],
)
def test_layers_a_package_cannot_hold_are_refused(
    store: ArtifactStore,
    tmp_path: Path,
    layers: list[tuple[str | None, bytes]],
    error: type[Exception],
) -> None:
    write_layout(tmp_path / "layout", layers)
    with pytest.raises(error):
        store.oci.import_layout(tmp_path / "layout", "acme/x", "1")
    assert store.list_packages(include_ended=True) == []


def test_a_blob_that_is_not_its_digest_exits_1_and_publishes_nothing(
    store: ArtifactStore, tmp_path: Path, cli: Cli
) -> None:
    root = write_layout(tmp_path / "layout", [("a.txt", b"a"), ("b.txt", b"b")])
    break_blob(root, b"b", b"c")  # same size, other bytes
    result = cli("import-oci", "layout", "acme/x", "1")
    assert result.code == 1 and "b.txt" in result.err and len(result.err.splitlines()) == 1
    assert store.list_packages(include_ended=True) == []
    with pytest.raises(DigestMismatchError):
        store.oci.import_layout(root, "acme/x", "1")
    # The image manifest itself must be its digest too.
    manifest = json.loads((root / "index.json").read_text())["manifests"][0]["digest"]
    (root / "blobs" / "sha256" / manifest.removeprefix("sha256:")).write_text("{}")
    with pytest.raises(DigestMismatchError, match="image manifest"):
        store.oci.import_layout(root, "acme/x", "1")


def test_racing_imports_of_one_version_publish_it_once(
    store: ArtifactStore, tmp_path: Path, migrated_url: str, blob_root: Path
) -> None:
    same = write_layout(tmp_path / "same", [("a.txt", b"a"), ("big.bin", BIG)])
    other = write_layout(tmp_path / "other", [("a.txt", b"other")])
    env = {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": migrated_url,
        "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(blob_root),
    }
    racing = [
        subprocess.Popen(
            [sys.executable, "-m", "artifactstore", "import-oci", str(layout), "acme/x", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for layout in (same, same, same, other)
    ]
    results = []
    for process in racing:
        out, err = process.communicate(timeout=120)
        results.append((process.returncode, out.decode(), err.decode()))
    identical = [out for code, out, _ in results[:3] if code == 0]
    conflicted = [code for code, _, _ in results if code == 2]
    # Whichever layout published first wins; every other import agrees with it or conflicts.
    if results[3][0] == 0:
        assert identical == [] and conflicted == [2, 2, 2]
    else:
        assert len(identical) == 3 and len(set(identical)) == 1 and conflicted == [2]
    assert len(store.list_packages("acme/x")) == 1
    assert store.verify_all().ok and store.replay(check=True).identical
