"""Which files of a package a path glob names (`pull --include`).

A glob matches a file's whole package path, case-sensitively, one `/`-separated component
at a time: `*` is any run of characters and `?` any one character, neither crossing a `/`;
`[abc]`, `[a-z]` and `[!abc]` are character classes; a component that is exactly `**`
matches zero or more whole components (`**/*.so` is every `.so` at any depth, `docs/**`
everything under docs/). A leading dot is not special. This module is pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from artifactstore.errors import InvalidInputError, PackageFileNotFoundError
from artifactstore.records import StoredFile


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression that fully matches the paths pattern names; InvalidInputError if
    pattern is empty, absolute or not a glob."""
    if not pattern:
        raise InvalidInputError("an --include pattern is empty")
    if pattern.startswith("/"):
        raise InvalidInputError(
            f"--include {pattern!r}: package paths are relative; drop the leading '/'"
        )
    parts = pattern.split("/")
    regex = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex.append(".*" if last else "(?:[^/]+/)*")
        else:
            regex.append(_component(part) + ("" if last else "/"))
    try:
        return re.compile("".join(regex))
    except re.error as exc:
        raise InvalidInputError(f"--include {pattern!r} is not a valid glob: {exc}") from None


def _component(text: str) -> str:
    """One path component of a glob as a regular expression that never matches '/'."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if char == "*":
            out.append("[^/]*")
            while index < len(text) and text[index] == "*":
                index += 1
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := _class_end(text, index)) > 0:
            body = text[index:end]
            index = end + 1
            negated = body.startswith("!")
            members = body[1:] if negated else body
            escaped = "".join(c if c == "-" else re.escape(c) for c in members)
            out.append(f"[^/{escaped}]" if negated else f"[{escaped}]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def _class_end(text: str, start: int) -> int:
    """The index of the ']' closing a class opened before start, or -1 (a literal '[')."""
    index = start
    if index < len(text) and text[index] == "!":
        index += 1
    if index < len(text) and text[index] == "]":
        index += 1  # a ']' first in the class is one of its characters
    return text.find("]", index)


def select_files(
    files: Sequence[StoredFile], include: Sequence[str], label: str
) -> list[StoredFile]:
    """The files (of the package called label) whose path matches any include glob; all of
    them when include is empty. PackageFileNotFoundError names each glob that matches none."""
    if not include:
        return list(files)
    globs = [(pattern, compile_glob(pattern)) for pattern in include]
    unmatched = [p for p, glob in globs if not any(glob.fullmatch(f.path) for f in files)]
    if unmatched:
        names = ", ".join(repr(p) for p in unmatched)
        raise PackageFileNotFoundError(f"no file of {label} matches --include {names}")
    return [f for f in files if any(glob.fullmatch(f.path) for _, glob in globs)]
