"""What a store leaves on disk: its modes under any umask, and no stale temp files.

SPEC "Permissions": nothing world-writable whatever the umask, and blob files read-only.
SPEC "Crash safety": temp files a killed push left behind are swept by a later push.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import Cli, base_env

from artifactstore import ArtifactStore
from artifactstore.storage.backends.local import STALE_TEMP_AGE

NAME, VERSION = "acme/app", "1.0"


@pytest.fixture
def no_umask() -> Iterator[None]:
    """Run the test under umask 000, as some CI images and containers do."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Files for both blob tiers: small ones (packed) and a large one (a file of its own)."""
    root = tmp_path / "dist"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "small.txt").write_bytes(b"small\n")
    (root / "large.bin").write_bytes(os.urandom(200_000))
    return root


def modes_under(directory: Path) -> dict[str, int]:
    """The permission bits of directory and everything under it, by relative path."""
    paths = [directory, *directory.rglob("*")]
    return {str(p.relative_to(directory.parent)): stat.S_IMODE(p.stat().st_mode) for p in paths}


@pytest.mark.usefixtures("no_umask")
def test_a_new_store_creates_nothing_world_writable_under_umask_000(
    tmp_path: Path, tree: Path
) -> None:
    home = tmp_path / "store"
    url = f"sqlite:///{home}/db/registry.db"
    with ArtifactStore.open(url, home / "blobs" / "local") as store:
        store.push(NAME, VERSION, tree)
        # The first write of a process creates the temp folder: exercise it here too.
        store.push(NAME, "2.0", tree)
    modes = modes_under(home)
    writable = {path: oct(mode) for path, mode in modes.items() if mode & stat.S_IWOTH}
    assert writable == {}
    directories = {path: mode for path, mode in modes.items() if (tmp_path / path).is_dir()}
    assert set(directories.values()) == {0o755}, directories
    assert "store/blobs/local/.tmp" in directories and "store/db" in directories
    blobs = [path for path in modes if "/blake3/" in path and (tmp_path / path).is_file()]
    assert blobs and {modes[path] for path in blobs} == {0o444}
    assert modes["store/blobs/local/small-blobs.db"] == 0o644
    assert modes["store/db/registry.db.lock"] == 0o644


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database and an empty blob root."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


def test_a_push_sweeps_stale_temp_files_and_keeps_fresh_ones(cli: Cli, tmp_path: Path) -> None:
    temp = Path(cli.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"]) / ".tmp"
    temp.mkdir()
    stale = temp / "4242-0123456789abcdef.part"
    stale.write_bytes(b"left by a killed push" * 1000)
    old = time.time() - STALE_TEMP_AGE.total_seconds() - 60
    os.utime(stale, (old, old))
    # Seconds short of the age: it may belong to a push that is still running.
    running = temp / "4343-fedcba9876543210.part"
    running.write_bytes(b"being written")
    recent = time.time() - STALE_TEMP_AGE.total_seconds() + 60
    os.utime(running, (recent, recent))
    cli.ok("ls")
    assert stale.exists()  # a read sweeps nothing
    only_small = tmp_path / "small-only"
    only_small.mkdir()
    (only_small / "a.txt").write_bytes(b"a small file: it never touches the temp folder\n")
    cli.ok("push", NAME, VERSION, only_small)
    assert not stale.exists()
    assert running.read_bytes() == b"being written"
