"""The S3 backend: objects in a bucket of an S3-compatible store (AWS, MinIO, Ceph RGW, R2...).

An object lives at `<prefix><key>`, e.g. `store/blake3/ab/cd/<hex>`. A key only ever appears
with the bytes that hash to it (ADR-0010):

- A staged object holds its bytes in memory up to one part (`PART_SIZE`). If the stream ends
  there, commit PUTs those bytes, the very ones the data plane hashed, under the final key
  (`If-None-Match: *`, so a concurrent writer's object is kept).
- A longer stream goes up as a multipart upload to a temp key `<prefix>.tmp/<start>-<uuid>`
  (start: the POSIX time it began) while it is hashed, one part buffer in memory. Commit
  completes it and copies it server-side to the final key (a multipart copy above 5 GiB), then
  deletes the temp key. Until commit nothing is under
  the final key; an upload cut short is an unfinished multipart upload under `.tmp/`, which no
  reader sees.

A key that exists already is kept as is (HEAD before writing; the bytes are content-addressed,
so two writers racing past the HEAD write the same bytes). Temp keys and unfinished multipart
uploads under `<prefix>.tmp/` that a killed writer left are swept by the first write of each
process once they are `STALE_TEMP_AGE` old (`sweep_stale_temp`). Writes are durable when S3
acknowledges them, so `sync` only checks that the objects exist.
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

import botocore.exceptions
from botocore.response import StreamingBody

from artifactstore.config import S3Location
from artifactstore.errors import BlobNotFoundError, InvalidAddressError, StorageError
from artifactstore.identity import CHUNK_SIZE
from artifactstore.storage.backends.s3_client import ClientHolder, error_code, s3_errors
from artifactstore.storage.base import PublishingStage, StagingBackend, utc
from artifactstore.storage.spi import (
    BackendHealth,
    ObjectInfo,
    StorageReceipt,
    check_key,
    check_range,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

_log = logging.getLogger(__name__)

PART_SIZE = 8 << 20
"""Bytes per multipart part (S3's minimum is 5 MiB); every 1,000 parts the size grows by this
much, so S3's 10,000 parts hold 430 GiB."""
COPY_LIMIT = 5 << 30
"""The largest object one CopyObject call may copy; larger ones are copied part by part."""
COPY_PART_SIZE = 1 << 30
TEMP_DIR = ".tmp/"
STALE_TEMP_AGE = timedelta(hours=1)
"""Temp keys and multipart uploads this old belong to a killed writer and are swept."""

_backends: weakref.WeakSet[S3Backend] = weakref.WeakSet()


def _forget_clients_after_fork() -> None:
    for backend in list(_backends):
        backend._client.forget()


os.register_at_fork(after_in_child=_forget_clients_after_fork)


def part_size(number: int) -> int:
    """The size of multipart part `number` (1-based)."""
    return PART_SIZE * (1 + (number - 1) // 1000)


class S3Backend(StagingBackend):
    """A StorageBackend over a bucket and a key prefix in it."""

    def __init__(self, location: S3Location, backend_id: str = "s3") -> None:
        self._location = location
        self._backend_id = backend_id
        self._client = ClientHolder(location)
        # Keys this process knows exist (written or seen): sync need not ask S3 again.
        self._known: set[str] = set()
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
        return S3StagedObject(self)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Stream bytes [start, end), clamped, with one ranged GET; BlobNotFoundError if absent."""
        check_key(key)
        check_range(key, start, end)
        if end == start:
            if self.head(key) is None:
                raise BlobNotFoundError(self._missing(key))
            return io.BytesIO(b"")
        wanted = f"bytes={start}-" + ("" if end is None else str(end - 1))
        with s3_errors(self._location, f"read {key!r}", missing=self._missing(key)):
            try:
                response = self._client.get().get_object(
                    Bucket=self._location.bucket, Key=self._name(key), Range=wanted
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
        with s3_errors(self._location, f"look up {key!r}"):
            try:
                response = self._client.get().head_object(
                    Bucket=self._location.bucket, Key=self._name(key)
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        self._known.add(key)
        return ObjectInfo(key, response["ContentLength"], response["LastModified"])

    def delete(self, key: str) -> None:
        """Delete the object under key; a missing key is not an error."""
        check_key(key)
        self._known.discard(key)
        with s3_errors(self._location, f"delete {key!r}"):
            self._client.get().delete_object(Bucket=self._location.bucket, Key=self._name(key))

    def iter_keys(self) -> Iterator[str]:
        """Yield every stored key in sorted order (S3 lists keys sorted); temp keys skipped."""
        prefix = self._location.prefix
        with s3_errors(self._location, "list objects"):
            pages = self._client.get().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self._location.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(prefix) :]
                    if _is_key(key):
                        yield key

    def sync(self, keys: Iterable[str]) -> None:
        """Check that the objects exist (S3 writes are durable on return); BlobNotFoundError."""
        for key in keys:
            check_key(key)
            if key not in self._known and self.head(key) is None:
                raise BlobNotFoundError(f"no object {key!r} in {self._location.where} to sync")

    def health(self) -> BackendHealth:
        """Reachable if the bucket answers a HEAD with these credentials; never raises."""
        try:
            with s3_errors(self._location, f"reach S3 bucket {self._location.bucket!r}"):
                self._client.get().head_bucket(Bucket=self._location.bucket)
        except StorageError as exc:
            return BackendHealth(self._backend_id, False, str(exc), None, None)
        detail = f"bucket {self._location.bucket!r} ({self._location.where})"
        return BackendHealth(self._backend_id, True, detail, None, None)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

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

    def clean_stale_temp(self, older_than: timedelta) -> int:
        """Delete temp keys and abort multipart uploads under `<prefix>.tmp/` started more than
        older_than ago (left by killed or cut-off writers); return how many.

        A temp key's name starts with the time its writer started it, so the age does not
        depend on the dates a server reports for unfinished uploads (some report none).
        """
        cutoff = datetime.now(UTC) - older_than
        bucket, client = self._location.bucket, self._client.get()
        removed = 0
        with s3_errors(self._location, f"sweep temp objects under {self._temp_prefix}"):
            pages = client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=bucket, Prefix=self._temp_prefix):
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
        stamp = name[len(self._temp_prefix) :].split("-", 1)[0]
        return utc(int(stamp)) if stamp.isdigit() else reported

    @property
    def _temp_prefix(self) -> str:
        return self._location.prefix + TEMP_DIR

    def _name(self, key: str) -> str:
        """The S3 object name of a (checked) key."""
        return self._location.prefix + key

    def _missing(self, key: str) -> str:
        return f"no object {key!r} in {self._location.where}"

    def _exists(self, key: str) -> StorageReceipt | None:
        info = self.head(key)
        if info is None:
            return None
        return StorageReceipt(self._backend_id, key, info.size, info.modified_at)

    def _publish_bytes(self, key: str, data: bytes) -> tuple[StorageReceipt, bool]:
        """PUT data under key unless an object is there already."""
        existing = self._exists(key)
        if existing is not None:
            return existing, True
        with s3_errors(self._location, f"store {key!r}"):
            try:
                self._client.get().put_object(
                    Bucket=self._location.bucket, Key=self._name(key), Body=data, IfNoneMatch="*"
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
                return self._raced(key)
        self._known.add(key)
        return StorageReceipt(self._backend_id, key, len(data), datetime.now(UTC)), False

    def _publish_temp(self, temp: str, key: str, size: int) -> tuple[StorageReceipt, bool]:
        """Copy the completed temp object to key unless an object is there already."""
        existing = self._exists(key)
        if existing is not None:
            return existing, True
        bucket, client = self._location.bucket, self._client.get()
        with s3_errors(self._location, f"store {key!r}"):
            if size > COPY_LIMIT:
                self._copy_in_parts(temp, key, size)
            else:
                try:
                    client.copy_object(
                        Bucket=bucket,
                        Key=self._name(key),
                        CopySource={"Bucket": bucket, "Key": temp},
                        IfNoneMatch="*",
                    )
                except botocore.exceptions.ClientError as exc:
                    if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                        raise
                    return self._raced(key)
        self._known.add(key)
        return StorageReceipt(self._backend_id, key, size, datetime.now(UTC)), False

    def _copy_in_parts(self, temp: str, key: str, size: int) -> None:
        """Copy temp to key server-side with UploadPartCopy (CopyObject stops at 5 GiB)."""
        bucket, client, name = self._location.bucket, self._client.get(), self._name(key)
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=name)["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            for number, start in enumerate(range(0, size, COPY_PART_SIZE), start=1):
                stop = min(start + COPY_PART_SIZE, size) - 1
                result = client.upload_part_copy(
                    Bucket=bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": bucket, "Key": temp},
                    CopySourceRange=f"bytes={start}-{stop}",
                )
                parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
            client.complete_multipart_upload(
                Bucket=bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload_id)
            raise

    def _raced(self, key: str) -> tuple[StorageReceipt, bool]:
        """Another writer published key between our HEAD and our write: theirs stays."""
        existing = self._exists(key)
        if existing is None:
            raise StorageError(f"cannot store {key!r}: S3 refused the write but has no object")
        return existing, True


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except InvalidAddressError:
        return False
    return True


class S3StagedObject(PublishingStage):
    """Bytes in one part buffer, spilling into a multipart upload to a temp key when it fills."""

    def __init__(self, backend: S3Backend) -> None:
        self._backend = backend
        self._location = backend.location
        self._temp = f"{backend._temp_prefix}{int(time.time())}-{uuid.uuid4().hex}"
        self._buffer: bytearray | None = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._size = 0
        self._temp_written = False

    def write(self, chunk: bytes) -> None:
        """Append chunk; a full part buffer is uploaded as the next part."""
        buffer = self._open_buffer()
        buffer += chunk
        self._size += len(chunk)
        while len(buffer) >= part_size(len(self._parts) + 1):
            self._upload_part(part_size(len(self._parts) + 1))

    def abort(self) -> None:
        """Discard the bytes: abort the multipart upload and delete the temp key; never raises.

        A failure is logged: nothing is visible under a real key, and the sweep removes it.
        """
        if self._buffer is None:
            return
        self._buffer = None
        if self._upload_id is None:
            return  # nothing was sent
        bucket = self._location.bucket
        try:
            with s3_errors(self._location, f"discard temp object {self._temp}"):
                client = self._backend._client.get()
                if not self._temp_written:
                    client.abort_multipart_upload(
                        Bucket=bucket, Key=self._temp, UploadId=self._upload_id
                    )
                if self._temp_written:
                    client.delete_object(Bucket=bucket, Key=self._temp)
        except StorageError as exc:
            _log.warning("%s (a later sweep removes it)", exc)

    def _check_open(self) -> None:
        self._open_buffer()

    def _publish(self, key: str, durable: bool) -> tuple[StorageReceipt, bool]:
        buffer = self._open_buffer()
        if self._upload_id is None:
            return self._backend._publish_bytes(key, bytes(buffer))
        if buffer:
            self._upload_part(len(buffer))
        with s3_errors(self._location, f"finish the upload of {key!r}"):
            self._backend._client.get().complete_multipart_upload(
                Bucket=self._location.bucket,
                Key=self._temp,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._temp_written = True
        return self._backend._publish_temp(self._temp, key, self._size)

    def _upload_part(self, size: int) -> None:
        buffer = self._open_buffer()
        client, bucket = self._backend._client.get(), self._location.bucket
        number = len(self._parts) + 1
        with s3_errors(self._location, f"upload part {number} of temp object {self._temp}"):
            if self._upload_id is None:
                created = client.create_multipart_upload(Bucket=bucket, Key=self._temp)
                self._upload_id = created["UploadId"]
            result = client.upload_part(
                Bucket=bucket,
                Key=self._temp,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=bytes(buffer[:size]),
            )
        self._parts.append({"PartNumber": number, "ETag": result["ETag"]})
        del buffer[:size]

    def _open_buffer(self) -> bytearray:
        if self._buffer is None:
            raise StorageError(f"staged object {self._temp} was already committed or aborted")
        return self._buffer


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
