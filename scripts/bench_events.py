#!/usr/bin/env python3
"""Benchmark the event log: append throughput (batched and one per transaction) and replay.

Usage: scripts/bench_events.py [--events N] [--db URL]...   (default: a temp SQLite file)
Prints events/s for each database given. Not a test; figures vary with the disk.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from artifactstore import migration, schema
from artifactstore.events import log, views
from artifactstore.events.model import (
    FILE_INGESTED,
    PACKAGE_CREATED,
    RETENTION_ASSIGNED,
    NewEvent,
)
from artifactstore.manifest.codec import encode_value

FILES_PER_PACKAGE = 98
STAMP = "2026-11-29T16:17:26.123456Z"


def package_events(n: int) -> list[NewEvent]:
    """A realistic unit of work: one package created, classed, and 98 files ingested."""
    package_id = str(uuid.UUID(int=n))

    def event(event_type: str, payload: object) -> NewEvent:
        return NewEvent(
            str(uuid.uuid4()), event_type, STAMP, "bench", package_id, encode_value(payload)
        )

    events = [
        event(PACKAGE_CREATED, {"name": "bench/pkg", "version": str(n), "metadata": {}}),
        event(RETENTION_ASSIGNED, {"class": "ci"}),
    ]
    for f in range(FILES_PER_PACKAGE):
        digest = f"{n:032x}{f:032x}"
        events.append(
            event(
                FILE_INGESTED,
                {
                    "path": f"dir/file-{f}.bin",
                    "size": 4096,
                    "blake3": digest,
                    "sha256": digest,
                    "executable": False,
                    "backend_id": "local",
                    "object_key": f"blake3/{digest[:2]}/{digest[2:4]}/{digest}",
                    "stored_at": STAMP,
                },
            )
        )
    return events


def bench(url: str, total: int) -> None:
    """Append `total` events in package-sized transactions, then 1,000 singly, then replay."""
    engine = schema.make_engine(url)
    migration.downgrade(engine)
    migration.upgrade(engine)
    writer = schema.writer(engine)
    packages = max(1, total // (FILES_PER_PACKAGE + 2))
    batches = [package_events(n) for n in range(packages)]
    count = sum(len(b) for b in batches)
    started = time.perf_counter()
    for batch in batches:
        with writer.begin() as connection:
            views.apply(connection, log.write(connection, batch))
    batched = time.perf_counter() - started

    singles = [e for n in range(11) for e in package_events(packages + n)][:1000]
    started = time.perf_counter()
    for single in singles:
        with writer.begin() as connection:
            views.apply(connection, log.write(connection, [single]))
    one_each = time.perf_counter() - started

    started = time.perf_counter()
    with writer.begin() as connection:
        report = views.replay(connection)
    replayed = time.perf_counter() - started

    dialect = engine.dialect.name
    print(f"{dialect}: append batched  {count / batched:10,.0f} events/s", end="")
    print(f" ({count:,} events, {len(batches)} transactions)")
    print(f"{dialect}: append 1 per tx {len(singles) / one_each:10,.0f} events/s", end="")
    print(f" ({len(singles):,} transactions)")
    print(f"{dialect}: replay          {report.events / replayed:10,.0f} events/s", end="")
    print(f" ({report.events:,} events in {replayed:.2f} s, identical={report.identical})")
    engine.dispose()


def main() -> None:
    """Parse arguments and run the benchmark on each database."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--db", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for url in args.db or [f"sqlite:///{Path(tmp) / 'bench.db'}"]:
            bench(url, args.events)


if __name__ == "__main__":
    main()
