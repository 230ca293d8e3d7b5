"""Throughput of the dual digest against its parts: SHA-256 alone, BLAKE3 alone, digest_stream.

Not a test: run it by hand (`python scripts/bench_digest.py --size 256`) to see whether the
one-pass dual hash keeps up with SHA-256 alone, the slower of the two algorithms. Prints MB/s,
the median of three runs each, for in-memory chunks, an io.BytesIO and a real temporary file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3

from artifactstore.identity import digest_stream

MIB = 1 << 20
BLOCK = 64 * MIB


def make_buffer(size: int) -> bytes:
    """size bytes: one random block (at most 64 MiB) repeated, so building 1 GiB stays quick."""
    block = os.urandom(min(size, BLOCK))
    return (block * (size // len(block) + 1))[:size]


def median_rate(size: int, run: Callable[[], object], repeats: int = 3) -> float:
    """Median MB/s (10^6 bytes per second) over `repeats` runs of run()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return size / statistics.median(times) / 1e6


def chunks(view: memoryview) -> list[bytes]:
    """The buffer as 1 MiB bytes chunks, made before timing so copying is not measured."""
    return [bytes(view[i : i + MIB]) for i in range(0, len(view), MIB)]


def sha256_alone(data: bytes) -> None:
    """hashlib.sha256 over the whole buffer, one call."""
    hashlib.sha256(data).hexdigest()


def blake3_alone(data: bytes) -> None:
    """blake3 over the whole buffer, one call, one thread."""
    blake3.blake3(data, max_threads=1).hexdigest()


def main() -> None:
    """Parse --size, build the buffer, print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="buffer size in MiB (default 1024)")
    args = parser.parse_args()
    size = args.size * MIB
    data = make_buffer(size)
    pieces = chunks(memoryview(data))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob"
        path.write_bytes(data)

        def from_file() -> None:
            with path.open("rb") as f:
                digest_stream(f)

        cases: list[tuple[str, Callable[[], object]]] = [
            ("hashlib.sha256 alone", lambda: sha256_alone(data)),
            ("blake3 alone (1 thread)", lambda: blake3_alone(data)),
            ("digest_stream, 1 MiB chunks", lambda: digest_stream(pieces)),
            ("digest_stream, io.BytesIO", lambda: digest_stream(io.BytesIO(data))),
            ("digest_stream, temp file", from_file),
        ]
        print(f"{args.size} MiB, median of 3, cpus={os.cpu_count()}")
        for label, run in cases:
            print(f"{label:30} {median_rate(size, run):9.0f} MB/s")


if __name__ == "__main__":
    main()
