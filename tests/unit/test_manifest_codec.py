"""Canonical CBOR: RFC 8949 vectors, manifest round trips, golden bytes, and a strict decoder."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import blake3
import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifactstore import cbor
from artifactstore.errors import InvalidNameError, InvalidPathError, ManifestError
from artifactstore.identity import ContentAddress, Digest
from artifactstore.manifest import (
    FileEntry,
    Manifest,
    PackageInfo,
    Provenance,
    ReceiptEntry,
    RetentionSummary,
    decode,
    encode,
    format_timestamp,
    from_jcs,
    jcs,
    manifest_digest,
    manifest_digest_of_bytes,
    manifest_to_value,
    parse_timestamp,
    reader,
    validate_metadata,
)

DATA = Path(__file__).parent.parent / "data"

# --- RFC 8949 Appendix A, the vectors inside our subset (no floats, tags, bignums, int keys).

APPENDIX_A: list[tuple[object, str]] = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    (
        {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
        "a56161614161626142616361436164614461656145",
    ),
]


@pytest.mark.parametrize(("value", "hex_bytes"), APPENDIX_A)
def test_encode_matches_rfc8949_appendix_a(value: object, hex_bytes: str) -> None:
    assert cbor.encode(value).hex() == hex_bytes


@pytest.mark.parametrize(("value", "hex_bytes"), APPENDIX_A)
def test_decode_strict_matches_rfc8949_appendix_a(value: object, hex_bytes: str) -> None:
    decoded = cbor.decode_strict(bytes.fromhex(hex_bytes))
    assert decoded == value
    assert type(decoded) is type(value)


def test_tuples_encode_as_arrays() -> None:
    assert cbor.encode((1, (2, 3))) == cbor.encode([1, [2, 3]])


def test_map_keys_follow_rfc8949_bytewise_order() -> None:
    # §4.2.1 compares encoded bytes, so the length in the head sorts "z" before "aa", and a
    # 24-byte key (head 78 18) after a 23-byte one (head 77), whatever their letters.
    keys = ["aa", "z", "b" * 24, "c" * 23, "\u00e9", "\U0001f600", "\ufb01", "a" * 256]
    encoded = cbor.encode(dict.fromkeys(keys, 0))
    expected = ["z", "aa", "\u00e9", "\ufb01", "\U0001f600", "c" * 23, "b" * 24, "a" * 256]
    assert list(cbor2.loads(encoded)) == expected
    assert expected != sorted(keys)
    assert encoded == b"".join(
        [bytes([0xA0 + len(keys)])] + [cbor.encode(k) + b"\x00" for k in expected]
    )
    assert cbor.decode_strict(encoded) == dict.fromkeys(keys, 0)


@given(
    st.dictionaries(st.text(max_size=30), st.integers(-(2**64), 2**64 - 1), max_size=8),
    st.randoms(),
)
def test_map_bytes_do_not_depend_on_insertion_order(
    mapping: dict[str, int], rng: random.Random
) -> None:
    items = list(mapping.items())
    rng.shuffle(items)
    assert cbor.encode(dict(items)) == cbor.encode(mapping)


@given(
    st.dictionaries(
        st.text(max_size=12),
        st.one_of(st.binary(max_size=40), st.text(max_size=20), st.integers(0, 2**40), st.none()),
        max_size=8,
    )
)
def test_map_chunks_join_to_the_canonical_encoding(mapping: dict[str, object]) -> None:
    assert b"".join(cbor.encode_map_chunks(mapping)) == cbor.encode(mapping)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (1.5, "float"),
        ({1, 2}, "set"),
        (frozenset(), "frozenset"),
        (bytearray(b"x"), "bytearray"),
        (object(), "object"),
        ({1: "a"}, "int"),
        ({b"k": "a"}, "bytes"),
        ([{"a": 0.0}], "float"),
    ],
)
def test_encode_rejects_other_types_by_name(value: object, named: str) -> None:
    with pytest.raises(ManifestError, match=named):
        cbor.encode(value)


@pytest.mark.parametrize("value", [2**64, -(2**64) - 1, "\ud800", {"\udfff": 1}])
def test_encode_rejects_out_of_range(value: object) -> None:
    with pytest.raises(ManifestError):
        cbor.encode(value)


def test_encode_rejects_cycles() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ManifestError, match="nested too deeply"):
        cbor.encode(loop)


def test_a_streamed_array_encodes_like_a_list_and_checks_its_items_and_length() -> None:
    items = [{"b": 1, "a": [True, None]}, {"c": b"x"}]
    assert cbor.encode({"k": cbor.Array(2, iter(items))}) == cbor.encode({"k": items})
    presorted = [{"a": [True, None], "b": 1}, {"c": b"x"}]
    assert cbor.encode({"k": cbor.Array(2, iter(presorted), presorted=True)}) == cbor.encode(
        {"k": items}
    )
    with pytest.raises(ManifestError, match="announced 3 items but had 2"):
        cbor.encode(cbor.Array(3, iter(items)))
    with pytest.raises(ManifestError, match="float"):
        cbor.encode(cbor.Array(1, iter([{"a": 0.5}])))


def test_subclasses_of_text_and_int_encode_as_their_base_type() -> None:
    class Kind(enum.StrEnum):
        A = "a"

    class Size(enum.IntEnum):
        ONE = 1

    assert cbor.encode({Kind.A: [Kind.A, Size.ONE]}) == cbor.encode({"a": ["a", 1]})


# --- Malformed CBOR: each must raise ManifestError, nothing else.

MALFORMED_CBOR = {
    "empty": "",
    "truncated int": "19 01",
    "truncated text": "63 61 62",
    "truncated array": "83 01 02",
    "truncated map": "a1 61 61",
    "non-shortest int 1 byte": "18 17",
    "non-shortest int 2 bytes": "19 00 ff",
    "non-shortest int 4 bytes": "1a 00 00 ff ff",
    "non-shortest int 8 bytes": "1b 00 00 00 00 ff ff ff ff",
    "non-shortest negative": "38 00",
    "non-shortest length": "78 01 61",
    "reserved info": "1c",
    "indefinite bytes": "5f 42 01 02 43 03 04 05 ff",
    "indefinite text": "7f 65 73 74 72 65 61 64 6d 69 6e 67 ff",
    "indefinite array": "9f ff",
    "indefinite array nested": "9f 01 82 02 03 9f 04 05 ff ff",
    "indefinite map": "bf 61 61 01 61 62 9f 02 03 ff ff",
    "unsorted keys": "a2 61 62 01 61 61 02",
    "length-first keys": "a2 62 61 61 01 61 7a 02",
    "duplicate key": "a2 61 61 01 61 61 02",
    "int key": "a1 01 02",
    "bytes key": "a1 41 61 02",
    "array key": "a1 80 02",
    "half float": "f9 00 00",
    "single float": "fa 47 c3 50 00",
    "double float": "fb 3f f1 99 99 99 99 99 9a",
    "tag datetime": "c0 74 32 30 31 33 2d 30 33 2d 32 31 54 32 30 3a 30 34 3a 30 30 5a",
    "tag epoch": "c1 1a 51 4b 67 b0",
    "tag bignum": "c2 41 01",
    "undefined": "f7",
    "simple 16": "f0",
    "simple 255": "f8 ff",
    "break": "ff",
    "invalid utf-8": "62 c3 28",
    "surrogate utf-8": "63 ed a0 80",
    "trailing bytes": "01 01",
    "huge bytes length": "5b 80 00 00 00 00 00 00 00",
    "huge text length": "7b 7f ff ff ff ff ff ff ff 61",
    "huge array length": "9b 80 00 00 00 00 00 00 00",
    "huge map length": "bb ff ff ff ff ff ff ff ff",
    "deep nesting": "81" * 5000 + "00",
}


@pytest.mark.parametrize("hex_bytes", MALFORMED_CBOR.values(), ids=MALFORMED_CBOR.keys())
def test_decode_strict_rejects_malformed(hex_bytes: str) -> None:
    data = bytes.fromhex(hex_bytes)
    with pytest.raises(ManifestError):
        cbor.decode_strict(data)
    with pytest.raises(ManifestError):
        decode(data)


# --- Manifests

B3 = blake3.blake3(b"hello\n").hexdigest()
S2 = hashlib.sha256(b"hello\n").hexdigest()
B3_EMPTY = blake3.blake3(b"").hexdigest()
S2_EMPTY = hashlib.sha256(b"").hexdigest()


def golden_manifest() -> Manifest:
    """A small fixed manifest whose bytes are pinned in tests/data."""
    return Manifest.build(
        package=PackageInfo(
            id="01JDZQ6V0000000000000000AB",
            name="acme/app",
            version="1.4.2",
            created_at="2026-11-29T16:17:26.123456Z",
            finalized_at="2026-11-29T16:17:27.000001Z",
            metadata=validate_metadata(
                {
                    "git_sha": "3f2a9c1",
                    "build": 42,
                    "dirty": False,
                    "tags": ["nightly", "x86_64"],
                    "\ufb01le": "ligature key (after \U0001f600 in UTF-16, before it in UTF-8)",
                    "\U0001f600": "emoji key",
                    "note": 'tab\there "quoted" \\ back\x01slash',
                }
            ),
        ),
        files=[
            FileEntry(
                "docs/r\u00e9sum\u00e9.txt",
                0,
                Digest("blake3", B3_EMPTY),
                Digest("sha256", S2_EMPTY),
                False,
            ),
            FileEntry("bin/app", 6, Digest("blake3", B3), Digest("sha256", S2), True),
        ],
        storage_receipts=[
            ReceiptEntry(ContentAddress("blake3", B3), "local", "2026-11-29T16:17:26.500000Z"),
            ReceiptEntry(
                ContentAddress("blake3", B3_EMPTY), "local", "2026-11-29T16:17:26.400000Z"
            ),
        ],
        retention=RetentionSummary("ci", "2026-12-13T16:17:27.000001Z"),
        provenance=Provenance("artifactstore 0.1.0", validate_metadata({"ci_job": "build#7"})),
    )


def test_golden_manifest_bytes_are_pinned() -> None:
    m = golden_manifest()
    assert encode(m).hex() == (DATA / "golden_manifest.cbor.hex").read_text().strip()
    assert jcs(m) == (DATA / "golden_manifest.jcs.json").read_bytes()
    digest = (DATA / "golden_manifest.digest").read_text().strip()
    assert str(manifest_digest(m)) == digest
    assert digest == f"blake3:{blake3.blake3(encode(m)).hexdigest()}"
    assert decode(encode(m)) == m
    assert from_jcs(jcs(m)) == m


def test_manifest_digest_of_bytes_is_blake3_of_the_bytes() -> None:
    data = encode(golden_manifest())
    assert manifest_digest_of_bytes(data) == ContentAddress(
        "blake3", blake3.blake3(data).hexdigest()
    )


def test_encoding_is_plain_cbor_with_the_v1_layout() -> None:
    value = cbor2.loads(encode(golden_manifest()))
    assert list(value) == [
        "files",
        "package",
        "provenance",
        "manifest_version",
        "storage_receipts",
        "retention_summary",
    ]
    assert value["manifest_version"] == 1
    assert value["files"][0] == {
        "path": "bin/app",
        "size": 6,
        "content_address": f"blake3:{B3}",
        "digests": {"blake3": B3, "sha256": S2},
        "executable": True,
    }
    assert value["package"]["metadata"]["tags"] == ["nightly", "x86_64"]
    assert value["retention_summary"] == {
        "class": "ci",
        "expires_at": "2026-12-13T16:17:27.000001Z",
    }
    assert value["provenance"] == {"producer": "artifactstore 0.1.0", "ci_job": "build#7"}


# --- Hypothesis-generated manifests

_NAME = st.from_regex(
    r"[a-z0-9]{1,4}([._-][a-z0-9]{1,4}){0,2}(/[a-z0-9]{1,4}){0,2}", fullmatch=True
)
_VERSION = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,10}", fullmatch=True)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_TRICKY_KEYS = st.sampled_from(
    ["\ufb01", "\U0001f600", "\uffff", "\U00010000", "a", "\x7f", "\u00e9"]
)
_KEY = st.one_of(_TRICKY_KEYS, _TEXT.filter(bool))
_TIMESTAMP = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(format_timestamp)
_HEX = st.binary(min_size=32, max_size=32).map(bytes.hex)
_SCALAR = st.one_of(_TEXT, st.integers(-(2**53), 2**53), st.booleans())
_METADATA_DICT = st.dictionaries(
    _KEY, st.one_of(_SCALAR, st.lists(_SCALAR, max_size=3)), max_size=5
)
_SEGMENT = st.text(
    st.characters(codec="utf-8", exclude_characters="/\\\x7f" + bytes(range(32)).decode()),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", ".."))
_PATH = st.one_of(
    st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join),
    st.sampled_from(["\ufb01", "\U0001f600", "a/\U0001f600", "a/\ufb01", "a", "a b"]),
)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    """Any valid v1 manifest, with unicode paths and keys that sort differently in UTF-16."""
    paths = draw(st.lists(_PATH, max_size=5, unique=True))
    files = [
        FileEntry(
            path,
            draw(st.integers(0, 2**53)),
            Digest("blake3", draw(_HEX)),
            Digest("sha256", draw(_HEX)),
            draw(st.booleans()),
        )
        for path in paths
    ]
    receipts = draw(
        st.lists(
            st.builds(
                ReceiptEntry,
                st.builds(ContentAddress, st.just("blake3"), _HEX),
                st.sampled_from(["local", "s3", "\u00e9"]),
                _TIMESTAMP,
            ),
            max_size=3,
            unique_by=lambda r: (str(r.content_address), r.backend_id),
        )
    )
    fields = draw(_METADATA_DICT)
    fields.pop("producer", None)
    return Manifest.build(
        package=PackageInfo(
            id=draw(_TEXT),
            name=draw(_NAME),
            version=draw(_VERSION),
            created_at=draw(_TIMESTAMP),
            finalized_at=draw(_TIMESTAMP),
            metadata=validate_metadata(draw(_METADATA_DICT)),
        ),
        files=files,
        storage_receipts=receipts,
        retention=RetentionSummary(draw(_TEXT), draw(st.none() | _TIMESTAMP)),
        provenance=Provenance(draw(_TEXT), validate_metadata(fields)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_the_reader_yields_what_the_strict_decoder_does(m: Manifest) -> None:
    data = encode(m)
    assert tuple(reader.files(data)) == m.files
    assert list(reader.receipts(data)) == [
        (str(r.content_address), r.backend_id) for r in m.storage_receipts
    ]
    parts = reader.small_maps(data)
    assert parts["package"]["finalized_at"] == m.package.finalized_at
    assert "files" not in parts and "storage_receipts" not in parts


@pytest.mark.parametrize("data", [b"", b"\xa0", cbor2.dumps({"files": [{"path": 1}]})])
def test_the_reader_turns_malformed_bytes_into_manifest_errors(data: bytes) -> None:
    with pytest.raises(ManifestError):
        list(reader.files(data))


@given(manifests())
def test_manifest_round_trips_through_cbor_and_jcs(m: Manifest) -> None:
    data = encode(m)
    assert decode(data) == m
    assert encode(decode(data)) == data
    assert encode(from_jcs(jcs(m))) == data
    assert jcs(from_jcs(jcs(m))) == jcs(m)
    assert cbor2.loads(data) == cbor2.loads(cbor2.dumps(manifest_to_value(m)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_presorted_entries_encode_to_the_bytes_a_canonical_sort_gives(m: Manifest) -> None:
    # encode writes file entries and receipts as built (presorted); cbor.encode of plain lists
    # checks and sorts every map. Put a key of file_map or receipt_map out of canonical order
    # and the two differ.
    assert encode(m) == cbor.encode(manifest_to_value(m))
    assert encode(m) == cbor2.dumps(cbor2.loads(encode(m)), canonical=True)


@settings(max_examples=60, deadline=None)
@given(_METADATA_DICT, st.randoms())
def test_manifest_bytes_do_not_depend_on_metadata_order(
    metadata: dict[str, object], rng: random.Random
) -> None:
    items = list(metadata.items())
    rng.shuffle(items)
    m = golden_manifest()
    one = replace(m, package=replace(m.package, metadata=validate_metadata(metadata)))
    other = replace(m, package=replace(m.package, metadata=validate_metadata(dict(items))))
    assert encode(one) == encode(other)


# --- Strict manifest decoding


def _golden_value() -> dict[str, object]:
    value = cbor2.loads(encode(golden_manifest()))
    assert isinstance(value, dict)
    return value


def _mutate(path: str, new: object) -> dict[str, object]:
    """The golden manifest as a plain map with the item at a dotted path replaced (or deleted)."""
    value = _golden_value()
    *parents, last = path.split(".")
    target: object = value
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]  # type: ignore[index]
    if new is _DELETE:
        del target[last]  # type: ignore[attr-defined]
    elif isinstance(target, list):
        target[int(last)] = new
    else:
        target[last] = new  # type: ignore[index]
    return value


_DELETE = object()

BAD_MANIFESTS: dict[str, tuple[str, object]] = {
    "unknown top key": ("extra", 1),
    "unknown file key": ("files.0.mode", 0o755),
    "unknown package key": ("package.owner", "me"),
    "missing files": ("files", _DELETE),
    "missing package id": ("package.id", _DELETE),
    "missing digest": ("files.0.digests.sha256", _DELETE),
    "missing producer": ("provenance.producer", _DELETE),
    "missing expires_at": ("retention_summary.expires_at", _DELETE),
    "version 2": ("manifest_version", 2),
    "version as text": ("manifest_version", "1"),
    "version true": ("manifest_version", True),
    "size as text": ("files.0.size", "6"),
    "size as bool": ("files.0.size", True),
    "negative size": ("files.0.size", -1),
    "size beyond 2^53": ("files.0.size", 2**53 + 1),
    "metadata int beyond 2^53": ("package.metadata.build", 2**53 + 1),
    "metadata int below -2^53": ("package.metadata.build", -(2**53) - 1),
    "metadata nested array": ("package.metadata.tags", [["a"]]),
    "metadata map value": ("package.metadata.tags", {"a": 1}),
    "metadata null value": ("package.metadata.tags", None),
    "metadata bytes value": ("package.metadata.tags", b"x"),
    "metadata empty key": ("package.metadata.", "x"),
    "files not array": ("files", {}),
    "files entry not map": ("files.0", "bin/app"),
    "executable as int": ("files.0.executable", 1),
    "invalid path": ("files.0.path", "../etc/passwd"),
    "absolute path": ("files.0.path", "/bin/app"),
    "unsorted files": ("files.0.path", "zzz"),
    "duplicate files": ("files.1.path", "bin/app"),
    "content address mismatch": ("files.0.content_address", f"blake3:{B3_EMPTY}"),
    "content address uppercase": ("files.0.content_address", f"blake3:{B3.upper()}"),
    "digest uppercase": ("files.0.digests.blake3", B3.upper()),
    "digest short": ("files.0.digests.sha256", S2[:-2]),
    "receipt sha256 address": ("storage_receipts.0.content_address", f"sha256:{S2}"),
    "unsorted receipts": ("storage_receipts.0.content_address", f"blake3:{'f' * 64}"),
    "receipt bad timestamp": ("storage_receipts.0.stored_at", "2026-11-29 16:17:26Z"),
    "retention class int": ("retention_summary.class", 1),
    "expires_at bad": ("retention_summary.expires_at", "tomorrow"),
    "uppercase name": ("package.name", "Acme/app"),
    "bad version": ("package.version", "-1"),
    "created_at offset": ("package.created_at", "2026-11-29T16:17:26.123456+00:00"),
    "created_at no fraction": ("package.created_at", "2026-11-29T16:17:26Z"),
    "created_at bad date": ("package.created_at", "2026-02-30T16:17:26.123456Z"),
    "producer int": ("provenance.producer", 7),
    "provenance array field": ("provenance.extra", [1.5]),
    "package not map": ("package", []),
}


@pytest.mark.parametrize(("path", "new"), BAD_MANIFESTS.values(), ids=BAD_MANIFESTS.keys())
def test_decode_rejects_invalid_manifests(path: str, new: object) -> None:
    value = _mutate(path, new)
    try:
        data = cbor.encode(value)
    except ManifestError:
        data = cbor2.dumps(value, canonical=True)
    with pytest.raises(ManifestError):
        decode(data)


def test_decode_rejects_non_map_and_chains_causes() -> None:
    with pytest.raises(ManifestError, match="must be a map"):
        decode(cbor.encode([1]))
    with pytest.raises(ManifestError) as info:
        decode(cbor.encode(_mutate("files.0.path", "a//b")))
    assert isinstance(info.value.__cause__, InvalidPathError)
    with pytest.raises(ManifestError) as info:
        decode(cbor.encode(_mutate("package.name", "A")))
    assert isinstance(info.value.__cause__, InvalidNameError)


def test_decode_rejects_a_float_inside_a_manifest() -> None:
    data = encode(golden_manifest())
    size = cbor.encode({"size": 6})[1:]
    assert data.count(size) == 1
    with pytest.raises(ManifestError, match="floating-point"):
        decode(data.replace(size, cbor.encode("size") + bytes.fromhex("f94600")))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_only_ever_raise_manifest_error(data: bytes) -> None:
    for parse in (cbor.decode_strict, decode):
        with contextlib.suppress(ManifestError):
            parse(data)


_GOLDEN_BYTES = encode(golden_manifest())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(_GOLDEN_BYTES) - 1), st.integers(0, 255), st.sampled_from("rid")
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_manifests_only_ever_raise_manifest_error(
    edits: list[tuple[int, int, str]],
) -> None:
    data = bytearray(_GOLDEN_BYTES)
    for offset, byte, kind in edits:
        position = offset % (len(data) or 1)
        if kind == "r" and data:
            data[position] = byte
        elif kind == "i":
            data.insert(position, byte)
        elif data:
            del data[position]
    for parse in (cbor.decode_strict, decode):
        try:
            result = parse(bytes(data))
        except ManifestError:
            continue
        if parse is cbor.decode_strict:
            assert cbor.encode(result) == bytes(data)


# --- Model


def test_build_sorts_files_by_utf8_bytes_and_receipts_by_address() -> None:
    m = golden_manifest()
    assert [f.path for f in m.files] == ["bin/app", "docs/r\u00e9sum\u00e9.txt"]
    assert [str(r.content_address) for r in m.storage_receipts] == sorted(
        [f"blake3:{B3}", f"blake3:{B3_EMPTY}"]
    )
    upper = FileEntry("\U0001f600", 0, Digest("blake3", B3), Digest("sha256", S2), False)
    lower = FileEntry("\uff01", 0, Digest("blake3", B3), Digest("sha256", S2), False)
    built = Manifest.build(m.package, [upper, lower], (), m.retention, m.provenance)
    assert [f.path for f in built.files] == ["\uff01", "\U0001f600"]


def test_manifest_rejects_unsorted_or_duplicate_entries() -> None:
    m = golden_manifest()
    with pytest.raises(ManifestError, match="sorted"):
        Manifest(m.package, m.files[::-1], m.storage_receipts, m.retention, m.provenance)
    with pytest.raises(ManifestError, match="sorted"):
        Manifest.build(m.package, m.files * 2, m.storage_receipts, m.retention, m.provenance)
    with pytest.raises(ManifestError, match="sorted"):
        Manifest(m.package, m.files, m.storage_receipts[::-1], m.retention, m.provenance)
    with pytest.raises(ManifestError, match="manifest_version"):
        Manifest(m.package, m.files, m.storage_receipts, m.retention, m.provenance, 2)


def test_provenance_rejects_a_producer_field() -> None:
    with pytest.raises(ManifestError, match="producer"):
        Provenance("artifactstore 0.1.0", validate_metadata({"producer": "me"}))


def test_file_entry_content_address() -> None:
    entry = golden_manifest().files[0]
    assert entry.content_address == ContentAddress("blake3", B3)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"": 1}, "''"),
        ({"k" * 257: 1}, "257"),
        ({"f": 1.5}, "1.5"),
        ({"n": None}, "None"),
        ({"big": 2**53 + 1}, "big"),
        ({"nested": [[1]]}, "nested"),
        ({"d": {"a": 1}}, "'d'"),
        ({"s": "\ud800"}, "UTF-8"),
    ],
)
def test_validate_metadata_rejects_by_key_and_value(values: dict[str, object], named: str) -> None:
    from artifactstore.errors import InvalidMetadataError

    with pytest.raises(InvalidMetadataError, match=named.replace("[", r"\[")):
        validate_metadata(values)


def test_validate_metadata_sorts_and_converts_lists() -> None:
    assert validate_metadata({"b": [1, "x", True], "a": 2**53}) == (
        ("a", 2**53),
        ("b", (1, "x", True)),
    )


def test_new_metadata_may_be_64_kib_of_canonical_cbor_and_no_more() -> None:
    from artifactstore.errors import InvalidMetadataError
    from artifactstore.manifest.model import validate_new_metadata

    # {"k": text of n bytes} is 1 (map) + 2 ("k") + 3 (text head) + n bytes of CBOR.
    at_limit = {"k": "x" * (65536 - 6)}
    assert len(cbor.encode(at_limit)) == 65536
    assert validate_new_metadata(at_limit) == (("k", at_limit["k"]),)
    over = {"k": "x" * (65536 - 5)}
    with pytest.raises(InvalidMetadataError, match="65537 bytes as canonical CBOR"):
        validate_new_metadata(over)
    many = {f"key{i:04d}": [True, 1, "v" * 60] for i in range(1000)}
    with pytest.raises(InvalidMetadataError, match="at most 65536"):
        validate_new_metadata(many)
    # Stored metadata stays readable whatever its size (a package from before the limit).
    assert validate_metadata(over) == (("k", over["k"]),)


def test_timestamps_format_and_parse_strictly() -> None:
    moment = datetime(2026, 11, 29, 17, 17, 26, 123456, tzinfo=timezone(timedelta(hours=1)))
    text = format_timestamp(moment)
    assert text == "2026-11-29T16:17:26.123456Z"
    assert parse_timestamp(text) == moment
    assert format_timestamp(datetime(5, 1, 2, tzinfo=UTC)) == "0005-01-02T00:00:00.000000Z"
    with pytest.raises(ManifestError, match="naive"):
        format_timestamp(datetime(2026, 1, 1))
    for bad in [
        "2026-11-29T16:17:26.123456z",
        "2026-11-29T16:17:26.12345Z",
        "2026-11-29T16:17:60.000000Z",
        "2026-13-01T00:00:00.000000Z",
        "٢026-11-29T16:17:26.123456Z",
        " 2026-11-29T16:17:26.123456Z",
        "2026-11-29T16:17:26.123456Z\n",
    ]:
        with pytest.raises(ManifestError):
            parse_timestamp(bad)
