"""Garbage collection with blobs in S3 (the loopback moto server): listed garbage and orphans
leave the bucket, what a package names stays, and the store still verifies."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from s3_server import client
from test_cli import Cli, base_env

from artifactstore import ArtifactStore, digest_stream
from artifactstore.config import S3Location


def object_names(location: S3Location) -> set[str]:
    assert location.endpoint_url is not None
    listing = client(location.endpoint_url).list_objects_v2(Bucket=location.bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def key(location: S3Location, data: bytes) -> str:
    hex_digits = digest_stream([data]).content_address.hex
    return f"{location.prefix}blake3/{hex_digits[:2]}/{hex_digits[2:4]}/{hex_digits}"


def test_gc_removes_unneeded_objects_from_the_bucket(
    migrated_url: str, s3_url: str, s3_location: S3Location, tmp_path: Path
) -> None:
    shared, gone, big = b"shared", b"only in the deleted one", os.urandom(6 << 20)
    old, new = tmp_path / "old", tmp_path / "new"
    for root, files in ((old, {"s": shared, "g": gone, "big": big}), (new, {"s": shared})):
        root.mkdir()
        for name, data in files.items():
            (root / name).write_bytes(data)
    with ArtifactStore.open(migrated_url, storage_url=s3_url) as store:
        store.push("p", "old", old)
        store.push("p", "new", new)
        store.dataplane.ingest_stream(b"an orphan")
        store.delete_package("p:old")
        report = store.gc(timedelta(0))
        assert (report.objects, report.orphans) == (3, 1)
        assert report.bytes == len(gone) + len(big) + len(b"an orphan")
        assert object_names(s3_location) == {key(s3_location, shared)}
        assert store.verify_all().ok
        assert store.replay(check=True).identical


def test_cli_gc_over_s3_prints_what_it_freed(
    migrated_url: str, s3_url: str, tmp_path: Path
) -> None:
    env = {**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}
    del env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"]
    cli = Cli({**env, "ARTIFACTSTORE_STORAGE_URL": s3_url}, tmp_path)
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a").write_bytes(b"a blob")
    cli.ok("push", "p", "1", tree)
    cli.ok("delete", "p", "1", "--yes")
    assert cli.ok("gc", "--grace", "0").text.startswith("freed 1 blob (6 B; 0 orphaned)")
