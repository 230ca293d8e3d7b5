"""S3 storage beside local storage: push, pull and verify of a workload on moto over loopback.

The harness starts moto's S3 server (`python -m moto.server`, as the tests do) on a free
loopback port with its request log in a file, and stops it at the end. Each repetition times,
through the CLI in processes of their own, a push, a pull and a `verify NAME VERSION` of the
workload into a fresh store with local storage and into one with `--storage s3://…` (a fresh
bucket), alternating which goes first; the S3 commands get dummy AWS credentials in their
environment. The server's log gives each S3 command's requests by kind. Last, one client times
requests alone, one after another: HEAD, PUT and GET of 4 KiB, and PUT and GET of one part.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import measure
from benchmarks.workloads import KIB, Workload

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}
WORKLOADS = ("mixed", "small")
PROBES = 200
_EXE = Path(sys.executable).with_name("artifactstore")
_REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)*([A-Z]+) (\S+) HTTP/')


@dataclass(frozen=True, slots=True)
class Row:
    """One operation on one workload: median seconds on S3 and on local storage, S3 requests."""

    workload: Workload
    operation: str
    s3_seconds: float
    local_seconds: float
    s3_peak_rss_kib: int
    requests: Counter[str]


@dataclass(frozen=True, slots=True)
class Probe:
    """Median milliseconds of one kind of request of `size` bytes, one after another."""

    method: str
    size: int
    milliseconds: float


@dataclass(frozen=True, slots=True)
class Section:
    """What the S3 part of a run measured, or why it did not run."""

    rows: tuple[Row, ...]
    probes: tuple[Probe, ...]
    part_size: int
    missing: str | None = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """moto's S3 server on a free loopback port, requests logged to log; yields its endpoint."""
    port = _free_port()
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def _requests(log: Path, offset: int) -> Counter[str]:
    """The requests the server logged after byte offset of its log, by kind."""
    time.sleep(0.2)  # the server writes a line as it answers; let the last ones land
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    kinds: Counter[str] = Counter()
    for method, path in _REQUEST.findall(text):
        if "partNumber=" in path:
            kinds["PUT part"] += 1
        elif method == "GET" and path.split("?")[0].count("/") == 1:
            kinds["LIST"] += 1
        else:
            kinds[method] += 1
    return kinds


def missing() -> str | None:
    """None if boto3 and moto's server can be imported, else what is missing."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[test]')"
    return None


def run(
    runner: measure.Runner,
    workloads: list[Workload],
    scratch: Path,
    repeat: int,
    probes: int,
    log: Callable[[str], None],
) -> Section:
    """Push, pull and verify of each workload on S3 and on local storage; then the probes."""
    from artifactstore.storage.backends.s3_objects import PART_SIZE

    if why := missing():
        return Section((), (), PART_SIZE, why)
    import boto3

    server_log = scratch / "moto.log"
    with moto_server(server_log) as endpoint:
        session = boto3.session.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        client = session.client("s3", endpoint_url=endpoint)
        rows: list[Row] = []
        for workload in workloads:
            times: dict[tuple[str, str], list[float]] = {}
            peaks: dict[str, int] = {}
            requests: dict[str, Counter[str]] = {}
            for rep in range(repeat):
                work = scratch / f"s3-{workload.name}-{rep}"
                bucket = f"bench-{uuid.uuid4().hex[:12]}"
                client.create_bucket(Bucket=bucket)
                s3 = f"s3://{bucket}/store?endpoint_url={endpoint}&region=us-east-1"
                stores = [("local", "--root", str(work / "blobs")), ("s3", "--storage", s3)]
                for where, option, value in stores[rep % 2 :] + stores[: rep % 2]:
                    env = CREDENTIALS if where == "s3" else {}
                    cli = (str(_EXE), "--db", f"sqlite:///{work}/{where}.db", option, value)
                    migrate = [*cli, "migrate"]
                    subprocess.run(migrate, check=True, capture_output=True, env=os.environ | env)
                    for operation, args in (
                        ("push", ("push", "bench/tree", "1", str(workload.root))),
                        ("pull", ("pull", "bench/tree", "1", str(work / f"{where}-out"))),
                        ("verify", ("verify", "bench/tree", "1")),
                    ):
                        offset = server_log.stat().st_size
                        os.sync()
                        command = measure.Command((*cli, *args), None, tuple(env.items()))
                        sample = runner.run(command)
                        times.setdefault((where, operation), []).append(sample.seconds)
                        if where == "s3":
                            peak = max(peaks.get(operation, 0), sample.peak_rss_kib)
                            peaks[operation] = peak
                            requests[operation] = _requests(server_log, offset)
                        what = f"[S3 {workload.name} #{rep + 1}] {where} {operation}"
                        log(f"{what}: {sample.seconds:.3f} s")
                shutil.rmtree(work, ignore_errors=True)
            rows += [
                Row(
                    workload,
                    operation,
                    statistics.median(times["s3", operation]),
                    statistics.median(times["local", operation]),
                    peaks[operation],
                    requests[operation],
                )
                for operation in ("push", "pull", "verify")
            ]
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        timings = _probes(client, bucket, PART_SIZE, probes)
    return Section(tuple(rows), timings, PART_SIZE)


def _probes(client: S3Client, bucket: str, part: int, count: int) -> tuple[Probe, ...]:
    """Median ms of `count` HEADs, PUTs, GETs of 4 KiB and 5 PUTs, GETs of one part each."""
    small, large = os.urandom(4 * KIB), os.urandom(part)

    def median_ms(count: int, call: Callable[[int], object]) -> float:
        laps = []
        for n in range(count):
            started = time.perf_counter()
            call(n)
            laps.append(time.perf_counter() - started)
        return statistics.median(laps) * 1000

    def put(key: str, body: bytes) -> object:
        return client.put_object(Bucket=bucket, Key=key, Body=body)

    def get(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def head(key: str) -> object:
        return client.head_object(Bucket=bucket, Key=key)

    return (
        Probe("PUT", len(small), median_ms(count, lambda n: put(f"small/{n}", small))),
        Probe("HEAD", 0, median_ms(count, lambda n: head(f"small/{n}"))),
        Probe("GET", len(small), median_ms(count, lambda n: get(f"small/{n}"))),
        Probe("PUT", part, median_ms(5, lambda n: put(f"large/{n}", large))),
        Probe("GET", part, median_ms(5, lambda n: get(f"large/{n}"))),
    )
