"""The glob grammar of `pull --include`: whole paths, '*' within a component, '**' across."""

from __future__ import annotations

import pytest

from artifactstore import InvalidInputError
from artifactstore.selection import compile_glob


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "d/a.txt", False),  # '*' does not cross '/'
        ("**/*.txt", "a.txt", True),  # '**' is zero or more components
        ("**/*.txt", "d/e/a.txt", True),
        ("docs/**", "docs/a/b.md", True),
        ("docs/**", "docsx/a.md", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("bin/a?p", "bin/app", True),
        ("?", "/", False),
        ("[!a]*", "b", True),
        ("[!a]*", "a", False),
        ("[]]", "]", True),
        ("[^x]", "^", True),  # '^' is a character in a glob class, not a negation
        ("[^x]", "y", False),
        ("a[", "a[", True),  # an unclosed '[' is itself
        ("*", ".hidden", True),  # a leading dot is not special
        ("A.txt", "a.txt", False),  # case-sensitive
        ("bin", "bin/app", False),  # the whole path, not a prefix
    ],
)
def test_a_glob_matches_whole_paths_component_by_component(
    pattern: str, path: str, matches: bool
) -> None:
    assert bool(compile_glob(pattern).fullmatch(path)) is matches


@pytest.mark.parametrize("pattern", ["", "/bin/*", "[z-a]"])
def test_empty_absolute_and_broken_globs_are_bad_input(pattern: str) -> None:
    with pytest.raises(InvalidInputError):
        compile_glob(pattern)
