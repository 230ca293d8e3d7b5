"""The remote client against a real server: push and pull over loopback, set beside local ones.

One store is served by `artifactstore serve --workers 4` on a loopback port; the client runs
as the CLI with `--server`, in its own work directory, exactly as a CI runner would. Each
repetition times, in one run and on one tree: a local push and pull (a store of its own), a
remote push, a remote re-push of the unchanged tree as a new version (it uploads no blob), a
remote pull, and 8 remote pulls at once. The figures are medians over the repetitions; the
ratios are what issue 12 sets targets on.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import measure
from benchmarks.micro import Figure
from benchmarks.tools import REPO_ROOT
from benchmarks.workloads import Workload

REMOTE_PUSH = "remote push / local push"
REMOTE_PULL = "remote pull / local pull"
REMOTE_REPUSH = "remote re-push (unchanged) / hashing alone"
CONCURRENT = "8 concurrent remote pulls, aggregate"
SINGLE = "1 remote pull"
WORKERS = 4
CLIENTS = 8
_EXE = Path(sys.executable).with_name("artifactstore")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _store_args(store: Path) -> list[str]:
    return [str(_EXE), "--db", f"sqlite:///{store}/registry.db", "--root", str(store / "blobs")]


@contextmanager
def _server(store: Path) -> Iterator[tuple[str, str]]:
    """A migrated store served by gunicorn on loopback: (base URL, a write token's secret)."""
    # migrate makes the database only; a store's blob folder is made by its first push.
    (store / "blobs").mkdir(parents=True)
    subprocess.run([*_store_args(store), "migrate"], check=True, capture_output=True)
    made = subprocess.run(
        [*_store_args(store), "token", "create", "bench", "--scope", "write"],
        check=True,
        capture_output=True,
        text=True,
    )
    secret = next(w for w in made.stdout.split() if w.startswith("as_"))
    port = _free_port()
    argv = [*_store_args(store), "serve", "--port", str(port), "--workers", str(WORKERS)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.1)
        yield base, secret
    finally:
        process.terminate()
        process.wait(timeout=30)


def _timed(runner: measure.Runner, argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one command (after a sync, so no step pays for the last one's writes)."""
    os.sync()
    return runner.run(measure.Command(tuple(argv), None, tuple(sorted(env.items())))).seconds


def _concurrent_pulls(argv: list[str], outs: list[Path], env: dict[str, str]) -> float:
    """Wall seconds for CLIENTS remote pulls started at once, each into its own directory."""
    os.sync()
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [*argv, str(out)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for out in outs
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a concurrent pull failed: {err.decode(errors='replace')}")
    return time.perf_counter() - started


def remote(runner: measure.Runner, workload: Workload, scratch: Path, repeat: int) -> list[Figure]:
    """Remote push, re-push and pull of workload against local ones and hashing, as ratios."""
    hashing_cmd = [sys.executable, "-m", "benchmarks.hashfiles", "dual", str(workload.root)]
    hashing_env = {"PYTHONPATH": str(REPO_ROOT)}
    times: dict[str, list[float]] = {}

    def keep(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    for rep in range(repeat):
        work = scratch / f"remote-{workload.name}-{rep}"
        try:
            local = _store_args(work / "local")
            (work / "local").mkdir(parents=True)
            subprocess.run([*local, "migrate"], check=True, capture_output=True)
            keep(
                "local push",
                _timed(runner, [*local, "push", "bench/tree", "1", str(workload.root)], {}),
            )
            keep(
                "local pull",
                _timed(runner, [*local, "pull", "bench/tree", "1", str(work / "lo")], {}),
            )
            keep("hashing", _timed(runner, hashing_cmd, hashing_env))
            with _server(work / "served") as (base, secret):
                client = [str(_EXE), "--server", base]
                env = {"ARTIFACTSTORE_TOKEN": secret}
                tree = str(workload.root)
                keep("push", _timed(runner, [*client, "push", "bench/tree", "1", tree], env))
                keep("re-push", _timed(runner, [*client, "push", "bench/tree", "2", tree], env))
                pull = [*client, "pull", "bench/tree", "1"]
                keep("pull", _timed(runner, [*pull, str(work / "ro")], env))
                outs = [work / f"ro-{n}" for n in range(CLIENTS)]
                keep("8 pulls", _concurrent_pulls(pull, outs, env))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    median = {key: statistics.median(values) for key, values in times.items()}
    mb = workload.size / 1e6
    note = f"{workload.name}: {workload.files:,} files, {mb:,.0f} MB, {WORKERS} workers, loopback"
    return [
        Figure(
            REMOTE_PUSH,
            median["push"] / median["local push"],
            "x",
            f"{median['push']:.2f} s vs {median['local push']:.2f} s; {note}",
        ),
        Figure(
            REMOTE_PULL,
            median["pull"] / median["local pull"],
            "x",
            f"{median['pull']:.2f} s vs {median['local pull']:.2f} s",
        ),
        Figure(
            REMOTE_REPUSH,
            median["re-push"] / median["hashing"],
            "x",
            f"{median['re-push']:.2f} s vs {median['hashing']:.2f} s (both digests, 2 threads)",
        ),
        Figure(SINGLE, mb / median["pull"], "MB/s", f"{median['pull']:.2f} s"),
        Figure(
            CONCURRENT,
            CLIENTS * mb / median["8 pulls"],
            "MB/s",
            f"{CLIENTS} clients in {median['8 pulls']:.2f} s; "
            f"{CLIENTS * median['pull'] / median['8 pulls']:.2f}x one client's throughput",
        ),
    ]
