"""The S3 backend beyond the shared contract, against the loopback S3 server (moto).

Multipart staging to a temp key, the copy to the final key, what a cut or abandoned upload
leaves and how the sweep removes it, the key layout in the bucket, and the sentences a missing
bucket or an unreachable endpoint give. The contract itself runs in tests/contract.
"""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, cast

import pytest
from s3_server import client, free_port

from artifactstore.config import S3Location
from artifactstore.dataplane.inproc import InProcessDataPlane
from artifactstore.errors import (
    BlobNotFoundError,
    DigestMismatchError,
    InvalidInputError,
    StorageError,
)
from artifactstore.identity import digest_bytes, digest_stream
from artifactstore.storage.backends import s3_objects as s3
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


def test_writes_not_made_durable_run_in_the_background_until_sync(
    s3_location: S3Location,
) -> None:
    backend = S3Backend(s3_location)
    payloads = [f"blob {n}".encode() for n in range(40)]
    for payload in payloads:
        _, existed = backend.put(key_for(payload), [payload], durable=False)
        assert not existed
    backend.sync([key_for(p) for p in payloads])
    assert names(s3_location) == sorted(f"store/{key_for(p)}" for p in payloads)
    # A pending write is waited for by a read of its key.
    backend.put(key_for(b"late"), [b"late"], durable=False)
    with backend.open(key_for(b"late")) as stream:
        assert stream.read() == b"late"


def test_a_background_write_that_fails_fails_sync_and_close(s3_location: S3Location) -> None:
    location = S3Location("no-such-bucket-here", "", s3_location.endpoint_url, "us-east-1")
    backend = S3Backend(location)
    backend.put(key_for(b"x"), [b"x"], durable=False)  # queued: no error yet
    with pytest.raises(StorageError, match="'no-such-bucket-here' does not exist"):
        backend.sync([key_for(b"x")])
    backend.put(key_for(b"y"), [b"y"], durable=False)
    with pytest.raises(StorageError, match="does not exist"):
        backend.close()


def test_an_upload_naming_its_blob_goes_straight_to_its_key(s3_location: S3Location) -> None:
    plane = InProcessDataPlane.s3(s3_location)
    address = digest_stream(BIG).content_address
    chunks = (BIG[i : i + (1 << 20)] for i in range(0, len(BIG), 1 << 20))  # not seekable
    result = plane.ingest_stream(chunks, expected=address)
    assert result.content_address.hex == address.hex and not result.already_present
    assert names(s3_location) == [f"store/{key_for(BIG)}"]  # no temp key was ever written
    assert plane.verify_object(address).ok


def test_an_upload_whose_bytes_are_not_its_blob_leaves_nothing(s3_location: S3Location) -> None:
    plane = InProcessDataPlane.s3(s3_location)
    wrong = digest_stream(b"some other blob").content_address
    with pytest.raises(DigestMismatchError):
        plane.ingest_stream(io.BytesIO(BIG), expected=wrong)
    assert names(s3_location) == []
    assert uploads(s3_location) == []


class ChangingFile(io.FileIO):
    """A real file that another writer changes the moment the reader rewinds it."""

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and self.tell() > 0:
            with open(self.name, "r+b") as other:  # noqa: PTH123
                other.write(b"changed!")
        return super().seek(offset, whence)


def test_a_file_changed_between_hashing_and_storing_is_refused(
    s3_location: S3Location, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(BIG)
    plane = InProcessDataPlane.s3(s3_location)
    with ChangingFile(path) as source, pytest.raises(InvalidInputError, match="changed"):
        plane.ingest_stream(cast(BinaryIO, source))
    assert names(s3_location) == []
    assert uploads(s3_location) == []


def test_a_file_is_hashed_first_then_uploaded_straight_to_its_key(
    s3_location: S3Location, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(BIG)
    plane = InProcessDataPlane.s3(s3_location)
    with path.open("rb") as source:
        first = plane.ingest_stream(source)
    with path.open("rb") as source:
        second = plane.ingest_stream(source)
    assert (first.already_present, second.already_present) == (False, True)
    assert names(s3_location) == [f"store/{key_for(BIG)}"]


def test_a_pipe_is_read_once_through_a_temp_key(s3_location: S3Location) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: BIG through the pipe, then exit at once
        os.close(read_end)
        with os.fdopen(write_end, "wb") as sink:
            sink.write(BIG)
        os._exit(0)
    os.close(write_end)
    plane = InProcessDataPlane.s3(s3_location)
    with os.fdopen(read_end, "rb") as source:
        result = plane.ingest_stream(source)
    os.waitpid(pid, 0)
    assert result.content_address.hex == digest_bytes(BIG).hex
    assert names(s3_location) == [f"store/{key_for(BIG)}"]
    assert uploads(s3_location) == []
