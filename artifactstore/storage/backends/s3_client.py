"""The boto3 side of the S3 backend: its client, and its errors in words.

The bucket comes as a `config.S3Location`, parsed from the storage URL. The client takes its
credentials from the standard AWS chain (environment, shared config and credentials files,
instance roles) and from nowhere else, so no secret ever passes through artifactstore's own
settings. `s3_errors` is the S3 counterpart of `storage.spi.storage_errors`: every botocore
exception (and the urllib3 or socket error under a stream being read) becomes a StorageError
whose message is one sentence naming the bucket and the endpoint, never a credential; a missing
object becomes BlobNotFoundError where the caller asks for that.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
import botocore.config
import botocore.exceptions
import urllib3.exceptions

from artifactstore.config import S3Location
from artifactstore.errors import BlobNotFoundError, StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_REFUSED = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
    }
)
_UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ResponseStreamingError,
    urllib3.exceptions.HTTPError,
    OSError,
)


_session: boto3.session.Session | None = None
_session_lock = threading.RLock()


def _shared_session() -> boto3.session.Session:
    """One boto3 session per process: it loads S3's service model once (~0.2 s a client else)
    and resolves the credentials once, from the standard chain."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session


def _forget_session_after_fork() -> None:
    global _session, _session_lock
    _session, _session_lock = None, threading.RLock()


os.register_at_fork(after_in_child=_forget_session_after_fork)


class ClientHolder:
    """One boto3 client per process, made on first use (a forked child makes its own)."""

    def __init__(self, location: S3Location) -> None:
        self._location = location
        self._client: S3Client | None = None
        self._lock = threading.Lock()

    def get(self) -> S3Client:
        """The client; made once, thread-safe (boto3 clients may be shared by threads)."""
        with self._lock:
            if self._client is None:
                config = botocore.config.Config(
                    connect_timeout=5,
                    read_timeout=60,
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=16,
                )
                with s3_errors(self._location, "set up the S3 client"), _session_lock:
                    self._client = _shared_session().client(
                        "s3",
                        endpoint_url=self._location.endpoint_url,
                        region_name=self._location.region,
                        config=config,
                    )
            return self._client

    def forget(self) -> None:
        """Drop the client without closing it (after fork: its sockets are the parent's)."""
        self._client = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the client's connections; idempotent."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def error_code(exc: botocore.exceptions.ClientError) -> str:
    """The S3 error code of a ClientError ('NoSuchKey', '404', 'PreconditionFailed', ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def describe(location: S3Location, exc: Exception) -> str:
    """One sentence saying what went wrong with the bucket, without any credential."""
    bucket = location.bucket
    where = location.endpoint_url or "AWS"
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.NoRegionError):
        return (
            f"{exc} for S3 bucket {bucket!r}: set them the standard AWS way (AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/config, or ?region= in the URL)"
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        if code == "NoSuchBucket":
            return f"S3 bucket {bucket!r} does not exist at {where}"
        if code in _REFUSED:
            return (
                f"S3 at {where} refused access to bucket {bucket!r} ({code}): check the AWS "
                "credentials and the bucket's policy"
            )
        message = exc.response.get("Error", {}).get("Message", "")
        return f"S3 at {where} answered {code or 'an error'} for bucket {bucket!r}: {message}"
    if isinstance(exc, _UNREACHABLE):
        return f"cannot reach the S3 endpoint {where} (bucket {bucket!r}): {exc}"
    return f"S3 bucket {bucket!r} at {where}: {exc}"


@contextmanager
def s3_errors(location: S3Location, what: str, *, missing: str | None = None) -> Iterator[None]:
    """Turn a botocore, urllib3 or socket error raised inside into StorageError('cannot <what>:
    <sentence>'), chained; with missing given, a missing object becomes BlobNotFoundError."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        if missing is not None and error_code(exc) in _MISSING:
            raise BlobNotFoundError(missing) from exc
        raise StorageError(f"cannot {what}: {describe(location, exc)}") from exc
    except (botocore.exceptions.BotoCoreError, *_UNREACHABLE) as exc:
        raise StorageError(f"cannot {what}: {describe(location, exc)}") from exc
