"""Accepted and rejected package names, versions and file paths, one rule at a time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artifactstore.errors import InvalidNameError, InvalidPathError
from artifactstore.naming import check_name, check_path, check_version


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "app",
        "acme/app",
        "acme/team/app-cli",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "0/1/2",
        "x" * 255,
    ],
)
def test_check_name_accepts(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "empty"),
        ("a" * 256, "at most 255"),
        ("Acme/app", "only lowercase"),
        ("acme app", "only lowercase"),
        ("acme/app:1", "only lowercase"),
        ("/acme", "empty path component"),
        ("acme/", "empty path component"),
        ("acme//app", "empty path component"),
        (".acme", "must start and end"),
        ("acme-", "must start and end"),
        ("a..b", "must start and end"),
        ("a___b", "must start and end"),
        ("a._b", "must start and end"),
        ("a-.b", "must start and end"),
    ],
)
def test_check_name_rejects(name: str, rule: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_name(name)
    assert rule in str(info.value)
    assert repr(name[:20])[:-1] in str(info.value)


@pytest.mark.parametrize("version", ["1", "1.4.2", "v1.0.0-rc.1", "_x", "A_b.C-d", "a" * 128])
def test_check_version_accepts(version: str) -> None:
    assert check_version(version) == version


@pytest.mark.parametrize(
    ("version", "rule"),
    [
        ("", "empty"),
        ("a" * 129, "at most 128"),
        (".1", "must start with"),
        ("-rc", "must start with"),
        ("1+build", "only ASCII"),
        ("1/2", "only ASCII"),
        ("vé", "only ASCII"),
    ],
)
def test_check_version_rejects(version: str, rule: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_version(version)
    assert rule in str(info.value)
    assert repr(version[:20])[:-1] in str(info.value)


@pytest.mark.parametrize(
    "path",
    [
        "a",
        "bin/app",
        "a/b/c.txt",
        ".hidden",
        "a/..b",
        "...",
        "dir/ü/日本/😀",
        "x" * 4096,
        "é" * 2048,
    ],
)
def test_check_path_accepts(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("a/", "empty segment"),
        ("a//b", "empty segment"),
        (".", "'.' segment"),
        ("a/./b", "'.' segment"),
        ("..", "'..' segment"),
        ("a/../b", "'..' segment"),
        ("a\x00b", "NUL"),
        ("a\\b", "backslash"),
        ("a\ud800b", "not valid UTF-8"),
        ("x" * 4097, "at most 4096"),
        ("é" * 2049, "at most 4096"),
    ],
)
def test_check_path_rejects(path: str, rule: str) -> None:
    with pytest.raises(InvalidPathError) as info:
        check_path(path)
    assert rule in str(info.value)
    assert repr(path[:20])[:-1] in str(info.value)


_SEGMENT = st.text(
    st.characters(codec="utf-8", exclude_characters="/\\\x00"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))


@settings(max_examples=200)
@given(st.lists(_SEGMENT, min_size=1, max_size=6))
def test_check_path_accepts_every_wellformed_path(segments: list[str]) -> None:
    path = "/".join(segments)
    assert check_path(path) == path


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_check_path_agrees_with_the_rules(path: str) -> None:
    segments = path.split("/")
    valid = (
        path != ""
        and "\x00" not in path
        and "\\" not in path
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in path)
        and all(s not in ("", ".", "..") for s in segments)
    )
    if valid:
        assert check_path(path) == path
    else:
        with pytest.raises(InvalidPathError):
            check_path(path)
