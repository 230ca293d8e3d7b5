"""Test doubles for the storage SPI: an in-memory backend and a fail-on-the-Nth-call wrapper.

`MemoryBackend` is the second implementation the contract suite runs against, so the suite
tests the SPI and not LocalBackend's quirks; like the real backends it takes `put` and its staged
object from `storage.base`, and models only where the bytes live. `FailingBackend` wraps any
backend and raises StorageError on the Nth call of one operation (restic wraps backends the same
way), to prove that a failure midway leaves nothing visible.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO, TypeVar

from artifactstore.errors import BlobNotFoundError, StorageError
from artifactstore.storage.base import InMemoryStage, StagedContext, StagingBackend
from artifactstore.storage.spi import (
    BackendHealth,
    ObjectInfo,
    StagedObject,
    StorageBackend,
    StorageReceipt,
    check_key,
    check_range,
)

_T = TypeVar("_T")


class MemoryBackend(StagingBackend):
    """A StorageBackend keeping objects in a dict.

    `durable` models stable storage: the keys committed with durable=True or synced since.
    """

    def __init__(self, backend_id: str = "memory") -> None:
        self.backend_id = backend_id
        self.objects: dict[str, tuple[bytes, datetime]] = {}
        self.durable: set[str] = set()

    def stage(self) -> InMemoryStage:
        """Start a write buffered in memory."""
        return InMemoryStage(self._publish)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Return bytes [start, end) of the object, clamped; BlobNotFoundError if absent."""
        check_key(key)
        check_range(key, start, end)
        try:
            data, _ = self.objects[key]
        except KeyError:
            raise BlobNotFoundError(f"no object {key!r} in memory") from None
        return io.BytesIO(data[start:end])

    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object, or None."""
        check_key(key)
        if key not in self.objects:
            return None
        data, stored_at = self.objects[key]
        return ObjectInfo(key, len(data), stored_at)

    def delete(self, key: str) -> None:
        """Forget the object; a missing key is fine."""
        check_key(key)
        self.objects.pop(key, None)

    def iter_keys(self) -> Iterator[str]:
        """Yield the keys in sorted order."""
        yield from sorted(self.objects)

    def sync(self, keys: Iterable[str]) -> None:
        """Make each key durable; BlobNotFoundError if one does not exist."""
        for key in keys:
            check_key(key)
            if key not in self.objects:
                raise BlobNotFoundError(f"no object {key!r} in memory to sync")
            self.durable.add(key)

    def health(self) -> BackendHealth:
        """Always reachable; no byte counts."""
        return BackendHealth(self.backend_id, True, "in memory", None, None)

    def close(self) -> None:
        """Nothing to release."""

    def _publish(self, key: str, data: bytes, durable: bool) -> tuple[StorageReceipt, bool]:
        existed = key in self.objects
        if not existed:
            self.objects[key] = (data, datetime.now(UTC))
        if durable:
            self.durable.add(key)
        stored, stored_at = self.objects[key]
        return StorageReceipt(self.backend_id, key, len(stored), stored_at), existed


class FailingBackend(StagingBackend):
    """Wraps a backend; the Nth call of `operation` raises StorageError instead of running.

    operation names a StorageBackend method or one of the staged object's ("write", "commit").
    """

    def __init__(self, inner: StorageBackend, operation: str, n: int) -> None:
        self.inner = inner
        self.operation = operation
        self.n = n
        self.calls = 0

    @property
    def backend_id(self) -> str:
        """The wrapped backend's id."""
        return self.inner.backend_id

    def tick(self, operation: str) -> None:
        """Count a call of operation and fail if it is the Nth of the watched one."""
        if operation == self.operation:
            self.calls += 1
            if self.calls == self.n:
                raise StorageError(f"injected fault: {operation} call {self.n}")

    def stage(self) -> _FailingStaged:
        """Stage on the inner backend, counting the staged object's calls too."""
        self.tick("stage")
        return _FailingStaged(self, self.inner.stage())

    def put(
        self, key: str, chunks: Iterable[bytes], *, durable: bool = True
    ) -> tuple[StorageReceipt, bool]:
        """Put through this wrapper's staged objects, so write and commit faults apply."""
        self.tick("put")
        return super().put(key, chunks, durable=durable)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Open on the inner backend."""
        return self._call("open", lambda: self.inner.open(key, start, end))

    def head(self, key: str) -> ObjectInfo | None:
        """Head on the inner backend."""
        return self._call("head", lambda: self.inner.head(key))

    def delete(self, key: str) -> None:
        """Delete on the inner backend."""
        self._call("delete", lambda: self.inner.delete(key))

    def iter_keys(self) -> Iterator[str]:
        """List the inner backend's keys."""
        return self._call("iter_keys", self.inner.iter_keys)

    def sync(self, keys: Iterable[str]) -> None:
        """Sync on the inner backend."""
        self._call("sync", lambda: self.inner.sync(keys))

    def health(self) -> BackendHealth:
        """The inner backend's health."""
        return self._call("health", self.inner.health)

    def close(self) -> None:
        """Close the inner backend."""
        self.inner.close()

    def _call(self, operation: str, call: Callable[[], _T]) -> _T:
        self.tick(operation)
        return call()


class _FailingStaged(StagedContext):
    def __init__(self, owner: FailingBackend, inner: StagedObject) -> None:
        self._owner = owner
        self._inner = inner

    def write(self, chunk: bytes) -> None:
        self._owner.tick("write")
        self._inner.write(chunk)

    def commit(self, key: str, *, durable: bool = True) -> tuple[StorageReceipt, bool]:
        self._owner.tick("commit")
        return self._inner.commit(key, durable=durable)

    def abort(self) -> None:
        self._inner.abort()
