"""Periodic maintenance: expiry and gc by one lease holder at a time, in a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clock import Clock
from test_web import free_port

from artifactstore import ArtifactStore

START = datetime.now(UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


def test_one_holder_at_a_time_until_its_lease_lapses(
    timed: ArtifactStore, clock: Clock, tmp_path: Path
) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a").write_bytes(b"expiring")
    timed.push("p", "1", tree, retention_class="ephemeral")
    minute = timedelta(minutes=1)
    first = timed.maintain("worker-a", minute)
    assert first is not None and first.expired == 0
    assert timed.maintain("worker-b", minute) is None
    clock.now += timedelta(days=1, hours=2)  # the lease (2 minutes) lapsed; the package expired
    second = timed.maintain("worker-b", minute, grace=timedelta(0))
    assert second is not None and (second.expired, second.collected.objects) == (1, 1)
    assert timed.maintain("worker-a", minute) is None
    assert timed.maintain("worker-b", minute) is not None  # the holder renews


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def test_serve_runs_expiry_and_gc_in_one_worker_at_a_time(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    for i in range(20):
        (tree / f"f{i}").write_bytes(os.urandom(100 + i * 10_000))
    with ArtifactStore.open(migrated_url, blob_root) as store:
        store.push("p", "1", tree)
        store.delete_package("p:1")
    port = free_port()
    env = {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": migrated_url,
        "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(blob_root),
    }
    argv = ["serve", "--port", str(port), "--workers", "3", "--maintenance-interval", "1s"]
    server = subprocess.Popen(
        [sys.executable, "-m", "artifactstore", *argv, "--gc-grace", "0s"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"http://127.0.0.1:{port}") and time.monotonic() < deadline:
            time.sleep(0.1)
        with ArtifactStore.open(migrated_url, blob_root) as store:
            while any(True for _ in store.dataplane.stored_addresses()):
                assert time.monotonic() < deadline, "maintenance never collected the blobs"
                time.sleep(0.2)
            time.sleep(2.5)  # a few more runs, by whichever worker holds the lease
            deleted = [e for e in store.tail_events(0) if e.event_type == "v1.blob.deleted"]
            assert len(deleted) == 20
            # One worker, the lease holder, collected: the others skipped every run.
            [actor] = {e.actor for e in deleted}
            assert actor.startswith("maintenance:")
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
