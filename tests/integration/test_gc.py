"""Garbage collection: what it removes and keeps, and its safety beside pushes in other
processes and when killed (SPEC "Retention, deletion and garbage collection")."""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import pytest
from clock import Clock

from artifactstore import ArtifactStore, digest_stream, gc, liveness, schema
from artifactstore.dataplane.inproc import InProcessDataPlane

START = datetime.now(UTC)  # blobs carry the real time they were stored
BIG = 2 * 1024 * 1024


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def stored(store: ArtifactStore) -> set[str]:
    return {str(a) for a in store.dataplane.stored_addresses()}


def address(data: bytes) -> str:
    return str(digest_stream([data]).content_address)


def run_cli(url: str, root: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": url,
        "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(root),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "artifactstore", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_gc_removes_only_unneeded_blobs_older_than_the_grace(
    timed: ArtifactStore, clock: Clock, tmp_path: Path
) -> None:
    only_a, shared, big = b"only in a", b"in both", os.urandom(BIG)
    timed.push("p", "a", make_tree(tmp_path / "a", {"x": only_a, "s": shared, "big": big}))
    timed.push("p", "b", make_tree(tmp_path / "b", {"s": shared}))
    timed.delete_package("p:a")
    assert timed.gc().objects == 0  # stored just now: younger than the grace
    clock.now = START + timedelta(hours=2)
    dry = timed.gc(dry_run=True)
    assert (dry.objects, dry.bytes, dry.dry_run) == (2, len(only_a) + BIG, True)
    assert {address(only_a), address(big)} <= stored(timed)
    report = timed.gc()
    assert (report.objects, report.bytes) == (2, len(only_a) + BIG)
    assert stored(timed) == {address(shared)}
    deleted = [e for e in timed.tail_events(0) if e.event_type == "v1.blob.deleted"]
    assert sorted(str(e.payload_value()["content_address"]) for e in deleted) == sorted(  # type: ignore[index]
        [address(only_a), address(big)]
    )
    assert timed.verify_all().ok
    assert timed.replay(check=True).identical
    assert timed.gc().objects == 0


def test_gc_keeps_what_a_live_session_holds_and_orphans_younger_than_it(
    timed: ArtifactStore, clock: Clock
) -> None:
    orphan, held = b"nobody names me", b"a push holds me"
    # Received as over HTTP: a day-long upload session holds it until a publish names it.
    timed.uploads.receive(address(held), io.BytesIO(held))
    timed.dataplane.ingest_stream(orphan)
    clock.now = START + timedelta(hours=2)
    # The orphan was stored after the live session opened: a writer may not have held it yet.
    assert timed.gc().objects == 0
    assert stored(timed) == {address(held), address(orphan)}
    clock.now = START + timedelta(days=2)  # the session has expired
    report = timed.gc()
    assert (report.objects, report.orphans, report.sessions) == (2, 2, 1)
    assert stored(timed) == set()


def test_a_push_deduplicating_against_a_blob_gc_deletes_still_publishes_whole(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    """The classic race: the blobs a push finds stored (so does not write) belong to a package
    just deleted; gc, in another process, removes them between the push's dedup and its
    hold. The push must notice and write them again."""
    small, big = b"shared small blob", os.urandom(BIG)
    tree = make_tree(tmp_path / "t", {"small": small, "big": big})
    with ArtifactStore.open(migrated_url, blob_root) as store:
        store.push("p", "old", tree)
        store.delete_package("p:old")
        collected: list[int] = []

        def gc_after_the_last_file(_size: int) -> None:
            collected.append(_size)
            if len(collected) == 2:
                gc = run_cli(migrated_url, blob_root, "gc", "--grace", "0")
                out, err = gc.communicate(timeout=60)
                assert gc.returncode == 0, err
                assert out.startswith(b"freed 2 blobs"), out

        store.push("p", "new", tree, progress=gc_after_the_last_file)
        assert len(collected) == 2
        report = store.verify_package("p:new")
        assert report.ok, report.problems
        assert {address(small), address(big)} <= stored(store)


def _collect_pausing_before_orphans(
    url: str, root: Path, page_read: EventType, go: EventType
) -> None:
    """In a forked process: gc that stops once it has read a page of orphans, until go."""
    real = gc._remove

    def paused(*args: Any) -> list[gc.Garbage]:
        if any(blob.backend_id is None for blob in args[2]):
            page_read.set()
            assert go.wait(60)
        return real(*args)

    gc._remove = paused  # type: ignore[assignment]
    with ArtifactStore.open(url, root) as store:
        store.gc(grace=timedelta(0))


def test_two_collectors_at_once_keep_a_blob_a_writer_stored_again(
    migrated_url: str, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collector 2 reads an old orphan; collector 1 removes it; a writer stores the same bytes
    again and, before it holds them, collector 2 goes on. It must not remove the new bytes
    (it once did: the writer never checks what it wrote itself, and published them gone)."""
    data = os.urandom(BIG)
    with ArtifactStore.open(migrated_url, blob_root) as store:
        store.create_package("app", "1")
        orphan = store.dataplane.ingest_stream(data).content_address
    blob = blob_root / "blake3" / orphan.hex[:2] / orphan.hex[2:4] / orphan.hex
    two_hours_ago = time.time() - 7200
    os.utime(blob, (two_hours_ago, two_hours_ago))
    forked = multiprocessing.get_context("fork")
    page_read, go = forked.Event(), forked.Event()
    second = forked.Process(
        target=_collect_pausing_before_orphans, args=(migrated_url, blob_root, page_read, go)
    )
    second.start()
    try:
        assert page_read.wait(60)
        first = run_cli(migrated_url, blob_root, "gc", "--grace", "0")
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0 and out.startswith(b"freed 1 blob"), (out, err)
        assert not blob.exists()
        real_keep_alive = liveness.keep_alive

        def second_collector_goes_on_first(*args: Any) -> list[str]:
            assert blob.exists()  # written again
            go.set()
            second.join(60)
            return real_keep_alive(*args)

        monkeypatch.setattr(liveness, "keep_alive", second_collector_goes_on_first)
        with ArtifactStore.open(migrated_url, blob_root) as store:
            store.ingest_file(("app", "1"), "data.bin", data)
            store.finalize(("app", "1"))
            report = store.verify_package("app:1")
    finally:
        go.set()
        second.join(60)
    assert second.exitcode == 0
    assert report.ok, report.problems
    assert blob.exists()


def test_gc_killed_at_random_points_leaves_a_sound_store(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    rng = random.Random(7)
    files = {f"f{i}": os.urandom(rng.choice([100, 5000, 200_000])) for i in range(150)}
    with ArtifactStore.open(migrated_url, blob_root) as store:
        store.push(
            "p",
            "keep",
            make_tree(tmp_path / "keep", {"k": b"kept", **dict(list(files.items())[:5])}),
        )
        for round_ in range(10):
            tree = make_tree(tmp_path / f"r{round_}", {**files, "round": str(round_).encode()})
            store.push("p", f"v{round_}", tree)
            store.delete_package(f"p:v{round_}")
            gc = run_cli(migrated_url, blob_root, "gc", "--grace", "0")
            time.sleep(rng.uniform(0.3, 1.2))
            gc.send_signal(signal.SIGKILL)
            gc.wait(timeout=60)
            assert store.verify_all().ok
        report = store.gc(timedelta(0))
        assert store.verify_all().ok and store.replay(check=True).identical
        needed = {str(f.content_address) for f in store.list_files("p:keep")}
        assert stored(store) == needed, report


def test_cli_gc_reports_in_json_and_refuses_a_bad_grace(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    done = run_cli(migrated_url, blob_root, "--json", "gc", "--grace", "0", "--dry-run")
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 0 and b'"dry_run":true' in out
    bad = run_cli(migrated_url, blob_root, "gc", "--grace", "soon")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and err.decode().count("\n") == 1, err


PUSH_LOOP = """
import os, sys, random
from pathlib import Path
from artifactstore import ArtifactStore, ConflictError
url, root, work, me, deadline = sys.argv[1:6]
rng = random.Random(int(me))
shared = {f"s{i}": (b"shared %d " % i) * rng.choice([1, 30000]) for i in range(20)}
import time
n = 0
with ArtifactStore.open(url, root) as store:
    while time.time() < float(deadline):
        tree = Path(work) / f"{me}-{n}"
        tree.mkdir(parents=True)
        files = dict(rng.sample(sorted(shared.items()), 8))
        files[f"u{n}"] = os.urandom(rng.choice([50, 70000, 300000]))
        for name, data in files.items():
            (tree / name).write_bytes(data)
        store.push(f"loop/p{me}", str(n), tree)
        if rng.random() < 0.5:
            store.delete_package(f"loop/p{me}:{n}")
        n += 1
print(n)
"""


@pytest.mark.slow
def test_gc_in_a_loop_beside_eight_pushers_and_killed_pushes_loses_nothing(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    seconds = 60
    deadline = time.time() + seconds
    env = {**os.environ}
    pushers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PUSH_LOOP,
                migrated_url,
                str(blob_root),
                str(tmp_path / "w"),
                str(i),
                str(deadline),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(8)
    ]
    runs = killed = 0
    rng = random.Random(3)
    while time.time() < deadline:
        # Beside each gc, a push that is killed part way (its session stays, holding blobs).
        doomed = make_tree(
            tmp_path / f"doomed-{runs}",
            {
                "shared": b"shared 0 ",
                **{f"u{n}": os.urandom(rng.choice([90, 90_000])) for n in range(40)},
            },
        )
        victim = run_cli(migrated_url, blob_root, "push", "loop/doomed", str(runs), str(doomed))
        gc = run_cli(migrated_url, blob_root, "gc", "--grace", "0")
        _, err = gc.communicate(timeout=120)
        assert gc.returncode == 0, err
        runs += 1
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            killed += 1
        victim.wait(timeout=60)
    pushed = 0
    for pusher in pushers:
        out, err = pusher.communicate(timeout=300)
        assert pusher.returncode == 0, err.decode()
        pushed += int(out)
    assert runs > 3 and pushed > 8 and killed > 0
    engine = schema.make_engine(migrated_url)
    later = datetime.now(UTC) + timedelta(days=2)  # the killed pushes' sessions have expired
    with ArtifactStore(engine, InProcessDataPlane.local(blob_root), now=lambda: later) as store:
        report = store.verify_all()
        assert report.ok, report.problems
        store.gc(timedelta(0))
        needed = {
            str(f.content_address) for p in store.list_packages() for f in store.list_files(p)
        }
        assert stored(store) == needed
        assert store.replay(check=True).identical
    engine.dispose()
