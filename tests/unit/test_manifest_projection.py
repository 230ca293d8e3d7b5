"""RFC 8785 (JCS): the RFC's vectors, string escaping, UTF-16 key order, and strict parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artifactstore.errors import ManifestError
from artifactstore.manifest import decode, encode, from_jcs, jcs, jcs_value, parse_jcs

DATA = Path(__file__).parent.parent / "data"
GOLDEN_JCS = (DATA / "golden_manifest.jcs.json").read_bytes()
GOLDEN_CBOR = bytes.fromhex((DATA / "golden_manifest.cbor.hex").read_text().strip())


def test_rfc8785_key_order_example() -> None:
    # RFC 8785 §3.2.3: keys sort by UTF-16 code units, so U+1F600 (D83D DE00) precedes U+FB33.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    text = jcs_value(value)
    assert [json.loads(text)[key] for key in json.loads(text)] == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]
    assert text.startswith(b'{"\\r":"Carriage Return","1":"One","\xc2\x80":"Control"')


def test_rfc8785_serialization_example_without_numbers() -> None:
    # RFC 8785 §3.2.4, minus its "numbers" member (manifests carry no floats).
    source = (
        '{"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", '
        '"literals": [null, true, false]}'
    )
    expected = r"""{"literals":[null,true,false],"string":"€$\u000f\nA'B\"\\\\\"/"}"""
    assert jcs_value(json.loads(source)) == expected.encode("utf-8")
    assert parse_jcs(expected.encode("utf-8")) == json.loads(source)


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("\b", "\\b"),
        ("\t", "\\t"),
        ("\n", "\\n"),
        ("\f", "\\f"),
        ("\r", "\\r"),
        ('"', '\\"'),
        ("\\", "\\\\"),
        ("\x00", "\\u0000"),
        ("\x1f", "\\u001f"),
        ("\x0b", "\\u000b"),
        ("\x7f", "\x7f"),
        ("/", "/"),
        ("\u2028", "\u2028"),
        ("\U0001f600", "\U0001f600"),
        ("'", "'"),
    ],
)
def test_string_escaping(char: str, escaped: str) -> None:
    assert jcs_value(f"a{char}b") == f'"a{escaped}b"'.encode()


def test_integers_and_literals() -> None:
    assert jcs_value([0, -1, 2**53, -(2**53), True, False, None]) == (
        b"[0,-1,9007199254740992,-9007199254740992,true,false,null]"
    )
    assert jcs_value({"b": [], "a": {}}) == b'{"a":{},"b":[]}'
    assert jcs_value(("x",)) == b'["x"]'


@pytest.mark.parametrize(
    "value",
    [1.0, float("nan"), 2**53 + 1, -(2**53) - 1, b"x", {1: "a"}, "\ud800", {"k": {1, 2}}],
)
def test_jcs_value_rejects_what_json_cannot_carry_exactly(value: object) -> None:
    with pytest.raises(ManifestError):
        jcs_value(value)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(st.characters(codec="utf-8")),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(codec="utf-8")), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_jcs_value_parses_back_and_matches_python_json_escaping(value: object) -> None:
    text = jcs_value(value)
    assert parse_jcs(text) == value
    assert json.loads(text) == value
    # Python's json escapes exactly as RFC 8785 does; only its key order (code points) differs.
    python = json.dumps(_utf16_sorted(value), ensure_ascii=False, separators=(",", ":"))
    assert text == python.encode()


def _utf16_sorted(value: object) -> object:
    if isinstance(value, dict):
        return {
            key: _utf16_sorted(value[key])
            for key in sorted(value, key=lambda k: k.encode("utf-16-be"))
        }
    if isinstance(value, list):
        return [_utf16_sorted(item) for item in value]
    return value


def test_parse_jcs_rejects_uppercase_hex_escapes() -> None:
    assert parse_jcs(b'"\\u001f"') == "\x1f"
    with pytest.raises(ManifestError, match="canonical"):
        parse_jcs(b'"\\u001F"')


def test_golden_projection_converts_back_to_the_identical_cbor() -> None:
    m = from_jcs(GOLDEN_JCS)
    assert m == decode(GOLDEN_CBOR)
    assert encode(m) == GOLDEN_CBOR
    assert jcs(m) == GOLDEN_JCS


def _replace_once(old: bytes, new: bytes) -> bytes:
    assert GOLDEN_JCS.count(old) >= 1, old
    return GOLDEN_JCS.replace(old, new, 1)


NON_CANONICAL_JCS = {
    "pretty": json.dumps(json.loads(GOLDEN_JCS), indent=1, ensure_ascii=False).encode(),
    "space after colon": _replace_once(b'"size":6', b'"size": 6'),
    "trailing newline": GOLDEN_JCS + b"\n",
    "BOM": b"\xef\xbb\xbf" + GOLDEN_JCS,
    "code-point key order": json.dumps(
        json.loads(GOLDEN_JCS), ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode(),
    "ascii escapes": json.dumps(
        json.loads(GOLDEN_JCS), ensure_ascii=True, separators=(",", ":")
    ).encode(),
    "needless escape": _replace_once(b'"acme/app"', b'"acme\\/app"'),
    "unicode escape": _replace_once(b'"acme/app"', b'"\\u0061cme/app"'),
    "long-form tab escape": _replace_once(b"\\t", b"\\u0009"),
    "float size": _replace_once(b'"size":6', b'"size":6.0'),
    "exponent size": _replace_once(b'"size":6', b'"size":6e0'),
    "negative zero": _replace_once(b'"size":0', b'"size":-0'),
    "leading zero": _replace_once(b'"size":6', b'"size":06'),
    "NaN": _replace_once(b'"size":6', b'"size":NaN'),
    "size beyond 2^53": _replace_once(b'"size":6', b'"size":9007199254740993'),
    "huge integer": _replace_once(b'"size":6', b'"size":' + b"9" * 5000),
    "duplicate key": _replace_once(b'"size":6', b'"size":6,"size":6'),
    "unknown key": _replace_once(b'"manifest_version":1', b'"manifest_version":1,"x":1'),
    "version 2": _replace_once(b'"manifest_version":1', b'"manifest_version":2'),
    "invalid UTF-8": _replace_once("é".encode(), b"\xe9"),
    "UTF-16": GOLDEN_JCS.decode().encode("utf-16"),
    "lone surrogate escape": _replace_once(b'"acme/app"', b'"acme\\ud800"'),
    "not JSON": b"{",
    "empty": b"",
    "array": b"[]",
    "deep nesting": b"[" * 100000 + b"]" * 100000,
}


@pytest.mark.parametrize("data", NON_CANONICAL_JCS.values(), ids=NON_CANONICAL_JCS.keys())
def test_from_jcs_rejects_anything_but_canonical_manifests(data: bytes) -> None:
    with pytest.raises(ManifestError):
        from_jcs(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(GOLDEN_JCS) - 1), st.binary(min_size=1, max_size=3))
def test_edited_projections_only_ever_raise_manifest_error(position: int, insert: bytes) -> None:
    data = GOLDEN_JCS[:position] + insert + GOLDEN_JCS[position + 1 :]
    try:
        m = from_jcs(data)
    except ManifestError:
        return
    assert jcs(m) == data
