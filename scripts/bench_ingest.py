#!/usr/bin/env python3
"""Benchmark ingest through the library against what the machine and git do on the same files.

Three figures, each as a ratio, from one run (median of --repeat runs each):
  big    one 1 GiB incompressible file: ArtifactStore.ingest_file vs `cp` + `sync`
  small  10,000 x 4 KiB files in 100 directories: ArtifactStore.push vs `git add -A && git commit`
  dedup  re-push of the unchanged small tree as a new version vs hashing every file alone

Usage: scripts/bench_ingest.py [--big-mib N] [--small-files N] [--repeat N] [--dir DIR]
Not a test; the numbers depend on the disk. Needs git on PATH.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from artifactstore import ArtifactStore
from artifactstore.identity import digest_stream


def timed(action: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_of(repeat: int, setup: Callable[[int], Callable[[], object]]) -> float:
    """Median wall time of `repeat` runs; setup(n) prepares run n untimed and returns it."""
    return statistics.median(timed(setup(n)) for n in range(repeat))


def make_big(path: Path, mib: int) -> None:
    """An incompressible file of mib MiB (distinct random blocks)."""
    rng = random.Random(1)
    with path.open("wb") as out:
        for _ in range(mib):
            out.write(rng.randbytes(1 << 20))


def make_small(root: Path, count: int) -> None:
    """count files of 4 KiB with distinct random content, spread over 100 directories."""
    rng = random.Random(2)
    for n in range(count):
        directory = root / f"dir{n % 100:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"file{n:05d}.bin").write_bytes(rng.randbytes(4096))


def run(*command: str | Path, cwd: Path | None = None) -> None:
    """Run a command quietly; fail loudly."""
    subprocess.run([str(c) for c in command], cwd=cwd, check=True, capture_output=True)


def main() -> None:
    """Build the workloads, time every tool, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small-files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--dir", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="as-bench-", dir=args.dir))
    try:
        big = scratch / "big.bin"
        make_big(big, args.big_mib)
        small = scratch / "small"
        make_small(small, args.small_files)
        rows = bench(scratch, big, small, args.repeat, args.small_files)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for label, ours, theirs, peer in rows:
        print(f"{label:<32} artifactstore {ours:8.3f} s", end="   ")
        print(f"{peer:<30} {theirs:8.3f} s   ratio {ours / theirs:5.2f}x")


def bench(
    scratch: Path, big: Path, small: Path, repeat: int, files: int
) -> list[tuple[str, float, float, str]]:
    """Time each pair of (artifactstore, reference) on the prepared workloads."""

    def fresh_store(n: int, tag: str) -> ArtifactStore:
        home = scratch / f"store-{tag}-{n}"
        shutil.rmtree(home, ignore_errors=True)
        return ArtifactStore.open(f"sqlite:///{home}/registry.db", home / "blobs")

    def ingest_big(n: int) -> Callable[[], object]:
        store = fresh_store(n, "big")
        package = store.create_package("bench/big", "1")
        return lambda: store.ingest_file(package, "big.bin", big)

    def copy_big(n: int) -> Callable[[], object]:
        target = scratch / f"copy-{n}.bin"
        target.unlink(missing_ok=True)
        return lambda: (run("cp", big, target), run("sync"))

    def push_small(n: int) -> Callable[[], object]:
        store = fresh_store(n, "small")
        return lambda: store.push("bench/small", "1", small)

    def git_small(n: int) -> Callable[[], object]:
        repo = scratch / f"git-{n}"
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(small, repo)
        run("git", "init", "-q", cwd=repo)
        run("git", "config", "user.email", "bench@example.invalid", cwd=repo)
        run("git", "config", "user.name", "bench", cwd=repo)
        return lambda: (
            run("git", "add", "-A", cwd=repo),
            run("git", "commit", "-qm", "bench", cwd=repo),
        )

    dedup_store = fresh_store(0, "dedup")
    dedup_store.push("bench/small", "0", small)

    def repush_small(n: int) -> Callable[[], object]:
        return lambda: dedup_store.push("bench/small", f"r{n}", small)

    def hash_small(n: int) -> Callable[[], object]:
        paths = sorted(small.rglob("*.bin"))

        def hash_all() -> None:
            for path in paths:
                with path.open("rb") as handle:
                    digest_stream(handle)

        return hash_all

    results = []
    for label, ours, theirs, peer in [
        (f"big: ingest {big.stat().st_size >> 20} MiB", ingest_big, copy_big, "cp + sync"),
        (f"small: push {files} x 4 KiB", push_small, git_small, "git add -A && git commit"),
        (
            "dedup: re-push unchanged tree",
            repush_small,
            hash_small,
            "hash every file (both digests)",
        ),
    ]:
        # Alternate the two tools so drift in the machine's state hits both alike.
        ours_times, theirs_times = [], []
        for n in range(repeat):
            ours_times.append(timed(ours(n)))
            theirs_times.append(timed(theirs(n)))
        results.append(
            (label, statistics.median(ours_times), statistics.median(theirs_times), peer)
        )
    for label, ours_s, _, _ in results[1:2]:
        print(f"{label}: {files / ours_s:,.0f} files/s")
    return results


if __name__ == "__main__":
    main()
