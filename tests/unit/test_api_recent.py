"""ByManifestDigest keeps values by manifest digest, least recently used out first, by weight."""

from __future__ import annotations

from artifactstore.api_recent import ByManifestDigest
from artifactstore.records import Package


def _package(digest: str) -> Package:
    return Package(
        "id", "acme/app", "1", "finalized", "standard", (), "t", "t", f"blake3:{digest * 64}"
    )


def test_a_value_is_made_once_and_the_least_recently_used_goes_first() -> None:
    recent: ByManifestDigest[str] = ByManifestDigest(2)
    made: list[str] = []

    def make(value: str) -> str:
        made.append(value)
        return value

    a, b, c = _package("a"), _package("b"), _package("c")
    assert recent.get(a, lambda: make("A")) == "A"
    assert recent.get(b, lambda: make("B")) == "B"
    assert recent.get(a, lambda: make("A again")) == "A"  # kept; now the most recent
    recent.get(c, lambda: make("C"))
    assert made == ["A", "B", "C"]
    assert recent.digests() == [str(a.manifest_digest), str(c.manifest_digest)]


def test_values_are_dropped_by_weight_and_one_too_heavy_is_not_kept() -> None:
    recent: ByManifestDigest[list[int]] = ByManifestDigest(5, len)
    light, heavy, too_heavy = _package("1"), _package("2"), _package("3")
    recent.get(light, lambda: [1, 2])
    recent.get(heavy, lambda: [1, 2, 3, 4])  # 2 + 4 > 5: the light one goes
    assert recent.digests() == [str(heavy.manifest_digest)]
    assert recent.get(too_heavy, lambda: list(range(6))) == list(range(6))
    assert recent.digests() == [str(heavy.manifest_digest)]


def test_a_value_made_twice_at_once_is_weighed_once() -> None:
    # Two threads asking for one digest both make it; the second kept replaces the first.
    recent: ByManifestDigest[list[int]] = ByManifestDigest(5, len)
    twice, other = _package("4"), _package("5")

    def make_while_another_thread_does() -> list[int]:
        recent.get(twice, lambda: [1, 2])
        return [1, 2, 3]

    recent.get(twice, make_while_another_thread_does)
    recent.get(other, lambda: [1, 2])  # 3 + 2 fits in 5: nothing is dropped
    assert recent.digests() == [str(twice.manifest_digest), str(other.manifest_digest)]
