"""Retention and garbage collection at scale: gc, expire, and a push beside a gc loop.

Issue 14's figures, each timed as the CLI in its own process (peak RSS included):

- `gc` over a store holding 100,000 unreferenced small blobs (4 KiB) and 1,000 large ones
  (256 KiB), left by one pushed and then deleted package;
- `expire` of 10,000 packages past their expiry (empty packages made through the library);
- a push of the `mixed` workload while `gc --grace 0` runs in a loop beside it, as a ratio to
  the same push alone.

The counts scale with `--scale`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import measure
from benchmarks.micro import Figure
from benchmarks.workloads import Workload

GC_LABEL = "gc of unreferenced blobs"
EXPIRE_LABEL = "expire of packages"
BESIDE_LABEL = "push of mixed beside a gc loop / push alone"
_EXE = Path(sys.executable).with_name("artifactstore")
_SMALL, _LARGE = 4096, 256 * 1024


def _store_args(store: Path) -> list[str]:
    return [str(_EXE), "--db", f"sqlite:///{store}/registry.db", "--root", str(store / "blobs")]


def _sample(runner: measure.Runner, argv: list[str]) -> measure.Sample:
    os.sync()
    return runner.run(measure.Command(tuple(argv), None, ()))


def _garbage_tree(root: Path, small: int, large: int) -> None:
    for n in range(small):
        folder = root / f"s{n // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n}.bin").write_bytes(n.to_bytes(8, "big") * (_SMALL // 8))
    (root / "large").mkdir(parents=True, exist_ok=True)
    for n in range(large):
        (root / "large" / f"{n}.bin").write_bytes(os.urandom(_LARGE))


def collect(runner: measure.Runner, scratch: Path, scale: float) -> Figure:
    """Seconds and peak RSS of one gc removing every blob of a deleted package."""
    small, large = max(100, round(100_000 * scale)), max(10, round(1_000 * scale))
    work = scratch / "gc"
    try:
        _garbage_tree(work / "tree", small, large)
        store = _store_args(work / "store")
        push = [*store, "push", "bench/garbage", "1", str(work / "tree")]
        subprocess.run(push, check=True, capture_output=True)
        subprocess.run(
            [*store, "delete", "bench/garbage", "1", "--yes"], check=True, capture_output=True
        )
        sample = _sample(runner, [*store, "gc", "--grace", "0"])
        left = subprocess.run(
            [*store, "--json", "gc", "--grace", "0", "--dry-run"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        if '"objects":0' not in left:
            raise RuntimeError(f"gc left garbage behind: {left}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Figure(
        GC_LABEL,
        sample.seconds,
        "s",
        f"{small:,} small ({_SMALL // 1024} KiB) + {large:,} large ({_LARGE // 1024} KiB) blobs; "
        f"{(small + large) / sample.seconds:,.0f} blobs/s; peak RSS "
        f"{sample.peak_rss_kib / 1024:.0f} MiB",
    )


_MAKE_PACKAGES = """
import sys
from artifactstore import ArtifactStore
url, root, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with ArtifactStore.open(url, root) as store:
    for n in range(count):
        store.create_package("bench/expiring", str(n), "ephemeral")
        store.finalize_package(("bench/expiring", str(n)))
"""


def expire(runner: measure.Runner, scratch: Path, scale: float) -> Figure:
    """Seconds and peak RSS of one expire ending every package of a store."""
    count = max(100, round(10_000 * scale))
    work = scratch / "expire"
    try:
        store = work / "store"
        url, root = f"sqlite:///{store}/registry.db", str(store / "blobs")
        store.mkdir(parents=True)
        subprocess.run([sys.executable, "-c", _MAKE_PACKAGES, url, root, str(count)], check=True)
        sample = _sample(runner, [*_store_args(store), "expire", "--as-of", "2999-01-01T00:00:00Z"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Figure(
        EXPIRE_LABEL,
        sample.seconds,
        "s",
        f"{count:,} packages; {count / sample.seconds:,.0f} packages/s; peak RSS "
        f"{sample.peak_rss_kib / 1024:.0f} MiB",
    )


def push_beside_gc(
    runner: measure.Runner, workload: Workload, scratch: Path, repeat: int
) -> Figure:
    """A push of workload with a gc loop running on the same store, against the push alone."""
    alone: list[float] = []
    beside: list[float] = []
    for rep in range(repeat):
        work = scratch / f"gc-beside-{rep}"
        try:
            store = _store_args(work / "store")
            (work / "store").mkdir(parents=True)
            subprocess.run([*store, "migrate"], check=True, capture_output=True)
            alone.append(
                _sample(runner, [*store, "push", "bench/tree", "1", str(workload.root)]).seconds
            )
            # Another version's blobs would be deduplicated: a second store for the loop run.
            store = _store_args(work / "beside")
            (work / "beside").mkdir(parents=True)
            subprocess.run([*store, "migrate"], check=True, capture_output=True)
            loop = subprocess.Popen(
                [
                    "sh",
                    "-c",
                    'while true; do "$@" gc --grace 0 >/dev/null || exit 1; done',
                    "gc",
                    *store,
                ]
            )
            try:
                time.sleep(0.5)
                beside.append(
                    _sample(runner, [*store, "push", "bench/tree", "1", str(workload.root)]).seconds
                )
            finally:
                loop.terminate()
                loop.wait()
            check = subprocess.run(
                [*store, "verify", "bench/tree", "1"], check=False, capture_output=True
            )
            if check.returncode != 0:
                raise RuntimeError(f"a push beside gc does not verify: {check.stdout!r}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    with_gc, without = statistics.median(beside), statistics.median(alone)
    return Figure(
        BESIDE_LABEL,
        with_gc / without,
        "x",
        f"{with_gc:.2f} s vs {without:.2f} s; {workload.files:,} files, "
        f"{workload.size / 1e6:,.0f} MB; the pushed package verified",
    )
