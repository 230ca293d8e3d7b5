"""What the StorageBackend implementations share: put as stage-write-commit, and staged objects.

Every backend stores by the same flow: `put` stages, writes each chunk and commits, and a staged
object's `commit` checks the key, publishes and is finished whether that worked or not. A backend
supplies `stage`; a staged object supplies how it publishes and how it is discarded.
`RootedBackend` adds the identity of a backend kept under a root directory, and `InMemoryStage`
collects the bytes in memory for backends that publish a whole blob at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from artifactstore.errors import StorageError
from artifactstore.storage.spi import StagedObject, StorageReceipt, check_key


def utc(timestamp: float) -> datetime:
    """Return the POSIX timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, UTC)


class StagingBackend(ABC):
    """A backend whose `put` is `stage`, `write` each chunk, `commit`."""

    @abstractmethod
    def stage(self) -> StagedObject:
        """Start a write; the bytes become visible only when the staged object is committed."""

    def put(
        self, key: str, chunks: Iterable[bytes], *, durable: bool = True
    ) -> tuple[StorageReceipt, bool]:
        """Store the chunks under key; the key is checked before any I/O (see StorageBackend)."""
        check_key(key)
        with self.stage() as staged:
            for chunk in chunks:
                staged.write(chunk)
            return staged.commit(key, durable=durable)

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object under key; a missing key is not an error."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove the objects under keys, as `delete` each (see StorageBackend)."""
        for key in keys:
            self.delete(key)


class RootedBackend(StagingBackend):
    """A staging backend keeping its objects under a root directory."""

    def __init__(self, root: Path, backend_id: str) -> None:
        self._root = root
        self._backend_id = backend_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._root)!r}, backend_id={self._backend_id!r})"

    @property
    def backend_id(self) -> str:
        """The name this backend is registered and recorded under."""
        return self._backend_id


class StagedContext(ABC):
    """A staged object as a context manager: leaving the block aborts (a no-op after commit)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()

    @abstractmethod
    def abort(self) -> None:
        """Discard the staged bytes; idempotent, and a no-op after commit."""


class PublishingStage(StagedContext):
    """A staged object whose commit checks the key, publishes, and finishes it either way."""

    def commit(self, key: str, *, durable: bool = True) -> tuple[StorageReceipt, bool]:
        """Publish the staged bytes under key (see StagedObject.commit)."""
        self._check_open()
        try:
            check_key(key)
            return self._publish(key, durable)
        finally:
            self.abort()

    @abstractmethod
    def _check_open(self) -> None:
        """Raise StorageError if the object was already committed or aborted."""

    @abstractmethod
    def _publish(self, key: str, durable: bool) -> tuple[StorageReceipt, bool]:
        """Make the staged bytes visible under the checked key."""


class InMemoryStage(PublishingStage):
    """Bytes collected in memory until commit hands them to publish(key, data, durable)."""

    def __init__(self, publish: Callable[[str, bytes, bool], tuple[StorageReceipt, bool]]) -> None:
        self._publish_bytes = publish
        self._chunks: list[bytes] | None = []

    def write(self, chunk: bytes) -> None:
        """Append chunk to the staged bytes."""
        self._open_chunks().append(bytes(chunk))

    def abort(self) -> None:
        """Discard the staged bytes; idempotent."""
        self._chunks = None

    def _check_open(self) -> None:
        self._open_chunks()

    def _publish(self, key: str, durable: bool) -> tuple[StorageReceipt, bool]:
        return self._publish_bytes(key, b"".join(self._open_chunks()), durable)

    def _open_chunks(self) -> list[bytes]:
        if self._chunks is None:
            raise StorageError("staged object was already committed or aborted")
        return self._chunks
