"""Racing pushes in real processes with the blobs in S3, on this leg's database.

The pattern of test_races.py with `ARTIFACTSTORE_STORAGE_URL=s3://...`: racing identical pushes
all succeed with one digest and each blob is stored once; racing different pushes have exactly
one winner, whose package is its own tree; the store verifies and replays clean afterwards.
Files of several parts race through the temp-key-and-copy path too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from s3_server import client
from test_races import finish, read_tree, write_tree

from artifactstore import ArtifactStore
from artifactstore.config import S3Location

NAME = "race/s3"


def start_push(url: str, storage_url: str, version: str, tree: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": url,
        "ARTIFACTSTORE_STORAGE_URL": storage_url,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "artifactstore", "push", NAME, version, str(tree)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def assert_sound(url: str, storage_url: str) -> None:
    with ArtifactStore.open(url, storage_url=storage_url) as store:
        report = store.verify_all()
        assert report.ok, report.problems
        assert store.replay(check=True).identical


def stored(location: S3Location) -> list[str]:
    """Every object name in the bucket: blobs, and any temp key left behind."""
    assert location.endpoint_url is not None
    s3 = client(location.endpoint_url)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_racing_identical_pushes_all_succeed_with_one_digest(
    migrated_url: str, s3_url: str, s3_location: S3Location, tmp_path: Path
) -> None:
    files = {f"f{n}": os.urandom(500 + n) for n in range(30)}
    files |= {"big": os.urandom(300_000), "huge": os.urandom(17 << 20)}
    tree = write_tree(tmp_path / "tree", files)
    results = finish([start_push(migrated_url, s3_url, "1", tree) for _ in range(6)])
    assert [code for code, _, _ in results] == [0] * 6, [err for _, _, err in results]
    assert len({out for _, out, _ in results}) == 1
    names = stored(s3_location)
    assert len(names) == len(files)  # each blob once, no temp key left
    assert all(name.startswith("store/blake3/") for name in names)
    with ArtifactStore.open(migrated_url, storage_url=s3_url) as store:
        assert len(list(store.tail_events())) == 3  # created, retention, finalized (ADR-0014)
        store.pull((NAME, "1"), tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(tree)
    assert_sound(migrated_url, s3_url)


def test_racing_different_pushes_have_exactly_one_winner(
    migrated_url: str, s3_url: str, tmp_path: Path
) -> None:
    trees = [
        write_tree(tmp_path / f"tree{n}", {f"f{i}": os.urandom(800) for i in range(20)})
        for n in range(6)
    ]
    results = finish([start_push(migrated_url, s3_url, "1", tree) for tree in trees])
    codes = [code for code, _, _ in results]
    assert sorted(codes) == [0] + [2] * 5, [err for _, _, err in results]
    winner = trees[codes.index(0)]
    for code, _, err in results:
        if code == 2:
            assert "already exists with other content" in err, err
    with ArtifactStore.open(migrated_url, storage_url=s3_url) as store:
        store.pull((NAME, "1"), tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(winner)
    assert_sound(migrated_url, s3_url)
