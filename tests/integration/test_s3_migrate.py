"""`migrate-storage --to URL`: a local store's blobs copied to S3, verified, resumable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from s3_server import client
from test_cli import Cli, base_env

from artifactstore.config import S3Location

NAME = "acme/app"


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path, s3_location: S3Location) -> Cli:
    """A CLI over a fresh, migrated database and an empty local blob root (and the AWS
    credentials of the test S3 server in its environment)."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


@pytest.fixture
def pushed(cli: Cli, tmp_path: Path) -> dict[str, bytes]:
    """Two versions pushed to the local store: small blobs and one of several parts."""
    files = {
        "small.txt": b"small\n",
        "mid.bin": os.urandom(200_000),
        "big.bin": os.urandom(9 << 20),
    }
    for version, extra in (("1", b"one"), ("2", b"two")):
        tree = tmp_path / f"tree{version}"
        tree.mkdir()
        for name, data in {**files, "version.txt": extra}.items():
            (tree / name).write_bytes(data)
        cli.ok("push", NAME, version, tree)
    return files


def s3_names(location: S3Location) -> list[str]:
    assert location.endpoint_url is not None
    pages = client(location.endpoint_url).get_paginator("list_objects_v2")
    listed = pages.paginate(Bucket=location.bucket, Prefix="store/")
    return sorted(item["Key"] for page in listed for item in page.get("Contents", []))


def test_a_local_store_moves_to_s3_and_reads_from_there(
    cli: Cli, pushed: dict[str, bytes], s3_url: str, s3_location: S3Location, tmp_path: Path
) -> None:
    result = cli("--json", "migrate-storage", "--to", s3_url)
    assert result.code == 0, result
    assert result.json() == {"blobs": 5, "copied": 5, "ok": True, "present": 0, "problems": []}
    assert len(s3_names(s3_location)) == 5
    # Pointed at the bucket, the store pulls and verifies from there alone.
    cli.ok("--storage", s3_url, "verify", "--all")
    cli.ok("--storage", s3_url, "pull", NAME, "2", tmp_path / "out")
    for name, data in pushed.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert (tmp_path / "out" / "version.txt").read_bytes() == b"two"


def test_a_second_run_resumes_copying_only_what_is_missing(
    cli: Cli, pushed: dict[str, bytes], s3_url: str, s3_location: S3Location
) -> None:
    cli.ok("migrate-storage", "--to", s3_url)
    assert s3_location.endpoint_url is not None
    # As if the first run had been cut short before its last two blobs.
    for name in s3_names(s3_location)[:2]:
        client(s3_location.endpoint_url).delete_object(Bucket=s3_location.bucket, Key=name)
    result = cli("--json", "migrate-storage", "--to", s3_url)
    assert result.code == 0, result
    assert result.json() == {"blobs": 5, "copied": 2, "ok": True, "present": 3, "problems": []}
    assert len(s3_names(s3_location)) == 5


def test_a_damaged_local_blob_is_not_copied_and_fails_the_run(
    cli: Cli,
    pushed: dict[str, bytes],
    s3_url: str,
    s3_location: S3Location,
    corrupt_blob: Callable[[Path, bytes], None],
) -> None:
    corrupt_blob(Path(cli.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"]), pushed["mid.bin"])
    result = cli("migrate-storage", "--to", s3_url)
    assert result.code == 1, result
    [problem] = [line for line in result.text.splitlines() if line.startswith("problem:")]
    assert "does not hash to its address" in problem
    assert "4 copied" in result.text
    assert len(s3_names(s3_location)) == 4


def test_a_target_url_that_cannot_be_used_exits_2(cli: Cli, pushed: dict[str, bytes]) -> None:
    result = cli("migrate-storage", "--to", "s3://bucket/p?secret=x")
    assert result.code == 2, result
    assert "takes only" in result.err
