"""Micro-benchmarks of the parts: the dual digest, the event log on SQLite, CLI start-up.

The digest and event figures reuse the hand-run scripts (`scripts/bench_digest.py`,
`scripts/bench_events.py`): their buffer builders, rate helper and realistic event batches
are loaded from the files, so the suite and the scripts measure the same things.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from artifactstore import migration, schema
from artifactstore.events import log, views
from artifactstore.events.model import NewEvent
from artifactstore.identity import digest_stream
from benchmarks import measure
from benchmarks.tools import REPO_ROOT
from benchmarks.workloads import MIB

APPEND = "event append, one transaction per package"
REPLAY = "event replay (rebuild every view)"
STARTUP = "`artifactstore version` start-up"


@dataclass(frozen=True, slots=True)
class Figure:
    """One micro-benchmark result: what was measured, the value and its unit, and a note."""

    label: str
    value: float
    unit: str
    note: str = ""


def _script(name: str) -> ModuleType:
    """Load scripts/<name>.py as a module (scripts/ is not a package)."""
    path = REPO_ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_script_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digest(mib: int) -> list[Figure]:
    """MB/s of SHA-256 alone, BLAKE3 alone and digest_stream (both), in memory and from a file."""
    script = _script("bench_digest")
    size = mib * MIB
    data: bytes = script.make_buffer(size)
    pieces: list[bytes] = script.chunks(memoryview(data))
    note = f"{mib} MiB, median of 3"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob"
        path.write_bytes(data)

        def from_file() -> None:
            with path.open("rb") as handle:
                digest_stream(handle)

        cases = [
            ("SHA-256 alone (hashlib, in memory)", lambda: script.sha256_alone(data)),
            ("BLAKE3 alone (1 thread, in memory)", lambda: script.blake3_alone(data)),
            ("digest_stream, both digests, 1 MiB chunks", lambda: digest_stream(pieces)),
            ("digest_stream, both digests, from a file", from_file),
        ]
        return [Figure(label, script.median_rate(size, run), "MB/s", note) for label, run in cases]


def events(total: int) -> list[Figure]:
    """Events/s appending in package-sized transactions on SQLite, and replaying them all."""
    script = _script("bench_events")
    per_package = script.FILES_PER_PACKAGE + 2
    with tempfile.TemporaryDirectory() as tmp:
        engine = schema.make_engine(f"sqlite:///{Path(tmp) / 'events.db'}")
        migration.upgrade(engine)
        writer = schema.writer(engine)
        batches: list[list[NewEvent]] = [
            script.package_events(n) for n in range(max(1, total // per_package))
        ]
        count = sum(len(batch) for batch in batches)
        started = time.perf_counter()
        for batch in batches:
            with writer.begin() as connection:
                views.apply(connection, log.write(connection, batch))
        appended = time.perf_counter() - started
        started = time.perf_counter()
        with writer.begin() as connection:
            views.replay(connection)
        replayed = time.perf_counter() - started
        engine.dispose()
    return [
        Figure(
            "event append, one transaction per package",
            count / appended,
            "events/s",
            f"{count:,} events in {len(batches):,} transactions",
        ),
        Figure(
            "event replay (rebuild every view)",
            count / replayed,
            "events/s",
            f"{count:,} events in {replayed:.2f} s",
        ),
    ]


def startup(runner: measure.Runner, runs: int) -> list[Figure]:
    """Median wall time and largest peak RSS of `artifactstore version` over `runs` runs."""
    exe = str(Path(sys.executable).with_name("artifactstore"))
    samples = [runner.run(measure.Command((exe, "version"))) for _ in range(runs)]
    median = statistics.median(s.seconds for s in samples)
    rss = max(s.peak_rss_kib for s in samples) / 1024
    return [
        Figure(
            "`artifactstore version` start-up",
            median * 1000,
            "ms",
            f"median of {runs} runs; peak RSS {rss:.0f} MiB",
        ),
    ]
