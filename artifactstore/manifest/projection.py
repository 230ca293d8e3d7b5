"""The JSON projection of a manifest: RFC 8785 JSON Canonicalization Scheme (JCS).

JCS text is UTF-8 with no whitespace, object keys sorted by their UTF-16 code units, strings
escaped only where RFC 8785 §3.2.2.2 requires, and (here) integers only, since manifests carry
no floats. `from_jcs` accepts only text that `jcs` would have written, so a manifest converts
to JCS and back to the identical canonical CBOR bytes. This module is pure.
"""

from __future__ import annotations

import json
import re
from typing import NoReturn

from artifactstore.errors import ManifestError
from artifactstore.manifest.codec import manifest_from_value
from artifactstore.manifest.model import MAX_SAFE_INTEGER, Manifest, manifest_to_value

_ESCAPES = {code: f"\\u{code:04x}" for code in range(0x20)} | {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_MAX_DEPTH = 100


def _string(text: str) -> str:
    if _NEEDS_ESCAPE.search(text):
        text = text.translate(_ESCAPES)
    return f'"{text}"'


def _utf16_order(item: tuple[str, object]) -> bytes:
    # Big-endian UTF-16 bytes compare like the code units RFC 8785 §3.2.3 sorts by;
    # surrogatepass lets a lone surrogate sort here and fail the UTF-8 encoding later.
    return item[0].encode("utf-16-be", "surrogatepass")


def _serialize(value: object, out: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ManifestError(f"value is nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif isinstance(value, bool):  # before int: bool is an int subclass
        out.append("true" if value else "false")
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ManifestError(f"integer {value} is beyond ±2^53, which JSON cannot carry")
        out.append(str(int(value)))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ManifestError(f"object key {key!r} of type {type(key).__name__} is not text")
        out.append("{")
        for index, (key, item) in enumerate(sorted(value.items(), key=_utf16_order)):
            if index:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _serialize(item, out, depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _serialize(item, out, depth + 1)
        out.append("]")
    else:
        raise ManifestError(
            f"cannot write a value of type {type(value).__name__} ({value!r:.60}) as JCS; "
            "use null, bool, int, str, list, tuple or dict with str keys"
        )


def jcs_value(value: object) -> bytes:
    """Serialize a JSON-compatible value (no floats) as RFC 8785 canonical UTF-8 bytes."""
    out: list[str] = []
    _serialize(value, out, 0)
    text = "".join(out)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ManifestError(f"text is not valid UTF-8 (lone surrogate): {exc}") from exc


def jcs(m: Manifest) -> bytes:
    """The manifest's RFC 8785 JSON projection."""
    return jcs_value(manifest_to_value(m))


def _reject_float(text: str) -> NoReturn:
    raise ManifestError(f"number {text} is not an integer; manifests carry no floats")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ManifestError(f"JSON object has duplicate key {key!r}")
        result[key] = value
    return result


def parse_jcs(data: bytes) -> object:
    """Parse RFC 8785 canonical JSON (no floats) strictly; anything else raises ManifestError."""
    try:
        text = bytes(data).decode("utf-8")
        value: object = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_float=_reject_float,
            parse_constant=_reject_float,
        )
    except ManifestError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        raise ManifestError(f"not valid JSON: {exc}") from exc
    if jcs_value(value) != data:
        raise ManifestError("JSON is not in RFC 8785 canonical form (JCS)")
    return value


def from_jcs(data: bytes) -> Manifest:
    """Parse a manifest's JCS projection strictly; anything else raises ManifestError."""
    return manifest_from_value(parse_jcs(data))
