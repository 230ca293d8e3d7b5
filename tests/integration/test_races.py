"""Racing writers, and readers beside them, in real processes on this leg's database.

SPEC "Contracts / Concurrency": racing identical pushes of one version all succeed with one
digest; racing different pushes have exactly one winner whose package equals its own tree,
and every loser exits 2; a push never mixes into another's package; replay, verify --all and
a follower beside writers neither corrupt their transactions nor report false damage; a
forked child and several threads can use a store.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from artifactstore import ArtifactStore, identity
from artifactstore.events import log
from artifactstore.events.model import NewEvent

NAME = "race/pkg"


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under root: its bytes and whether it is executable."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), os.access(p, os.X_OK))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def start_push(url: str, root: Path, version: str, tree: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": url,
        "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(root),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "artifactstore", "push", NAME, version, str(tree)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(processes: list[subprocess.Popen[bytes]]) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each process, in order."""
    results = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        results.append((process.returncode, out.decode().strip(), err.decode()))
    return results


def assert_sound(url: str, root: Path) -> None:
    with ArtifactStore.open(url, root) as store:
        report = store.verify_all()
        assert report.ok, report.problems
        assert store.replay(check=True).identical


@pytest.mark.parametrize("count", [8, pytest.param(32, marks=pytest.mark.slow)], ids=["8", "32"])
def test_racing_identical_pushes_all_succeed_with_one_digest(
    migrated_url: str, blob_root: Path, tmp_path: Path, count: int
) -> None:
    files = {f"f{n}": os.urandom(500 + n) for n in range(40)} | {"big": os.urandom(300_000)}
    tree = write_tree(tmp_path / "tree", files)
    results = finish([start_push(migrated_url, blob_root, "1", tree) for _ in range(count)])
    assert [code for code, _, _ in results] == [0] * count, [err for _, _, err in results]
    assert len({out for _, out, _ in results}) == 1
    with ArtifactStore.open(migrated_url, blob_root) as store:
        # Appended once: created, retention, one event per file, finalized.
        assert len(list(store.tail_events())) == 3  # created, retention, finalized (ADR-0014)
        store.pull((NAME, "1"), tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(tree)
    assert_sound(migrated_url, blob_root)


def test_racing_different_pushes_have_exactly_one_winner(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    trees = [
        write_tree(tmp_path / f"tree{n}", {f"f{i}": os.urandom(800) for i in range(30)})
        for n in range(8)
    ]
    results = finish([start_push(migrated_url, blob_root, "1", tree) for tree in trees])
    codes = [code for code, _, _ in results]
    assert sorted(codes) == [0] + [2] * 7, [err for _, _, err in results]
    winner = trees[codes.index(0)]
    for code, _, err in results:
        if code == 2:
            assert "already exists with other content" in err, err
    with ArtifactStore.open(migrated_url, blob_root) as store:
        store.pull((NAME, "1"), tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(winner)
    assert_sound(migrated_url, blob_root)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3, 0.8, 1.5])
def test_a_late_push_never_mixes_into_an_earlier_one(
    migrated_url: str, blob_root: Path, tmp_path: Path, delay: float
) -> None:
    # Same paths, different content; more files than one commit batch, and one large file.
    paths = [f"d{n % 7}/f{n}" for n in range(2_500)]
    tree_a = write_tree(
        tmp_path / "a", {p: b"a" + os.urandom(64) for p in paths} | {"big": os.urandom(8 << 20)}
    )
    tree_b = write_tree(tmp_path / "b", {p: b"b" + os.urandom(64) for p in paths} | {"big": b"b"})
    first = start_push(migrated_url, blob_root, "1", tree_a)
    time.sleep(delay)
    second = start_push(migrated_url, blob_root, "1", tree_b)
    results = finish([first, second])
    codes = [code for code, _, _ in results]
    assert sorted(codes) == [0, 2], results
    winner = (tree_a, tree_b)[codes.index(0)]
    with ArtifactStore.open(migrated_url, blob_root) as store:
        [package] = store.list_packages()
        assert package.is_finalized
        store.pull(package, tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(winner)
    assert_sound(migrated_url, blob_root)


WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from artifactstore import ArtifactStore

    url, root, work, tag, count = sys.argv[1:6]
    with ArtifactStore.open(url, root, actor=tag) as store:
        for n in range(int(count)):
            tree = Path(work) / f"{tag}-{n}"
            for i in range(20):
                (tree / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
                (tree / f"d{i % 2}" / f"f{i}").write_bytes(os.urandom(300 + i))
            store.push(f"writer/{tag}", str(n), tree)
    """
)


def start_writer(url: str, root: Path, work: Path, tag: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(root), str(work), tag, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_replay_beside_a_writer_leaves_views_equal_to_the_log(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    writer = start_writer(migrated_url, blob_root, tmp_path, "w", 15)
    replays = 0
    with ArtifactStore.open(migrated_url, blob_root) as store:
        while writer.poll() is None:
            store.replay()
            replays += 1
            time.sleep(0.05)  # the writer queues for the same lock; let it in
    assert finish([writer])[0][0] == 0
    assert replays > 0
    assert_sound(migrated_url, blob_root)


def test_verify_all_beside_writers_reports_no_false_damage(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    writers = [start_writer(migrated_url, blob_root, tmp_path, f"w{n}", 12) for n in range(2)]
    false_alarms = []
    runs = 0
    with ArtifactStore.open(migrated_url, blob_root) as store:
        while runs < 50 or any(w.poll() is None for w in writers):
            report = store.verify_all()
            runs += 1
            if not report.ok:
                false_alarms.append(report.problems)
        events = len(list(store.tail_events()))
    assert [code for code, _, _ in finish(writers)] == [0, 0]
    assert false_alarms == []
    assert events == 2 * 12 * 3  # created, retention, finalized per push (ADR-0014)
    assert_sound(migrated_url, blob_root)


def test_a_follower_never_turns_a_write_into_piecemeal_commits(
    migrated_url: str, blob_root: Path
) -> None:
    with ArtifactStore.open(migrated_url, blob_root) as store:
        store.create_package(NAME, "1")
        for _ in range(3):
            assert len(list(store.tail_events(0, follow=True, timeout=0.2))) == 2
        # Writes that fail after appending must leave nothing behind, whichever pooled
        # connection (the follower's included) they are given.
        for n in range(6):
            with pytest.raises(RuntimeError), store._db.write() as connection:
                log.write(
                    connection,
                    [NewEvent(f"e{n}", "test.x", "2026-11-30T00:00:00Z", "t", None, b"\xa0")],
                )
                raise RuntimeError("abort after the append")
        assert len(list(store.tail_events())) == 2
        assert store.verify_chain().ok


def _hash_and_push_in_child(url: str, root: str, tree: str) -> None:
    # Both digests on the worker pool the parent started before it forked.
    digests = identity.digest_stream([os.urandom(1 << 20)] * 4)
    assert digests.size == 4 << 20
    with ArtifactStore.open(url, root) as store:
        store.push(NAME, "child", tree)


def test_a_forked_child_hashes_and_pushes(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    tree = write_tree(tmp_path / "tree", {"a": os.urandom(200_000), "b": b"b"})
    with ArtifactStore.open(migrated_url, blob_root) as store:
        store.push(NAME, "parent", tree)  # hashes on the pool and opens connections
        child = multiprocessing.get_context("fork").Process(
            target=_hash_and_push_in_child, args=(migrated_url, str(blob_root), str(tree))
        )
        child.start()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            pytest.fail("the forked child hung")
        assert child.exitcode == 0
        assert (
            store.get_manifest((NAME, "child")).files == store.get_manifest((NAME, "parent")).files
        )
    assert_sound(migrated_url, blob_root)


def test_threads_share_one_store(migrated_url: str, blob_root: Path, tmp_path: Path) -> None:
    trees = [
        write_tree(tmp_path / f"t{n}", {f"f{i}": os.urandom(2_000 + i) for i in range(25)})
        for n in range(4)
    ]
    errors: list[BaseException] = []
    with ArtifactStore.open(migrated_url, blob_root) as store:

        def push(n: int) -> None:
            try:
                for version in range(3):
                    store.push(f"threads/t{n}", str(version), trees[n])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=push, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert len(store.list_packages()) == 12
    assert_sound(migrated_url, blob_root)
