"""Micro-benchmarks of the parts: the dual digest, the event log on SQLite, CLI start-up.

The digest figures compare SHA-256 and BLAKE3 alone with `digest_stream` (both, on two cores)
over one buffer; the event figures append realistic package-sized batches (created, classed,
98 files) in one transaction each, then replay them all.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import blake3

from artifactstore import cbor, migration, schema
from artifactstore.events import log, replay, views
from artifactstore.events.model import FILE_INGESTED, PACKAGE_CREATED, RETENTION_ASSIGNED, NewEvent
from artifactstore.identity import digest_stream
from benchmarks import measure
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


_BLOCK = 64 * MIB
_FILES_PER_PACKAGE = 98
_STAMP = "2026-11-29T16:17:26.123456Z"


def _buffer(size: int) -> bytes:
    """size bytes: one random block (at most 64 MiB) repeated, so building 1 GiB stays quick."""
    block = os.urandom(min(size, _BLOCK))
    return (block * (size // len(block) + 1))[:size]


def _median_rate(size: int, run: Callable[[], object], repeats: int = 3) -> float:
    """Median MB/s (10^6 bytes per second) over `repeats` runs of run()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return size / statistics.median(times) / 1e6


def digest(mib: int) -> list[Figure]:
    """MB/s of SHA-256 alone, BLAKE3 alone and digest_stream (both), in memory and from a file."""
    size = mib * MIB
    data = _buffer(size)
    # 1 MiB chunks made before timing, so copying is not measured.
    pieces = [data[i : i + MIB] for i in range(0, size, MIB)]
    note = f"{mib} MiB, median of 3"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob"
        path.write_bytes(data)

        def from_file() -> None:
            with path.open("rb") as handle:
                digest_stream(handle)

        cases = [
            ("SHA-256 alone (hashlib, in memory)", lambda: hashlib.sha256(data).hexdigest()),
            (
                "BLAKE3 alone (1 thread, in memory)",
                lambda: blake3.blake3(data, max_threads=1).hexdigest(),
            ),
            ("digest_stream, both digests, 1 MiB chunks", lambda: digest_stream(pieces)),
            ("digest_stream, both digests, from a file", from_file),
        ]
        return [Figure(label, _median_rate(size, run), "MB/s", note) for label, run in cases]


def _package_events(n: int) -> list[NewEvent]:
    """A realistic unit of work: one package created, classed, and 98 files ingested."""
    package_id = str(uuid.UUID(int=n))

    def event(event_type: str, payload: object) -> NewEvent:
        return NewEvent(
            str(uuid.uuid4()), event_type, _STAMP, "bench", package_id, cbor.encode(payload)
        )

    batch = [
        event(PACKAGE_CREATED, {"name": "bench/pkg", "version": str(n), "metadata": {}}),
        event(RETENTION_ASSIGNED, {"class": "ci"}),
    ]
    for f in range(_FILES_PER_PACKAGE):
        hex_digest = f"{n:032x}{f:032x}"
        file = {
            "path": f"dir/file-{f}.bin",
            "size": 4096,
            "blake3": hex_digest,
            "sha256": hex_digest,
            "executable": False,
            "backend_id": "local",
            "object_key": f"blake3/{hex_digest[:2]}/{hex_digest[2:4]}/{hex_digest}",
            "stored_at": _STAMP,
        }
        batch.append(event(FILE_INGESTED, file))
    return batch


def events(total: int) -> list[Figure]:
    """Events/s appending in package-sized transactions on SQLite, and replaying them all."""
    per_package = _FILES_PER_PACKAGE + 2
    with tempfile.TemporaryDirectory() as tmp:
        engine = schema.make_engine(f"sqlite:///{Path(tmp) / 'events.db'}")
        migration.upgrade(engine)
        writer = schema.writer(engine)
        batches: list[list[NewEvent]] = [
            _package_events(n) for n in range(max(1, total // per_package))
        ]
        count = sum(len(batch) for batch in batches)
        started = time.perf_counter()
        for batch in batches:
            with writer.begin() as connection:
                views.apply(connection, log.write(connection, batch))
        appended = time.perf_counter() - started
        started = time.perf_counter()
        with writer.begin() as connection:
            replay.replay(connection)
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
    """Median wall time of `artifactstore version` over `runs` runs (with its largest peak RSS),
    and of the start-up every store command pays, beside its floors measured the same way:
    the interpreter alone and SQLAlchemy's import."""
    exe = str(Path(sys.executable).with_name("artifactstore"))
    python = sys.executable
    timed = [
        (STARTUP, (exe, "version")),
        (
            "start-up of a store command (`import artifactstore.store`)",
            _importing(python, "artifactstore.store"),
        ),
        ("floor: `import sqlalchemy`", _importing(python, "sqlalchemy")),
        ("floor: the interpreter alone (`python -c pass`)", (python, "-c", "pass")),
    ]
    figures = []
    for label, argv in timed:
        samples = [runner.run(measure.Command(argv)) for _ in range(runs)]
        median = statistics.median(s.seconds for s in samples)
        rss = max(s.peak_rss_kib for s in samples) / 1024
        figures.append(
            Figure(label, median * 1000, "ms", f"median of {runs} runs; peak RSS {rss:.0f} MiB")
        )
    return figures


def _importing(python: str, module: str) -> tuple[str, ...]:
    return (python, "-c", f"import {module}")
