"""The S3 backend beyond the shared contract, against the loopback S3 server (moto).

Multipart staging to a temp key, the copy to the final key, what a cut or abandoned upload
leaves and how the sweep removes it, the key layout in the bucket, and the sentences a missing
bucket or an unreachable endpoint give. The contract itself runs in tests/contract.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from s3_server import client, free_port

from artifactstore.config import S3Location
from artifactstore.errors import BlobNotFoundError, StorageError
from artifactstore.identity import digest_bytes
from artifactstore.storage.backends import s3
from artifactstore.storage.backends.s3 import S3Backend
from artifactstore.storage.spi import object_key

BIG = os.urandom(s3.PART_SIZE * 2 + 12345)


def key_for(data: bytes) -> str:
    return object_key(digest_bytes(data))


def names(location: S3Location) -> list[str]:
    """Every object name in the bucket, temp keys included."""
    assert location.endpoint_url is not None
    listing = client(location.endpoint_url).list_objects_v2(Bucket=location.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def uploads(location: S3Location) -> list[str]:
    """The keys of unfinished multipart uploads in the bucket."""
    assert location.endpoint_url is not None
    listing = client(location.endpoint_url).list_multipart_uploads(Bucket=location.bucket)
    return sorted(upload["Key"] for upload in listing.get("Uploads", []))


def test_objects_are_under_the_prefix_with_the_local_layout(s3_location: S3Location) -> None:
    backend = S3Backend(s3_location)
    key = key_for(b"layout")
    backend.put(key, [b"layout"])
    hex_digits = key.rsplit("/", 1)[1]
    assert names(s3_location) == [f"store/blake3/{hex_digits[:2]}/{hex_digits[2:4]}/{hex_digits}"]


def test_a_large_object_goes_up_in_parts_to_a_temp_key_then_to_its_key(
    s3_location: S3Location,
) -> None:
    backend = S3Backend(s3_location)
    key = key_for(BIG)
    with backend.stage() as staged:
        for start in range(0, len(BIG), 1 << 20):
            staged.write(BIG[start : start + (1 << 20)])
        # Two parts are up, as an unfinished upload to a temp key: no object anywhere yet.
        assert names(s3_location) == []
        [temp] = uploads(s3_location)
        assert temp.startswith("store/.tmp/")
        receipt, existed = staged.commit(key)
    assert (receipt.size, existed) == (len(BIG), False)
    assert names(s3_location) == [f"store/{key}"]
    assert uploads(s3_location) == []
    with backend.open(key) as stream:
        assert stream.read() == BIG
    with backend.open(key, s3.PART_SIZE - 3, s3.PART_SIZE + 5) as stream:
        assert stream.read() == BIG[s3.PART_SIZE - 3 : s3.PART_SIZE + 5]


def test_a_large_object_whose_key_exists_is_discarded(s3_location: S3Location) -> None:
    backend = S3Backend(s3_location)
    key = key_for(BIG)
    backend.put(key, [BIG])
    _, existed = backend.put(key, [b"x" * len(BIG)])
    assert existed
    assert names(s3_location) == [f"store/{key}"]
    assert uploads(s3_location) == []
    with backend.open(key) as stream:
        assert stream.read() == BIG


def test_an_aborted_large_write_leaves_no_upload(s3_location: S3Location) -> None:
    backend = S3Backend(s3_location)
    with backend.stage() as staged:
        staged.write(BIG)
        assert len(uploads(s3_location)) == 1
    assert uploads(s3_location) == []
    assert names(s3_location) == []


def test_objects_over_the_copy_limit_are_copied_in_parts(
    s3_location: S3Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real limit is 5 GiB; a lower one runs the same UploadPartCopy path on 16 MiB.
    monkeypatch.setattr(s3, "COPY_LIMIT", s3.PART_SIZE)
    monkeypatch.setattr(s3, "COPY_PART_SIZE", 5 << 20)
    backend = S3Backend(s3_location)
    key = key_for(BIG)
    backend.put(key, [BIG])
    assert names(s3_location) == [f"store/{key}"]
    with backend.open(key) as stream:
        assert stream.read() == BIG


def test_the_sweep_removes_abandoned_uploads_and_temp_keys(s3_location: S3Location) -> None:
    backend = S3Backend(s3_location)
    # What a killed writer leaves: an unfinished upload, and a completed temp object.
    abandoned = backend.stage()
    abandoned.write(BIG)
    assert s3_location.endpoint_url is not None
    raw = client(s3_location.endpoint_url)
    raw.put_object(Bucket=s3_location.bucket, Key="store/.tmp/left-by-a-killed-writer", Body=b"x")
    kept = key_for(b"kept")
    backend.put(kept, [b"kept"])
    assert backend.clean_stale_temp(timedelta(hours=1)) == 0  # too young to be abandoned
    assert backend.clean_stale_temp(timedelta(0)) == 2
    assert uploads(s3_location) == []
    assert names(s3_location) == [f"store/{kept}"]
    assert list(backend.iter_keys()) == [kept]


def test_iter_keys_skips_foreign_and_temp_names(s3_location: S3Location) -> None:
    backend = S3Backend(s3_location)
    key = key_for(b"mine")
    backend.put(key, [b"mine"])
    assert s3_location.endpoint_url is not None
    raw = client(s3_location.endpoint_url)
    for name in ("store/.tmp/x", "store/README", "other/blake3/00/00/00", f"{key}"):
        raw.put_object(Bucket=s3_location.bucket, Key=name, Body=b"?")
    assert list(backend.iter_keys()) == [key]


def test_a_missing_bucket_is_a_sentence_naming_it(s3_location: S3Location) -> None:
    location = S3Location("no-such-bucket-here", "", s3_location.endpoint_url, "us-east-1")
    backend = S3Backend(location)
    with pytest.raises(StorageError, match="S3 bucket 'no-such-bucket-here' does not exist at"):
        backend.put(key_for(b"x"), [b"x"])
    with pytest.raises(StorageError, match="does not exist"):
        backend.open(key_for(b"x"))
    health = backend.health()
    assert not health.reachable
    assert "no-such-bucket-here" in health.detail


def test_an_unreachable_endpoint_is_a_sentence_and_health_says_so(
    s3_location: S3Location,
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    backend = S3Backend(S3Location("some-bucket", "", endpoint, "us-east-1"))
    with pytest.raises(StorageError, match=f"cannot reach the S3 endpoint {endpoint}"):
        backend.head(key_for(b"x"))
    health = backend.health()
    assert not health.reachable
    assert "some-bucket" in health.detail
    assert endpoint in health.detail


def test_health_names_the_bucket(s3_location: S3Location) -> None:
    health = S3Backend(s3_location).health()
    assert health.reachable
    assert s3_location.bucket in health.detail


def test_a_missing_object_is_blob_not_found(s3_location: S3Location) -> None:
    with pytest.raises(BlobNotFoundError, match=s3_location.bucket):
        S3Backend(s3_location).open(key_for(b"never stored"), 0, 10)
