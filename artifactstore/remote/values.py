"""The server's JSON turned back into the library's values: packages, files, events, results.

The shapes are the API's (api.py, cli/output.py's package_json and event_json). Anything of
another shape is a server this client cannot trust to speak the same API: IntegrityError
naming what was wrong, never a KeyError. An event's payload travels as JSON and is encoded
again as canonical CBOR: the payload subset (text, integers, booleans, null, lists, maps) has
one encoding, so the event is the one in the log, and `check_chain` proves it for consecutive
events by recomputing each chain digest from the one before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from artifactstore import cbor
from artifactstore.errors import ArtifactStoreError, IntegrityError
from artifactstore.events.model import Event, digest_event
from artifactstore.identity import ContentAddress, Digest
from artifactstore.manifest.model import Manifest, validate_metadata
from artifactstore.records import Package, PushResult, StoredFile

_T = TypeVar("_T")


def field(document: object, key: str, kind: type[_T], what: str) -> _T:
    """document[key], which must be a kind; IntegrityError says which answer was malformed."""
    if not isinstance(document, Mapping):
        raise IntegrityError(f"the server's answer to {what} is not a JSON object")
    value = document.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise IntegrityError(f"the server's answer to {what} has no valid {key!r}")
    return value


def _optional_text(document: object, key: str, what: str) -> str | None:
    value = document.get(key) if isinstance(document, Mapping) else None
    if value is not None and not isinstance(value, str):
        raise IntegrityError(f"the server's answer to {what} has no valid {key!r}")
    return value


def package_from_json(document: object, what: str) -> Package:
    """A Package from its JSON (package_json)."""
    try:
        metadata = validate_metadata(field(document, "metadata", dict, what))
    except ArtifactStoreError as exc:
        raise IntegrityError(f"the server's answer to {what} has bad metadata: {exc}") from exc
    return Package(
        id=field(document, "id", str, what),
        name=field(document, "name", str, what),
        version=field(document, "version", str, what),
        state=field(document, "state", str, what),
        retention_class=field(document, "retention_class", str, what),
        metadata=metadata,
        created_at=field(document, "created_at", str, what),
        finalized_at=_optional_text(document, "finalized_at", what),
        manifest_digest=_optional_text(document, "manifest_digest", what),
        expires_at=_optional_text(document, "expires_at", what),
        hold_reason=_optional_text(document, "hold_reason", what),
        ended_at=_optional_text(document, "ended_at", what),
        file_count=_optional_count(document, "file_count", what),
        size=_optional_count(document, "size", what),
    )


def _optional_count(document: object, key: str, what: str) -> int | None:
    value = document.get(key) if isinstance(document, Mapping) else None
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise IntegrityError(f"the server's answer to {what} has no valid {key!r}")
    return value


def file_from_json(document: object, what: str) -> StoredFile:
    """A StoredFile from the JSON of one file (its backend is not part of it: '')."""
    try:
        return StoredFile(
            path=field(document, "path", str, what),
            size=field(document, "size", int, what),
            blake3=ContentAddress.parse(field(document, "content_address", str, what)),
            sha256=Digest.parse(field(document, "sha256", str, what)),
            executable=field(document, "executable", bool, what),
            backend_id="",
        )
    except ArtifactStoreError as exc:
        if isinstance(exc, IntegrityError):
            raise
        raise IntegrityError(f"the server's answer to {what} names a bad digest: {exc}") from exc


def manifest_files(manifest: Manifest) -> list[StoredFile]:
    """The files a checked manifest lists, with the backend each blob's receipt names."""
    backends = {str(r.content_address): r.backend_id for r in manifest.storage_receipts}
    return [
        StoredFile(
            path=f.path,
            size=f.size,
            blake3=f.blake3,
            sha256=f.sha256,
            executable=f.executable,
            backend_id=backends.get(str(f.content_address), ""),
        )
        for f in manifest.files
    ]


def push_result_from_json(document: object, what: str) -> PushResult:
    """A PushResult from the publish answer (digest and chain digest with or without prefix)."""
    try:
        digest = ContentAddress.parse(field(document, "digest", str, what))
    except ArtifactStoreError as exc:
        raise IntegrityError(f"the server's answer to {what} has a bad digest: {exc}") from exc
    return PushResult(
        name=field(document, "name", str, what),
        version=field(document, "version", str, what),
        digest=digest,
        created=field(document, "created", bool, what),
        sequence=field(document, "sequence", int, what),
        chain_digest=field(document, "chain_digest", str, what).removeprefix("blake3:"),
        files=field(document, "files", int, what),
        bytes=field(document, "bytes", int, what),
    )


def event_from_json(document: object) -> Event:
    """An Event from one line of /v1/events, its payload encoded again as canonical CBOR."""
    what = "GET /v1/events"
    try:
        payload = cbor.encode(field(document, "payload", object, what))
    except ArtifactStoreError as exc:
        raise IntegrityError(f"the server sent an event payload outside CBOR: {exc}") from exc
    return Event(
        sequence=field(document, "sequence", int, what),
        event_id=field(document, "event_id", str, what),
        event_type=field(document, "event_type", str, what),
        occurred_at=field(document, "occurred_at", str, what),
        actor=field(document, "actor", str, what),
        package_id=_optional_text(document, "package_id", what),
        payload=payload,
        chain_digest=field(document, "chain_digest", str, what),
    )


def check_chain(previous: Event | None, event: Event) -> None:
    """IntegrityError unless event's chain digest follows from the event just before it.

    Events after a gap (one the token may not see) cannot be checked this way and pass.
    """
    if previous is None or event.sequence != previous.sequence + 1:
        return
    if digest_event(previous.chain_digest, event.sequence, event) != event.chain_digest:
        raise IntegrityError(
            f"event {event.sequence} from the server does not chain to event "
            f"{previous.sequence}: its chain digest is not BLAKE3(previous || event)"
        )
