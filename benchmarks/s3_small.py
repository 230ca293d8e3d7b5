"""Small blobs in S3: a push of N files of 4 KiB, as objects of their own and as pack objects.

Run: `python -m benchmarks.s3_small [N]` (default 10,000) with the `test` extra installed (moto).
It starts moto's S3 server on a free loopback port, then times

- `push` of the tree through ArtifactStore with S3 storage (every blob an object of its own),
  and the same push with local storage (the small-blob tier) for the ratio;
- the requests alone: N conditional PUTs one after another, and on 16 threads;
- the pack alternative's requests: the same bytes as 4 MiB pack objects plus one index
  object per pack (the lower bound of what packing costs; reads and GC not included).

The loopback server is moto, not AWS: each request costs ~15-20 ms of moto's Python, so
the figures show requests per blob, not S3's real latency or throughput.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

from artifactstore import ArtifactStore
from benchmarks.s3_storage import CREDENTIALS, moto_server

BLOB = 4096
PACK = 4 << 20


def _timed(what: str, run: object, results: dict[str, float]) -> None:
    started = time.monotonic()
    run()  # type: ignore[operator]
    results[what] = round(time.monotonic() - started, 2)
    print(f"{what}: {results[what]} s", flush=True)


def main(count: int) -> dict[str, float]:
    """Run the measurements for count blobs; print and return seconds per measurement."""
    os.environ.update(CREDENTIALS)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as logs, moto_server(Path(logs) / "moto.log") as endpoint:
        s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")
        with tempfile.TemporaryDirectory() as work:
            tree = Path(work) / "tree"
            tree.mkdir()
            blobs = [os.urandom(BLOB) for _ in range(count)]
            for number, data in enumerate(blobs):
                (tree / f"f{number:05d}").write_bytes(data)
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            s3.create_bucket(Bucket=bucket)
            url = f"s3://{bucket}/store?endpoint_url={endpoint}&region=us-east-1"
            database = f"sqlite:///{work}/s3.db"

            def push_s3() -> None:
                with ArtifactStore.open(database, storage_url=url) as store:
                    store.push("bench/s3", "1", tree)

            def push_local() -> None:
                with ArtifactStore.open(
                    f"sqlite:///{work}/local.db", Path(work) / "blobs"
                ) as store:
                    store.push("bench/local", "1", tree)

            def put_each() -> None:
                for number, data in enumerate(blobs):
                    s3.put_object(Bucket=bucket, Key=f"raw/{number}", Body=data, IfNoneMatch="*")

            def put_threads() -> None:
                def put(number: int) -> None:
                    s3.put_object(Bucket=bucket, Key=f"thr/{number}", Body=blobs[number])

                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(put, range(count)))

            def put_packs() -> None:
                per_pack = PACK // BLOB
                for pack, start in enumerate(range(0, count, per_pack)):
                    chunk = blobs[start : start + per_pack]
                    s3.put_object(Bucket=bucket, Key=f"packs/{pack}.pack", Body=b"".join(chunk))
                    index = [[start + i, i * BLOB, BLOB] for i in range(len(chunk))]
                    body = json.dumps(index).encode()
                    s3.put_object(Bucket=bucket, Key=f"packs/{pack}.idx", Body=body)

            _timed("push, local storage", push_local, results)
            _timed("push, S3, one object per blob", push_s3, results)
            _timed("re-push, S3, nothing new", push_s3_again(database, url, tree), results)
            _timed("conditional PUT per blob, sequential", put_each, results)
            _timed("PUT per blob, 16 threads", put_threads, results)
            _timed("4 MiB pack objects + index", put_packs, results)
    return results


def push_s3_again(database: str, url: str, tree: Path) -> object:
    """A second push of the same tree under another version: every blob is there already."""

    def run() -> None:
        with ArtifactStore.open(database, storage_url=url) as store:
            store.push("bench/s3", "2", tree)

    return run


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
