"""Validators for the names a caller chooses: package names, versions and file paths.

A package *name* follows the OCI repository-name grammar, a *version* the OCI tag grammar, and
a *path* is a relative POSIX path inside a package (SPEC "Concepts"). Each validator returns
its argument unchanged when it is valid and otherwise raises an error whose message quotes the
value and names the rule it broke. This module is pure.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from artifactstore.errors import InvalidAddressError, InvalidNameError, InvalidPathError
from artifactstore.identity import ContentAddress

MAX_NAME_LENGTH = 255
MAX_VERSION_LENGTH = 128
MAX_PATH_BYTES = 4096
MAX_SEGMENT_BYTES = 255

# OCI distribution spec: path components of lowercase alnum runs joined by '.', '_', '__' or
# one or more '-'.
_NAME_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_NAME_CHARS = re.compile(r"[a-z0-9._/-]*")
_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_VERSION_CHARS = re.compile(r"[A-Za-z0-9._-]*")
# C0 controls and DEL: a path holding one could spoof line-oriented output ("a\nproblem: ...").
_VERSION_PARTS = re.compile(r"([0-9]+)|([^0-9]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_text(what: str, value: object, max_length: int) -> None:
    if not isinstance(value, str):
        raise InvalidNameError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidNameError(f"{what} '' is empty")
    if len(value) > max_length:
        raise InvalidNameError(
            f"{what} {value!r} is {len(value)} characters long; at most {max_length} are allowed"
        )


def check_name(name: str) -> str:
    """Return name if it is a valid OCI repository name; InvalidNameError says why not."""
    _check_text("package name", name, MAX_NAME_LENGTH)
    if not _NAME_CHARS.fullmatch(name):
        if _NAME_CHARS.fullmatch(name.lower()):
            raise InvalidNameError(
                f"package name {name!r} has uppercase letters; package names are lowercase "
                f"(did you mean {name.lower()!r}?)"
            )
        bad = sorted({c for c in name if not _NAME_CHARS.fullmatch(c)})
        raise InvalidNameError(
            f"package name {name!r} contains {''.join(bad)!r}; only lowercase letters, digits, "
            "'.', '_', '-' and '/' are allowed"
        )
    for component in name.split("/"):
        if not component:
            raise InvalidNameError(
                f"package name {name!r} has an empty path component "
                "(leading, trailing or doubled '/')"
            )
        if not _NAME_COMPONENT.fullmatch(component):
            raise InvalidNameError(
                f"package name {name!r} has component {component!r}, which must start and end "
                "with a lowercase letter or digit and separate them only by '.', '_', '__' or "
                "dashes"
            )
    return name


def check_version(version: str) -> str:
    """Return version if it is a valid OCI tag; InvalidNameError says why not."""
    _check_text("version", version, MAX_VERSION_LENGTH)
    if not _VERSION_CHARS.fullmatch(version):
        bad = sorted({c for c in version if not _VERSION_CHARS.fullmatch(c)})
        raise InvalidNameError(
            f"version {version!r} contains {''.join(bad)!r}; only ASCII letters, digits, "
            "'.', '_' and '-' are allowed"
        )
    if not _VERSION.fullmatch(version):
        raise InvalidNameError(f"version {version!r} must start with an ASCII letter, digit or '_'")
    return version


@dataclass(frozen=True, slots=True)
class PackageSpec:
    """A package named in one text: 'NAME:VERSION', or 'NAME@blake3:<hex>' (pinned by digest)."""

    name: str
    version: str | None
    digest: str | None


def parse_package_spec(text: str) -> PackageSpec:
    """Parse 'NAME:VERSION' or 'NAME@blake3:<hex>'; InvalidNameError says what is wrong.

    Neither ':' nor '@' can occur in a name, so the first of them ends it.
    """
    name, at, pinned = text.partition("@")
    if at:
        try:
            digest = ContentAddress.parse(pinned)
        except InvalidAddressError as exc:
            raise InvalidNameError(f"{text!r}: {exc}") from None
        return PackageSpec(check_name(name), None, str(digest))
    name, colon, version = text.partition(":")
    if not colon:
        raise InvalidNameError(f"{text!r} is not NAME:VERSION or NAME@blake3:<hex>")
    return PackageSpec(check_name(name), check_version(version), None)


def is_package_spec(text: str) -> bool:
    """True when text names a package in one piece ('NAME:VERSION' or 'NAME@digest')."""
    return ":" in text or "@" in text


def check_path(path: str) -> str:
    """Return path if it is a valid file path inside a package; InvalidPathError says why not."""
    if not isinstance(path, str):
        raise InvalidPathError(f"file path must be a string, got {type(path).__name__}")
    if not path:
        raise InvalidPathError("file path '' is empty")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPathError(
            f"file path {path!r} is not valid UTF-8 (it contains a lone surrogate)"
        ) from None
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidPathError(
            f"file path {path[:64]!r}... is {len(encoded)} bytes in UTF-8; "
            f"at most {MAX_PATH_BYTES} are allowed"
        )
    if "\x00" in path:
        raise InvalidPathError(f"file path {path!r} contains a NUL character")
    control = _CONTROL.search(path)
    if control is not None:
        raise InvalidPathError(
            f"file path {path!r} contains the control character {control.group()!r}"
        )
    if "\\" in path:
        raise InvalidPathError(f"file path {path!r} contains a backslash; use '/' between segments")
    if path.startswith("/"):
        raise InvalidPathError(f"file path {path!r} is absolute; it must be relative")
    for segment in path.split("/"):
        if not segment:
            raise InvalidPathError(
                f"file path {path!r} has an empty segment (trailing or doubled '/')"
            )
        if segment in (".", ".."):
            raise InvalidPathError(f"file path {path!r} contains a {segment!r} segment")
        size = len(segment.encode("utf-8"))
        if size > MAX_SEGMENT_BYTES:
            raise InvalidPathError(
                f"file path {path[:64]!r}... has a segment of {size} bytes in UTF-8; "
                f"at most {MAX_SEGMENT_BYTES} are allowed"
            )
    return path


def check_paths(paths: Iterable[str], existing: Iterable[str] = ()) -> None:
    """Raise InvalidPathError naming two paths that cannot both be in one package.

    paths (each already valid for check_path) are to join a package that holds existing; a path
    in both is the same entry (a replace), not a clash. No path may be a directory prefix of
    another ('a' and 'a/b'), and no two may be equal after Unicode NFC normalization or differ
    only by case: they could not both be pulled on macOS or Windows. Paths are compared by
    their Unicode canonical caseless form (str.casefold() between NFD normalizations, Unicode
    §3.13), so 'A' and 'a/b' clash too; casefold() is a little stricter than those file
    systems ('straße' and 'STRASSE' clash), which errs on the side of a package that pulls.
    Linear in the total length of the paths (dicts and a set, no comparison of pairs).
    """
    files: dict[str, str] = {}
    for path in (*existing, *paths):
        key = _caseless(path)
        other = files.setdefault(key, path)
        if other != path:
            raise _twins(other, path)
    directories: set[str] = set()
    for key, path in files.items():
        # No ancestor directory of a path may be a file's path as well. Walk up from the
        # parent; ancestors met before (siblings share them) were checked already.
        end = key.rfind("/")
        while end != -1 and key[:end] not in directories:
            directory = key[:end]
            directories.add(directory)
            clash = files.get(directory)
            if clash is not None:
                how = "" if path.startswith(f"{clash}/") else " (ignoring case)"
                raise InvalidPathError(
                    f"file paths {clash!r} and {path!r}: {clash!r} is a directory prefix of "
                    f"the other{how}, and a package cannot hold a file and a directory of one "
                    "name"
                )
            end = key.rfind("/", 0, end)


def _caseless(path: str) -> str:
    if path.isascii():
        # A path in lower case already is its own key: no second text of it (6 MB of keys
        # in a 100,000-file push).
        lowered = path.lower()
        return path if lowered == path else lowered
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", path).casefold())


def _twins(first: str, second: str) -> InvalidPathError:
    if unicodedata.normalize("NFC", first) == unicodedata.normalize("NFC", second):
        how = "are equal after Unicode NFC normalization"
    else:
        how = "differ only by case"
    # ascii() shows the code points of two spellings that may look identical.
    return InvalidPathError(
        f"file paths {first!r} and {second!r} ({first!a} and {second!a}) {how}; "
        "they could not both be pulled on macOS or Windows"
    )


VersionKey = tuple[tuple[int, int, str], ...]


def version_key(version: str) -> VersionKey:
    """The sort key that orders versions as versions: '1.2.10' < '1.9.0' < '1.10.0'.

    A version is split into runs of digits and runs of other characters; runs compare in
    turn, digits as numbers, other text as text (code point order), a number before text at
    the same place, and a version that is a prefix of another first ('1.0' < '1.0-rc1').
    Versions that differ only in leading zeros ('01', '1') compare equal here.
    """
    return tuple(
        (0, int(digits), "") if digits else (1, 0, text)
        for digits, text in _VERSION_PARTS.findall(version)
    )
