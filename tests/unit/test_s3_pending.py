"""Background S3 writes (durable=False): each failure reaches the waiter of its own key.

The PUT itself is replaced by a function that fails on cue: a PUT that fails mid-way cannot be
caused on demand against a real server. No client or server is made.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from artifactstore.config import S3Location
from artifactstore.errors import StorageError
from artifactstore.storage.backends import s3_objects
from artifactstore.storage.spi import StorageReceipt

_A, _B = "blake3/aa/bb/" + "11" * 32, "blake3/aa/bb/" + "22" * 32


def _bucket(put: object, monkeypatch: pytest.MonkeyPatch) -> s3_objects.Bucket:
    bucket = s3_objects.Bucket(S3Location("bucket"), "s3")
    monkeypatch.setattr(bucket, "_put", put)
    return bucket


def test_a_write_that_fails_while_another_caller_waits_it_out_is_raised_to_its_own_waiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def put(key: str, data: bytes) -> tuple[StorageReceipt, bool]:
        if key == _A:
            raise StorageError("the PUT of A failed")
        return StorageReceipt("s3", key, len(data), datetime.now(UTC)), False

    bucket = _bucket(put, monkeypatch)
    half = b"x" * (s3_objects.PENDING_BYTES // 2 + 1)
    bucket.publish_bytes(_A, half, durable=False)
    # B's write takes the bytes in flight over the bound: B waits for A's, and must not fail.
    bucket.publish_bytes(_B, half, durable=False)
    bucket.wait([_B])
    with pytest.raises(StorageError, match="the PUT of A failed"):
        bucket.wait([_A])
    bucket.wait()  # told once


def test_a_late_waiter_of_a_failed_write_leaves_a_newer_write_of_its_key_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    calls: list[str] = []

    def put(key: str, data: bytes) -> tuple[StorageReceipt, bool]:
        calls.append(key)
        if len(calls) == 1:
            raise StorageError("the first PUT failed")
        assert release.wait(10)
        raise StorageError("the retried PUT failed too")

    bucket = _bucket(put, monkeypatch)
    bucket.publish_bytes(_A, b"a", durable=False)
    first, size = bucket._pending[_A]
    with pytest.raises(StorageError, match="the first PUT failed"):
        bucket.wait([_A])
    bucket.publish_bytes(_A, b"a", durable=False)  # retried: a newer write of the key
    # A second waiter that took the first write before it was settled settles it now.
    assert bucket._settle(_A, first, size) is not None
    assert _A in bucket._pending
    release.set()
    with pytest.raises(StorageError, match="the retried PUT failed too"):
        bucket.wait([_A])
    assert bucket._pending_bytes == 0
