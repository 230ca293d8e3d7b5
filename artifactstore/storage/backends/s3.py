"""The S3 backend: objects in a bucket of an S3-compatible store (AWS, MinIO, Ceph RGW, R2...).

An object lives at `<prefix><key>`, e.g. `store/blake3/ab/cd/<hex>`, and only ever with the
bytes that hash to it: `s3_objects` says how (a PUT of hashed bytes, or a multipart upload to a
temp key copied into place). Reads are ranged GETs, streamed. A key that exists already is kept
as is. Temp keys and unfinished multipart uploads under `<prefix>.tmp/` that a killed or cut-off
writer left are swept by the first write of each process once they are `STALE_TEMP_AGE` old
(`sweep_stale_temp`). S3 has an object once it acknowledges the write, so `sync` waits for the
writes still in flight and checks that the others exist.
"""

from __future__ import annotations

import io
import logging
import os
import weakref
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

import botocore.exceptions
from botocore.response import StreamingBody

from artifactstore.config import S3Location
from artifactstore.errors import BlobNotFoundError, InvalidAddressError, StorageError
from artifactstore.identity import CHUNK_SIZE
from artifactstore.storage.backends.s3_client import error_code, s3_errors
from artifactstore.storage.backends.s3_objects import Bucket, S3StagedObject
from artifactstore.storage.base import utc
from artifactstore.storage.spi import (
    BackendHealth,
    ObjectInfo,
    StorageReceipt,
    check_key,
    check_range,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_log = logging.getLogger(__name__)

STALE_TEMP_AGE = timedelta(hours=1)
"""Temp keys and multipart uploads this old belong to a killed writer and are swept."""

_backends: weakref.WeakSet[S3Backend] = weakref.WeakSet()


def _forget_clients_after_fork() -> None:
    for backend in list(_backends):
        backend._bucket.forget()


os.register_at_fork(after_in_child=_forget_clients_after_fork)


class S3Backend:
    """A StorageBackend over a bucket and a key prefix in it."""

    def __init__(self, location: S3Location, backend_id: str = "s3") -> None:
        self._location = location
        self._backend_id = backend_id
        self._bucket = Bucket(location, backend_id)
        _backends.add(self)

    def __repr__(self) -> str:
        return f"S3Backend({self._location.where!r}, backend_id={self._backend_id!r})"

    @property
    def backend_id(self) -> str:
        """The name this backend is registered and recorded under."""
        return self._backend_id

    @property
    def location(self) -> S3Location:
        """The bucket, prefix and endpoint."""
        return self._location

    def stage(self) -> S3StagedObject:
        """Start a write; nothing is sent until a part is full or commit comes."""
        return S3StagedObject(self._bucket)

    def put(
        self, key: str, chunks: Iterable[bytes], *, durable: bool = True
    ) -> tuple[StorageReceipt, bool]:
        """Store the chunks under key, uploaded straight to it (no temp key, no copy).

        The caller vouches that the chunks hash to key, and raises from them if they do not:
        then nothing is visible under key (see StorageBackend.put).
        """
        check_key(key)
        return self._bucket.put_stream(key, chunks, durable)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Stream bytes [start, end), clamped, with one ranged GET; BlobNotFoundError if absent."""
        check_key(key)
        check_range(key, start, end)
        self._bucket.wait([key])
        if end == start:
            if self.head(key) is None:
                raise BlobNotFoundError(self._missing(key))
            return io.BytesIO(b"")
        wanted = f"bytes={start}-" + ("" if end is None else str(end - 1))
        with s3_errors(self._location, f"read {key!r}", missing=self._missing(key)):
            try:
                response = self._bucket.client.get_object(
                    Bucket=self._location.bucket, Key=self._bucket.name(key), Range=wanted
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "InvalidRange":
                    raise
                return io.BytesIO(b"")  # the range starts past the end: nothing to read
        reader = _BodyReader(self._location, key, response["Body"])
        return io.BufferedReader(reader, buffer_size=CHUNK_SIZE)

    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object under key, or None if there is none."""
        check_key(key)
        return self._bucket.head(key)

    def delete(self, key: str) -> None:
        """Delete the object under key; a missing key is not an error."""
        check_key(key)
        self._bucket.wait([key])
        self._bucket.known.discard(key)
        with s3_errors(self._location, f"delete {key!r}"):
            self._bucket.client.delete_object(
                Bucket=self._location.bucket, Key=self._bucket.name(key)
            )

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete the objects, up to 1000 a request (DeleteObjects); missing keys are fine."""
        wanted = [check_key(key) for key in keys]
        self._bucket.wait(wanted)
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            self._bucket.known.difference_update(chunk)
            with s3_errors(self._location, f"delete {len(chunk)} objects"):
                answer = self._bucket.client.delete_objects(
                    Bucket=self._location.bucket,
                    Delete={
                        "Objects": [{"Key": self._bucket.name(k)} for k in chunk],
                        "Quiet": True,
                    },
                )
            failed = answer.get("Errors", [])
            if failed:
                raise StorageError(
                    f"cannot delete {len(failed)} object(s) in {self._location.where}: "
                    f"{failed[0].get('Key')}: {failed[0].get('Code')}"
                )

    def iter_keys(self) -> Iterator[str]:
        """Yield every stored key in sorted order (S3 lists keys sorted); temp keys skipped."""
        prefix = self._location.prefix
        with s3_errors(self._location, "list objects"):
            self._bucket.wait()
            pages = self._bucket.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self._location.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(prefix) :]
                    if _is_key(key):
                        yield key

    def sync(self, keys: Iterable[str]) -> None:
        """Wait for the writes in flight, check that the other objects exist (BlobNotFoundError)."""
        wanted = [check_key(key) for key in keys]
        self._bucket.wait(wanted)
        for key in wanted:
            if key not in self._bucket.known and self._bucket.head(key) is None:
                raise BlobNotFoundError(f"no object {key!r} in {self._location.where} to sync")

    def health(self) -> BackendHealth:
        """Reachable if the bucket answers a HEAD with these credentials; never raises."""
        try:
            with s3_errors(self._location, f"reach S3 bucket {self._location.bucket!r}"):
                self._bucket.client.head_bucket(Bucket=self._location.bucket)
        except StorageError as exc:
            return BackendHealth(self._backend_id, False, str(exc), None, None)
        detail = f"bucket {self._location.bucket!r} ({self._location.where})"
        return BackendHealth(self._backend_id, True, detail, None, None)

    def close(self) -> None:
        """Finish the writes in flight (raising the first failure); close the connections."""
        self._bucket.close()

    def sweep_stale_temp(self) -> None:
        """Remove temp keys and multipart uploads older than STALE_TEMP_AGE; failures are logged.

        The data plane calls it before the first write of each process. A failure is logged at
        INFO only: the write that follows reports a bucket that cannot be used, and a policy
        that allows writes but not listing uploads must not make every push warn.
        """
        try:
            removed = self.clean_stale_temp(STALE_TEMP_AGE)
        except StorageError as exc:
            _log.info("cannot sweep stale S3 temp objects: %s", exc)
            return
        if removed:
            _log.info("removed %d stale temp object(s) under %s", removed, self._temp_prefix)

    def clean_stale_temp(self, older_than: timedelta, *, all_uploads: bool = False) -> int:
        """Delete temp keys and abort multipart uploads under `<prefix>.tmp/` started more than
        older_than ago (left by killed or cut-off writers); return how many.

        A temp key's name starts with the time its writer started it, so the age does not
        depend on the dates a server reports for unfinished uploads (moto reports a fixed one).
        With all_uploads, unfinished uploads straight to blob keys are aborted too, dated by
        what the server reports: not done by the automatic sweep, which must never abort a
        running writer's upload on a server whose dates are wrong; a bucket lifecycle rule
        (AbortIncompleteMultipartUpload, docs/OPERATOR.md) removes those.
        """
        cutoff = datetime.now(UTC) - older_than
        bucket, client = self._location.bucket, self._bucket.client
        removed = 0
        scope = self._location.prefix if all_uploads else self._temp_prefix
        with s3_errors(self._location, f"sweep temp objects under {self._temp_prefix}"):
            pages = client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=bucket, Prefix=scope):
                for upload in page.get("Uploads", []):
                    if self._started(upload["Key"], upload["Initiated"]) <= cutoff:
                        client.abort_multipart_upload(
                            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
            objects = client.get_paginator("list_objects_v2")
            for listing in objects.paginate(Bucket=bucket, Prefix=self._temp_prefix):
                for item in listing.get("Contents", []):
                    if self._started(item["Key"], item["LastModified"]) <= cutoff:
                        client.delete_object(Bucket=bucket, Key=item["Key"])
                        removed += 1
        return removed

    def _started(self, name: str, reported: datetime) -> datetime:
        """When the temp object `name` was started: the time in its name, else what S3 says."""
        if not name.startswith(self._temp_prefix):
            return reported
        stamp = name[len(self._temp_prefix) :].split("-", 1)[0]
        return utc(int(stamp)) if stamp.isdigit() else reported

    @property
    def _temp_prefix(self) -> str:
        return self._bucket.temp_prefix

    def _missing(self, key: str) -> str:
        return f"no object {key!r} in {self._location.where}"


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except InvalidAddressError:
        return False
    return True


class _BodyReader(io.RawIOBase):
    """A raw reader over a GET's streaming body; network errors become StorageError."""

    def __init__(self, location: S3Location, key: str, body: StreamingBody) -> None:
        self._location = location
        self._key = key
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with s3_errors(self._location, f"read {self._key!r}"):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
