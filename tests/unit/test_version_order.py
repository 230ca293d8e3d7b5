"""Versions ordered as versions (naming.version_key), against an independent reference."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from artifactstore import version_key

VERSIONS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,24}", fullmatch=True)
# Versions made mostly of digit runs and dots, where the numeric comparison matters most.
DOTTED = st.lists(st.integers(0, 10_000), min_size=1, max_size=5).map(
    lambda parts: ".".join(map(str, parts))
)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def reference(a: str, b: str) -> int:
    """-1, 0 or 1: run by run (grouped by str.isdigit), digits as integers, text as text, a
    number before text at the same place, a prefix first."""
    runs_a = [(digits, "".join(run)) for digits, run in itertools.groupby(a, str.isdigit)]
    runs_b = [(digits, "".join(run)) for digits, run in itertools.groupby(b, str.isdigit)]
    for (digits_a, text_a), (digits_b, text_b) in zip(runs_a, runs_b, strict=False):
        if digits_a and digits_b:
            order = _sign(int(text_a) - int(text_b))
        elif digits_a != digits_b:
            order = -1 if digits_a else 1
        else:
            order = (text_a > text_b) - (text_a < text_b)
        if order:
            return order
    return _sign(len(runs_a) - len(runs_b))


def compare(a: str, b: str) -> int:
    key_a, key_b = version_key(a), version_key(b)
    return (key_a > key_b) - (key_a < key_b)


@given(VERSIONS | DOTTED, VERSIONS | DOTTED)
def test_version_key_orders_as_the_reference_does(a: str, b: str) -> None:
    assert compare(a, b) == reference(a, b)


@given(st.lists(VERSIONS | DOTTED, max_size=12))
def test_sorting_by_the_key_agrees_with_the_reference_pairwise(versions: list[str]) -> None:
    ordered = sorted(versions, key=version_key)
    for earlier, later in itertools.pairwise(ordered):
        assert reference(earlier, later) <= 0


def test_the_examples_of_the_spec() -> None:
    ordered = sorted(["1.10.0", "1.2.10", "1.9.0", "1.2.9", "1.2.10-rc1"], key=version_key)
    assert ordered == ["1.2.9", "1.2.10", "1.2.10-rc1", "1.9.0", "1.10.0"]
    assert sorted(["b", "a10", "a9", "10", "9"], key=version_key) == ["9", "10", "a9", "a10", "b"]
