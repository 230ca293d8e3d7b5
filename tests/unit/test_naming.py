"""Accepted and rejected package names, versions and file paths, one rule at a time."""

from __future__ import annotations

import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artifactstore.errors import InvalidNameError, InvalidPathError
from artifactstore.naming import check_name, check_path, check_paths, check_version


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
        ("Acme/app", "package names are lowercase"),
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
        "x" * 255,
        "é" * 127,
        "/".join(["x" * 255] * 16),
        "/".join(["é" * 127] * 16),
        "a b/\u0080\u009f",
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
        ("x" * 256, "segment of 256 bytes"),
        ("a/" + "é" * 128 + "/b", "segment of 256 bytes"),
        ("a\nproblem: fake line", "control character '\\n'"),
        ("a\tb", "control character"),
        ("a/\x1fb", "control character"),
        ("a\x7f", "control character '\\x7f'"),
        ("\r", "control character"),
    ],
)
def test_check_path_rejects(path: str, rule: str) -> None:
    with pytest.raises(InvalidPathError) as info:
        check_path(path)
    assert rule in str(info.value)
    assert repr(path[:20])[:-1] in str(info.value)


_CONTROLS = bytes([*range(32), 127]).decode()
_SEGMENT = st.text(
    st.characters(codec="utf-8", exclude_characters="/\\" + _CONTROLS),
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
        and not any(c in _CONTROLS for c in path)
        and "\\" not in path
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in path)
        and all(s not in ("", ".", "..") for s in segments)
    )
    if valid:
        assert check_path(path) == path
    else:
        with pytest.raises(InvalidPathError):
            check_path(path)


# -- paths side by side in one package ---------------------------------------------------------


@pytest.mark.parametrize(
    "paths",
    [
        [],
        ["a"],
        ["a/b", "a/c", "b"],
        ["a.txt", "a/b"],
        ["ab", "a/b"],
        ["a!", "a/b", "a/c/d"],
        ["\u00e9", "e"],
    ],
)
def test_check_paths_accepts(paths: list[str]) -> None:
    check_paths(paths)


@pytest.mark.parametrize(
    ("paths", "rule"),
    [
        (["file", "file/inner"], "'file' is a directory prefix of the other"),
        (["file/inner", "file"], "'file' is a directory prefix of the other"),
        (["a", "a/b/c/d"], "'a' is a directory prefix"),
        (["x/y", "x/y/z", "x/w"], "'x/y' is a directory prefix"),
        (["Dir", "dir/a"], "directory prefix of the other (ignoring case)"),
        (["\u00e9", "e\u0301"], "equal after Unicode NFC normalization"),
        (["d/\u00e9/x", "d/e\u0301/x"], "equal after Unicode NFC normalization"),
        (["README", "readme"], "differ only by case"),
        (["a/B/c", "a/b/c"], "differ only by case"),
        (["STRASSE", "straße"], "differ only by case"),
        (["straße", "strasse/x"], "directory prefix of the other (ignoring case)"),
        (["\u00c9", "e\u0301"], "differ only by case"),
    ],
)
def test_check_paths_rejects(paths: list[str], rule: str) -> None:
    with pytest.raises(InvalidPathError) as info:
        check_paths(paths)
    assert rule in str(info.value)
    assert all(repr(path) in str(info.value) for path in paths[:2])


def test_check_paths_checks_new_paths_against_existing_ones() -> None:
    check_paths(["a", "c/d"], existing=["a", "b"])  # 'a' again is a replace, no clash
    with pytest.raises(InvalidPathError, match="'a' is a directory prefix"):
        check_paths(["a/b"], existing=["a"])
    with pytest.raises(InvalidPathError, match="'a/b' is a directory prefix"):
        check_paths(["a/b"], existing=["a/b/c"])
    with pytest.raises(InvalidPathError, match="differ only by case"):
        check_paths(["A"], existing=["a"])


def _clash(first: str, second: str) -> bool:
    """The rules stated pair by pair, the slow way."""

    def fold(path: str) -> str:
        return unicodedata.normalize("NFD", unicodedata.normalize("NFD", path).casefold())

    a, b = fold(first), fold(second)
    return first != second and (a == b or a.startswith(b + "/") or b.startswith(a + "/"))


_ALIKE = st.sampled_from(["a", "A", "b", "\u00e9", "e\u0301", "\u00c9", "ß", "ss", "SS"])
_ALIKE_PATH = st.lists(_ALIKE, min_size=1, max_size=3).map("/".join)


@settings(max_examples=300)
@given(st.lists(_ALIKE_PATH, max_size=6, unique=True))
def test_check_paths_agrees_with_the_rules_pair_by_pair(paths: list[str]) -> None:
    clashes = any(_clash(p, q) for i, p in enumerate(paths) for q in paths[i + 1 :])
    if clashes:
        with pytest.raises(InvalidPathError):
            check_paths(paths)
    else:
        check_paths(paths)


def test_check_paths_is_fast_for_100_000_files() -> None:
    paths = [f"dir{i % 100}/sub{i % 7}/file{i}.txt" for i in range(100_000)]
    paths += [f"d\u00e9j\u00e0/{i}" for i in range(1000)]
    started = time.perf_counter()
    check_paths(paths)
    assert time.perf_counter() - started < 2.0
