"""Canonical CBOR, the one low-level codec: manifests, event payloads and view dumps use it.

The subset is JSON-like: null, booleans, integers in the 64-bit CBOR range, text, bytes,
arrays and maps with text keys. Its encoding is RFC 8949 §4.2.1 core deterministic CBOR:
definite lengths, shortest heads, map keys in the bytewise order of their encodings. For text
keys that order is cbor2's canonical (length-first) order, so `encode` is cbor2's C encoder
after a check that the value is inside the subset (cbor2 would also encode floats, sets,
big integers as tags, and non-text keys).

Decoding has two doors. `decode_strict` is a parse boundary: it accepts exactly one canonical
item of the subset and nothing else, with precise errors, so `encode(decode_strict(b)) == b`
for every accepted `b`. `decode_trusted` and `Reader` use cbor2's C decoder for bytes this
store wrote and whose digest it checked; malformed bytes still raise ManifestError.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO, cast

import cbor2

from artifactstore.errors import ManifestError

_MAX_UINT64 = 2**64 - 1
_MAX_DEPTH = 100
"""Deepest nesting either side follows; manifests and events need a handful of levels."""

_MAP, _ARRAY = 5, 4
_UNPACK = {
    1: struct.Struct(">B"),
    2: struct.Struct(">H"),
    4: struct.Struct(">I"),
    8: struct.Struct(">Q"),
}
_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}


class Array:
    """An array of known length whose items are made one at a time as the encoder reaches
    them (from database rows, say); it can be encoded once.

    A 100,000-file manifest as a list of maps is ~65 MiB of objects (measured with tracemalloc);
    the encoder needs one at a time.

    presorted says that each item is a map made with its keys, at every level, in canonical
    order, holding only text, integers, booleans, null and bytes (a manifest's file entries and
    receipts, `manifest.model`): it is then written as it stands, without a check of each value
    or a sort of each map's keys. 10,000 file entries took 73-98 ms encoded canonically, 17 ms
    so; the bytes are the same (a property test holds both to it).
    """

    __slots__ = ("_items", "_length", "presorted")

    def __init__(self, length: int, items: Iterable[object], *, presorted: bool = False) -> None:
        self._length = length
        self._items = items
        self.presorted = presorted

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[object]:
        count = 0
        for item in self._items:
            count += 1
            yield item
        if count != self._length:
            raise ManifestError(f"an array announced {self._length} items but had {count}")


class Chunks:
    """A byte string of known length given in pieces (a payload read back from a file), for
    `encode_map_chunks`, which passes the pieces through; it can be encoded once."""

    __slots__ = ("_length", "_pieces")

    def __init__(self, length: int, pieces: Iterable[bytes]) -> None:
        self._length = length
        self._pieces = pieces

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        count = 0
        for piece in self._pieces:
            count += len(piece)
            yield piece
        if count != self._length:
            raise ManifestError(f"a byte string announced {self._length} bytes but had {count}")


_SCALARS = frozenset((str, bytes, bool, type(None), Array))
_BASES = (str, int, dict, list, tuple)


def _check(value: object, depth: int = 0) -> None:
    """Raise ManifestError unless value is inside the subset (an Array's items are checked
    as they are encoded)."""
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is int:
        if not -_MAX_UINT64 - 1 <= value <= _MAX_UINT64:  # type: ignore[operator]
            raise ManifestError(f"integer {value} is outside the 64-bit CBOR range")
        return
    if depth >= _MAX_DEPTH:
        raise ManifestError("value is nested too deeply (or contains itself)")
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if not isinstance(key, str):
                raise ManifestError(f"map key {key!r} of type {type(key).__name__} is not text")
            _check(item, depth + 1)
    elif kind is list or kind is tuple:
        for item in value:  # type: ignore[attr-defined]
            _check(item, depth + 1)
    elif isinstance(value, _BASES):
        # A subclass (an enum, SQLAlchemy's quoted names) is checked as its base type.
        base = next(b for b in _BASES if isinstance(value, b))
        _check(base(cast(Any, value)), depth)
    else:
        raise ManifestError(
            f"cannot encode a value of type {kind.__name__} ({value!r:.60}) as canonical CBOR; "
            "use null, bool, int, str, bytes, list, tuple or dict with str keys"
        )


def _encode_array(encoder: cbor2.CBOREncoder, value: object) -> None:
    if not isinstance(value, Array):
        raise ManifestError(f"cannot encode a value of type {type(value).__name__}")
    encoder.encode_length(_ARRAY, len(value))
    if value.presorted:
        for item in value:
            encoder.write(cbor2.dumps(item))
        return
    for item in value:
        _check(item)
        encoder.encode(item)


def encode(value: object) -> bytes:
    """The canonical CBOR of value; ManifestError names what is outside the subset."""
    _check(value)
    try:
        return cbor2.dumps(value, canonical=True, default=_encode_array)
    except ManifestError:
        raise
    except (UnicodeEncodeError, cbor2.CBOREncodeError) as exc:
        # Text that is not UTF-8 (a lone surrogate) is only found as cbor2 writes it.
        raise ManifestError(f"cannot encode as canonical CBOR: {exc}") from exc


def encode_to(value: object, out: BinaryIO) -> None:
    """Write the canonical CBOR of value to a binary file, as `encode` would return it.

    The encoder writes as it goes, so a value with a long `Array` (a manifest streamed from
    rows) is never whole in memory.
    """
    _check(value)
    try:
        cbor2.dump(value, out, canonical=True, default=_encode_array)
    except ManifestError:
        raise
    except (UnicodeEncodeError, cbor2.CBOREncodeError) as exc:
        raise ManifestError(f"cannot encode as canonical CBOR: {exc}") from exc


def encode_map_chunks(mapping: Mapping[str, object]) -> Iterator[bytes]:
    """The canonical CBOR of a map, in pieces; a bytes value comes through as itself (no copy),
    a `Chunks` value as its pieces.

    b"".join() of the pieces is encode(mapping); hashing them one by one digests a map that
    holds a large payload without building a second copy of it.
    """
    keys = sorted((encode(key), key) for key in mapping)
    yield _head(_MAP, len(keys))
    for encoded_key, key in keys:
        yield encoded_key
        value = mapping[key]
        if isinstance(value, bytes):
            yield _head(2, len(value))
            yield value
        elif isinstance(value, Chunks):
            yield _head(2, len(value))
            yield from value
        else:
            yield encode(value)


def _head(major: int, argument: int) -> bytes:
    if argument < 24:
        return bytes(((major << 5) | argument,))
    for info, size in _ARGUMENT_BYTES.items():
        if argument < 1 << (8 * size):
            return bytes(((major << 5) | info,)) + argument.to_bytes(size, "big")
    raise ManifestError(f"length {argument} is outside the 64-bit CBOR range")


# -- the strict decoder ----------------------------------------------------------------------


def decode_strict(data: bytes) -> object:
    """Decode exactly one canonical CBOR item of the subset; anything else is ManifestError."""
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


def _truncated(pos: int) -> ManifestError:
    return ManifestError(f"CBOR data is truncated at byte {pos}")


def _argument(data: bytes, pos: int, info: int) -> tuple[int, int]:
    """Read the argument of a head whose additional info is `info`; pos is just past it."""
    if info < 24:
        return info, pos
    size = _ARGUMENT_BYTES.get(info)
    if size is None:
        if info == 31:
            raise ManifestError(f"indefinite length at byte {pos - 1} is not canonical")
        raise ManifestError(f"reserved additional information {info} at byte {pos - 1}")
    if pos + size > len(data):
        raise _truncated(pos)
    arg: int = _UNPACK[size].unpack_from(data, pos)[0]
    smallest = 24 if size == 1 else 1 << (4 * size)
    if arg < smallest:
        raise ManifestError(f"argument {arg} at byte {pos - 1} is not in its shortest form")
    return arg, pos + size


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
    if major == _ARRAY:
        if arg > len(data) - start:
            raise _truncated(len(data))
        items: list[object] = []
        for _ in range(arg):
            item, start = _decode(data, start, depth + 1)
            items.append(item)
        return items, start
    return _decode_map(data, start, arg, depth)


def _decode_map(data: bytes, start: int, length: int, depth: int) -> tuple[object, int]:
    if length > (len(data) - start) // 2:
        raise _truncated(len(data))
    result: dict[str, object] = {}
    previous = b""
    for _ in range(length):
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
        result[str(key)], start = _decode(data, end, depth + 1)
    return result, start


# -- trusted decoding ------------------------------------------------------------------------


def decode_trusted(data: bytes) -> Any:
    """Decode CBOR this store wrote and checked, with cbor2's C decoder; else ManifestError."""
    try:
        return cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several unrelated types on corrupt input
        raise ManifestError(f"cannot decode CBOR: {exc}") from exc


class Reader:
    """Trusted decoding of one CBOR item in pieces: container heads, then items one at a time.

    Lets a reader walk a large map or array without decoding all of it; data is bytes or a
    binary file read from where it stands. Malformed input
    raises ManifestError or one of cbor2's errors; callers turn the latter into ManifestError.
    """

    def __init__(self, data: bytes | BinaryIO) -> None:
        self._stream = io.BytesIO(data) if isinstance(data, bytes) else data
        self._decoder = cbor2.CBORDecoder(self._stream)

    def map_length(self) -> int:
        """Read the head of a definite-length map; return its number of entries."""
        return self._length(_MAP)

    def array_length(self) -> int:
        """Read the head of a definite-length array; return its number of items."""
        return self._length(_ARRAY)

    def item(self) -> Any:
        """Decode the next whole item."""
        return self._decoder.decode()

    def _length(self, major: int) -> int:
        initial = self._stream.read(1)
        if not initial or initial[0] >> 5 != major:
            raise ManifestError(
                f"expected CBOR major type {major} at byte {self._stream.tell() - 1}"
            )
        info = initial[0] & 0x1F
        if info < 24:
            return info
        size = _ARGUMENT_BYTES.get(info)
        if size is None:
            raise ManifestError(f"unsupported CBOR length encoding {info}")
        return int.from_bytes(self._stream.read(size), "big")
