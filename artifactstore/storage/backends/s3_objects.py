"""How bytes get under a key in the bucket, and only bytes that hash to it (ADR-0010).

`Bucket` is one bucket and key prefix: object names, HEAD, and three ways of publishing. Each
keeps an existing object as is (a HEAD first, and `If-None-Match: *` on the write, so another
writer winning the race in between keeps its object too).

- `publish_bytes`: bytes in memory, which the data plane hashed from that very buffer, are PUT
  under their key. With durable=False the PUT runs on one of `UPLOAD_THREADS` threads and
  `wait` (the backend's `sync`) collects it: a push of many small files costs round trips in
  parallel, not one after another. Bytes in flight are bounded by `PENDING_BYTES`.
- `put_stream`: a stream whose key is known before it is read (a file hashed first, an upload
  that names its blob) goes up as a multipart upload straight to the key, one part buffer in
  memory (`Parts`); the caller's iterator raises if the bytes do not hash to the key, and the
  upload is then aborted before it completes, so nothing appears.
- `S3StagedObject`: a stream read once whose key is known only at its end goes up as a multipart
  upload to a temp key `<prefix>.tmp/<start>-<uuid>` (start: the POSIX time it began), is
  completed and copied server-side to its key on commit (a multipart copy above 5 GiB), and the
  temp key is deleted. An upload cut short stays an unfinished upload under `.tmp/`, which no
  reader sees and the backend's sweep removes.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import botocore.exceptions

from artifactstore.config import S3Location
from artifactstore.errors import StorageError
from artifactstore.storage.backends.s3_client import ClientHolder, error_code, s3_errors
from artifactstore.storage.base import PublishingStage
from artifactstore.storage.spi import ObjectInfo, StorageReceipt

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedMultipartUploadTypeDef, CompletedPartTypeDef

_log = logging.getLogger(__name__)

PART_SIZE = 8 << 20
"""Bytes per multipart part (S3's minimum is 5 MiB); every 1,000 parts the size grows by this
much, so S3's 10,000 parts hold 430 GiB."""
COPY_LIMIT = 5 << 30
"""The largest object one CopyObject call may copy; larger ones are copied part by part."""
COPY_PART_SIZE = 1 << 30
TEMP_DIR = ".tmp/"
UPLOAD_THREADS = 16
PENDING_BYTES = 32 << 20
"""Bytes of durable=False PUTs in flight at most; a write beyond waits for the oldest."""
_LOST_RACE = ("PreconditionFailed", "ConditionalRequestConflict")


def part_size(number: int) -> int:
    """The size of multipart part `number` (1-based)."""
    return PART_SIZE * (1 + (number - 1) // 1000)


class Bucket:
    """A bucket and key prefix: object names, HEAD, and publishing under a key."""

    def __init__(self, location: S3Location, backend_id: str) -> None:
        self.location = location
        self.backend_id = backend_id
        self.client_holder = ClientHolder(location)
        # Keys this process knows exist (written or seen): sync need not ask S3 again.
        self.known: set[str] = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, tuple[Future[tuple[StorageReceipt, bool]], int]] = {}
        self._pending_bytes = 0
        # Writes that failed while another caller waited them out (`_bound_pending`): their
        # errors are for the wait() of their own keys.
        self._failed: dict[str, BaseException] = {}

    @property
    def client(self) -> S3Client:
        """The process's client for this bucket."""
        return self.client_holder.get()

    @property
    def temp_prefix(self) -> str:
        """Where temp keys and multipart uploads in progress live."""
        return self.location.prefix + TEMP_DIR

    def name(self, key: str) -> str:
        """The S3 object name of a (checked) key."""
        return self.location.prefix + key

    def head(self, key: str) -> ObjectInfo | None:
        """HEAD of the object under key (after a pending write of it), or None."""
        self.wait([key])
        return self._head(key)

    def _head(self, key: str) -> ObjectInfo | None:
        with s3_errors(self.location, f"look up {key!r}"):
            try:
                response = self.client.head_object(Bucket=self.location.bucket, Key=self.name(key))
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    # Another process (garbage collection) may have deleted what we stored.
                    self.known.discard(key)
                    return None
                raise
        self.known.add(key)
        return ObjectInfo(key, response["ContentLength"], response["LastModified"])

    def publish_bytes(self, key: str, data: bytes, durable: bool) -> tuple[StorageReceipt, bool]:
        """PUT data under key unless an object is there; with durable=False on a thread."""
        if durable:
            return self._put(key, data)
        with self._lock:
            if key in self._pending or key in self.known:
                existed = True
            else:
                existed = False
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(UPLOAD_THREADS, "s3-upload")
                future = self._pool.submit(self._put, key, data)
                self._pending[key] = (future, len(data))
                self._pending_bytes += len(data)
                self._failed.pop(key, None)  # this write decides now
        if not existed:
            self._bound_pending()
        return StorageReceipt(self.backend_id, key, len(data), datetime.now(UTC)), existed

    def wait(self, keys: Iterable[str] | None = None) -> None:
        """Wait for the pending writes of keys (all with None); raise the first one's error."""
        with self._lock:
            wanted = list(self._pending) if keys is None else list(keys)
            futures = [(key, *self._pending[key]) for key in wanted if key in self._pending]
            failed = list(self._failed) if keys is None else wanted
            errors = [self._failed.pop(key) for key in failed if key in self._failed]
        failure = errors[0] if errors else None
        for key, future, size in futures:
            error = self._settle(key, future, size)
            failure = failure or error
        if failure is not None:
            raise failure

    def _settle(
        self, key: str, future: Future[tuple[StorageReceipt, bool]], size: int
    ) -> BaseException | None:
        """Wait for the write future of key; it is no longer pending (unless a newer write of
        key took its place meanwhile); its error, if it failed."""
        error = future.exception()
        with self._lock:
            if self._pending.get(key, (None, 0))[0] is future:
                del self._pending[key]
                self._pending_bytes -= size
        return error

    def close(self) -> None:
        """Finish pending writes (raising the first error), then close the client."""
        try:
            self.wait()
        finally:
            with self._lock:
                pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown()
            self.client_holder.close()

    def forget(self) -> None:
        """After fork: the parent's threads, writes and sockets are not the child's."""
        self._lock = threading.Lock()
        self._pool, self._pending, self._pending_bytes, self._failed = None, {}, 0, {}
        self.client_holder.forget()

    def _bound_pending(self) -> None:
        """Wait for the oldest writes while more than PENDING_BYTES are pending; the error of
        one that failed is kept for whoever waits for its key, not raised to this caller."""
        while True:
            with self._lock:
                if self._pending_bytes <= PENDING_BYTES or not self._pending:
                    return
                oldest = next(iter(self._pending))
                future, size = self._pending[oldest]
            error = self._settle(oldest, future, size)
            if error is not None:
                with self._lock:
                    if oldest not in self._pending:
                        self._failed[oldest] = error

    def put_stream(
        self, key: str, chunks: Iterable[bytes], durable: bool
    ) -> tuple[StorageReceipt, bool]:
        """Upload chunks straight to key (the caller vouches for them, raising from chunks if
        they do not hash to key: the upload is then aborted, nothing visible).

        At most one part: as `publish_bytes`. More: a HEAD when the first part is full, and an
        existing object is kept, the rest of the chunks still read so the caller's check runs.
        """
        parts = Parts(self, self.name(key))
        remaining = iter(chunks)
        try:
            for chunk in remaining:
                if not parts.started and parts.size + len(chunk) >= PART_SIZE:
                    existing = self._existing(key, wait=True)
                    if existing is not None:
                        for _ in remaining:
                            pass
                        return existing, True
                parts.write(chunk)
            if not parts.started:
                return self.publish_bytes(key, parts.buffered(), durable)
            with s3_errors(self.location, f"finish the upload of {key!r}"):
                try:
                    parts.complete(only_if_new=True)
                except botocore.exceptions.ClientError as exc:
                    if error_code(exc) not in _LOST_RACE:
                        raise
                    return self._raced(key)
        except BaseException:
            parts.abort()
            raise
        self.known.add(key)
        return StorageReceipt(self.backend_id, key, parts.size, datetime.now(UTC)), False

    def _existing(self, key: str, wait: bool = False) -> StorageReceipt | None:
        info = self.head(key) if wait else self._head(key)
        if info is None:
            return None
        return StorageReceipt(self.backend_id, key, info.size, info.modified_at)

    def _put(self, key: str, data: bytes) -> tuple[StorageReceipt, bool]:
        existing = self._existing(key)
        if existing is not None:
            return existing, True
        with s3_errors(self.location, f"store {key!r}"):
            try:
                self.client.put_object(
                    Bucket=self.location.bucket, Key=self.name(key), Body=data, IfNoneMatch="*"
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in _LOST_RACE:
                    raise
                return self._raced(key)
        self.known.add(key)
        return StorageReceipt(self.backend_id, key, len(data), datetime.now(UTC)), False

    def publish_temp(self, temp: str, key: str, size: int) -> tuple[StorageReceipt, bool]:
        """Copy the completed temp object to key unless an object is there already."""
        existing = self._existing(key)
        if existing is not None:
            return existing, True
        bucket = self.location.bucket
        with s3_errors(self.location, f"store {key!r}"):
            if size > COPY_LIMIT:
                self._copy_in_parts(temp, key, size)
            else:
                try:
                    self.client.copy_object(
                        Bucket=bucket,
                        Key=self.name(key),
                        CopySource={"Bucket": bucket, "Key": temp},
                        IfNoneMatch="*",
                    )
                except botocore.exceptions.ClientError as exc:
                    if error_code(exc) not in _LOST_RACE:
                        raise
                    return self._raced(key)
        self.known.add(key)
        return StorageReceipt(self.backend_id, key, size, datetime.now(UTC)), False

    def _copy_in_parts(self, temp: str, key: str, size: int) -> None:
        """Copy temp to key server-side with UploadPartCopy (CopyObject stops at 5 GiB)."""
        bucket, client, name = self.location.bucket, self.client, self.name(key)
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
        existing = self._existing(key)
        if existing is None:
            raise StorageError(f"cannot store {key!r}: S3 refused the write but has no object")
        return existing, True


class Parts:
    """A multipart upload to one object name, begun once the first part buffer is full.

    Until then the bytes are only in memory (`buffered`), so a short stream costs no upload.
    """

    def __init__(self, bucket: Bucket, name: str) -> None:
        self._bucket = bucket
        self._name = name
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self.size = 0

    @property
    def started(self) -> bool:
        """Whether a part has gone up (else every byte is in `buffered`)."""
        return self._upload_id is not None

    def buffered(self) -> bytes:
        """The bytes not sent yet: all of them while no part has gone up."""
        return bytes(self._buffer)

    def write(self, chunk: bytes) -> None:
        """Append chunk; a full part buffer is uploaded as the next part."""
        self._buffer += chunk
        self.size += len(chunk)
        while len(self._buffer) >= part_size(len(self._parts) + 1):
            self._upload(part_size(len(self._parts) + 1))

    def complete(self, *, only_if_new: bool = False) -> None:
        """Send the last part and complete the upload: the object appears whole.

        With only_if_new, a ClientError PreconditionFailed says an object was there already.
        """
        if self._buffer or not self._parts:
            self._upload(len(self._buffer))
        assert self._upload_id is not None
        bucket = self._bucket.location.bucket
        parts: CompletedMultipartUploadTypeDef = {"Parts": self._parts}
        client = self._bucket.client
        if only_if_new:
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=self._name,
                UploadId=self._upload_id,
                MultipartUpload=parts,
                IfNoneMatch="*",
            )
        else:
            client.complete_multipart_upload(
                Bucket=bucket, Key=self._name, UploadId=self._upload_id, MultipartUpload=parts
            )

    def abort(self) -> None:
        """Abort the upload, its parts discarded; logged at INFO, never raised, if that fails
        (its cause, a cut connection say, is what the caller hears about; the sweep or the
        bucket's lifecycle rule removes what is left)."""
        if self._upload_id is None:
            return
        location = self._bucket.location
        try:
            with s3_errors(location, f"abort the upload to {self._name}"):
                self._bucket.client.abort_multipart_upload(
                    Bucket=location.bucket, Key=self._name, UploadId=self._upload_id
                )
        except StorageError as exc:
            _log.info("%s", exc)

    def _upload(self, size: int) -> None:
        client, bucket = self._bucket.client, self._bucket.location.bucket
        number = len(self._parts) + 1
        with s3_errors(self._bucket.location, f"upload part {number} of {self._name}"):
            if self._upload_id is None:
                created = client.create_multipart_upload(Bucket=bucket, Key=self._name)
                self._upload_id = created["UploadId"]
            result = client.upload_part(
                Bucket=bucket,
                Key=self._name,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=bytes(self._buffer[:size]),
            )
        self._parts.append({"PartNumber": number, "ETag": result["ETag"]})
        del self._buffer[:size]


class S3StagedObject(PublishingStage):
    """A write whose key is not known yet: up to one part in memory, beyond that a multipart
    upload to a temp key, copied to its key on commit."""

    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket
        self._temp = f"{bucket.temp_prefix}{int(time.time())}-{uuid.uuid4().hex}"
        self._parts: Parts | None = Parts(bucket, self._temp)
        self._temp_written = False

    def write(self, chunk: bytes) -> None:
        """Append chunk; a full part buffer is uploaded as the next part of the temp object."""
        self._open_parts().write(chunk)

    def abort(self) -> None:
        """Discard the bytes: abort the upload or delete the temp object; never raises."""
        parts, self._parts = self._parts, None
        if parts is None:
            return
        if not self._temp_written:
            parts.abort()
            return
        location = self._bucket.location
        try:
            with s3_errors(location, f"delete temp object {self._temp}"):
                self._bucket.client.delete_object(Bucket=location.bucket, Key=self._temp)
        except StorageError as exc:
            _log.info("%s (a later sweep removes it)", exc)

    def _check_open(self) -> None:
        self._open_parts()

    def _publish(self, key: str, durable: bool) -> tuple[StorageReceipt, bool]:
        parts = self._open_parts()
        if not parts.started:
            return self._bucket.publish_bytes(key, parts.buffered(), durable)
        with s3_errors(self._bucket.location, f"finish the upload of {key!r}"):
            parts.complete()
        self._temp_written = True
        return self._bucket.publish_temp(self._temp, key, parts.size)

    def _open_parts(self) -> Parts:
        if self._parts is None:
            raise StorageError(f"staged object {self._temp} was already committed or aborted")
        return self._parts
