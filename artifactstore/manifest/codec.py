"""Canonical CBOR: the byte form of manifests and event payloads, and its strict decoder.

The encoding is RFC 8949 §4.2.1 core deterministic CBOR over a JSON-like subset: null, booleans,
integers in the 64-bit CBOR range, text, bytes, arrays and maps with text keys; definite lengths,
shortest heads, and map keys sorted by the bytewise order of their encodings. Decoding accepts
exactly one such item and nothing else, so `encode_value(decode_value(b)) == b` for every
accepted `b`, and a manifest's digest (BLAKE3 over its bytes) is a function of its content.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any, TypeVar, cast

from artifactstore.errors import InvalidInputError, ManifestError
from artifactstore.identity import ContentAddress, Digest, digest_bytes
from artifactstore.manifest.model import (
    MANIFEST_VERSION,
    FileEntry,
    Manifest,
    PackageInfo,
    Provenance,
    ReceiptEntry,
    RetentionSummary,
    validate_metadata,
)

_MAX_UINT64 = 2**64 - 1
_MAX_DEPTH = 100
"""Deepest nesting the decoder follows; manifests and events need a handful of levels."""

_KEY_CACHE: dict[str, bytes] = {}
_ORDER_CACHE: dict[tuple[str, ...], tuple[tuple[bytes, str], ...]] = {}
_CACHE_LIMIT = 4096
"""Entries per memo: encoded keys, and key orders of maps (the same field names on every event)."""
_ORDER_CACHE_MAX_KEYS = 32

_SMALL_HEADS = [[bytes(((major << 5) | n,)) for n in range(24)] for major in range(8)]
_PACK_B = struct.Struct(">BB").pack
_PACK_H = struct.Struct(">BH").pack
_PACK_I = struct.Struct(">BI").pack
_PACK_Q = struct.Struct(">BQ").pack
_UNPACK_H = struct.Struct(">H").unpack_from
_UNPACK_I = struct.Struct(">I").unpack_from
_UNPACK_Q = struct.Struct(">Q").unpack_from

_FALSE, _TRUE, _NULL = b"\xf4", b"\xf5", b"\xf6"


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return _SMALL_HEADS[major][n]
    mt = major << 5
    if n < 0x100:
        return _PACK_B(mt | 24, n)
    if n < 0x10000:
        return _PACK_H(mt | 25, n)
    if n < 0x100000000:
        return _PACK_I(mt | 26, n)
    return _PACK_Q(mt | 27, n)


def _text(value: str) -> bytes:
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ManifestError(f"text {value!r} is not valid UTF-8: {exc}") from exc
    return _head(3, len(encoded)) + encoded


def _key(key: object) -> bytes:
    encoded = _KEY_CACHE.get(key) if isinstance(key, str) else None
    if encoded is None:
        if not isinstance(key, str):
            raise ManifestError(f"map key {key!r} of type {type(key).__name__} is not text")
        encoded = _text(key)
        if len(_KEY_CACHE) < _CACHE_LIMIT:
            _KEY_CACHE[key] = encoded
    return encoded


def _key_order(mapping: dict[Any, object]) -> tuple[tuple[bytes, str], ...]:
    """The map's (encoded key, key) pairs in canonical order; memoized per key sequence."""
    keys = tuple(mapping)
    order = _ORDER_CACHE.get(keys)
    if order is None:
        # RFC 8949 §4.2.1: bytewise order of the encoded keys (not RFC 7049's length-first).
        order = tuple(sorted([(_key(k), k) for k in keys], key=itemgetter(0)))
        if len(keys) <= _ORDER_CACHE_MAX_KEYS and len(_ORDER_CACHE) < _CACHE_LIMIT:
            _ORDER_CACHE[keys] = order
    return order


def _encode(value: object, out: bytearray) -> None:
    if isinstance(value, str):
        out += _text(value)
    elif isinstance(value, bool):  # before int: bool is an int subclass
        out += _TRUE if value else _FALSE
    elif isinstance(value, int):
        if 0 <= value <= _MAX_UINT64:
            out += _head(0, value)
        elif -_MAX_UINT64 - 1 <= value < 0:
            out += _head(1, -1 - value)
        else:
            raise ManifestError(f"integer {value} is outside the 64-bit CBOR range")
    elif isinstance(value, dict):
        out += _head(5, len(value))
        for encoded_key, key in _key_order(value):
            out += encoded_key
            _encode(value[key], out)
    elif isinstance(value, list | tuple | LazyArray):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out)
    elif value is None:
        out += _NULL
    elif isinstance(value, bytes):
        out += _head(2, len(value))
        out += value
    else:
        raise ManifestError(
            f"cannot encode a value of type {type(value).__name__} ({value!r:.60}) as canonical "
            "CBOR; use null, bool, int, str, bytes, list, tuple or dict with str keys"
        )


def encode_value(value: object) -> bytes:
    """Encode value as canonical CBOR (RFC 8949 §4.2.1); ManifestError names an unsupported type."""
    # One growing buffer, not a list of pieces: a 10,000-file manifest is ~200,000 pieces.
    out = bytearray()
    try:
        _encode(value, out)
    except RecursionError as exc:
        raise ManifestError("value is nested too deeply (or contains itself)") from exc
    return bytes(out)


def encode_map_chunks(mapping: dict[str, object]) -> Iterator[bytes]:
    """The canonical CBOR of a map, in pieces; a bytes value comes through as itself (no copy).

    b"".join() of the pieces is encode_value(mapping); hashing them one by one digests a map
    holding a large payload without building a second copy of it.
    """
    yield _head(5, len(mapping))
    for encoded_key, key in _key_order(mapping):
        yield encoded_key
        value = mapping[key]
        if isinstance(value, bytes):
            yield _head(2, len(value))
            yield value
        else:
            yield encode_value(value)


def _truncated(pos: int) -> ManifestError:
    return ManifestError(f"CBOR data is truncated at byte {pos}")


def _argument(data: bytes, pos: int, info: int) -> tuple[int, int]:
    """Read the argument of a head whose additional info is `info`; pos is just past it."""
    if info < 24:
        return info, pos
    if info == 24:
        if pos + 1 > len(data):
            raise _truncated(pos)
        arg, end, smallest = data[pos], pos + 1, 24
    elif info == 25:
        if pos + 2 > len(data):
            raise _truncated(pos)
        arg, end, smallest = _UNPACK_H(data, pos)[0], pos + 2, 0x100
    elif info == 26:
        if pos + 4 > len(data):
            raise _truncated(pos)
        arg, end, smallest = _UNPACK_I(data, pos)[0], pos + 4, 0x10000
    elif info == 27:
        if pos + 8 > len(data):
            raise _truncated(pos)
        arg, end, smallest = _UNPACK_Q(data, pos)[0], pos + 8, 0x100000000
    elif info == 31:
        raise ManifestError(f"indefinite length at byte {pos - 1} is not canonical")
    else:
        raise ManifestError(f"reserved additional information {info} at byte {pos - 1}")
    if arg < smallest:
        raise ManifestError(f"argument {arg} at byte {pos - 1} is not in its shortest form")
    return arg, end


def _decode(data: bytes, pos: int, depth: int) -> tuple[object, int]:
    if pos >= len(data):
        raise _truncated(pos)
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    if major == 7:
        if initial == 0xF4:
            return False, pos + 1
        if initial == 0xF5:
            return True, pos + 1
        if initial == 0xF6:
            return None, pos + 1
        if 0xF9 <= initial <= 0xFB:
            raise ManifestError(f"floating-point value at byte {pos} is not allowed")
        raise ManifestError(f"simple value or break 0x{initial:02x} at byte {pos} is not allowed")
    if major == 6:
        raise ManifestError(f"tag at byte {pos} is not allowed")
    arg, start = _argument(data, pos + 1, info)
    if major == 0:
        return arg, start
    if major == 1:
        return -1 - arg, start
    if major in (2, 3):
        # Check the claimed length against what is there before slicing anything.
        if arg > len(data) - start:
            raise _truncated(len(data))
        end = start + arg
        if major == 2:
            return data[start:end], end
        try:
            return data[start:end].decode("utf-8"), end
        except UnicodeDecodeError as exc:
            raise ManifestError(f"text at byte {pos} is not valid UTF-8: {exc}") from exc
    if depth >= _MAX_DEPTH:
        raise ManifestError(f"CBOR data is nested deeper than {_MAX_DEPTH} levels")
    if major == 4:
        if arg > len(data) - start:
            raise _truncated(len(data))
        items: list[object] = []
        for _ in range(arg):
            item, start = _decode(data, start, depth + 1)
            items.append(item)
        return items, start
    if arg > (len(data) - start) // 2:
        raise _truncated(len(data))
    result: dict[str, object] = {}
    previous = b""
    for _ in range(arg):
        if start < len(data) and data[start] >> 5 != 3:
            raise ManifestError(f"map key at byte {start} is not text")
        key, end = _decode(data, start, depth + 1)
        encoded_key = data[start:end]
        if encoded_key <= previous:
            raise ManifestError(
                f"map key {key!r} at byte {start} is "
                + ("a duplicate" if encoded_key == previous else "out of canonical order")
            )
        previous = encoded_key
        result[cast(str, key)], start = _decode(data, end, depth + 1)
    return result, start


def decode_value(data: bytes) -> object:
    """Decode exactly one canonical CBOR item of the encode_value subset; else ManifestError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ManifestError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        value, end = _decode(data, 0, 0)
    except (RecursionError, MemoryError) as exc:
        # Lengths are checked against the input and depth is capped, so only a caller already
        # deep in its own stack, or short of memory, gets here.
        raise ManifestError(f"CBOR data could not be decoded: {exc!r}") from exc
    if end != len(data):
        raise ManifestError(f"{len(data) - end} trailing bytes after the CBOR item")
    return value


def _fields(value: object, what: str, required: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ManifestError(f"{what} must be a map, got {type(value).__name__}")
    missing = [key for key in required if key not in value]
    if missing:
        raise ManifestError(f"{what} is missing {', '.join(map(repr, missing))}")
    unknown = sorted(key for key in value if key not in required)
    if unknown:
        raise ManifestError(f"{what} has unknown keys {', '.join(map(repr, unknown))}")
    return value


_T = TypeVar("_T")


def _typed(value: object, kind: type[_T], what: str) -> _T:
    if type(value) is not kind:
        raise ManifestError(f"{what} must be {kind.__name__}, got {value!r:.60}")
    return value


def _list(value: object, what: str) -> list[object]:
    return cast(list[object], _typed(value, list, what))


def _file(value: object) -> FileEntry:
    fields = _fields(
        value, "file entry", ("path", "size", "content_address", "digests", "executable")
    )
    path = _typed(fields["path"], str, "file path")
    digests = _fields(fields["digests"], f"digests of {path!r}", ("blake3", "sha256"))
    blake3 = Digest("blake3", _typed(digests["blake3"], str, f"blake3 digest of {path!r}"))
    sha256 = Digest("sha256", _typed(digests["sha256"], str, f"sha256 digest of {path!r}"))
    address = _typed(fields["content_address"], str, f"content_address of {path!r}")
    if address != str(blake3):
        raise ManifestError(
            f"content_address {address!r} of {path!r} is not 'blake3:' + its blake3 digest"
        )
    return FileEntry(
        path=path,
        size=_typed(fields["size"], int, f"size of {path!r}"),
        blake3=blake3,
        sha256=sha256,
        executable=_typed(fields["executable"], bool, f"executable of {path!r}"),
    )


def _receipt(value: object) -> ReceiptEntry:
    fields = _fields(value, "storage receipt", ("content_address", "backend_id", "stored_at"))
    return ReceiptEntry(
        content_address=ContentAddress.parse(
            _typed(fields["content_address"], str, "receipt content_address")
        ),
        backend_id=_typed(fields["backend_id"], str, "receipt backend_id"),
        stored_at=_typed(fields["stored_at"], str, "receipt stored_at"),
    )


def _metadata(value: object, what: str) -> dict[str, object]:
    return cast(dict[str, object], _typed(value, dict, what))


def _build(value: object) -> Manifest:
    if not isinstance(value, dict):
        raise ManifestError(f"manifest must be a map, got {type(value).__name__}")
    version = value.get("manifest_version")
    if type(version) is not int or version != MANIFEST_VERSION:
        raise ManifestError(
            f"manifest_version {version!r} is not supported; expected {MANIFEST_VERSION}"
        )
    top = _fields(
        value,
        "manifest",
        (
            "manifest_version",
            "package",
            "files",
            "storage_receipts",
            "retention_summary",
            "provenance",
        ),
    )
    package = _fields(
        top["package"],
        "package",
        ("id", "name", "version", "created_at", "finalized_at", "metadata"),
    )
    retention = _fields(top["retention_summary"], "retention_summary", ("class", "expires_at"))
    expires_at = retention["expires_at"]
    provenance = dict(_metadata(top["provenance"], "provenance"))
    producer = _typed(provenance.pop("producer", None), str, "provenance producer")
    return Manifest(
        package=PackageInfo(
            id=_typed(package["id"], str, "package id"),
            name=_typed(package["name"], str, "package name"),
            version=_typed(package["version"], str, "package version"),
            created_at=_typed(package["created_at"], str, "package created_at"),
            finalized_at=_typed(package["finalized_at"], str, "package finalized_at"),
            metadata=validate_metadata(_metadata(package["metadata"], "package metadata")),
        ),
        files=tuple(_file(entry) for entry in _list(top["files"], "files")),
        storage_receipts=tuple(
            _receipt(entry) for entry in _list(top["storage_receipts"], "storage_receipts")
        ),
        retention=RetentionSummary(
            retention_class=_typed(retention["class"], str, "retention class"),
            expires_at=None if expires_at is None else _typed(expires_at, str, "expires_at"),
        ),
        provenance=Provenance(producer=producer, fields=validate_metadata(provenance)),
    )


def manifest_from_value(value: object) -> Manifest:
    """Build a Manifest from its decoded map (CBOR or JSON); ManifestError says what is wrong."""
    try:
        return _build(value)
    except ManifestError:
        raise
    except InvalidInputError as exc:
        raise ManifestError(f"invalid manifest: {exc}") from exc


class LazyArray:
    """An array of known length whose elements are made one at a time as the encoder reaches
    them, from a sequence or straight from database rows; it can be encoded once.

    A 10,000-file manifest as a list of maps is ~8 MiB of dicts; encode needs only one at once.
    """

    __slots__ = ("_items", "_length")

    def __init__(self, length: int, items: Iterable[object]) -> None:
        self._length = length
        self._items = items

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[object]:
        count = 0
        for item in self._items:
            count += 1
            yield item
        if count != self._length:
            raise ManifestError(f"an array announced {self._length} items but had {count}")


def file_value(f: FileEntry) -> dict[str, object]:
    """One entry of the manifest's files array, as a plain map."""
    return {
        "path": f.path,
        "size": f.size,
        "content_address": str(f.content_address),
        "digests": {"blake3": f.blake3.hex, "sha256": f.sha256.hex},
        "executable": f.executable,
    }


def receipt_value(r: ReceiptEntry) -> dict[str, object]:
    """One entry of the manifest's storage_receipts array, as a plain map."""
    return {
        "content_address": str(r.content_address),
        "backend_id": r.backend_id,
        "stored_at": r.stored_at,
    }


def manifest_to_value(m: Manifest) -> dict[str, object]:
    """The manifest as the plain map that both the CBOR and the JCS encodings serialize."""
    value = _manifest_map(m)
    value["files"] = [file_value(f) for f in m.files]
    value["storage_receipts"] = [receipt_value(r) for r in m.storage_receipts]
    return value


def _manifest_map(m: Manifest) -> dict[str, object]:
    """The manifest's map with its two long arrays built lazily (for the CBOR encoder)."""
    return manifest_map(
        m.package,
        LazyArray(len(m.files), map(file_value, m.files)),
        LazyArray(len(m.storage_receipts), map(receipt_value, m.storage_receipts)),
        m.retention,
        m.provenance,
    )


def manifest_map(
    package: PackageInfo,
    files: LazyArray,
    storage_receipts: LazyArray,
    retention: RetentionSummary,
    provenance: Provenance,
) -> dict[str, object]:
    """The v1 manifest map around two arrays of file and receipt maps (`file_value`,
    `receipt_value`), which the caller gives in manifest order; `encode_value` encodes it.

    The one layout of a manifest: `encode` uses it for a Manifest, the store for a manifest
    streamed from database rows.
    """
    return {
        "manifest_version": MANIFEST_VERSION,
        "package": {
            "id": package.id,
            "name": package.name,
            "version": package.version,
            "created_at": package.created_at,
            "finalized_at": package.finalized_at,
            "metadata": dict(package.metadata),
        },
        "files": files,
        "storage_receipts": storage_receipts,
        "retention_summary": {
            "class": retention.retention_class,
            "expires_at": retention.expires_at,
        },
        "provenance": {**dict(provenance.fields), "producer": provenance.producer},
    }


def encode(m: Manifest) -> bytes:
    """The canonical CBOR bytes of a manifest."""
    return encode_value(_manifest_map(m))


def decode(data: bytes) -> Manifest:
    """Parse canonical CBOR manifest bytes strictly; anything else raises ManifestError."""
    return manifest_from_value(decode_value(data))


def manifest_digest_of_bytes(data: bytes) -> ContentAddress:
    """The content address (BLAKE3) of already-encoded manifest bytes."""
    digest = digest_bytes(data)
    return ContentAddress(digest.algorithm, digest.hex)


def manifest_digest(m: Manifest) -> ContentAddress:
    """The manifest's identity: BLAKE3 over its canonical CBOR bytes."""
    return manifest_digest_of_bytes(encode(m))
