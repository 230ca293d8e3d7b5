"""Events as values: what a state change says, its canonical bytes and its chain digest.

An event's canonical bytes are the canonical CBOR of the whole event (sequence, event id, type,
time, actor, package id and payload), so changing any field changes its chain digest. Each
chain digest is BLAKE3(previous chain digest || canonical bytes), starting from the genesis
digest in `artifactstore.schema`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Generic, TypeVar

import blake3

from artifactstore.cbor import Chunks, decode_strict, encode_map_chunks

PACKAGE_CREATED = "v1.package.created"
RETENTION_ASSIGNED = "v1.retention.assigned"
FILE_INGESTED = "v1.file.ingested"
PACKAGE_FINALIZED = "v1.package.finalized"
PACKAGE_ABANDONED = "v1.package.abandoned"
PACKAGE_EXPIRED = "v1.package.expired"
PACKAGE_DELETED = "v1.package.deleted"
HOLD_PLACED = "v1.hold.placed"
HOLD_RELEASED = "v1.hold.released"
BLOB_DELETED = "v1.blob.deleted"
"""A blob's bytes are about to be removed by garbage collection; no package id."""
TOKEN_CREATED = "v1.token.created"
TOKEN_REVOKED = "v1.token.revoked"
TOKEN_EVENTS = (TOKEN_CREATED, TOKEN_REVOKED)
"""Events about server tokens: no package id; the token's name is in the payload."""


_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class SpooledPayload:
    """A payload too large to hold in memory (the manifest of a package of many files): its
    size bytes in a binary file, from its start. The log copies it into the row in pieces."""

    file: BinaryIO
    size: int

    def chunks(self) -> Iterator[bytes]:
        """The payload in pieces of at most 1 MiB, read from the start of the file."""
        self.file.seek(0)
        left = self.size
        while left:
            piece = self.file.read(min(left, _CHUNK))
            if not piece:
                raise OSError(f"spooled payload ends {left} bytes short")
            left -= len(piece)
            yield piece


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event not yet in the log: everything but its sequence and chain digest."""

    event_id: str
    event_type: str
    occurred_at: str
    actor: str
    package_id: str | None
    payload: bytes | SpooledPayload


_Payload = TypeVar("_Payload", bytes, SpooledPayload)


@dataclass(frozen=True, slots=True)
class _Sealed(Generic[_Payload]):
    sequence: int
    event_id: str
    event_type: str
    occurred_at: str
    actor: str
    package_id: str | None
    chain_digest: str
    payload: _Payload


@dataclass(frozen=True, slots=True)
class Event(_Sealed[bytes]):
    """An event as stored in the log."""

    def payload_value(self) -> object:
        """The payload decoded (strictly) from its canonical CBOR."""
        return decode_strict(self.payload)


@dataclass(frozen=True, slots=True)
class SpooledEvent(_Sealed[SpooledPayload]):
    """An event just appended whose payload is spooled in a file; read back, it is an Event."""


def _fields(sequence: int, event: NewEvent | Event | SpooledEvent) -> dict[str, object]:
    payload = event.payload
    return {
        "sequence": sequence,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "occurred_at": event.occurred_at,
        "actor": event.actor,
        "package_id": event.package_id,
        "payload": payload
        if isinstance(payload, bytes)
        else Chunks(payload.size, payload.chunks()),
    }


def canonical_bytes(sequence: int, event: NewEvent | Event | SpooledEvent) -> bytes:
    """The canonical CBOR of the whole event; what the chain digest covers."""
    return b"".join(encode_map_chunks(_fields(sequence, event)))


def chain_digest(previous: str, canonical: bytes) -> str:
    """BLAKE3 over the previous chain digest's bytes followed by this event's canonical bytes."""
    return event_chain_digest(previous, [canonical])


def event_chain_digest(previous: str, canonical: Iterable[bytes]) -> str:
    """chain_digest over canonical bytes given in pieces."""
    hasher = blake3.blake3(bytes.fromhex(previous))
    for piece in canonical:
        hasher.update(piece)
    return str(hasher.hexdigest())


def digest_event(previous: str, sequence: int, event: NewEvent | Event | SpooledEvent) -> str:
    """The chain digest of event at sequence after previous, without copying its payload."""
    return event_chain_digest(previous, encode_map_chunks(_fields(sequence, event)))


def seal(sequence: int, previous: str, event: NewEvent) -> Event | SpooledEvent:
    """Give a new event its sequence number and chain digest."""
    fields = (
        sequence,
        event.event_id,
        event.event_type,
        event.occurred_at,
        event.actor,
        event.package_id,
        digest_event(previous, sequence, event),
    )
    if isinstance(event.payload, bytes):
        return Event(*fields, event.payload)
    return SpooledEvent(*fields, event.payload)
