"""Pull into a hostile destination (SPEC "Contracts / Pull stays inside DEST").

Nothing is created or written outside DEST, even while another process swaps a directory
inside it for a symlink; modes follow the umask; a destination that cannot be used is an
ArtifactStoreError; temp files a killed pull left are removed, those of a running one kept.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactstore import ArtifactStore, InvalidPathError, StorageError
from artifactstore.pull import TEMP_PREFIX

NAME = "acme/app"


def push(
    store: ArtifactStore, tmp_path: Path, files: dict[str, bytes], modes: dict[str, int]
) -> None:
    """Push files (with modes, 0644 where none is given) as NAME version 1."""
    tree = tmp_path / "tree"
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
        (tree / rel).chmod(modes.get(rel, 0o644))
    store.push(NAME, "1", tree)


def everything_under(root: Path) -> list[str]:
    """Every file and directory under root, relative, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside DEST that no pull may write into."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.mark.parametrize("in_the_way", ["a", "a/x"])
def test_a_symlinked_directory_in_dest_is_refused_before_anything_is_made_through_it(
    store: ArtifactStore, tmp_path: Path, outside: Path, in_the_way: str
) -> None:
    push(store, tmp_path, {"a/x/y": b"y", "top": b"t"}, {})
    dest = tmp_path / "dest"
    (dest / in_the_way).parent.mkdir(parents=True, exist_ok=True)
    (dest / in_the_way).symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidPathError) as refused:
        store.pull((NAME, "1"), dest)
    assert everything_under(outside) == []
    assert f"'{in_the_way}' under '{dest}' is a symlink" in str(refused.value)
    assert not list(dest.rglob(f"{TEMP_PREFIX}*"))


def test_a_file_where_a_directory_is_needed_is_refused(
    store: ArtifactStore, tmp_path: Path
) -> None:
    push(store, tmp_path, {"a/x/y": b"y"}, {})
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a").write_bytes(b"mine")
    with pytest.raises(InvalidPathError, match=r"'a' under .* is not a directory"):
        store.pull((NAME, "1"), dest)
    assert (dest / "a").read_bytes() == b"mine"


def test_a_symlink_at_a_file_path_is_replaced_not_written_through(
    store: ArtifactStore, tmp_path: Path, outside: Path
) -> None:
    push(store, tmp_path, {"a/y": b"new"}, {})
    (outside / "victim").write_bytes(b"victim")
    dest = tmp_path / "dest"
    (dest / "a").mkdir(parents=True)
    (dest / "a" / "y").symlink_to(outside / "victim")
    store.pull((NAME, "1"), dest)
    assert (outside / "victim").read_bytes() == b"victim"
    assert not (dest / "a" / "y").is_symlink() and (dest / "a" / "y").read_bytes() == b"new"


SWAPPER = textwrap.dedent(
    """
    import ctypes, os, sys, time
    real, link, stop = sys.argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    RENAME_EXCHANGE = 2
    AT_FDCWD = -100
    print("ready", flush=True)
    while not os.path.exists(stop):
        # Atomically swap DEST/a (a real directory) with DEST/s (a symlink leading outside).
        if libc.renameat2(AT_FDCWD, real.encode(), AT_FDCWD, link.encode(), RENAME_EXCHANGE):
            sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
        time.sleep(0.0002)
    """
)


def test_a_directory_swapped_for_a_symlink_while_pulls_run_is_never_written_through(
    store: ArtifactStore, tmp_path: Path, outside: Path
) -> None:
    push(store, tmp_path, {"a/b/f1": b"1", "a/b/f2": b"2", "a/f3": b"3", "a/f4": b"4"}, {})
    dest = tmp_path / "dest"
    (dest / "a").mkdir(parents=True)
    (dest / "s").symlink_to(outside, target_is_directory=True)
    stop = tmp_path / "stop"
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(dest / "a"), str(dest / "s"), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    outcomes: dict[str, int] = {}
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == "ready\n"
        for _ in range(200):
            try:
                store.pull((NAME, "1"), dest)
                outcome = "pulled"
            except (InvalidPathError, StorageError) as exc:
                # Refusing is allowed: a symlink met where a directory is needed, or a
                # directory that moved away between two steps of the pull.
                outcome = type(exc).__name__
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            assert everything_under(outside) == [], outcomes
    finally:
        stop.touch()
        swapper.wait(timeout=30)
    assert swapper.returncode == 0
    # The swaps did meet the pulls (how many pulls won depends on the machine's load).
    assert outcomes.get("InvalidPathError", 0) > 0, outcomes
    assert not list(dest.rglob(f"{TEMP_PREFIX}*"))


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under the umask it is parametrized with (the process's: no threads)."""
    wanted: int = request.param
    previous = os.umask(wanted)
    try:
        yield wanted
    finally:
        os.umask(previous)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o027, 0o002], indirect=True)
def test_modes_are_0666_or_0777_less_the_umask(
    store: ArtifactStore, tmp_path: Path, umask: int
) -> None:
    files = {"doc.txt": b"d", "bin/tool": b"#!/bin/sh\n", "bin/odd": b"o", "private": b"p"}
    push(store, tmp_path, files, {"bin/tool": 0o755, "bin/odd": 0o601, "private": 0o600})
    dest = tmp_path / "dest"
    store.pull((NAME, "1"), dest)

    def mode(rel: str) -> int:
        return stat.S_IMODE((dest / rel).stat().st_mode)

    assert mode("doc.txt") == mode("private") == 0o666 & ~umask
    assert mode("bin/tool") == mode("bin/odd") == 0o777 & ~umask
    assert mode("bin") == 0o777 & ~umask


def test_a_destination_that_cannot_be_used_is_an_invalid_path_error(
    store: ArtifactStore, tmp_path: Path
) -> None:
    push(store, tmp_path, {"f": b"f"}, {})
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = {
        tmp_path / "file" / "dest": "Not a directory",
        tmp_path / "file": "it is not a directory",
        tmp_path / "dangling": "it is a symlink to nothing",
    }
    for dest, reason in cases.items():
        with pytest.raises(InvalidPathError, match=f"cannot pull into '{dest}': {reason}"):
            store.pull((NAME, "1"), dest)
    assert not (tmp_path / "nowhere").exists()


def test_temp_files_a_killed_pull_left_are_removed_and_a_running_ones_kept(
    store: ArtifactStore, tmp_path: Path
) -> None:
    push(store, tmp_path, {"bin/app": b"app", "top": b"t"}, {})
    dest = tmp_path / "dest"
    (dest / "bin").mkdir(parents=True)
    (dest / f"{TEMP_PREFIX}killed" / "sub").mkdir(parents=True)
    (dest / f"{TEMP_PREFIX}killed" / "sub" / "0").write_bytes(b"half")
    (dest / "bin" / f"{TEMP_PREFIX}old").write_bytes(b"an older version's temp file")
    running = dest / f"{TEMP_PREFIX}running"
    running.mkdir()
    (running / "0").write_bytes(b"in progress")
    an_hour_ago = time.time() - 3600
    for old in (dest / f"{TEMP_PREFIX}killed", running):
        os.utime(old, (an_hour_ago, an_hour_ago))
    # Made a moment ago by a pull that has not locked it yet: left alone too.
    (dest / f"{TEMP_PREFIX}just-made").mkdir()
    fd = os.open(running, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        store.pull((NAME, "1"), dest)
    finally:
        os.close(fd)
    kept = [f"{TEMP_PREFIX}just-made", f"{TEMP_PREFIX}running", f"{TEMP_PREFIX}running/0"]
    assert everything_under(dest) == sorted(["bin", "bin/app", "top", *kept])
